"""SCVI end to end (data -> train -> user API) on simulated counts with a known truth.

One model is trained per session (``trained_model`` in conftest: 2000 cells x 500 genes, 2
batches, 5 types, 20 epochs). Quality measures, computed here with scikit-learn:

* cell types: accuracy of a 15-nearest-neighbour classifier of the true type, fitted on the
  training cells' latent and evaluated on the held-out validation cells. It asks what a
  downstream clustering needs (are a cell's neighbours of its type?) without depending on a
  clustering algorithm's number of clusters or shape assumptions; ARI of KMeans(5) is checked
  too, with a looser bound.
* batches: the entropy of the batch labels among each cell's 50 nearest neighbours, averaged
  (scVI paper's batch-mixing entropy; 1 bit = perfect mixing of two balanced batches), compared
  with the same on PCA of log-normalized counts; and a 15-NN batch classifier (chance 0.5).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from scvi_edu.model import SCVI, default_max_epochs
from scvi_edu.simulate import simulate, true_rho
from scvi_edu.train import NonFiniteLossError

SIM_SEED = 0  # as in conftest.sim_adata
EPOCHS = 20  # as in conftest.TRAIN
FAST = dict(max_epochs=3, batch_size=64, progress_bar=False)


def knn_accuracy(latent, labels, train_idx, test_idx, k: int = 15) -> float:
    clf = KNeighborsClassifier(n_neighbors=k).fit(latent[train_idx], labels[train_idx])
    return float((clf.predict(latent[test_idx]) == labels[test_idx]).mean())


def batch_entropy(latent, batches, k: int = 50) -> float:
    idx = NearestNeighbors(n_neighbors=k + 1).fit(latent).kneighbors(latent, return_distance=False)
    p = batches[idx[:, 1:]].mean(axis=1)  # fraction of batch 1 among the neighbours
    h = -(p * np.log2(np.clip(p, 1e-12, 1)) + (1 - p) * np.log2(np.clip(1 - p, 1e-12, 1)))
    return float(h.mean())


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ------------------------------------------------------------------------- training
def test_history_and_elbo_increase(trained_model):
    h = trained_model.history
    assert len(h) == EPOCHS
    for col in ("kl_weight", "train_loss", "train_elbo", "train_reconstruction_loss",
                "train_kl_z", "train_kl_l", "validation_elbo", "validation_reconstruction_loss",
                "validation_kl_z", "validation_kl_l", "train_elbo_per_gene",
                "validation_elbo_per_gene"):  # fmt: skip
        assert col in h.columns and np.isfinite(h[col]).all(), col
    # warm-up reaches full weight within the run (a quarter of the steps by default)
    assert h["kl_weight"].iloc[0] < 1 and h["kl_weight"].iloc[-1] == 1.0
    assert (np.diff(h["kl_weight"]) >= 0).all()
    # the ELBO rises: by > 5% between the first and last epochs, and the last 5 epochs beat the
    # first 5 (validation cells, eval mode)
    v = h["validation_elbo"].to_numpy()
    assert v[-1] > v[0] + 0.05 * abs(v[0])
    assert v[-5:].mean() > v[:5].mean()
    # ELBO = -(reconstruction + KL_z + KL_l); observed library: KL_l = 0
    np.testing.assert_allclose(
        h["validation_elbo"],
        -(h["validation_reconstruction_loss"] + h["validation_kl_z"] + h["validation_kl_l"]),
        rtol=1e-6,
    )
    assert (h["validation_kl_l"] == 0).all() and (h["validation_kl_z"] > 0).all()
    np.testing.assert_allclose(h["train_elbo_per_gene"], h["train_elbo"] / 500)


def test_latent_recovers_types_and_mixes_batches(trained_model, sim_adata):
    z = trained_model.get_latent_representation()
    assert z.shape == (2000, 10) and z.dtype == np.float32
    types = sim_adata.obs["cell_type"].cat.codes.to_numpy()
    batches = sim_adata.obs["batch"].cat.codes.to_numpy()
    tr, va = trained_model.train_indices, trained_model.validation_indices
    assert len(va) == 200
    acc = knn_accuracy(z, types, tr, va)
    ari = adjusted_rand_score(types, KMeans(5, n_init=10, random_state=0).fit_predict(z))
    assert acc >= 0.9, acc
    assert ari >= 0.8, ari
    x = np.asarray(sim_adata.X, dtype=np.float64)
    pca = PCA(10, random_state=0).fit_transform(np.log1p(x / x.sum(1, keepdims=True) * 1e4))
    h_latent, h_pca = batch_entropy(z, batches), batch_entropy(pca, batches)
    assert h_latent > 0.7 and h_latent > h_pca + 0.5, (h_latent, h_pca)
    assert knn_accuracy(z, batches, tr, va) < 0.85  # chance: 0.5; PCA: ~1


def test_normalized_expression(trained_model, sim_adata):
    rho = trained_model.get_normalized_expression(n_samples=2)
    assert isinstance(rho, pd.DataFrame) and rho.shape == (2000, 500)
    assert list(rho.index) == list(sim_adata.obs_names)
    np.testing.assert_allclose(rho.sum(axis=1), 1.0, rtol=1e-4)
    cp10k = trained_model.get_normalized_expression(library_size=1e4, return_numpy=True)
    np.testing.assert_allclose(cp10k.sum(axis=1), 1e4, rtol=1e-4)
    # "latent" with the observed library: mu = l * rho with l = total counts of the cell
    mu = trained_model.get_normalized_expression(library_size="latent", return_numpy=True)
    np.testing.assert_allclose(mu.sum(axis=1), np.asarray(sim_adata.X).sum(axis=1), rtol=1e-4)
    # close to the true rho: correlation of log values over all entries
    truth = np.log(sim_adata.layers["true_rho"]).ravel()
    assert np.corrcoef(np.log(rho.to_numpy()).ravel(), truth)[0, 1] > 0.9
    for bad in (0, -1.0, "cp10k"):
        with pytest.raises(ValueError, match="library_size"):
            trained_model.get_normalized_expression(library_size=bad)


def test_get_elbo(trained_model, sim_adata):
    elbo = trained_model.get_elbo()
    assert np.isfinite(elbo) and elbo < 0
    untrained = SCVI(sim_adata, batch_key="batch", seed=0)
    assert elbo > untrained.get_elbo() + 50
    h = trained_model.history
    assert abs(elbo - h["validation_elbo"].iloc[-1]) < 0.05 * abs(elbo)


def test_get_elbo_seed_fixes_the_monte_carlo_sample(trained_model):
    state = torch.random.get_rng_state()
    a, b = trained_model.get_elbo(seed=3), trained_model.get_elbo(seed=3)
    assert a == b, "same seed, same sample of (z, l), same ELBO"
    assert trained_model.get_elbo(seed=4) != a, "another seed draws another (z, l)"
    assert torch.equal(torch.random.get_rng_state(), state), "the global RNG was advanced"


def test_queries_on_new_adata(trained_model, sim_adata):
    z = trained_model.get_latent_representation()
    sub = sim_adata[:100].copy()
    np.testing.assert_allclose(trained_model.get_latent_representation(sub), z[:100], atol=1e-5)
    sparse = sim_adata[:300].copy()
    sparse.X = sp.csr_matrix(sparse.X)
    np.testing.assert_allclose(trained_model.get_latent_representation(sparse), z[:300], atol=1e-5)
    unseen = sim_adata[:50].copy()
    unseen.obs["batch"] = unseen.obs["batch"].cat.rename_categories(["batch_0", "batch_new"])
    with pytest.raises(ValueError, match=r"category 'batch_new'.*not seen in training"):
        trained_model.get_latent_representation(unseen)
    with pytest.raises(ValueError, match="shape mismatch: the data has 499 genes"):
        trained_model.get_latent_representation(sim_adata[:, 1:].copy())
    sample = trained_model.get_latent_representation(sub, give_mean=False)
    assert sample.shape == (100, 10) and not np.allclose(sample, z[:100], atol=1e-3)


def test_adata_not_modified_by_model(trained_model, sim_adata):
    """The session's adata, after training and queries, equals a fresh simulation."""
    fresh = simulate(seed=SIM_SEED)
    np.testing.assert_array_equal(sim_adata.X, fresh.X)
    assert sim_adata.X.dtype == fresh.X.dtype
    pd.testing.assert_frame_equal(sim_adata.obs, fresh.obs, check_dtype=True)
    pd.testing.assert_frame_equal(sim_adata.var, fresh.var, check_dtype=True)
    assert list(sim_adata.layers.keys()) == list(fresh.layers.keys())
    assert list(sim_adata.obsm.keys()) == list(fresh.obsm.keys())
    assert list(sim_adata.uns.keys()) == list(fresh.uns.keys())


def test_save_load_round_trip(trained_model, sim_adata, tmp_path):
    trained_model.save(tmp_path / "m")
    with pytest.raises(ValueError, match="overwrite=True"):
        trained_model.save(tmp_path / "m")
    loaded = SCVI.load(tmp_path / "m", sim_adata)
    np.testing.assert_array_equal(
        loaded.get_latent_representation(), trained_model.get_latent_representation()
    )
    assert loaded.batch_categories == trained_model.batch_categories
    pd.testing.assert_frame_equal(loaded.history, trained_model.history)
    assert "trained for 20 epochs" in repr(loaded)
    wrong = sim_adata[:20].copy()
    wrong.obs["batch"] = wrong.obs["batch"].cat.rename_categories(["x", "y"])
    with pytest.raises(ValueError, match="not seen in training"):
        SCVI.load(tmp_path / "m", wrong)
    with pytest.raises(ValueError, match="no saved model"):
        SCVI.load(tmp_path / "nothing", sim_adata)


def test_repr(trained_model):
    r = repr(trained_model)
    assert r.startswith("SCVI(2000 cells x 500 genes, n_batch=2") and "trained for 20" in r


# ------------------------------------------------------------------------- small, fast runs
def test_same_seed_identical_latent_and_parameters(small_adata):
    def fit(seed):
        m = SCVI(small_adata, batch_key="batch", seed=seed, n_hidden=16, n_latent=3)
        quiet(m.train, seed=seed, **FAST)
        return m

    a, b, c = fit(0), fit(0), fit(1)
    for (k, va), (_, vb) in zip(a.module.state_dict().items(), b.module.state_dict().items(),
                                strict=True):  # fmt: skip
        assert torch.equal(va, vb), k
    np.testing.assert_array_equal(a.get_latent_representation(), b.get_latent_representation())
    assert not np.allclose(a.get_latent_representation(), c.get_latent_representation())
    pd.testing.assert_frame_equal(a.history, b.history)
    # the global RNG is not consumed by seeded runs
    torch.manual_seed(123)
    state = torch.get_rng_state()
    fit(0)
    assert torch.equal(state, torch.get_rng_state())


def test_latent_library_uses_prior_62(small_adata):
    m = SCVI(small_adata, batch_key="batch", use_observed_lib_size=False, n_hidden=16, seed=0)
    log_total = np.log(np.asarray(small_adata.X, dtype=np.float64).sum(axis=1))
    codes = small_adata.obs["batch"].cat.codes.to_numpy()
    for b in range(2):
        np.testing.assert_allclose(m.module.library_log_means[b], log_total[codes == b].mean(),
                                   rtol=1e-6)  # fmt: skip
        np.testing.assert_allclose(m.module.library_log_vars[b], log_total[codes == b].var(),
                                   rtol=1e-5)  # fmt: skip
    quiet(m.train, seed=0, **FAST)
    assert np.isfinite(m.history["validation_kl_l"]).all() and (m.history["train_kl_l"] > 0).all()
    assert "latent" in repr(m)
    one = small_adata.copy()
    one.obs["batch"] = one.obs["batch"].cat.add_categories("solo")
    one.obs.iloc[0, one.obs.columns.get_loc("batch")] = "solo"
    with pytest.raises(ValueError, match=r"\['solo'\] have zero variance"):
        SCVI(one, batch_key="batch", use_observed_lib_size=False)


def test_singleton_minibatch_is_dropped(small_adata):
    """129 training cells with batch_size 128: the 1-cell minibatch would break BatchNorm."""
    m = SCVI(small_adata[:129].copy(), batch_key="batch", n_hidden=16, seed=0)
    quiet(m.train, max_epochs=2, batch_size=128, train_size=1.0, seed=0, progress_bar=False)
    assert np.isnan(m.history["validation_elbo"]).all()  # no validation cells
    assert np.isfinite(m.history["train_elbo"]).all()


def test_nan_loss_stops_with_diagnosis(small_adata):
    m = SCVI(small_adata, batch_key="batch", n_hidden=16, seed=0)
    with torch.no_grad():
        m.module.decoder.px_scale_decoder[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"non-finite at epoch 0, step 0.*learning rate "
                       r"10 is high.*raw counts"):  # fmt: skip
        quiet(m.train, lr=10.0, **FAST)


def test_early_stopping_and_warmup_arguments(small_adata):
    m = SCVI(small_adata, batch_key="batch", n_hidden=16, seed=0)
    quiet(m.train, max_epochs=10, early_stopping=True, patience=2, min_delta=1e9,
          kl_warmup_fraction=0.0, seed=0, progress_bar=False)  # fmt: skip
    assert len(m.history) == 3  # best at epoch 0, then 2 epochs without a 1e9 improvement
    with pytest.raises(ValueError, match="never reaches 1"):
        m.train(max_epochs=5, n_epochs_kl_warmup=10, progress_bar=False)
    with pytest.raises(ValueError, match="max_epochs"):
        m.train(max_epochs=0)
    assert default_max_epochs(2000) == 400 and default_max_epochs(100_000) == 80


def test_model_options_checked(small_adata):
    with pytest.raises(ValueError, match="computed from the data"):
        SCVI(small_adata, n_input=3)
    with pytest.raises(ValueError, match="dispersion"):
        SCVI(small_adata, dispersion="per-cell")
    with pytest.raises(ValueError, match="batch_key 'donor'"):
        SCVI(small_adata, batch_key="donor")
    with pytest.raises(ValueError, match="SCVI needs an AnnData"):
        SCVI(np.asarray(small_adata.X))


def test_save_load_with_integer_batches_and_numpy_options(small_adata, tmp_path):
    a = small_adata
    a.obs["plate"] = a.obs["batch"].cat.codes.to_numpy().astype(np.int64) + 7  # ints 7, 8
    m = SCVI(a, batch_key="plate", seed=0, n_hidden=np.int64(16), dropout_rate=np.float64(0.1))
    quiet(m.train, **FAST)
    m.save(tmp_path / "m")
    loaded = SCVI.load(tmp_path / "m", a)
    assert loaded.batch_categories == [7, 8]
    np.testing.assert_array_equal(loaded.get_latent_representation(), m.get_latent_representation())


def test_batch_corrected_expression_matches_counterfactual_truth(trained_model, sim_adata):
    """Cells of batch_1 decoded as if in batch_0 match the true rho in batch_0
    (``simulate.true_rho(transform_batch=...)``) better than their own-batch truth."""
    in1 = (sim_adata.obs["batch"] == "batch_1").to_numpy()
    idx = np.flatnonzero(in1)[:300]
    r0 = trained_model.get_normalized_expression(indices=idx, transform_batch="batch_0", seed=0)
    assert list(r0.index) == list(sim_adata.obs_names[idx])
    log_r0 = np.log(r0.to_numpy()).ravel()
    to_b0 = np.corrcoef(log_r0, np.log(true_rho(sim_adata, "batch_0")[idx]).ravel())[0, 1]
    to_own = np.corrcoef(log_r0, np.log(sim_adata.layers["true_rho"][idx]).ravel())[0, 1]
    assert to_b0 > 0.93 and to_b0 > to_own + 0.03, (to_b0, to_own)
    sub = trained_model.get_normalized_expression(
        indices=[0, 5], gene_list=["gene_3", "gene_1"], transform_batch=["batch_0", "batch_1"]
    )
    assert sub.shape == (2, 2) and list(sub.columns) == ["gene_3", "gene_1"]
    one = trained_model.get_normalized_expression(indices=[0, 5], gene_list="gene_3")
    assert list(one.columns) == ["gene_3"]  # a single name is one gene, not its letters
    with pytest.raises(ValueError, match="not among the batches"):
        trained_model.get_normalized_expression(transform_batch="batch_9")
    with pytest.raises(ValueError, match="unknown gene"):
        trained_model.get_normalized_expression(gene_list=["gene_0", "CD3E"])
    with pytest.raises(ValueError, match="indices"):
        trained_model.get_normalized_expression(indices=[2000])


def test_differential_expression_finds_planted_genes(trained_model, sim_adata):
    de = trained_model.differential_expression(
        groupby="cell_type", group1="type_0", n_samples=500, seed=0
    )
    planted = (sim_adata.var["de_type"] == "type_0").reindex(de.index).to_numpy()
    assert planted.sum() == 30
    assert planted[:30].mean() >= 0.8  # ranking by proba_de puts the planted genes first
    with pytest.raises(ValueError, match="groupby"):
        trained_model.differential_expression(groupby="tissue")


def test_predictive_sample_and_marginal_ll_shapes(trained_model):
    pp = trained_model.posterior_predictive_sample(
        indices=[0, 1, 2], n_samples=3, gene_list=["gene_0", "gene_1"], seed=0
    )
    assert pp.shape == (3, 2, 3) and np.all(pp == np.round(pp)) and np.all(pp >= 0)
    ll = trained_model.get_marginal_ll(indices=np.arange(20), n_mc_samples=10, return_mean=False)
    assert ll.shape == (20,) and np.all(np.isfinite(ll)) and np.all(ll < 0)


def test_var_activation_by_name_is_saved_and_a_function_is_refused(small_adata, tmp_path):
    """var_activation='exp' (scvi-tools' encoder) round-trips through save/load; a function
    cannot be stored in a weights-only file, so save says so instead of writing a broken file."""
    model = SCVI(small_adata, seed=0, n_hidden=8, n_latent=2, var_activation="exp")
    model.save(tmp_path / "m")
    loaded = SCVI.load(tmp_path / "m", small_adata)
    assert loaded.module.z_encoder.var_activation is torch.exp
    h = torch.linspace(-3, 3, 7)
    torch.testing.assert_close(loaded.module.z_encoder.var_activation(h), torch.exp(h))
    with pytest.raises(ValueError, match="var_activation"):
        SCVI(small_adata, var_activation="relu")
    fn_model = SCVI(small_adata, seed=0, n_hidden=8, n_latent=2, var_activation=torch.exp)
    with pytest.raises(ValueError, match="cannot be saved"):
        fn_model.save(tmp_path / "f")
