"""Chapter 2 (the VAE, eqs. (29)-(54)): derivations and Torch toy vs independent references.

References: numerical integration (scipy.integrate.quad), scipy.stats densities, Monte Carlo,
scipy.optimize on the objective written out in numpy, finite-difference Hessians.
"""

import math

import numpy as np
import pytest
import sympy as sp
import torch
from scipy import integrate, optimize, stats

from derivations import vae as V
from scvi_edu.toys import vae as T

GAMMAS = (0.5, 1.0, 4.0)


def _num(expr, **vals):
    subs = {getattr(V, k) if k != "g" else V.gamma: val for k, val in vals.items()}
    return float(sp.N(expr.subs(subs)))


def _cov(g):
    return np.array([[1 + g, 2.0], [2.0, 4 + g]])


def _joint(zz, x, g):
    """p(z) p(x | z), written from the model (47) with noise g I, via scipy.stats."""
    return (
        stats.norm.pdf(zz)
        * stats.norm.pdf(x[0], zz, math.sqrt(g))
        * stats.norm.pdf(x[1], 2 * zz, math.sqrt(g))
    )


def test_gaussian_moments_against_integration():
    t = sp.Symbol("t", real=True)
    for k in range(7):
        direct = sp.integrate(t**k * sp.exp(-(t**2) / 2), (t, -sp.oo, sp.oo)) / sp.sqrt(2 * sp.pi)
        assert sp.simplify(V.standard_normal_moment(k) - direct) == 0
        assert V.standard_normal_moment(k) == pytest.approx(stats.norm.moment(k))


# ---- marginal, posterior, ELBO identity ------------------------------------------------------
@pytest.mark.parametrize("g", GAMMAS)
def test_marginal_against_quadrature_and_scipy(g):
    x = np.array([0.7, -1.3])
    by_quad = integrate.quad(_joint, -np.inf, np.inf, args=(x, g))[0]
    derived = math.exp(_num(V.log_marginal(), x1=x[0], x2=x[1], g=g))
    assert derived == pytest.approx(by_quad, rel=1e-8)
    assert derived == pytest.approx(stats.multivariate_normal(cov=_cov(g)).pdf(x), rel=1e-10)


@pytest.mark.parametrize("g", GAMMAS)
def test_posterior_moments_against_quadrature(g):
    x = np.array([1.1, 0.4])
    px = integrate.quad(_joint, -np.inf, np.inf, args=(x, g))[0]
    mean = integrate.quad(lambda t: t * _joint(t, x, g), -np.inf, np.inf)[0] / px
    second = integrate.quad(lambda t: t * t * _joint(t, x, g), -np.inf, np.inf)[0] / px
    pm, pv = V.posterior()
    assert _num(pm, x1=x[0], x2=x[1], g=g) == pytest.approx(mean, rel=1e-8)
    assert _num(pv, g=g) == pytest.approx(second - mean**2, rel=1e-7)
    assert V.posterior_is_normalised(sp.Rational(3, 2))


def test_elbo_identity_numerically():
    """log p(x) = ELBO + KL(q || p(z|x)) for an arbitrary q, every term by quadrature."""
    g, x, m, s = 1.5, np.array([0.3, -0.9]), 0.4, 0.7  # q = N(0.4, 0.7^2)
    px = integrate.quad(_joint, -np.inf, np.inf, args=(x, g))[0]
    q = stats.norm(m, s)
    lo, hi = m - 12 * s, m + 12 * s
    elbo = integrate.quad(lambda t: q.pdf(t) * (np.log(_joint(t, x, g)) - q.logpdf(t)), lo, hi)[0]
    kl = integrate.quad(lambda t: q.pdf(t) * (q.logpdf(t) - np.log(_joint(t, x, g) / px)), lo, hi)[
        0
    ]
    assert kl > 0
    assert math.log(px) == pytest.approx(elbo + kl, abs=1e-9)
    assert _num(V.elbo_31(), x1=x[0], x2=x[1], g=g, m=m, v=s**2) == pytest.approx(elbo, abs=1e-9)
    assert _num(V.kl_q_posterior(), x1=x[0], x2=x[1], g=g, m=m, v=s**2) == pytest.approx(
        kl, abs=1e-9
    )
    assert V.elbo_identity_residual() == 0


def test_closed_form_elbo_against_monte_carlo():
    """eq. (51) at random parameters vs a Monte Carlo average of log p(x|z) minus the KL."""
    rng = np.random.default_rng(3)
    g, x = 2.0, np.array([0.5, 1.7])
    a, b = rng.normal(size=2), rng.normal(size=2)
    vq = g / (5 + g)
    mu = a @ x
    zz = rng.normal(mu, math.sqrt(vq), size=400_000)
    rec = stats.norm.logpdf(x[0], b[0] * zz, math.sqrt(g)) + stats.norm.logpdf(
        x[1], b[1] * zz, math.sqrt(g)
    )
    kl = 0.5 * (mu**2 + vq - 1 - math.log(vq))
    mc, se = rec.mean() - kl, rec.std() / math.sqrt(zz.size)
    vals = dict(x1=x[0], x2=x[1], g=g, a1=a[0], a2=a[1], b1=b[0], b2=b[1])
    assert _num(V.elbo_linear(), **vals) == pytest.approx(mc, abs=5 * se)
    # and the Torch model's exact ELBO is the same function
    model = T.LinearGaussianVAE(g, init=(a[0], a[1], b[0], b[1]))
    torch_val = model.elbo_exact(torch.tensor(x[None, :])).item()
    assert torch_val == pytest.approx(_num(V.elbo_linear(), **vals), abs=1e-10)


def test_population_loss_against_monte_carlo_and_numpy():
    g = 1.0
    x = T.sample_data(400_000, g, seed=5).numpy()
    a, b = np.array([0.3, -0.2]), np.array([0.8, 1.1])
    mu = x @ a
    per = mu**2 / 2 + b @ b / (2 * (5 + g)) + ((mu[:, None] * b - x) ** 2).sum(1) / (2 * g)
    vals = dict(g=g, a1=a[0], a2=a[1], b1=b[0], b2=b[1])
    pop = _num(V.population_loss(), **vals)
    assert pop == pytest.approx(per.mean(), abs=5 * per.std() / math.sqrt(per.size))
    assert pop == pytest.approx(T.loss_fixed_numpy(np.r_[a, b], _cov(g), g), abs=1e-12)


# ---- stationary points ------------------------------------------------------------------------
def _pop(params, g):
    return T.loss_fixed_numpy(np.asarray(params), _cov(g), g)


def _closed_points(g):
    return {
        p["name"]: np.array(
            [float(sp.N(e.subs(V.gamma, g))) for e in (*p["a"], *p["b"])], dtype=float
        )
        for p in V.stationary_points()
    }


@pytest.mark.parametrize("g", (4.0,))
def test_every_root_of_the_gradient_is_one_of_the_five(g):
    pts = _closed_points(g)
    grad = optimize.approx_fprime
    for name, p in pts.items():
        assert np.abs(grad(p, _pop, 1e-7, g)).max() < 1e-5, name
    rng = np.random.default_rng(0)
    found = set()
    for _ in range(25):
        start = rng.normal(scale=1.5, size=4)
        sol = optimize.root(lambda q: grad(q, _pop, 1e-8, g), start, tol=1e-12)
        if sol.success and np.abs(grad(sol.x, _pop, 1e-8, g)).max() < 1e-6:
            dist = {n: np.abs(sol.x - p).max() for n, p in pts.items()}
            best = min(dist, key=dist.get)
            assert dist[best] < 1e-4, f"a stationary point not in the list: {sol.x}"
            found.add(best)
    assert len(found) >= 3  # root finding from random starts reaches several of them


@pytest.mark.parametrize("g", GAMMAS)
def test_global_minimum_and_hessian_types(g):
    pts = _closed_points(g)
    rng = np.random.default_rng(1)
    for _ in range(5):
        res = optimize.minimize(_pop, rng.normal(size=4), args=(g,), method="BFGS", tol=1e-12)
        assert (
            min(np.abs(res.x - pts["signal+"]).max(), np.abs(res.x - pts["signal-"]).max()) < 1e-4
        )
    expected = {"origin": 2, "signal+": 0, "signal-": 0, "noise+": 1, "noise-": 1}
    for name, p in pts.items():
        h = np.zeros((4, 4))
        eps = 1e-4
        for i in range(4):
            for j in range(4):
                e_i, e_j = np.eye(4)[i] * eps, np.eye(4)[j] * eps
                h[i, j] = (
                    _pop(p + e_i + e_j, g)
                    - _pop(p + e_i - e_j, g)
                    - _pop(p - e_i + e_j, g)
                    + _pop(p - e_i - e_j, g)
                ) / (4 * eps**2)
        eig = np.linalg.eigvalsh(h)
        assert np.all(np.abs(eig) > 1e-4)
        assert int((eig < 0).sum()) == expected[name], name
    kinds = V.classify_stationary_points(sp.nsimplify(g))
    assert {n: k for n, (k, _) in kinds.items()} == {
        n: ("minimum" if k == 0 else f"saddle (index {k})") for n, k in expected.items()
    }
    assert float(kinds["signal+"][1]) == pytest.approx(_pop(pts["signal+"], g), rel=1e-10)


def test_sympy_solve_finds_exactly_five_points():
    sols = V.solve_stationary_exactly(sp.Integer(1))
    assert len(sols) == 5


def test_bound_is_tight_at_the_optimum_numerically():
    g, x = 2.5, np.array([-0.4, 1.2])
    a = np.array([1.0, 2.0]) / (5 + g)
    vals = dict(x1=x[0], x2=x[1], g=g, a1=a[0], a2=a[1], b1=1.0, b2=2.0)
    logp = stats.multivariate_normal(cov=_cov(g)).logpdf(x)
    assert _num(V.elbo_linear(), **vals) == pytest.approx(logp, abs=1e-12)


# ---- closed-form sample optima ----------------------------------------------------------------
@pytest.mark.parametrize("g", GAMMAS)
def test_sample_optimum_fixed_against_scipy(g):
    x = T.sample_data(500, g, seed=2)
    s = T.second_moments(x)
    res = optimize.minimize(
        T.loss_fixed_numpy, np.array([0.1, 0.1, 0.5, 0.5]), args=(s, g), method="BFGS", tol=1e-12
    )
    opt = T.sample_optimum_fixed(x, g)
    sign = np.sign(res.x[2:] @ np.array([1, 2]))
    assert np.allclose(sign * res.x, np.r_[opt["a"], opt["b"]], atol=1e-6)


def test_sample_optimum_learned_against_scipy_likelihood():
    x = T.sample_data(500, 1.0, seed=4).numpy()

    def negloglik(p):
        cov = np.outer(p[:2], p[:2]) + math.exp(p[2]) * np.eye(2)
        return -stats.multivariate_normal(cov=cov).logpdf(x).mean()

    res = optimize.minimize(
        negloglik,
        np.array([0.5, 0.5, 0.0]),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000},
    )
    opt = T.sample_optimum_learned(x)
    b = res.x[:2] * np.sign(res.x[:2] @ np.array([1, 2]))
    assert np.allclose(b, opt["b"], atol=1e-4)
    assert math.exp(res.x[2]) == pytest.approx(opt["var_x"], abs=1e-4)
    assert -res.fun == pytest.approx(opt["elbo"], abs=1e-9)
    # the encoder optimum is the exact posterior of that decoder
    assert opt["var_q"] == pytest.approx(opt["var_x"] / (opt["var_x"] + opt["b"] @ opt["b"]))
    assert np.allclose(opt["a"], opt["b"] / (opt["var_x"] + opt["b"] @ opt["b"]))


# ---- training with the reparameterisation trick -----------------------------------------------
N_TRAIN = 500


@pytest.mark.parametrize("g", GAMMAS)
def test_training_fixed_variances_lands_on_the_optimum(g):
    torch.manual_seed(0)
    x = T.sample_data(N_TRAIN, g, seed=11)
    res = T.fit(T.LinearGaussianVAE(g), x, steps=400, lr=0.05, n_samples=16, seed=0)
    sample = T.sample_optimum_fixed(x, g)
    pop = T.population_optimum(g)
    sd = T.optimum_sampling_std(N_TRAIN, g, n_boot=1000, seed=0)
    # optimiser error well below the statistical spread of the optimum ...
    assert np.abs(res["a"] - sample["a"]).max() < 0.25 * sd["a"].min()
    assert np.abs(res["b"] - sample["b"]).max() < 0.25 * sd["b"].min()
    # ... which itself is O(1/sqrt(N)) around the population optimum
    assert np.all(np.abs(res["a"] - pop["a"]) < 4 * sd["a"])
    assert np.all(np.abs(res["b"] - pop["b"]) < 4 * sd["b"])


def test_training_learned_variances_makes_the_bound_tight():
    g = 1.0
    x = T.sample_data(N_TRAIN, g, seed=12)
    model = T.LinearGaussianVAE(learn_variances=True)
    res = T.fit(model, x, steps=400, lr=0.05, n_samples=16, seed=0)
    opt = T.sample_optimum_learned(x)
    sd = T.optimum_sampling_std(N_TRAIN, g, learn_variances=True, n_boot=1000, seed=0)
    assert res["var_x"] == pytest.approx(opt["var_x"], abs=0.25 * sd["var_x"])
    assert res["var_q"] == pytest.approx(opt["var_q"], abs=0.25 * sd["var_q"])
    assert abs(res["var_x"] - g) < 4 * sd["var_x"]
    assert abs(res["var_q"] - g / (5 + g)) < 4 * sd["var_q"]
    assert res["elbo"] == pytest.approx(opt["elbo"], abs=1e-4)
    # tight: the ELBO at the trained parameters equals the log-likelihood of the trained decoder
    cov = np.outer(res["b"], res["b"]) + res["var_x"] * np.eye(2)
    loglik = stats.multivariate_normal(cov=cov).logpdf(x.numpy()).mean()
    assert res["elbo"] == pytest.approx(loglik, abs=1e-4)
    assert res["elbo"] <= loglik + 1e-12


# ---- gradient estimators (35)-(36) -------------------------------------------------------------
def test_gradient_estimators_unbiased_and_variances_match_sympy():
    at = {
        V.x1: 1,
        V.x2: 2,
        V.a1: sp.Rational(1, 10),
        V.a2: sp.Rational(1, 10),
        V.b1: sp.Rational(1, 2),
        V.b2: 1,
        V.v: sp.Rational(1, 6),
    }
    mo = V.estimator_moments(1, at)
    exact = np.array([float(e) for e in V.exact_gradient(1).subs(at)])
    n_rep = 20000
    for n_samples in (1, 16):
        est = T.gradient_estimates(
            torch.tensor([1.0, 2.0]),
            torch.tensor([0.1, 0.1]),
            torch.tensor([0.5, 1.0]),
            1.0,
            1 / 6,
            n_samples,
            n_rep,
            seed=n_samples,
        )
        for name in ("score", "reparam"):
            var_exact = np.array([float(sp.N(e)) for e in mo[name][1]]) / n_samples
            se = np.sqrt(var_exact / n_rep)
            assert np.all(np.abs(est[name].mean(0) - exact) < 5 * se), name
            # a variance from n_rep draws has relative sd ~ sqrt(2/n_rep): 10 % is ample
            assert np.allclose(est[name].var(0), var_exact, rtol=0.1), name
        assert np.all(est["score"].var(0) > 50 * est["reparam"].var(0))


# ---- bad input --------------------------------------------------------------------
def test_bad_input_raises():
    with pytest.raises(ValueError, match="gamma"):
        T.sample_data(10, -1.0)
    with pytest.raises(ValueError, match="gamma"):
        T.LinearGaussianVAE()
    with pytest.raises(ValueError, match="shape"):
        T.LinearGaussianVAE(1.0).encode(torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="quadratic"):
        V.gaussian_integral(V.z**3, V.z)


def test_log_marginal_against_scipy_and_gap_is_the_kl():
    # log p(x) of the model against scipy; log p(x) - ELBO_exact = KL(q || p(z | x)) >= 0, the KL
    # computed from the posterior N(b'x / (var_x + |b|^2), var_x / (var_x + |b|^2)) of the model
    x = T.sample_data(50, 1.5, seed=3)
    model = T.LinearGaussianVAE(1.5, init=(0.3, -0.2, 0.8, 1.7))
    with torch.no_grad():
        ll = model.log_marginal(x).numpy()
        elbo = model.elbo_exact(x).numpy()
    b, vx, vq = model.b.detach().numpy(), 1.5, 1.5 / 6.5
    cov = np.outer(b, b) + vx * np.eye(2)
    np.testing.assert_allclose(ll, stats.multivariate_normal(cov=cov).logpdf(x.numpy()), rtol=1e-12)
    pv = vx / (vx + b @ b)
    pm = x.numpy() @ b / (vx + b @ b)
    m = x.numpy() @ np.array([0.3, -0.2])
    kl = 0.5 * (vq / pv + (m - pm) ** 2 / pv - 1 - np.log(vq / pv))
    np.testing.assert_allclose(ll - elbo, kl, rtol=1e-9, atol=1e-12)
    res = T.fit(T.LinearGaussianVAE(1.5), x, steps=30, n_samples=2)
    assert len(res["loglik_trace"]) == len(res["elbo_trace"]) == 3
    assert np.all(res["loglik_trace"] >= res["elbo_trace"])
    with pytest.raises(ValueError, match="shape"):
        model.log_marginal(torch.zeros(3))
