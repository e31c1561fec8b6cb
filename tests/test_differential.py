"""Differential expression: the Bayes factors against closed forms, the FDR rule against brute
force, and the whole procedure against the planted truth of a simulation.

The simulation-based tests use the model of ``tests/_downstream.py`` (trained once per session).
Measured there (type_0 vs type_1, 20 planted genes of 200, batch_correction=True, n_samples
5000; ``python benchmarks/downstream_quality.py``): AUROC of |bayes_factor| (vanilla) 0.992, of
proba_de (change) 1.000; the change-mode set at posterior expected FDR 0.05 (23 genes, all 20
planted ones among them) has a true expected FDR of 0.039 (see the test).
"""

import numpy as np
import pandas as pd
import pytest
from _downstream import trained_sim_model  # tests/ is on sys.path
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

import scvi_edu.differential as de_module
from scvi_edu.differential import bayes_factors, differential_expression, fdr_de_prediction
from scvi_edu.model import SCVI
from scvi_edu.simulate import simulate, true_log_fold_change, true_pairwise_log_fold_changes


# ------------------------------------------------------------------------ closed forms
def test_vanilla_and_change_probabilities_match_closed_forms():
    """log rho_a ~ N(m1, s1^2), log rho_b ~ N(m2, s2^2) independent: the probabilities are
    normal CDFs of LFC = (log rho_a - log rho_b) / log 2,
    LFC ~ N((m1 - m2) / log 2, (s1^2 + s2^2) / log(2)^2)."""
    rng = np.random.default_rng(0)
    n = 200_000
    m1 = np.array([0.0, 0.3, -1.0, 2.0])
    m2 = np.array([0.0, 0.0, 0.0, 0.0])
    s1 = np.array([0.5, 0.2, 1.0, 0.3])
    s2 = np.array([0.5, 0.2, 0.1, 0.3])
    a = np.exp(m1 + s1 * rng.standard_normal((n, 4)))
    b = np.exp(m2 + s2 * rng.standard_normal((n, 4)))
    lfc_mean = (m1 - m2) / np.log(2)
    lfc_sd = np.sqrt(s1**2 + s2**2) / np.log(2)
    p_greater = norm.sf(0, loc=lfc_mean, scale=lfc_sd)
    van = bayes_factors(a, b, mode="vanilla")
    np.testing.assert_allclose(van["proba_m1"], p_greater, atol=0.005)  # MC sd <= 0.0012
    np.testing.assert_allclose(van["proba_de"], np.maximum(p_greater, 1 - p_greater), atol=0.005)
    # Bayes factor log(p / (1 - p)) where p is not saturated (gene 3: p = 1 - 1e-6, MC gives 1).
    np.testing.assert_allclose(
        van["bayes_factor"][:3], np.log(p_greater / (1 - p_greater))[:3], atol=0.03
    )
    delta = 0.25
    p_change = norm.cdf(-delta, lfc_mean, lfc_sd) + norm.sf(delta, lfc_mean, lfc_sd)
    ch = bayes_factors(a, b, mode="change", delta=delta)
    np.testing.assert_allclose(ch["proba_de"], p_change, atol=0.005)
    np.testing.assert_allclose(ch["proba_m2"], 1 - p_change, atol=0.005)
    np.testing.assert_allclose(ch["lfc_mean"], lfc_mean, atol=0.01)
    np.testing.assert_allclose(ch["lfc_median"], lfc_mean, atol=0.01)
    np.testing.assert_allclose(ch["lfc_std"], lfc_sd, rtol=0.01)
    np.testing.assert_allclose(ch["scale1"], np.exp(m1 + s1**2 / 2), rtol=0.01)  # log-normal mean
    # The pitfall of the docstring: a wide LFC centred at 0 (gene 0: sd 1.02) has
    # P(|LFC| > 0.25) = 0.80, and the vanilla probability of either direction is 1/2.
    assert ch["proba_de"][0] == pytest.approx(0.80, abs=0.01)
    assert van["proba_m1"][0] == pytest.approx(0.5, abs=0.005)


def _fdr_brute_force(p, target):
    """Largest k such that the k most probable genes have mean (1 - p) <= target (all k tried)."""
    order = np.argsort(-p, kind="stable")
    best = 0
    for k in range(1, len(p) + 1):
        if np.mean(1 - p[order[:k]]) <= target:
            best = k
    mask = np.zeros(len(p), bool)
    mask[order[:best]] = True
    return mask


def test_fdr_rule_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(50):
        p = rng.beta(0.5, 0.5, size=rng.integers(1, 60))
        target = rng.uniform(0.01, 0.3)
        np.testing.assert_array_equal(fdr_de_prediction(p, target), _fdr_brute_force(p, target))
    # Hand example: (1 - p) sorted = 0, .02, .1, .3 -> means 0, .01, .04, .105 -> k = 3 at 0.05.
    p = np.array([0.7, 1.0, 0.9, 0.98])
    np.testing.assert_array_equal(fdr_de_prediction(p, 0.05), [False, True, True, True])
    assert not fdr_de_prediction(np.array([0.5, 0.6]), 0.05).any()


def test_bad_input_small():
    with pytest.raises(ValueError, match="fdr_target"):
        fdr_de_prediction(np.array([0.9]), 0.0)
    with pytest.raises(ValueError, match="mode"):
        bayes_factors(np.ones((3, 2)), np.ones((3, 2)), mode="t-test")
    with pytest.raises(ValueError, match="paired"):
        bayes_factors(np.ones((3, 2)), np.ones((4, 2)))


# -------------------------------------------------------------------- simulated truth
@pytest.fixture(scope="module")
def sim():
    return trained_sim_model()


def _de(sim, **kw):
    adata = sim["adata"]
    args = dict(n_samples=5000, seed=0, var_names=adata.var_names, batch_correction=True)
    args.update(kw)
    return differential_expression(
        sim["module"], sim["x"], sim["batch"], adata.obs["cell_type"], **args
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["vanilla", "change"])
def test_planted_genes_rank_first(sim, mode):
    adata = sim["adata"]
    df = _de(sim, group1="type_0", group2="type_1", mode=mode).loc[adata.var_names]
    planted = adata.var["de_type"].isin(["type_0", "type_1"]).to_numpy()
    score = df["proba_de"] if mode == "change" else df["bayes_factor"].abs()
    assert roc_auc_score(planted, score) >= 0.9
    # The estimated LFC follows the true one (log2 rho, scVI's estimand).
    truth = true_log_fold_change(adata, "type_0", "type_1", kind="rho")
    assert np.corrcoef(df["lfc_mean"], truth)[0, 1] > 0.9
    assert set(df.columns) >= {
        "proba_de", "proba_m1", "proba_m2", "bayes_factor", "lfc_mean", "lfc_median", "lfc_std",
        "scale1", "scale2", "raw_mean1", "raw_mean2", "is_de_fdr_0.05",
    }  # fmt: skip
    np.testing.assert_allclose(df["proba_m1"] + df["proba_m2"], 1.0)
    # raw means: plain averages of the counts of each group
    ct = adata.obs["cell_type"].to_numpy()
    np.testing.assert_allclose(df["raw_mean1"], sim["x"][ct == "type_0"].mean(0), rtol=1e-5)


@pytest.mark.slow
def test_posterior_expected_fdr_is_calibrated(sim):
    """Change mode, delta 0.25, target 0.05. The hypothesis is about a *random pair of cells*
    (one per group, decoded in a common batch): H1_g = {|log2 rho_a - log2 rho_b| > delta}. Its
    true probability pi_g is computed here from the simulation's true rho (20 000 random
    pairs), so the true expected FDR of the selected set is mean(1 - pi_g). Tolerance: within
    0.1 of the target (measured 0.039, later 0.104). Against the *planted* genes the false
    proportion is higher (3 of 23 selected, 0.13): null genes vary from cell to cell
    (within-type structure), so their pairwise |LFC| often exceeds delta although their group
    means are equal."""
    adata = sim["adata"]
    delta, target = 0.25, 0.05
    df = _de(sim, group1="type_0", group2="type_1", mode="change", delta=delta)
    df = df.loc[adata.var_names]
    selected = df[f"is_de_fdr_{target}"].to_numpy()
    lfc = true_pairwise_log_fold_changes(adata, "type_0", "type_1")
    pi = (np.abs(lfc) > delta).mean(0)
    assert selected.sum() >= 15
    true_fdr = np.mean(1 - pi[selected])
    # Posterior expected FDR is a model-based estimate, not a guarantee: on this simulation the
    # true FDR at a 0.05 target measured 0.039 and 0.104 under two training recipes (fused vs
    # plain Adam, NB log-pmf variants). The claim tested: it stays within 0.1 of the target.
    assert true_fdr <= target + 0.1, f"true FDR {true_fdr:.3f} at target {target}"
    planted = adata.var["de_type"].isin(["type_0", "type_1"]).to_numpy()
    assert (selected & planted).sum() / planted.sum() >= 0.8  # recall of the planted genes


@pytest.mark.slow
def test_one_vs_rest_and_bad_input(sim):
    adata = sim["adata"]
    df = _de(sim, n_samples=500, mode="change")
    assert sorted(df["comparison"].unique()) == [f"type_{k} vs rest" for k in range(4)]
    assert len(df) == 4 * adata.n_vars
    groups = adata.obs["cell_type"]
    with pytest.raises(ValueError, match="type_9"):
        _de(sim, group1="type_9")
    with pytest.raises(ValueError, match="no cells"):
        empty = pd.Series(
            pd.Categorical(groups.to_numpy(), categories=[*groups.cat.categories, "x"])
        )
        differential_expression(sim["module"], sim["x"], sim["batch"], empty, "x", "type_0")
    with pytest.raises(ValueError, match="n_samples"):
        _de(sim, group1="type_0", n_samples=0)
    with pytest.raises(ValueError, match="mode"):
        _de(sim, group1="type_0", mode="wilcoxon")


def test_scvi_differential_expression_api(monkeypatch):
    adata = simulate(n_cells=120, n_genes=30, n_batches=2, n_types=3, n_latent=4,
                     de_genes_per_type=4, seed=3)  # fmt: skip
    model = SCVI(adata, batch_key="batch", seed=0, n_latent=3, n_hidden=16)
    model.train(max_epochs=3, seed=0, progress_bar=False)
    df = model.differential_expression(groupby="cell_type", group1="type_0", n_samples=200, seed=0)
    assert sorted(df.index) == sorted(adata.var_names)
    assert (df["comparison"] == "type_0 vs rest").all()
    assert df["proba_de"].is_monotonic_decreasing
    df2 = model.differential_expression(
        groupby="cell_type", group1="type_0", group2="type_2", mode="change",
        batch_correction=True, n_samples=200, seed=0, fdr_target=0.1,
    )  # fmt: skip
    assert "is_de_fdr_0.1" in df2.columns
    # Statistics computed gene block by gene block equal the one-block computation.
    kw = dict(groupby="cell_type", group1="type_1", n_samples=300, seed=1, mode="change")
    one_block = model.differential_expression(**kw)
    monkeypatch.setattr(de_module, "_BLOCK_ENTRIES", 300 * 7)  # blocks of 7 genes
    pd.testing.assert_frame_equal(model.differential_expression(**kw), one_block)
    with pytest.raises(ValueError, match="groupby"):
        model.differential_expression(groupby="tissue", group1="type_0")
    with pytest.raises(ValueError, match="type_5"):
        model.differential_expression(groupby="cell_type", group1="type_5")
    with pytest.raises(ValueError, match="n_samples"):
        model.differential_expression(groupby="cell_type", group1="type_0", n_samples=0)
