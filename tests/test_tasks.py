"""The graders of the assignments (``python -m scvi_edu.assignments list``).

One class per task, ``TestTaskN_M``, marked ``task_n_m``: ``pytest -m task_3_2`` grades task 3.2.
In this repository the regions are implemented and every test passes; in a student tree
(``python -m scvi_edu.assignments create DEST``) they fail with the task's
``NotImplementedError`` until the student writes the region.

Each ``check_*`` function compares a student's function with an independent reference (scipy,
torch.distributions, quadrature, a closed form) and raises ``AssertionError`` naming the task's
equation; when the answer equals a known wrong variant (the tutorial's own mistakes among them)
the message names that mistake. ``tests/test_assignments.py`` feeds them the wrong variants.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _grading import failure  # tests/ is on sys.path
from scipy import special, stats

from scvi_edu import differential, distributions, posterior
from scvi_edu import module as module_py
from scvi_edu.data import CountData, library_size_prior
from scvi_edu.module import VAE
from scvi_edu.nn import DecoderSCVI
from scvi_edu.simulate import simulate
from scvi_edu.train import kl_weight_schedule, train


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64) if torch.is_tensor(t) else np.asarray(t)


def _grade(where: str, got, ref, wrong: dict, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """Pass if got == ref; otherwise name the wrong variant it equals, or show the difference."""
    got, ref = _np(got), _np(ref)
    assert got.shape == ref.shape, f"{where}: shape {got.shape}, expected {ref.shape}"
    if np.allclose(got, ref, rtol=rtol, atol=atol):
        return
    for mistake, values in wrong.items():
        if np.allclose(got, _np(values), rtol=rtol, atol=atol, equal_nan=True):
            raise AssertionError(f"{where}: your result is {mistake}")
    k = np.unravel_index(np.nanargmax(np.abs(got - ref)), got.shape) if got.ndim else ()
    raise AssertionError(
        f"{where}: got {got[k]!r} where the reference gives {ref[k]!r} "
        f"(largest difference, at index {k})"
    )


# ------------------------------------------------------------------ chapter 3: likelihoods
X = np.array([0.0, 1.0, 3.0, 10.0, 50.0])[:, None, None]
MU = np.array([0.5, 5.0, 40.0])[None, :, None]
THETA = np.array([0.3, 2.0, 50.0, 1e4])[None, None, :]
X, MU, THETA = np.broadcast_arrays(X, MU, THETA)


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)


def _x_log_x(x):  # x log x with 0 log 0 = 0
    return special.xlogy(x, x)


def check_log_nb_positive(fn) -> None:
    where = "Task 3.1, eq. (56), log NB(x | mu, theta)"
    ref = stats.nbinom.logpmf(X, THETA, THETA / (THETA + MU))
    wrong = {
        "x log(x / (theta + mu)) in place of x log(mu / (theta + mu)) (the tutorial's slip of "
        "(58)/(59))": ref + _x_log_x(X) - special.xlogy(X, MU),
        "the NB with its success probability inverted, p = mu / (theta + mu)": stats.nbinom.logpmf(
            X, THETA, MU / (THETA + MU)
        ),
        "missing the -log x! term": ref + special.gammaln(X + 1),
    }
    _grade(where, fn(_t(X), _t(MU), _t(THETA)), ref, wrong)


def _zinb_ref(x, mu, theta, zi, swap_zero=False, swap_all=False, x_log_x=False):
    pi = special.expit(zi)
    keep = 1 - pi
    if swap_all:
        pi, keep = keep, pi
    nb = stats.nbinom.logpmf(x, theta, theta / (theta + mu))
    if x_log_x:
        nb = nb + _x_log_x(x) - special.xlogy(x, mu)
    zero_pi, zero_keep = (keep, pi) if swap_zero else (pi, keep)
    zero = np.log(zero_pi + zero_keep * np.exp(nb))
    return np.where(x > 0, np.log(keep) + nb, zero)


def check_log_zinb_positive(fn) -> None:
    where = "Task 3.2, eq. (58), log ZINB(x | mu, theta, pi = sigmoid(zi_logits))"
    zi = np.broadcast_to(np.array([-2.0, 0.3, 1.5, 4.0])[None, None, :], X.shape)
    args = (X, MU, THETA, zi)
    ref = _zinb_ref(*args)
    swapped = "the mixture weights of the zero case swapped (the tutorial's (58): sigmoid read as"
    wrong = {
        f"{swapped} P(keep) where it is P(technical zero))": _zinb_ref(*args, swap_all=True),
        f"{swapped} P(keep) in the zero case only)": _zinb_ref(*args, swap_zero=True),
        "x log(x / (theta + mu)) in place of x log(mu / (theta + mu)) "
        "(the tutorial's (58))": _zinb_ref(*args, x_log_x=True),
        "p(0) = pi without the NB's own zeros, (1 - pi) NB(0)": np.where(
            X > 0, ref, np.log(special.expit(zi))
        ),
    }
    _grade(where, fn(_t(X), _t(MU), _t(THETA), _t(zi)), ref, wrong)
    # 0 < x < 1 is a positive count of the continuous extension (lgamma), not a zero
    x = np.array([0.3])
    mu, theta, zi = np.array([2.0]), np.array([1.5]), np.array([0.5])
    log_nb = (
        special.gammaln(x + theta)
        - special.gammaln(theta)
        - special.gammaln(x + 1)
        + theta * np.log(theta / (theta + mu))
        + x * np.log(mu / (theta + mu))
    )
    ref = np.log(special.expit(-zi)) + log_nb
    got = fn(_t(x), _t(mu), _t(theta), _t(zi))
    _grade(f"{where} at x = 0.3 (a positive count: only x == 0 is a zero)", got, ref, {})


def check_zinb_trains(n_epochs: int = 2) -> None:
    """A ZINB VAE trained by autograd through ``distributions.log_zinb_positive``: ELBO rises."""
    adata = simulate(
        n_cells=240, n_genes=40, n_batches=1, n_types=3, n_latent=3, de_genes_per_type=5, seed=3
    )
    data = CountData(adata)
    torch.manual_seed(0)
    module = VAE(
        data.n_genes,
        n_hidden=32,
        n_latent=4,
        gene_likelihood="zinb",
        likelihood_gradient="autograd",
    )
    idx = np.arange(data.n_cells)
    student_zinb, calls = distributions.log_zinb_positive, []

    def spy(*args):  # the student's function, counted: training must go through it
        calls.append(1)
        return student_zinb(*args)

    distributions.log_zinb_positive = spy
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hist = train(
                module,
                data,
                train_indices=idx[:200],
                validation_indices=idx[200:],
                max_epochs=n_epochs,
                lr=1e-2,
                batch_size=50,
                seed=0,
                progress_bar=False,
            )
    finally:
        distributions.log_zinb_positive = student_zinb
    elbo = hist["validation_elbo"].to_numpy()
    where = 'Task 3.2, eq. (58): training with likelihood_gradient="autograd"'
    assert calls, f"{where}: training did not call distributions.log_zinb_positive"
    assert np.isfinite(elbo).all(), f"{where}: the held-out ELBO is not finite: {elbo}"
    assert elbo[-1] > elbo[0], f"{where}: the held-out ELBO did not rise: {elbo}"


def check_log_poisson(fn) -> None:
    where = "Task 3.3, eq. (55), log Poisson(x | rate)"
    x, rate = X[..., 0], MU[..., 0]
    ref = stats.poisson.logpmf(x, rate)
    wrong = {
        "missing the -log x! term": ref + special.gammaln(x + 1),
        "x and rate swapped": rate * np.log(np.maximum(x, 1e-300)) - x - special.gammaln(rate + 1),
    }
    _grade(where, fn(_t(x), _t(rate)), ref, wrong)
    at_zero = _np(fn(_t(np.array([0.0, 2.0])), _t(np.array([0.0, 0.0]))))
    assert at_zero[0] == 0.0 and np.isfinite(at_zero[1]), (
        f"{where}: at rate = 0, log p(0) must be 0 and log p(2) finite, got {at_zero}"
    )


# ----------------------------------------------------------- chapter 4: the scVI lower bound
def check_kl_normal(fn) -> None:
    where = "Task 4.1, eq. (63), KL(N(loc1, scale1^2) || N(loc2, scale2^2))"
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.2, 2.0, size=6), rng.uniform(0.2, 2.0, size=6)
    normal = torch.distributions.Normal
    kl = torch.distributions.kl_divergence
    ref = kl(normal(_t(m1), _t(s1)), normal(_t(m2), _t(s2)))
    wrong = {
        "of the wrong sign (a KL divergence is >= 0)": -ref,
        "the reversed divergence KL(N2 || N1)": kl(normal(_t(m2), _t(s2)), normal(_t(m1), _t(s1))),
        "computed with the scales read as variances (scale is a standard deviation)": kl(
            normal(_t(m1), _t(np.sqrt(s1))), normal(_t(m2), _t(np.sqrt(s2)))
        ),
        "missing the constant -1/2": ref + 0.5,
    }
    _grade(where, fn(_t(m1), _t(s1), _t(m2), _t(s2)), ref, wrong)


def _small_vae(**kw) -> VAE:
    torch.manual_seed(0)
    module = VAE(6, n_hidden=8, n_latent=2, **kw).double()
    module.eval()
    return module


def _counts(n_cells: int, n_genes: int = 6, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return _t(rng.poisson(5.0, size=(n_cells, n_genes)) + 1.0)


def check_reparameterisation(module: VAE) -> None:
    where = "Task 4.2, eq. (61), z = qz_loc + qz_scale * eps"
    x, k = _counts(3), 20000
    one = module.inference(x, None)
    assert one["z"].shape == one["qz_loc"].shape, (
        f"{where}: with n_samples=1, z has shape {tuple(one['z'].shape)}, expected "
        f"{tuple(one['qz_loc'].shape)} (that of qz_loc)"
    )
    torch.manual_seed(1)
    out = module.inference(x, None, n_samples=k)
    z, loc, scale = _np(out["z"]), _np(out["qz_loc"]), _np(out["qz_scale"])
    assert z.shape == (k, *loc.shape), f"{where}: z has shape {z.shape}, expected {(k, *loc.shape)}"
    se = scale / math.sqrt(k)
    assert np.all(np.abs(z.mean(0) - loc) < 5 * se), (
        f"{where}: the mean of z over {k} draws is {z.mean(0).round(3)}, expected qz_loc "
        f"{loc.round(3)}"
    )
    std = z.std(0)
    if np.allclose(std, scale**2, rtol=0.05) and not np.allclose(scale, scale**2, rtol=0.2):
        raise AssertionError(
            f"{where}: eps is multiplied by the variance qz_scale^2; use the "
            "standard deviation qz_scale"
        )
    assert np.allclose(std, scale, rtol=0.05), (
        f"{where}: the standard deviation of z is {std.round(3)}, expected qz_scale "
        f"{scale.round(3)}"
    )
    bias = module.z_encoder.mean_encoder.bias
    bias.grad = None
    module.inference(x, None, n_samples=4)["z"].sum().backward()
    assert bias.grad is not None and torch.allclose(bias.grad, torch.full_like(bias, 12.0)), (
        f"{where}: no gradient flows from z to the encoder (d z / d qz_loc must be 1): sample by "
        "the reparameterisation qz_loc + qz_scale * eps, not torch.normal or .sample()"
    )


def check_softmax_decoder(decoder: DecoderSCVI) -> None:
    where = "Task 4.3, Fig. 3 and eq. (56), px_scale = softmax(o), px_rate = l * px_scale"
    torch.manual_seed(0)
    z = torch.randn(4, 3, dtype=torch.float64)
    library = _t(np.log([[50.0], [200.0], [1000.0], [3000.0]]))
    px_scale, _, px_rate, _ = decoder("gene", z, library, None)
    o = _np(decoder.px_scale_decoder(decoder.px_decoder(z, None)))
    rho = special.softmax(o, axis=-1)
    l = np.exp(_np(library))
    wrong = {
        "o_g / sum_j exp(o_j): the tutorial's Fig. 3, the exp of the numerator dropped": o
        / np.exp(o).sum(-1, keepdims=True),
        "o_g / sum_j o_j (no exp at all)": o / o.sum(-1, keepdims=True),
        "a softmax over the cells (dim 0) instead of the genes": special.softmax(o, axis=0),
    }
    _grade(f"{where}: px_scale", px_scale, rho, wrong)
    wrong = {
        "the log library size times rho: library is log l, use exp(library)": _np(library) * rho,
        "rho without the library size: mu = l * rho": rho,
    }
    _grade(f"{where}: px_rate", px_rate, l * rho, wrong)


def _library_data():
    rng = np.random.default_rng(0)
    X = rng.poisson(rng.uniform(1, 20, size=(40, 1)), size=(40, 8)) + (np.arange(8) == 0)
    batch = rng.integers(0, 3, size=40)
    return X.astype(np.float64), batch


def check_library_size_prior(fn) -> None:
    where = "Task 4.4, eq. (62), the prior of log l per batch"
    X, batch = _library_data()
    log_l = np.log(X.sum(1))
    groups = [log_l[batch == b] for b in range(3)]
    ref = np.array([[g.mean() for g in groups], [g.var() for g in groups]])
    totals = [X.sum(1)[batch == b] for b in range(3)]
    wrong = {
        "the tutorial's (62): the square of the *summed* deviations, identically 0": np.array(
            [ref[0], [(g - g.mean()).sum() ** 2 / g.size for g in groups]]
        ),
        "a variance with n_b - 1 (the prior uses the population variance, / n_b)": np.array(
            [ref[0], [g.var(ddof=1) for g in groups]]
        ),
        "a standard deviation where the variance is asked": np.array(
            [ref[0], [g.std() for g in groups]]
        ),
        "computed on the total counts, not on their logs": np.array(
            [[t.mean() for t in totals], [t.var() for t in totals]]
        ),
    }
    for name, matrix in (("dense X", X), ("scipy.sparse X", sp.csr_matrix(X))):
        means, variances = fn(matrix, batch, 3)
        _grade(f"{where} ({name})", np.array([means, variances]), ref, wrong, rtol=1e-9)
    try:
        fn(X, np.where(batch == 2, 1, batch), 3)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{where}: a batch without cells must raise ValueError")


def check_elbo(module_factory) -> None:
    """``module.loss`` on given encoder/decoder outputs, against scipy and torch.distributions."""
    where = "Task 4.5, eq. (69), the ELBO and the loss"
    module = module_factory(
        use_observed_lib_size=False, library_log_means=[5.0], library_log_vars=[0.3]
    )
    rng = np.random.default_rng(0)
    n, g, d = 5, 6, 2
    x = _counts(n, g)
    gen = dict(
        px_rate=_t(rng.uniform(1, 20, (n, g))),
        px_r=_t(rng.uniform(0.5, 5, (n, g))),
        px_dropout=_t(rng.normal(size=(n, g))),
        px_scale=None,
    )
    inf = dict(
        qz_loc=_t(rng.normal(size=(n, d))),
        qz_scale=_t(rng.uniform(0.3, 1.5, (n, d))),
        ql_loc=_t(rng.normal(5, 0.5, (n, 1))),
        ql_scale=_t(rng.uniform(0.2, 1, (n, 1))),
    )
    kl_weight = 0.3
    out = module.loss(x, inf, gen, None, kl_weight=kl_weight)
    rec = -_zinb_ref(_np(x), _np(gen["px_rate"]), _np(gen["px_r"]), _np(gen["px_dropout"])).sum(1)
    normal, kl = torch.distributions.Normal, torch.distributions.kl_divergence
    kl_z = _np(kl(normal(inf["qz_loc"], inf["qz_scale"]), normal(0.0, 1.0)).sum(-1))
    prior = normal(_t([5.0]), _t([math.sqrt(0.3)]))
    kl_l = _np(kl(normal(inf["ql_loc"], inf["ql_scale"]), prior).sum(-1))
    wrong = {
        "the reconstruction term plus the KL terms: the tutorial's (69) adds them; the ELBO "
        "subtracts them": -rec + kl_z + kl_l,
        "the KL of q(z)q(l) written as the product of the KLs (the tutorial's (67)); it is the "
        "sum": -(rec + kl_z * kl_l),
        "the negative ELBO (the loss per cell), not the ELBO": rec + kl_z + kl_l,
    }
    _grade(f"{where}: elbo", out.elbo, -(rec + kl_z + kl_l), wrong)
    wrong = {
        "the loss with the KL terms subtracted (maximising the KL; "
        "the tutorial's (69)/(70))": np.mean(rec - kl_weight * kl_z - kl_l),
        "the loss without the KL weight on kl_z": np.mean(rec + kl_z + kl_l),
        "the loss with the KL weight on kl_l too (only kl_z is warmed up)": np.mean(
            rec + kl_weight * (kl_z + kl_l)
        ),
        "a sum over cells, not the mean": np.sum(rec + kl_weight * kl_z + kl_l),
    }
    _grade(
        f"{where}: loss (kl_weight = {kl_weight})",
        out.loss,
        np.mean(rec + kl_weight * kl_z + kl_l),
        wrong,
    )


# --------------------------------------------------------------- chapter 5: scVI in practice
def check_kl_weight_schedule(fn) -> None:
    where = "Task 5.1, the KL warm-up weight of eq. (70)"
    cases = [(s, 10) for s in (0, 1, 5, 9, 10, 11, 25)] + [(0, 0), (7, 0), (3, -1)]
    ref = np.array([1.0 if n <= 0 else min(1.0, s / n) for s, n in cases])
    try:
        got = np.array([fn(s, n) for s, n in cases], dtype=np.float64)
    except ZeroDivisionError as err:
        raise AssertionError(
            f"{where}: n_warmup_steps = 0 means no warm-up, weight 1 (got {err!r})"
        ) from err
    wrong = {
        "not capped at 1 (the weight must stay 1 after the warm-up)": [
            1.0 if n <= 0 else s / n for s, n in cases
        ],
        "one step late, (step + 1) / n_warmup_steps: the first step must have weight 0": [
            1.0 if n <= 0 else min(1.0, (s + 1) / n) for s, n in cases
        ],
        "decreasing: the weight grows from 0 to 1 (the KL is switched on gradually)": [
            1.0 if n <= 0 else max(0.0, 1 - s / n) for s, n in cases
        ],
    }
    _grade(where, got, ref, wrong)


def _quadrature_log_px(module: VAE, x: torch.Tensor) -> np.ndarray:
    """log p(x_n) = log of the integral of p(x_n | z) N(z; 0, 1) dz over a grid (1-d z)."""
    grid = torch.linspace(-9, 9, 3601, dtype=torch.float64)
    dz = float(grid[1] - grid[0])
    n = x.shape[0]
    z = grid[:, None, None].expand(-1, n, 1)
    library = torch.log(x.sum(1, keepdim=True)).expand(len(grid), n, 1)
    with torch.no_grad():
        log_px_z = module.get_reconstruction_log_prob(x, module.generative(z, library, None))
    log_prior = stats.norm.logpdf(_np(grid))[:, None]
    return special.logsumexp(_np(log_px_z) + log_prior, axis=0) + math.log(dz)


def _reference_kl_normal(loc1, scale1, loc2, scale2):
    """KL of two normals by torch.distributions (so that task 4.5 is graded without 4.1)."""
    normal = torch.distributions.Normal
    return torch.distributions.kl_divergence(normal(loc1, scale1), normal(loc2, scale2))


class _ReferenceDecoder(DecoderSCVI):
    """DecoderSCVI with the softmax written here (task 5.2 is graded without 4.3)."""

    def forward(self, dispersion, z, library, cat=None):
        h = self.px_decoder(z, cat)
        px_scale = torch.softmax(self.px_scale_decoder(h), dim=-1)
        return px_scale, None, torch.exp(library) * px_scale, self.px_dropout_decoder(h)


class _ReferenceVAE(VAE):
    """VAE with the encoder step and the decoder written here (observed library, one batch), so
    that task 5.2 is graded without tasks 4.2 and 4.3."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        d = self.decoder
        self.decoder = _ReferenceDecoder(
            self.n_latent, self.n_input, n_hidden=d.px_r_decoder.in_features
        )

    def inference(self, x, batch_index, n_samples=1):
        qz_loc, qz_scale = self.z_encoder(torch.log1p(x))
        shape = (n_samples,) if n_samples > 1 else ()
        z = qz_loc + qz_scale * torch.randn(shape + qz_loc.shape, dtype=x.dtype)
        library = torch.log(x.sum(1, keepdim=True)).expand(shape + (x.shape[0], 1))
        return dict(
            z=z, qz_loc=qz_loc, qz_scale=qz_scale, library=library, ql_loc=None, ql_scale=None
        )


def check_marginal_ll(fn) -> None:
    where = "Task 5.2, the importance-sampled log p(x), eqs. (60) and (68)"
    torch.manual_seed(0)
    module = _ReferenceVAE(6, n_hidden=8, n_latent=1, gene_likelihood="nb").double().eval()
    with torch.no_grad():  # a proposal q(z | x) wider than the posterior: light-tailed weights
        module.z_encoder.var_encoder.weight.zero_()
        module.z_encoder.var_encoder.bias.fill_(2.0)
        module.z_encoder.mean_encoder.weight.mul_(0.1)
    x = _counts(4)
    ref = _quadrature_log_px(module, x)
    k = 20000  # Monte Carlo error of the estimate about 0.01 (seed-dependent), tolerance 0.08
    got = np.asarray(fn(module, x, n_mc_samples=k, return_mean=False, seed=0), dtype=np.float64)
    assert got.shape == ref.shape, f"{where}: shape {got.shape}, expected {ref.shape}"
    err = got - ref
    if np.all(np.abs(err) < 0.08):
        return
    if np.all(np.abs(err - math.log(k)) < 0.2):
        raise AssertionError(
            f"{where}: your result is log p(x) + log K: the - log K of the log-mean-exp is missing"
        )
    if np.all(err < -0.2):
        raise AssertionError(
            f"{where}: below log p(x) by {-err.round(3)} (quadrature reference): "
            "the mean of the log weights is the ELBO, a lower bound; log p(x) is "
            "the log of the mean of the weights (logsumexp - log K)"
        )
    raise AssertionError(
        f"{where}: got {got.round(3)}, quadrature gives {ref.round(3)}: check "
        "the signs, log p(z) - log q(z | x) (prior added, proposal subtracted)"
    )


def check_bayes_factors(fn) -> None:
    where = "Task 5.3, the Bayes factor of differential expression"
    rng = np.random.default_rng(0)
    s1 = rng.lognormal(mean=[0.0, 0.3, -0.5, 0.0, 1.0], sigma=0.7, size=(400, 5))
    s2 = rng.lognormal(mean=[0.0, 0.0, 0.0, 0.6, 0.2], sigma=0.7, size=(400, 5))
    eps = differential._EPS
    for mode, p1 in (
        ("vanilla", np.mean(s1 > s2, axis=0)),
        ("change", np.mean(np.abs(np.log2(s1) - np.log2(s2)) > 0.25, axis=0)),
    ):
        out = fn(s1, s2, mode=mode, delta=0.25)
        p_de = np.maximum(p1, 1 - p1) if mode == "vanilla" else p1
        _grade(
            f"{where} ({mode}): proba_m1",
            out["proba_m1"],
            p1,
            {
                "P(rho_a < rho_b): the hypotheses swapped": 1 - p1,
                "P(LFC > delta) without |.|: a change either way counts": np.mean(
                    np.log2(s1) - np.log2(s2) > 0.25, axis=0
                ),
            },
        )
        _grade(f"{where} ({mode}): proba_de", out["proba_de"], p_de, {})
        bf = np.log(p1 + eps) - np.log(1 - p1 + eps)
        _grade(
            f"{where} ({mode}): bayes_factor",
            out["bayes_factor"],
            bf,
            {
                "the log in base 10: the Bayes factor here is a natural log": bf / np.log(10),
                "the odds proba_m1 / proba_m2 without the log": np.exp(bf),
                "log(proba_m2 / proba_m1): the sign is reversed": -bf,
            },
            rtol=1e-4,
        )


# ------------------------------------------------------------------------- the task tests
class TestTask3_1:
    pytestmark = pytest.mark.task_3_1

    def test_log_nb_positive_matches_scipy(self):
        problem = failure(check_log_nb_positive, distributions.log_nb_positive)
        assert problem is None, problem


class TestTask3_2:
    pytestmark = pytest.mark.task_3_2

    def test_log_zinb_positive_matches_scipy(self):
        problem = failure(check_log_zinb_positive, distributions.log_zinb_positive)
        assert problem is None, problem

    def test_zinb_trains_by_autograd(self):
        problem = failure(check_zinb_trains)
        assert problem is None, problem


class TestTask3_3:
    pytestmark = pytest.mark.task_3_3

    def test_log_poisson_matches_scipy(self):
        problem = failure(check_log_poisson, distributions.log_poisson)
        assert problem is None, problem


class TestTask4_1:
    pytestmark = pytest.mark.task_4_1

    def test_kl_normal_matches_torch_distributions(self):
        problem = failure(check_kl_normal, distributions.kl_normal)
        assert problem is None, problem


class TestTask4_2:
    pytestmark = pytest.mark.task_4_2

    def test_z_is_reparameterised(self):
        problem = failure(check_reparameterisation, _small_vae())
        assert problem is None, problem


class TestTask4_3:
    pytestmark = pytest.mark.task_4_3

    def test_decoder_softmax_and_rate(self):
        torch.manual_seed(0)
        problem = failure(check_softmax_decoder, DecoderSCVI(3, 6, n_hidden=8).double().eval())
        assert problem is None, problem


class TestTask4_4:
    pytestmark = pytest.mark.task_4_4

    def test_library_size_prior_per_batch(self):
        problem = failure(check_library_size_prior, library_size_prior)
        assert problem is None, problem


class TestTask4_5:
    pytestmark = pytest.mark.task_4_5

    def test_elbo_subtracts_the_kl_terms(self, monkeypatch):
        monkeypatch.setattr(module_py, "kl_normal", _reference_kl_normal)  # graded without 4.1
        problem = failure(check_elbo, _small_vae)
        assert problem is None, problem


class TestTask5_1:
    pytestmark = pytest.mark.task_5_1

    def test_kl_weight_schedule(self):
        problem = failure(check_kl_weight_schedule, kl_weight_schedule)
        assert problem is None, problem


class TestTask5_2:
    pytestmark = pytest.mark.task_5_2

    def test_marginal_ll_matches_quadrature(self):
        problem = failure(check_marginal_ll, posterior.marginal_ll)
        assert problem is None, problem


class TestTask5_3:
    pytestmark = pytest.mark.task_5_3

    def test_bayes_factors(self):
        problem = failure(check_bayes_factors, differential.bayes_factors)
        assert problem is None, problem
