"""Training never produces NaN silently: it trains to finite parameters and a finite ELBO, or it
stops with a message naming the cause (NaN losses are what scVI users most often trip over).

The hostile inputs are the ones scvi-tools users report: a batch with a single cell (BatchNorm,
and a degenerate library prior (62)), genes that are all zero, very deep cells (totals ~1e6-1e7)
and very shallow ones (1-2 counts), a learning rate that is far too high, and normalized or
log-transformed data instead of raw counts; on simulated data and on real PBMC counts, for the
three likelihoods, the observed and the latent library, and the gene / gene-batch / gene-cell
dispersions. Every fit is small (2-3 epochs); the file takes ~20 s on one core.
"""

from __future__ import annotations

import itertools

import anndata as ad
import numpy as np
import pytest
import torch

from scvi_edu.data import CountData
from scvi_edu.model import SCVI
from scvi_edu.module import VAE
from scvi_edu.simulate import simulate
from scvi_edu.train import NonFiniteLossError, train

LIKELIHOODS = ("zinb", "nb", "poisson")
LIBRARY = {"observed": True, "latent": False}
SMALL = dict(n_hidden=64, n_latent=5)
FIT = dict(max_epochs=3, batch_size=64, seed=0, progress_bar=False)


def _sim(seed: int = 0, n_cells: int = 300, n_genes: int = 100) -> ad.AnnData:
    adata = simulate(n_cells=n_cells, n_genes=n_genes, n_batches=2, n_types=3, n_latent=4,
                     de_genes_per_type=5, seed=seed)  # fmt: skip
    adata.obs["batch"] = adata.obs["batch"].astype(str)
    adata.X = np.asarray(adata.X, dtype=np.float64)
    return adata


def _assert_finite(model: SCVI, adata: ad.AnnData | None = None) -> None:
    """Everything a user reads after training is finite."""
    bad = [n for n, p in model.module.named_parameters() if not torch.isfinite(p).all()]
    assert not bad, f"non-finite parameters after training: {bad}"
    bad = [
        n
        for n, b in model.module.named_buffers()
        if b.is_floating_point() and not torch.isfinite(b).all()
    ]
    assert not bad, f"non-finite buffers (BatchNorm statistics?) after training: {bad}"
    columns = ["train_loss", "train_elbo"]
    if len(model.validation_indices):
        columns.append("validation_elbo")
    hist = model.history[columns].to_numpy()
    assert np.isfinite(hist).all(), f"non-finite training history:\n{model.history}"
    elbo = model.get_elbo(adata)
    assert np.isfinite(elbo), f"get_elbo is {elbo}"
    z = model.get_latent_representation(adata)
    assert np.isfinite(z).all(), "non-finite latent representation"


def _fit(adata: ad.AnnData, train_kwargs: dict | None = None, **model_options) -> SCVI:
    model = SCVI(adata, batch_key="batch", seed=0, **{**SMALL, **model_options})
    model.train(**{**FIT, **(train_kwargs or {})})
    return model


def _hostile(adata: ad.AnnData, single_cell_batch: bool, seed: int = 0) -> ad.AnnData:
    """All-zero genes, 20 cells x1000 deeper (totals ~1e6), 20 cells with 1-2 counts and,
    optionally, a batch holding a single cell."""
    rng = np.random.default_rng(seed)
    adata = adata.copy()
    X = np.array(adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X, dtype=np.float64)
    X[:, :5] = 0.0  # genes that are all zero
    deep, shallow = rng.choice(adata.n_obs, size=(2, 20), replace=False)
    X[deep] *= 1000.0
    X[shallow] = 0.0
    for i in shallow:
        X[i, rng.integers(5, adata.n_vars, size=rng.integers(1, 3))] += 1.0
    adata.X = X
    obs = adata.obs.copy()
    obs["batch"] = obs["batch"].astype(str)
    if single_cell_batch:
        obs.iloc[0, obs.columns.get_loc("batch")] = "solo"
    adata.obs = obs
    totals = X.sum(1)
    assert totals.max() > 1e6 and totals.min() <= 2 and (X[:, :5] == 0).all()
    return adata


# ----------------------------------------------------------------------------- simulated data
CONFIGS = list(itertools.product(LIKELIHOODS, LIBRARY, ("gene", "gene-batch", "gene-cell")))


def test_no_nan_over_20_seeds_simulated():
    """20 seeds (data, initialisation, training), cycling over likelihood x library x dispersion."""
    for seed in range(20):
        likelihood, library, dispersion = CONFIGS[seed % len(CONFIGS)]
        adata = _sim(seed)
        options = dict(gene_likelihood=likelihood, dispersion=dispersion)
        model = SCVI(adata, batch_key="batch", seed=seed, use_observed_lib_size=LIBRARY[library],
                     **options, **SMALL)  # fmt: skip
        model.train(**{**FIT, "max_epochs": 2, "seed": seed})
        _assert_finite(model)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("library", LIBRARY)
@pytest.mark.parametrize("dispersion", ["gene", "gene-cell"])
def test_hostile_cells_and_genes_train_finite(likelihood, library, dispersion):
    """Zero genes, cells x1000 deeper, cells with 1-2 counts (and, with the observed library, a
    batch of one cell: BatchNorm sees it only inside minibatches of several cells)."""
    adata = _hostile(_sim(1), single_cell_batch=LIBRARY[library])
    model = _fit(adata, gene_likelihood=likelihood, use_observed_lib_size=LIBRARY[library],
                 dispersion=dispersion)  # fmt: skip
    _assert_finite(model)


def test_single_cell_batch_latent_library_raises_at_setup():
    """A batch of one cell has variance 0 in the prior p(l | s) of eq. (62): KL(q || p) of (66)
    would be infinite. Set-up refuses it with a message naming the batch and the cause."""
    adata = _hostile(_sim(2), single_cell_batch=True)
    with pytest.raises(ValueError, match=r"\['solo'\].*single cell"):
        SCVI(adata, batch_key="batch", use_observed_lib_size=False)
    data = CountData(adata, batch_key="batch")
    with pytest.raises(ValueError, match="single cell"):
        VAE(data.n_genes, n_batch=data.n_batch, use_observed_lib_size=False,
            library_log_means=data.library_log_means,
            library_log_vars=data.library_log_vars)  # fmt: skip


def test_single_cell_batch_is_fine_with_observed_library_and_at_query_time():
    adata = _hostile(_sim(3), single_cell_batch=True)
    model = _fit(adata)
    solo = adata[adata.obs["batch"] == "solo"].copy()
    assert solo.n_obs == 1
    _assert_finite(model, solo)  # one cell, one batch: BatchNorm in eval mode
    rho = model.get_normalized_expression(solo, transform_batch="solo", n_samples=3, seed=0)
    assert np.isfinite(rho.to_numpy()).all()
    np.testing.assert_allclose(rho.to_numpy().sum(1), 1.0, rtol=1e-4)
    # a batch of one cell in the training minibatches: a size that leaves one cell alone
    model = _fit(adata, {"batch_size": 299, "train_size": 1.0})  # 300 cells = 299 + 1
    _assert_finite(model)


def test_query_of_a_single_cell_with_the_latent_library():
    adata = _sim(4)
    model = _fit(adata, use_observed_lib_size=False)
    _assert_finite(model, adata[:1].copy())
    ll = model.get_marginal_ll(adata[:1].copy(), n_mc_samples=20, seed=0)
    assert np.isfinite(ll)


def test_two_cell_batch_with_almost_equal_totals_trains():
    """Variance of log library ~1e-6 in one batch: a very narrow but valid prior (finite KL)."""
    adata = _sim(5)
    X = adata.X
    X[:2] = 0.0
    X[0, :10], X[1, :10] = 100.0, 100.0
    X[1, 10] = 1.0  # totals 1000 and 1001
    obs = adata.obs.copy()
    obs.iloc[:2, obs.columns.get_loc("batch")] = "pair"
    adata.obs = obs
    data = CountData(adata, batch_key="batch")
    assert 0 < data.library_log_vars.min() < 1e-6
    for likelihood in LIKELIHOODS:
        _assert_finite(_fit(adata, gene_likelihood=likelihood, use_observed_lib_size=False))


# ------------------------------------------------------------------------ real PBMC counts
@pytest.fixture(scope="module")
def pbmc() -> ad.AnnData:
    """700 PBMCs x 765 genes of UMI counts; the cell-cycle phase (G1 / S / G2M, 17 cells) as a
    'batch'."""
    try:
        from scvi_edu.datasets import pbmc68k_counts

        adata = pbmc68k_counts()
    except ImportError:  # pragma: no cover - before scvi_edu.datasets existed
        import scanpy as sc

        src = sc.datasets.pbmc68k_reduced()
        n = src.obs["n_counts"].to_numpy()[:, None]
        adata = ad.AnnData(np.round(np.expm1(src.raw.X.toarray()) * n / 1e4), obs=src.obs.copy())
    import scanpy as sc

    phase = sc.datasets.pbmc68k_reduced().obs["phase"].astype(str).to_numpy()
    adata.obs["batch"] = phase
    adata.X = np.asarray(adata.X, dtype=np.float64)
    assert (adata.X == np.round(adata.X)).all()
    return adata


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("library", LIBRARY)
def test_pbmc_real_counts_train_finite(pbmc, likelihood, library):
    _assert_finite(_fit(pbmc, {"max_epochs": 2}, gene_likelihood=likelihood,
                        use_observed_lib_size=LIBRARY[library]))  # fmt: skip


@pytest.mark.parametrize("library", LIBRARY)
def test_pbmc_hostile_train_finite(pbmc, library):
    adata = _hostile(pbmc, single_cell_batch=LIBRARY[library], seed=1)
    _assert_finite(_fit(adata, {"max_epochs": 2}, use_observed_lib_size=LIBRARY[library],
                        dispersion="gene-cell"))  # fmt: skip


# ------------------------------------------------------------- where scvi-tools users see NaN
@pytest.mark.parametrize("lr", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("library", LIBRARY)
@pytest.mark.parametrize("dispersion", ["gene", "gene-cell"])
def test_learning_rate_far_too_high_trains_or_names_the_learning_rate(lr, library, dispersion):
    adata = _sim(6)
    try:
        model = _fit(adata, {"lr": lr, "max_epochs": 10}, dispersion=dispersion,
                     use_observed_lib_size=LIBRARY[library])  # fmt: skip
    except NonFiniteLossError as err:
        assert f"learning rate {lr:g} is high" in str(err), str(err)
        return
    _assert_finite(model)


def test_huge_counts_train_or_stop_with_a_message():
    """Totals ~1e8-1e9 (e.g. normalized data scaled up to look integer)."""
    adata = _sim(7)
    adata.X = adata.X * 1e5
    for library in LIBRARY.values():
        try:
            model = _fit(adata, use_observed_lib_size=library)
        except NonFiniteLossError as err:
            assert "raw counts" in str(err), str(err)
            continue
        _assert_finite(model)


def test_normalized_or_log_transformed_input_is_refused_with_the_cause():
    adata = _sim(8)
    X = adata.X
    normalized = adata.copy()
    normalized.X = X / X.sum(1, keepdims=True) * 1e4
    with pytest.raises(ValueError, match="normalized or log-transformed"):
        SCVI(normalized, batch_key="batch")
    logged = adata.copy()
    logged.X = np.log1p(X)
    with pytest.raises(ValueError, match="normalized or log-transformed"):
        SCVI(logged, batch_key="batch")
    scaled = adata.copy()
    scaled.X = (X - X.mean(0)) / (X.std(0) + 1)
    with pytest.raises(ValueError, match="raw counts"):
        SCVI(scaled, batch_key="batch")
    rounded_scaled = adata.copy()
    rounded_scaled.X = np.round(scaled.X)
    with pytest.raises(ValueError, match="negative"):
        SCVI(rounded_scaled, batch_key="batch")


# ----------------------------------------------------- the guards behind "never NaN silently"
class _NaNGradientVAE(VAE):
    """A finite loss whose gradient is NaN: where(p > 0, sqrt(p), 0) at p = -1."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trap = torch.nn.Parameter(torch.tensor(-1.0))

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.loss = out.loss + torch.where(self.trap > 0, torch.sqrt(self.trap), 0.0)
        return out


class _NaNInEvalVAE(VAE):
    """Finite in training mode, NaN ELBO in eval mode (as BatchNorm's running statistics can be)."""

    def loss(self, *args, **kwargs):
        out = super().loss(*args, **kwargs)
        if not self.training:
            out.elbo = out.elbo * float("nan")
        return out


def test_nan_gradient_with_finite_loss_is_not_silent():
    data = CountData(_sim(9).X)
    module = _NaNGradientVAE(data.n_genes, **SMALL)
    with pytest.raises(NonFiniteLossError, match=r"non-finite (gradients|parameters).*trap"):
        train(module, data, **{**FIT, "max_epochs": 1})


def test_non_finite_validation_elbo_is_not_silent():
    data = CountData(_sim(10).X)
    module = _NaNInEvalVAE(data.n_genes, **SMALL)
    with pytest.raises(NonFiniteLossError, match="validation"):
        train(module, data, **{**FIT, "max_epochs": 1})


@pytest.mark.parametrize("dispersion", ["gene", "gene-cell"])
@pytest.mark.parametrize("library", LIBRARY)
def test_decoder_outputs_stay_finite_for_extreme_network_outputs(dispersion, library):
    """exp(px_r) and exp(log library) overflow float32 above 88.7 (theta = inf, mu = inf * 0):
    the module bounds them, so the likelihood and its gradients stay finite."""
    data = CountData(_sim(12).X)
    x = torch.as_tensor(data.X[:64])
    kwargs = {} if LIBRARY[library] else dict(library_log_means=data.library_log_means,
                                               library_log_vars=data.library_log_vars)  # fmt: skip
    for extreme in (200.0, -200.0):
        torch.manual_seed(0)
        module = VAE(data.n_genes, dispersion=dispersion, use_observed_lib_size=LIBRARY[library],
                     **kwargs, **SMALL)  # fmt: skip
        with torch.no_grad():
            if dispersion == "gene":
                module.px_r.fill_(extreme)
            else:
                module.decoder.px_r_decoder.bias.fill_(extreme)
        inference = module.inference(x, None)
        if not LIBRARY[library]:
            inference["library"] = torch.full_like(inference["library"], abs(extreme))
        generative = module.generative(inference["z"], inference["library"], None)
        out = module.loss(x, inference, generative, None)
        assert torch.isfinite(out.loss) and torch.isfinite(out.elbo).all(), (extreme, out.loss)
        out.loss.backward()
        bad = [n for n, p in module.named_parameters() if p.grad is not None
               and not torch.isfinite(p.grad).all()]  # fmt: skip
        assert not bad, f"non-finite gradients for {bad}"
