"""Tests of ``zinb_log_likelihood``, the training likelihood with its gradient in closed form.

It must be the same function as the readable ``log_zinb_positive`` (eq. (58)-(59) corrected)
summed over genes, with the same gradient. References: mpmath at 50 digits (values, summed per
cell), ``log_zinb_positive`` / ``log_nb_positive`` differentiated by autograd (gradients), and
``torch.autograd.gradcheck`` (finite differences) on both the per-gene table of the log Gamma
terms and the exact path (counts above the table, non-integer counts, a theta per cell).
"""

from __future__ import annotations

import itertools

import mpmath as mp
import numpy as np
import pytest
import torch
from scipy import stats

from scvi_edu import fast_likelihood as FL
from scvi_edu.distributions import log_nb_positive, log_zinb_positive
from scvi_edu.fast_likelihood import zinb_log_likelihood

T64 = torch.float64
mp.mp.dps = 50

X_GRID = [0.0, 1.0, 2.0, 5.0, 16.0, 17.0, 100.0, 1e3, 1e4, 1e5, 1e6]
MU_GRID = [0.0, 1e-6, 1e-3, 0.1, 1.0, 7.5, 100.0, 1e3, 1e4, 1e6]
THETA_GRID = [1e-6, 1e-3, 0.1, 1.0, 10.0, 1e3, 1e5, 1e8]  # one gene per theta
ZI_GRID = [-100.0, -20.0, -1.0, 0.0, 1.5, 20.0, 100.0]


def _mp_log_zinb(x, mu, theta, zi):
    """log ZINB by its definition: log(pi + (1 - pi) NB(0)) or log(1 - pi) + log NB(x)."""
    x, mu, theta = mp.mpf(x), mp.mpf(mu), mp.mpf(theta)
    nb = mp.loggamma(x + theta) - mp.loggamma(theta) - mp.loggamma(x + 1)
    nb += theta * mp.log(theta / (theta + mu)) + (x * mp.log(mu / (theta + mu)) if x > 0 else 0)
    if zi is None:
        return nb
    pi = 1 / (1 + mp.exp(-mp.mpf(zi)))  # P(technical zero)
    return mp.log(pi + (1 - pi) * mp.exp(nb)) if x == 0 else mp.log(1 - pi) + nb


def _grid_cells(with_zi: bool):
    """Cells x genes: gene g has theta = THETA_GRID[g]; each cell one (x, mu, zi) combination,
    so the per-gene table path (theta a row) sees every theta at every (x, mu, zi)."""
    rows = [
        (x, mu, zi)
        for x, mu, zi in itertools.product(X_GRID, MU_GRID, ZI_GRID if with_zi else [None])
        if not (mu == 0.0 and x > 0)  # log p = -inf there
    ]
    n_genes = len(THETA_GRID)
    x = np.array([[r[0]] * n_genes for r in rows])
    mu = np.array([[r[1]] * n_genes for r in rows])
    zi = None if not with_zi else np.array([[r[2]] * n_genes for r in rows])
    theta = np.array([THETA_GRID])
    return rows, x, mu, theta, zi


def _cells_off_mpmath(rows, x, mu, theta, zi):
    """Cells whose value is off the mpmath sum by more than 1e-6 * max(1, sum_g |ref|)
    (float64), and a description of the first of them."""
    th_cells = np.broadcast_to(theta, x.shape)
    ref, scale = [], []
    for r, ths in zip(rows, th_cells, strict=True):
        vals = [float(_mp_log_zinb(r[0], r[1], th, r[2])) for th in ths]
        ref.append(sum(vals))
        scale.append(sum(abs(v) for v in vals))
    ref, scale = np.array(ref), np.array(scale)
    zi_t = None if zi is None else torch.tensor(zi)
    got = zinb_log_likelihood(torch.tensor(x), torch.tensor(mu), torch.tensor(theta), zi_t).numpy()
    bad = np.flatnonzero(~(np.abs(got - ref) <= 1e-6 * np.maximum(1.0, scale)))
    first = f"(x, mu, zi) = {rows[bad[0]]}: {got[bad[0]]} vs {ref[bad[0]]}" if bad.size else ""
    return bad, first


@pytest.mark.parametrize("with_zi", [True, False], ids=["zinb", "nb"])
def test_matches_mpmath_per_cell_on_the_stability_grid(with_zi):
    """float64, theta one row (the per-gene table) and theta per cell (lgamma/digamma)."""
    rows, x, mu, theta, zi = _grid_cells(with_zi)
    # 50 distinct rows of theta (more than fast_likelihood._MAX_TABLES): the lgamma path
    per_cell = theta * (1 + 1e-3 * (np.arange(len(rows)) % 50))[:, None]
    for what, th in [("theta per gene", theta), ("theta per cell", per_cell)]:
        bad, first = _cells_off_mpmath(rows, x, mu, th, zi)
        assert bad.size == 0, (
            f"zinb_log_likelihood ({what}) differs from the mpmath ZINB of eq. (58) (corrected) "
            f"at {bad.size} cells, e.g. {first}"
        )


def _random_problem(seed, n=40, g=30, big=True, dtype=T64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.poisson(torch.rand(n, g, generator=gen, dtype=dtype) * 4, generator=gen)
    x[torch.rand(n, g, generator=gen) < 0.5] = 0  # many zeros, as in real data
    if big:
        x[0, :3] = torch.tensor([17.0, 250.0, 1e5], dtype=dtype)  # above the table
    mu = torch.rand(n, g, generator=gen, dtype=dtype) * 20 + 1e-3
    theta = torch.rand(1, g, generator=gen, dtype=dtype) * 30 + 1e-2
    theta[0, :2] = torch.tensor([1e6, 1e-4], dtype=dtype)
    zi = torch.randn(n, g, generator=gen, dtype=dtype) * 3
    return x, mu, theta, zi


THETA_SHAPES = {
    "gene": lambda th, n: th,  # (1, G): the per-gene table
    "gene (G,)": lambda th, n: th[0],
    # (n, G) with three distinct rows, as gene-batch gives: one table per distinct row
    "gene-batch": lambda th, n: torch.cat([th, 2 * th, th / 3])[torch.arange(n) % 3],
    # (n, G) with a theta per cell (more rows than fast_likelihood._MAX_TABLES): lgamma/digamma
    "gene-cell": lambda th, n: th * (1 + 0.01 * torch.arange(n, dtype=th.dtype))[:, None],
}


@pytest.mark.parametrize("theta_shape", list(THETA_SHAPES))
@pytest.mark.parametrize("with_zi", [True, False], ids=["zinb", "nb"])
def test_values_and_gradients_equal_the_autograd_of_the_readable_formula(theta_shape, with_zi):
    x, mu, theta, zi = _random_problem(0)
    theta = THETA_SHAPES[theta_shape](theta, x.shape[0])
    params = [p.requires_grad_() for p in (mu, theta, zi if with_zi else None) if p is not None]
    w = torch.linspace(-1.0, 2.0, x.shape[0], dtype=T64)  # a generic upstream gradient

    ref = log_zinb_positive(x, mu, theta, zi) if with_zi else log_nb_positive(x, mu, theta)
    ref = ref.sum(dim=-1)
    got = zinb_log_likelihood(x, mu, theta, zi if with_zi else None)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-9, msg="value: eq. (58)/(59)")
    g_ref = torch.autograd.grad((ref * w).sum(), params)
    g_got = torch.autograd.grad((got * w).sum(), params)
    for name, a, b in zip(["mu", "theta", "zi_logits"], g_got, g_ref, strict=False):
        torch.testing.assert_close(
            a, b, rtol=1e-9, atol=1e-10,
            msg=lambda m, name=name: f"d/d{name} of the ZINB log-likelihood (eq. (58)): {m}",
        )  # fmt: skip


@pytest.mark.parametrize("theta_shape", ["gene", "gene-batch", "gene-cell"])
def test_gradcheck_finite_differences(theta_shape):
    x, mu, theta, zi = _random_problem(1, n=20, g=5)  # 20 rows: gene-cell takes the lgamma path
    x[1, 1] = 2.5  # a non-integer count: the exact path (lgamma), also with a theta per gene
    theta = THETA_SHAPES[theta_shape](theta, x.shape[0])
    theta[..., :2] = torch.tensor([3.0, 0.7], dtype=T64)  # finite differences need moderate theta
    inputs = tuple(p.clone().requires_grad_() for p in (mu, theta, zi))
    assert torch.autograd.gradcheck(lambda m, t, z: zinb_log_likelihood(x, m, t, z), inputs)
    assert torch.autograd.gradcheck(lambda m, t: zinb_log_likelihood(x, m, t), inputs[:2])


def test_broadcasting_and_leading_sample_dimensions():
    """mu of shape (S, n, G) (Monte Carlo samples of z) against x (n, G), theta (G,)."""
    x, mu, theta, zi = _random_problem(2, n=7, g=6)
    mu_s = torch.stack([mu, 2 * mu, 0.5 * mu])
    got = zinb_log_likelihood(x, mu_s, theta[0], zi)
    assert got.shape == (3, 7)
    ref = log_zinb_positive(x, mu_s, theta[0], zi).sum(-1)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-9)
    # gradients through the sample dimension, against autograd of the readable formula
    mu_s.requires_grad_()
    w = torch.linspace(-1.0, 1.0, 21, dtype=T64).reshape(3, 7)
    (g_hand,) = torch.autograd.grad((zinb_log_likelihood(x, mu_s, theta[0], zi) * w).sum(), mu_s)
    (g_auto,) = torch.autograd.grad(
        (log_zinb_positive(x, mu_s, theta[0], zi).sum(-1) * w).sum(), mu_s
    )
    torch.testing.assert_close(g_hand, g_auto, rtol=1e-9, atol=1e-10)
    # theta and zi given as broadcastable shapes get gradients of their own shape
    th = theta[0].clone().requires_grad_()
    z1 = zi[:1].clone().requires_grad_()
    zinb_log_likelihood(x, mu, th, z1).sum().backward()
    assert th.grad.shape == th.shape and z1.grad.shape == z1.shape


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_values_and_gradients_in_both_precisions(dtype):
    """The stability grid in float32 too: finite everywhere, and within float32 rounding of the
    float64 result (the float32 log Gamma difference at theta = 1e7 was once > 0)."""
    _, x, mu, theta, zi = _grid_cells(with_zi=True)
    args = [torch.tensor(a, dtype=dtype) for a in (mu, theta, zi)]
    for a in args:
        a.requires_grad_()
    out = zinb_log_likelihood(torch.tensor(x, dtype=dtype), *args)
    assert torch.isfinite(out).all(), f"non-finite ZINB log-likelihood in {dtype}"
    out.sum().backward()
    for name, a in zip(["mu", "theta", "zi_logits"], args, strict=True):
        assert torch.isfinite(a.grad).all(), f"non-finite d/d{name} in {dtype}"
    if dtype == torch.float32:
        x64, mu64, th64, zi64 = (torch.tensor(a) for a in (x, mu, theta, zi))
        ref = zinb_log_likelihood(x64, mu64, th64, zi64).numpy()
        # float32 rounding bound: eps32 times the size of the terms that are added up
        mu_f = mu64.clamp(min=1e-30)
        terms = (
            (th64 * torch.log1p(mu_f / th64)).abs()
            + x64 * torch.log1p(th64 / mu_f)
            + (torch.lgamma(x64 + th64) - torch.lgamma(th64) - torch.lgamma(x64 + 1)).abs()
            + zi64.abs()
        ).sum(-1)
        tol = 1e-5 * np.maximum(1.0, np.abs(ref)) + 8 * np.finfo(np.float32).eps * terms.numpy()
        err = np.abs(out.detach().numpy() - ref)
        assert (err <= tol).all(), (
            f"float32 off the float64 value by more than its rounding bound: worst "
            f"{err.max():.3g} (eq. (58))"
        )


def test_table_and_exact_paths_agree():
    """The per-gene table of sum_{j<x} log(theta + j) (counts up to _TABLE_MAX) against lgamma."""
    x = torch.arange(0, 3 * FL._TABLE_MAX, dtype=T64).reshape(-1, 1).expand(-1, 4).contiguous()
    theta = torch.tensor([[1e-5, 0.3, 4.0, 2e6]], dtype=T64)
    c_table, d_table = FL._count_terms(x, theta, need_grad=True)
    c_exact, d_exact = FL._count_terms(x, theta.expand_as(x), need_grad=True)
    ks, ths = x[:, 0].tolist(), theta[0].tolist()
    ref_c = torch.tensor(
        [[float(mp.loggamma(k + th) - mp.loggamma(th) - mp.loggamma(k + 1)) for th in ths]
         for k in ks], dtype=T64,
    )  # fmt: skip
    ref_d = torch.tensor(
        [[float(mp.digamma(k + th) - mp.digamma(th)) for th in ths] for k in ks], dtype=T64
    )
    for got in (c_table, c_exact):
        torch.testing.assert_close(got, ref_c, rtol=1e-12, atol=1e-8)
    for got in (d_table, d_exact):
        torch.testing.assert_close(got, ref_d, rtol=1e-10, atol=1e-10)


def test_no_gradient_work_without_autograd():
    x, mu, theta, zi = _random_problem(3)
    with torch.no_grad():
        a = zinb_log_likelihood(x, mu, theta, zi)
    b = zinb_log_likelihood(x, mu.requires_grad_(), theta, zi)
    assert not a.requires_grad and b.requires_grad
    torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)


def test_second_derivatives_are_refused_not_wrong():
    """The backward multiplies saved first derivatives: differentiating it again must raise."""
    x, mu, theta, zi = _random_problem(4, n=5, g=4)
    mu.requires_grad_()
    (g,) = torch.autograd.grad(zinb_log_likelihood(x, mu, theta, zi).sum(), mu, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(g.sum(), mu)


def test_distinct_theta_rows_with_equal_sums_are_not_confused():
    """Rows are grouped by their sum, then checked: (a, b) and (b, a) must not share a table."""
    x, mu, _, zi = _random_problem(5, n=6, g=2, big=False)
    theta = torch.tensor([[0.5, 4.0], [4.0, 0.5]], dtype=T64)[torch.arange(6) % 2]
    ref = log_zinb_positive(x, mu, theta, zi).sum(-1)
    torch.testing.assert_close(zinb_log_likelihood(x, mu, theta, zi), ref, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("theta_shape", list(THETA_SHAPES))
def test_non_integer_counts_use_the_continuous_extension(theta_shape):
    """x need not be an integer (lgamma extends the pmf): such entries, even below the table
    maximum, must not be read from the table of integer counts."""
    x, mu, theta, zi = _random_problem(6, n=20, g=5, big=False)
    x[x > 10] = 10.0  # every gene below the table maximum
    x[0, 0], x[1, 1], x[2, 3] = 0.5, 2.5, 7.25
    theta = THETA_SHAPES[theta_shape](theta, x.shape[0])
    mu.requires_grad_()
    theta.requires_grad_()
    ref = log_zinb_positive(x, mu, theta, zi).sum(-1)
    got = zinb_log_likelihood(x, mu, theta, zi)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-9, msg="non-integer x, eq. (58)")
    for a, b in zip(torch.autograd.grad(got.sum(), [mu, theta]),
                    torch.autograd.grad(ref.sum(), [mu, theta]), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("x_value", [0.3, 0.999, 1e-3])
def test_fractional_counts_below_one_are_positive_counts_on_both_paths(x_value):
    """The zero test is x = 0 on both paths: 0 < x < 1 is a positive count of the continuous
    extension, log(1 - pi) + log NB(x) (once treated as a zero by log_zinb_positive, x < 0.5)."""
    mu, theta, zi = 2.0, 1.5, 0.4
    ref = float(_mp_log_zinb(x_value, mu, theta, zi))
    ref_zero = float(_mp_log_zinb(0.0, mu, theta, zi))
    assert abs(ref - ref_zero) > 0.1  # the test can tell a zero from a positive count
    args = [torch.tensor([[v]], dtype=T64) for v in (x_value, mu, theta, zi)]
    readable = log_zinb_positive(*args).item()
    fast = zinb_log_likelihood(*args).item()
    for name, got in [("log_zinb_positive", readable), ("zinb_log_likelihood", fast)]:
        assert abs(got - ref) <= 1e-10 * max(1.0, abs(ref)), (
            f"{name}(x={x_value}) = {got}, mpmath ZINB of a positive count {ref} "
            f"(the zero case would give {ref_zero}): eq. (58), zero test x == 0"
        )


def test_theta_broadcast_over_cells_is_read_as_one_row():
    """The model's gene dispersion: theta (G,) expanded to (n, G), a stride-0 view. The kernel
    reads the row (one table per gene) and gives the expanded view the per-cell gradient that
    autograd of the readable formula gives (summed over cells by expand's backward)."""
    x, mu, theta, zi = _random_problem(7, n=12, g=9)
    row = theta[0].clone().requires_grad_()
    got = zinb_log_likelihood(x, mu, row.expand_as(mu), zi)
    (g_got,) = torch.autograd.grad((got * torch.arange(12, dtype=T64)).sum(), row)
    row_ref = theta[0].clone().requires_grad_()
    ref = log_zinb_positive(x, mu, row_ref.expand_as(mu), zi).sum(-1)
    (g_ref,) = torch.autograd.grad((ref * torch.arange(12, dtype=T64)).sum(), row_ref)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(g_got, g_ref, rtol=1e-9, atol=1e-10)
    assert FL._shared_row(row.expand_as(mu)).shape == (9,)
    assert FL._shared_row(theta.expand(3, 12, 9)).shape == (9,)
    assert FL._shared_row(mu).shape == mu.shape  # a real (n, G) theta stays as it is


def test_a_theta_per_cell_of_shape_n_by_1_is_not_taken_for_a_gene_row():
    """theta of shape (n, 1) with n == G has G elements but one value per *cell*: it must be
    broadcast over genes, not read as the per-gene row (that once gave log-pmfs > 0)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.poisson(torch.full((5, 5), 4.0, dtype=T64), generator=gen)
    mu = torch.rand(5, 5, dtype=T64, generator=gen) * 8 + 0.5
    theta = torch.tensor([[0.5], [1.0], [2.0], [5.0], [20.0]], dtype=T64)
    got = zinb_log_likelihood(x, mu, theta)
    ref = torch.as_tensor(
        stats.nbinom.logpmf(x.numpy(), theta.numpy(), (theta / (theta + mu)).numpy()).sum(-1)
    )
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
