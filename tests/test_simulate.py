"""scvi_edu.simulate: the generative process (55) and its recorded truth.

Moments are checked against an independent reference: the ZINB pmf built from
``scipy.stats.nbinom`` (size theta, success probability theta / (theta + mu)) mixed with a point
mass at 0 of weight pi = sigmoid(zi_logits). Tolerances are stated as z-scores of Monte Carlo
estimates (|z| < 5; the draws are seeded, so the test is deterministic).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from scvi_edu.simulate import (
    simulate,
    true_log_fold_change,
    true_pairwise_log_fold_changes,
    true_rho,
)


def zinb_moments(mu: float, theta: float, pi: float, k_max: int = 5000) -> dict:
    """Mean, variance, 4th central moment and P(0) of ZINB from scipy's NB pmf on a grid."""
    k = np.arange(k_max)
    pmf = (1 - pi) * stats.nbinom.pmf(k, theta, theta / (theta + mu))
    pmf[0] += pi
    assert abs(pmf.sum() - 1) < 1e-10
    mean = (k * pmf).sum()
    var = ((k - mean) ** 2 * pmf).sum()
    m4 = ((k - mean) ** 4 * pmf).sum()
    return dict(mean=mean, var=var, m4=m4, p0=pmf[0])


def test_shapes_types_and_integer_counts(sim_adata):
    a = sim_adata
    assert a.shape == (2000, 500)
    x = np.asarray(a.X)
    assert np.all(x >= 0) and np.all(x == np.round(x))
    assert (x.sum(axis=1) > 0).all()
    assert list(a.obs["batch"].cat.categories) == ["batch_0", "batch_1"]
    assert list(a.obs["cell_type"].cat.categories) == [f"type_{k}" for k in range(5)]
    assert a.obsm["z_true"].shape == (2000, 10)
    np.testing.assert_allclose(a.layers["true_rho"].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        a.layers["true_rate"], a.obs["true_library"].to_numpy()[:, None] * a.layers["true_rho"],
        rtol=1e-5,
    )  # fmt: skip
    assert a.var["is_de"].sum() == 5 * 30
    assert (a.var["de_type"] != "none").sum() == 150
    assert np.all(np.abs(a.var.loc[a.var["is_de"], "de_log2fc"]) >= 1.0)
    assert np.all(a.var.loc[~a.var["is_de"], "de_log2fc"] == 0)
    # types and batches balanced and crossed
    counts = np.bincount(a.obs["cell_type"].cat.codes * 2 + a.obs["batch"].cat.codes)
    assert counts.min() > 150


def test_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = simulate(n_cells=100, n_genes=30, de_genes_per_type=3, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    b = simulate(n_cells=100, n_genes=30, de_genes_per_type=3, seed=3)
    c = simulate(n_cells=100, n_genes=30, de_genes_per_type=3, seed=4)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.obsm["z_true"], b.obsm["z_true"])
    assert not np.array_equal(a.X, c.X)
    s = simulate(n_cells=100, n_genes=30, de_genes_per_type=3, seed=3, sparse=True)
    assert sp.issparse(s.X)
    np.testing.assert_array_equal(s.X.toarray(), a.X)


@pytest.mark.parametrize("pi", [0.0, 0.4])
def test_counts_match_zinb_moments(pi):
    """Constant mu per gene (no within-type or library spread): iid ZINB draws per gene."""
    n = 20000
    constant = dict(within_type_sd=0.0, library_log_sd=0.0, dropout_range=(pi, pi))
    a = simulate(n_cells=n, n_genes=40, n_batches=1, n_types=1, n_latent=2, de_genes_per_type=0,
                 seed=5, **constant)  # fmt: skip
    x = np.asarray(a.X, dtype=np.float64)
    mu = a.layers["true_rate"].astype(np.float64)
    assert np.ptp(mu, axis=0).max() < 1e-3 * mu.max()  # constant per gene
    for g in range(a.n_vars):
        ref = zinb_moments(mu[0, g], a.var["theta"].iloc[g], a.var["dropout_prob"].iloc[g])
        xs = x[:, g]
        z_mean = (xs.mean() - ref["mean"]) / np.sqrt(ref["var"] / n)
        z_var = (xs.var() - ref["var"]) / np.sqrt((ref["m4"] - ref["var"] ** 2) / n)
        p0 = (xs == 0).mean()
        z_p0 = (p0 - ref["p0"]) / np.sqrt(ref["p0"] * (1 - ref["p0"]) / n + 1e-300)
        assert abs(z_mean) < 5, (g, z_mean)
        assert abs(z_var) < 5, (g, z_var)
        assert abs(z_p0) < 5, (g, p0, ref["p0"])


def test_zero_inflation_convention_is_probability_of_a_zero():
    """sigmoid(zi_logits) = P(technical zero): with pi = 0.4 and a large mean, ~40% zeros."""
    a = simulate(n_cells=5000, n_genes=10, n_batches=1, n_types=1, n_latent=2,
                 de_genes_per_type=0, library_log_means=[np.log(1e5)], dropout_range=(0.4, 0.4),
                 theta_range=(50.0, 50.0), seed=2)  # fmt: skip
    np.testing.assert_allclose(1 / (1 + np.exp(-a.var["zi_logits"])), 0.4)
    zero_fraction = (np.asarray(a.X) == 0).mean(axis=0)
    # NB(0) is ~0 at mu ~ 1e4; the swapped convention would give 60% zeros
    assert np.all(np.abs(zero_fraction - 0.4) < 5 * np.sqrt(0.24 / 5000))


def test_library_sizes_follow_batch_lognormal(sim_adata):
    log_l = np.log(sim_adata.obs["true_library"].to_numpy())
    codes = sim_adata.obs["batch"].cat.codes.to_numpy()
    for b, m in enumerate(sim_adata.uns["library_log_means"]):
        v = log_l[codes == b]
        sd = sim_adata.uns["library_log_sd"]
        assert abs(v.mean() - m) < 5 * sd / np.sqrt(len(v))
        assert abs(v.std() - sd) < 0.1 * sd


def test_recorded_de_truth_matches_the_generated_rho(sim_adata):
    """The planted log2 fold changes in var are visible in the rho the counts were drawn from
    (up to the softmax offset common to all genes), computed here directly from the layer."""
    a = sim_adata
    log2_rho = np.log2(a.layers["true_rho"].astype(np.float64))
    cell_type = a.obs["cell_type"].to_numpy()
    for k in a.obs["cell_type"].cat.categories:
        lfc = log2_rho[cell_type == k].mean(axis=0) - log2_rho[cell_type != k].mean(axis=0)
        mine = (a.var["de_type"] == k).to_numpy()
        others = ~a.var["is_de"].to_numpy()
        offset = np.median(lfc[others])
        assert abs(offset) < 0.3
        # within-type noise of z moves each gene's sample lfc by ~0.1
        np.testing.assert_allclose(lfc[mine] - offset, a.var["de_log2fc"][mine], atol=0.35)
        assert np.abs(lfc[others] - offset).max() < 0.35
        # the helper agrees with the direct computation's signal
        helper = true_log_fold_change(a, k).to_numpy()
        assert np.corrcoef(helper, lfc)[0, 1] > 0.99
        planted = true_log_fold_change(a, k, kind="planted").to_numpy()
        np.testing.assert_allclose(planted[mine], a.var["de_log2fc"][mine])
        assert np.all(planted[others] == 0)
    # DE genes differ in the counts too: mean normalized expression ratio has the planted sign
    x = np.asarray(a.X) / np.asarray(a.X).sum(axis=1, keepdims=True)
    strong = a.var["is_de"].to_numpy() & (np.abs(a.var["de_log2fc"].to_numpy()) > 2)
    for g in np.flatnonzero(strong):
        k = a.var["de_type"].iloc[g]
        ratio = x[cell_type == k, g].mean() / x[cell_type != k, g].mean()
        assert np.sign(np.log(ratio)) == np.sign(a.var["de_log2fc"].iloc[g])


def test_true_rho_transform_batch(sim_adata):
    np.testing.assert_allclose(true_rho(sim_adata), sim_adata.layers["true_rho"], rtol=1e-4)
    r0 = true_rho(sim_adata, transform_batch="batch_0")
    in0 = (sim_adata.obs["batch"] == "batch_0").to_numpy()
    np.testing.assert_allclose(r0[in0], sim_adata.layers["true_rho"][in0], rtol=1e-4)
    assert not np.allclose(r0[~in0], sim_adata.layers["true_rho"][~in0], rtol=1e-2)
    with pytest.raises(ValueError, match="transform_batch"):
        true_rho(sim_adata, transform_batch="batch_7")
    with pytest.raises(ValueError, match="cell type"):
        true_log_fold_change(sim_adata, "type_9")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_types=12), "n_types"),
        (dict(de_genes_per_type=200), "exceeds n_genes"),
        (dict(gene_likelihood="poisson"), "gene_likelihood"),
        (dict(n_cells=0), "n_cells"),
        (dict(dropout_range=(0.5, 0.2)), "dropout_range"),
        (dict(library_log_means=[7.0]), "library_log_means"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate(**{"n_genes": 200, **kwargs})


def test_nb_has_no_zero_inflation():
    a = simulate(n_cells=100, n_genes=30, de_genes_per_type=3, gene_likelihood="nb", seed=0)
    assert np.all(a.var["dropout_prob"] == 0)


def test_true_pairwise_log_fold_changes(sim_adata):
    """Pairs of cells in a common random batch: each row is a difference of two true log2 rho
    vectors, and the mean over pairs tends to the mean log fold change (kind="rho")."""
    lfc = true_pairwise_log_fold_changes(sim_adata, "type_0", "type_1", n_pairs=20_000)
    assert lfc.shape == (20_000, sim_adata.n_vars)
    mean = true_log_fold_change(sim_adata, "type_0", "type_1").to_numpy()
    se = lfc.std(axis=0) / np.sqrt(len(lfc))
    assert np.all(np.abs(lfc.mean(axis=0) - mean) < 5 * se + 1e-9)
    assert np.array_equal(lfc, true_pairwise_log_fold_changes(sim_adata, "type_0", "type_1"))
    with pytest.raises(ValueError, match="type_9"):
        true_pairwise_log_fold_changes(sim_adata, "type_0", "type_9")
