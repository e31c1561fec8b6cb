"""Chapter 4 (eqs. (60)-(70)): KL terms, library prior and the scVI bound, against independent
references (scipy.integrate, numpy, torch.distributions) and against ``scvi_edu.module.VAE``.
"""

import math

import numpy as np
import pytest
import sympy as sp
import torch
from scipy import integrate, stats

from derivations import elbo as E
from scvi_edu.distributions import kl_lognormal, kl_normal
from scvi_edu.module import VAE

# --- (63)-(66): KL divergences ----------------------------------------------------------------


def test_kl_normal_integral_is_the_closed_form():
    assert sp.simplify(E.kl_normal_integral() - E.kl_closed(E.m1, E.s1, E.m2, E.s2)) == 0


@pytest.mark.parametrize(
    "a,b,c,d", [(0.3, 0.7, -0.4, 1.3), (2.0, 0.1, 0.0, 1.0), (-1.0, 3.0, 1.0, 0.5)]
)
def test_kl_normal_against_quadrature_and_torch(a, b, c, d):
    expr = float(E.kl_normal_integral().subs({E.m1: a, E.s1: b, E.m2: c, E.s2: d}))
    p, q = stats.norm(a, b), stats.norm(c, d)
    num = integrate.quad(lambda t: p.pdf(t) * (p.logpdf(t) - q.logpdf(t)), a - 40 * b, a + 40 * b)[
        0
    ]
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(torch.tensor(a, dtype=torch.float64), b),
        torch.distributions.Normal(torch.tensor(c, dtype=torch.float64), d),
    )
    assert expr == pytest.approx(num, rel=1e-8)
    assert expr == pytest.approx(float(ref), rel=1e-12)
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    assert float(kl_normal(t(a), t(b), t(c), t(d))) == pytest.approx(expr, rel=1e-12)


def test_kl_lognormal_direct_integral_over_y():
    a, b, c, d = 0.5, 0.4, 1.0, 0.8
    expr = float(E.kl_lognormal_integral().subs({E.m1: a, E.s1: b, E.m2: c, E.s2: d}))
    p, q = stats.lognorm(s=b, scale=math.exp(a)), stats.lognorm(s=d, scale=math.exp(c))
    num = integrate.quad(lambda y: p.pdf(y) * (p.logpdf(y) - q.logpdf(y)), 0, np.inf, limit=200)[0]
    assert expr == pytest.approx(num, rel=1e-7)
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    assert float(kl_lognormal(t(a), t(b), t(c), t(d))) == pytest.approx(num, rel=1e-7)


def test_kl_diag_standard_against_torch():
    loc, scale = [0.4, -0.9, 1.5], [0.6, 1.4, 0.2]
    expr = float(E.kl_diag_standard(loc, scale))
    q = torch.distributions.Normal(
        torch.tensor(loc, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64)
    )
    p = torch.distributions.Normal(torch.zeros(3, dtype=torch.float64), 1.0)
    assert expr == pytest.approx(float(torch.distributions.kl_divergence(q, p).sum()), rel=1e-12)


def test_lognormal_pdf_normalised():
    f = sp.lambdify(sp.Symbol("y"), E.lognormal_pdf(sp.Symbol("y"), 0.3, 0.5), "math")
    assert integrate.quad(f, 0, np.inf)[0] == pytest.approx(1.0, abs=1e-9)


# --- (62): the library prior ------------------------------------------------------------------


def test_library_prior_mle_symbolic():
    mu_b, var_b, printed = E.library_prior_mle(4)
    vals = {sp.Symbol(f"a{i}", real=True): v for i, v in enumerate([7.0, 7.5, 8.5, 9.3], start=1)}
    arr = np.array(list(vals.values()))
    assert float(mu_b.subs(vals)) == pytest.approx(arr.mean(), rel=1e-14)
    assert float(var_b.subs(vals)) == pytest.approx(np.var(arr, ddof=0), rel=1e-12)
    assert printed == 0  # the printed variance vanishes identically


def test_library_prior_numeric_and_bad_input():
    rng = np.random.default_rng(0)
    counts = rng.poisson(5, size=(40, 30))
    batch = np.repeat([0, 1], 20)
    means, vars_ = E.library_prior(counts, batch)
    logs = np.log(counts.sum(1))
    assert means == pytest.approx([logs[:20].mean(), logs[20:].mean()], rel=1e-14)
    assert vars_ == pytest.approx([np.var(logs[:20]), np.var(logs[20:])], rel=1e-12)
    with pytest.raises(ValueError, match="library size"):
        E.library_prior(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="cells, genes"):
        E.library_prior(np.ones(5))


# --- (60), (69): the bound on a toy with a computable log p(x) ---------------------------------

TOY = dict(
    a=[1.0, -0.5, 0.2],
    b=[0.0, 0.3, -0.2],
    c=[0.5, -1.0, 0.0],
    e=[-1.0, 0.0, -2.0],
    theta=[2.0, 5.0, 1.0],
)
X = [0, 3, 10]


def _toy_log_marginal_grid(toy, xv, n=801):
    """log p(x) by the trapezoid rule on a fine grid with scipy.stats likelihoods (independent
    of ToySCVI's Gauss-Hermite rule and of its log-pmf code)."""
    z = np.linspace(-9, 9, n)[:, None, None]
    t = np.linspace(-9, 9, n)[None, :, None]
    o = np.array(toy.a) * z + np.array(toy.b)
    rho = np.exp(o - o.max(-1, keepdims=True))
    rho = rho / rho.sum(-1, keepdims=True)
    mean = np.exp(toy.prior_loc + toy.prior_scale * t) * rho
    pi = 1 / (1 + np.exp(-(np.array(toy.c) * z + np.array(toy.e))))
    th = np.array(toy.theta)
    nb = stats.nbinom.pmf(np.array(xv), th, th / (th + mean))
    lik = np.where(np.array(xv) == 0, pi + (1 - pi) * nb, (1 - pi) * nb).prod(-1)
    f = lik * stats.norm.pdf(z[..., 0]) * stats.norm.pdf(t[..., 0])
    h = 18 / (n - 1)
    return math.log(integrate.trapezoid(integrate.trapezoid(f, dx=h, axis=1), dx=h))


def test_toy_log_marginal_against_grid():
    toy = E.ToySCVI(**TOY)
    assert toy.log_marginal(X) == pytest.approx(_toy_log_marginal_grid(toy, X), abs=1e-8)


def test_corrected_bound_below_log_px_printed_above():
    toy = E.ToySCVI(**TOY)
    log_px = toy.log_marginal(X)
    rng = np.random.default_rng(3)
    printed_above = 0
    for _ in range(30):
        qz = (rng.normal(0, 1.5), math.exp(rng.normal(-1, 0.7)))
        ql = (toy.prior_loc + rng.normal(0, 0.6), math.exp(rng.normal(-1.5, 0.7)))
        assert toy.elbo(X, qz, ql) <= log_px
        printed_above += toy.elbo(X, qz, ql, printed=True) > log_px
    assert printed_above >= 10  # the printed (69) is no bound for many random q


def test_printed_69_differs_from_corrected_only_by_sign_and_zero_case():
    args = ([0, 4], [0.3], [0.8], [math.log(20.0)], [[0.4, 0.6]], [[-1.0, 0.5]], [2.0, 3.0])
    ql, prior = (3.0, 0.2), (2.8, 0.5)
    corr = E.scvi_elbo(*args, ql=ql, prior_l=prior)
    printed = E.printed_bound_69(*args, ql, prior)
    nb0 = 2.0 * math.log(2.0 / (2.0 + 20.0 * 0.4))
    zi = -1.0
    zero_corr = math.log1p(math.exp(-zi + nb0)) - math.log1p(math.exp(-zi))
    expected = (
        E.evaluate(corr["elbo"]) + 2 * E.evaluate(corr["kl_z"] + corr["kl_l"]) - zero_corr + nb0
    )
    assert E.evaluate(printed) == pytest.approx(expected, rel=1e-12)


# --- the symbolic bound vs scvi_edu.module.VAE -------------------------------------------------


def _case(observed: bool, n_samples: int, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    G, d, B = 5, 2, 2
    kw = (
        {}
        if observed
        else dict(library_log_means=np.array([3.0, 3.5]), library_log_vars=np.array([0.3, 0.5]))
    )
    vae = VAE(G, n_batch=B, n_hidden=4, n_latent=d, use_observed_lib_size=observed, **kw)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so the eval-mode BN path is tested
        for m in vae.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.3)
                m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
                m.weight.copy_(torch.rand_like(m.weight) + 0.5)
                m.bias.copy_(torch.randn_like(m.bias) * 0.1)
    vae = vae.to(dtype).eval()
    x = torch.tensor(np.random.default_rng(seed).poisson(3, (3, G)), dtype=dtype)
    x[0, 1] = 0
    x[2, 3] = 0
    b = torch.tensor([0, 1, 1])
    with torch.no_grad():
        inf = vae.inference(x, b, n_samples=n_samples)
        gen = vae.generative(inf["z"], inf["library"], b)
        loss = vae.loss(x, inf, gen, b)
    return vae, x, b, inf, gen, loss


def _symbolic_cell(vae, x, b, inf, n, n_samples):
    return E.bound_from_vae(vae, x, b, inf, n)


@pytest.mark.parametrize("observed,n_samples", [(True, 1), (False, 1), (False, 3)])
def test_symbolic_bound_equals_vae_loss_float64(observed, n_samples):
    vae, x, b, inf, gen, loss = _case(observed, n_samples)
    for n in range(x.shape[0]):
        out = _symbolic_cell(vae, x, b, inf, n, n_samples)
        assert E.evaluate(out["elbo"]) == pytest.approx(
            float(loss.elbo[n]), rel=1e-13
        )  # measured 2e-16
        assert E.evaluate(-out["reconstruction"]) == pytest.approx(
            float(loss.reconstruction_loss[n]), rel=1e-12
        )
        assert E.evaluate(out["kl_z"]) == pytest.approx(float(loss.kl_z[n]), rel=1e-12)
        assert E.evaluate(out["kl_l"]) == pytest.approx(float(loss.kl_l[n]), rel=1e-12, abs=1e-14)
    elbos = [E.evaluate(_symbolic_cell(vae, x, b, inf, n, n_samples)["elbo"]) for n in range(3)]
    assert float(loss.loss) == pytest.approx(-np.mean(elbos), rel=1e-12)


def test_symbolic_bound_equals_vae_loss_float32():
    vae, x, b, inf, gen, loss = _case(False, 1, dtype=torch.float32)
    for n in range(x.shape[0]):
        out = _symbolic_cell(vae, x, b, inf, n, 1)
        assert E.evaluate(out["elbo"]) == pytest.approx(
            float(loss.elbo[n]), rel=1e-6
        )  # measured 1.3e-7


def test_vae_decoder_is_a_true_softmax():
    vae, x, b, inf, gen, loss = _case(True, 1)
    scale = gen["px_scale"]
    assert torch.all(scale > 0)
    assert torch.allclose(scale.sum(-1), torch.ones_like(scale.sum(-1)), atol=1e-12)
