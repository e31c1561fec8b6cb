"""Chapter 1 (the linear autoencoder, eqs. (1)-(28)): derivations vs independent references.

References used: a numpy loss written here from eq. (5) (finite differences, numpy Hessians),
scipy.optimize minimisation from many starts, a direct 4-variable sympy solve (instead of the
derivation's reduced route), and Torch training.
"""

import numpy as np
import pytest
import sympy as sp
import torch
from scipy import optimize

from derivations import autoencoder as A
from scvi_edu.toys.autoencoder import LinearAutoencoder, fit

X = np.array(
    [[v, 2 * v] for v in (-1.5, -0.5, -0.2, -0.1, 0.0, 0.1, 0.2, 0.5, 1.0)], dtype=np.float64
)  # eq. (3), typed independently of the package
GAMMA = float(np.mean(X[:, 0] ** 2))
V = np.array([1.0, 2.0])


def loss_np(p, x=X, lam=0.0, kind="l2"):
    """Eq. (5) (+ lam * norm), written independently of the package."""
    a, b = p[:2], p[2:]
    z = x @ a
    rec = np.mean(np.sum((x - z[:, None] * b[None, :]) ** 2, axis=1))
    norm = np.sum(p**2) if kind == "l2" else np.sum(np.abs(p))
    return rec + lam * norm


def fd_grad(f, p, h=1e-6):
    e = np.eye(len(p))
    return np.array([(f(p + h * e[i]) - f(p - h * e[i])) / (2 * h) for i in range(len(p))])


def fd_hess(f, p, h=1e-4):
    e = np.eye(len(p))
    return np.array([[(f(p + h * e[i] + h * e[j]) - f(p + h * e[i] - h * e[j])
                       - f(p - h * e[i] + h * e[j]) + f(p - h * e[i] - h * e[j])) / (4 * h * h)
                      for j in range(len(p))] for i in range(len(p))])  # fmt: skip


def as_dict(p):
    return dict(zip(A.PARAMS, [sp.Float(v, 30) for v in p], strict=True))


RNG = np.random.default_rng(0)


# --- data and the loss ---------------------------------------------------------------------------


def test_data_and_gamma():
    assert np.array_equal(A.data_array(), X)
    assert A.gamma_of() == sp.Rational(77, 180)
    assert abs(float(A.gamma_of()) - GAMMA) < 1e-15


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_sympy_loss_and_gradient_vs_numpy_finite_differences(lam):
    L = A.loss(penalty=sp.Rational(lam).limit_denominator(100))
    grad = A.gradient(L)
    f = sp.lambdify([A.PARAMS], L, "numpy")
    g = sp.lambdify([A.PARAMS], grad, "numpy")
    for _ in range(5):
        p = RNG.normal(size=4)
        assert abs(f(p) - loss_np(p, lam=lam)) < 1e-12
        np.testing.assert_allclose(np.ravel(g(p)), fd_grad(lambda q: loss_np(q, lam=lam), p),
                                   atol=1e-7)  # fmt: skip


def test_loss_on_line_matches_numpy_for_scaled_data():
    for c in (0.5, 1.0, 3.0):
        x = c * X
        L = A.loss_on_line(float(np.mean(x[:, 0] ** 2)), 0.7)
        f = sp.lambdify([A.PARAMS], L, "numpy")
        p = RNG.normal(size=4)
        assert abs(f(p) - loss_np(p, x, 0.7)) < 1e-12


# --- unpenalised: the solution manifold (14) -----------------------------------------------------


def test_stationary_families_match_direct_4_variable_solve():
    grad = A.gradient(A.loss())
    direct = sp.solve(list(grad), list(A.PARAMS), dict=True)
    a1, a2, b1, b2 = A.PARAMS
    s = a1 + 2 * a2
    # direct solve gives {b1 = 1/s, b2 = 2/s} and {a1 = -2 a2, b1 = -2 b2}
    fams = A.stationary_points_unpenalised()
    assert len(direct) == len(fams) == 2
    for sol in direct:
        if b1 in sol and sp.simplify(sol[b1] - 1 / s) == 0:
            assert sp.simplify(sol[b2] - 2 / s) == 0
        else:
            assert sp.simplify(sol[a1] + 2 * a2) == 0 and sp.simplify(sol[b1] + 2 * b2) == 0


def test_scipy_minimisers_land_on_the_manifold_at_different_points():
    ends = []
    for _ in range(12):
        res = optimize.minimize(loss_np, RNG.normal(size=4), method="BFGS", options={"gtol": 1e-12})
        p = res.x
        s = p[0] + 2 * p[1]
        assert res.fun < 1e-12
        assert abs(p[2] * s - 1) < 1e-6 and abs(p[3] - 2 * p[2]) < 1e-6  # eq. (14)
        for e in A.solution_manifold():
            assert abs(float(e.subs(as_dict(p)))) < 1e-5
        ends.append(p)
    assert np.ptp(np.array(ends)[:, 0]) > 0.5  # non-identifiable: different points


def test_manifold_is_two_dimensional_numerically():
    assert A.manifold_dimension() == 2
    p = np.array([0.3, 0.6, 0.0, 0.0])
    s = p[0] + 2 * p[1]
    p[2:] = V / s
    ev = np.linalg.eigvalsh(fd_hess(loss_np, p))
    assert np.sum(np.abs(ev) < 1e-5) == 2 and np.sum(ev > 1e-3) == 2
    kind, eig = A.classify_point(A.loss(), as_dict(p))
    assert kind == "degenerate minimum"
    np.testing.assert_allclose(sorted(float(e) for e in eig), ev, atol=1e-5)


def test_s_zero_family_is_saddles():
    # a point with s = 0 and b1 = -2 b2 (incl. the origin): Hessian has both signs
    for p in (np.zeros(4), np.array([0.4, -0.2, -1.0, 0.5])):
        assert np.linalg.norm(fd_grad(loss_np, p)) < 1e-8
        ev = np.linalg.eigvalsh(fd_hess(loss_np, p))
        assert ev.min() < -1e-3 and ev.max() > 1e-3
        assert A.classify_point(A.loss(), as_dict(p))[0] == "saddle"


# --- corrections of (7), (12), (19): numerically -------------------------------------------------


def test_eq7_right_hand_side_correction():
    for _ in range(3):
        x = RNG.normal(size=(6, 2))  # general data: x2 != 2 x1
        p = RNG.normal(size=4)
        a, (c1, c2) = p[:2], p[2:]
        M = (c1**2 + c2**2) * x.T @ x
        r_correct = np.array([np.sum(c1 * x[:, 0] ** 2 + c2 * x[:, 0] * x[:, 1]),
                              np.sum(c1 * x[:, 0] * x[:, 1] + c2 * x[:, 1] ** 2)])  # fmt: skip
        r_printed = r_correct.copy()
        r_printed[1] = np.sum(c1 * x[:, 0] * x[:, 1] + c2 * x[:, 0] ** 2)
        grad_a = fd_grad(lambda q, x=x: loss_np(q, x), p)[:2]
        np.testing.assert_allclose(grad_a, 2 / len(x) * (M @ a - r_correct), atol=1e-7)
        assert np.abs(grad_a - 2 / len(x) * (M @ a - r_printed)).max() > 1e-3


def test_eq12_denominator_correction():
    for a in ([0.3, 0.4], [1.0, -0.2], [-0.5, 0.9]):
        a = np.array(a)
        s = a[0] + 2 * a[1]
        res = optimize.minimize(lambda b, a=a: loss_np(np.r_[a, b]), np.zeros(2), method="BFGS",
                                options={"gtol": 1e-12})  # fmt: skip
        assert abs(res.x[0] - s / s**2) < 1e-6  # corrected (12)/(13)
        assert abs(res.x[0] - s / (a[0] + a[1]) ** 2) > 1e-2  # printed (12)


def test_eq19_matrix_correction():
    lam = 0.3
    for b in ([1.0, 2.0], [0.5, -0.7]):
        b = np.array(b)
        res = optimize.minimize(lambda a, b=b: loss_np(np.r_[a, b], lam=lam), np.zeros(2),
                                method="BFGS", options={"gtol": 1e-12})  # fmt: skip
        d = b @ b
        r = GAMMA * (b[0] + 2 * b[1]) * V
        sym = np.array([[GAMMA * d + lam, 2 * GAMMA * d], [2 * GAMMA * d, 4 * GAMMA * d + lam]])
        printed = sym.copy()
        printed[1, 0] = GAMMA * d
        np.testing.assert_allclose(res.x, np.linalg.solve(sym, r), atol=1e-6)
        assert np.abs(res.x - np.linalg.solve(printed, r)).max() > 1e-2
        # and (20)
        np.testing.assert_allclose(res.x, GAMMA * (b[0] + 2 * b[1]) / (5 * GAMMA * d + lam) * V,
                                   atol=1e-6)  # fmt: skip


# --- the l2-penalised problem: (25)-(27) ---------------------------------------------------------


def l2_global_min(x, lam, n_starts=8):
    best = None
    for _ in range(n_starts):
        res = optimize.minimize(loss_np, RNG.normal(size=4), args=(x, lam), method="BFGS",
                                options={"gtol": 1e-12})  # fmt: skip
        if best is None or res.fun < best.fun:
            best = res
    p = best.x
    return p if p[1] >= 0 else -p


@pytest.mark.parametrize(("c", "lam"), [(1.0, 0.1), (1.0, 1.0), (2.0, 0.5), (0.6, 0.3)])
def test_penalised_minimiser_vs_scipy(c, lam):
    x = c * X
    gam = float(np.mean(x[:, 0] ** 2))
    p = l2_global_min(x, lam)
    np.testing.assert_allclose(p, A.penalised_minimiser_float(gam, lam), atol=1e-6)
    # the printed (25) is off unless gamma = 1
    r = np.sqrt(5 * np.sqrt(gam) - lam)
    printed = np.array([r / (5 * gam), 2 * r / (5 * gam), r / (5 * np.sqrt(gam)),
                        2 * r / (5 * np.sqrt(gam))])  # fmt: skip
    assert np.abs(p - printed).max() > 1e-2
    # text after (27): reconstruction gain 5 a1 b1 = 1 - lam / (5 gamma)
    assert abs(5 * p[0] * p[2] - (1 - lam / (5 * gam))) < 1e-6


def test_penalised_collapse_between_5gamma_and_5sqrtgamma():
    lam = 2.5  # 5 gamma = 2.14 < 2.5 < 5 sqrt(gamma) = 3.27: printed (25) still nonzero
    p = l2_global_min(X, lam)
    assert np.abs(p).max() < 1e-6
    assert 5 * np.sqrt(GAMMA) - lam > 0


def test_penalised_solutions_match_direct_sympy_solve_and_hessians():
    gam, lam = sp.Rational(77, 180), sp.Rational(1, 10)
    L = A.loss(penalty=lam)
    direct = sp.solve(list(A.gradient(L)), list(A.PARAMS), dict=True)
    real = [d for d in direct if all(v.is_real for v in d.values())]
    derived = A.penalised_solutions()
    assert len(real) == len(derived) == 3
    num = lambda d: np.array([float(d[q]) for q in A.PARAMS])  # noqa: E731
    at = {A.gamma: gam, A.lam: lam}
    got = sorted(tuple(np.round(num({k: v.subs(at) for k, v in d.items()}), 12)) for d in derived)
    ref = sorted(tuple(np.round(num(d), 12)) for d in real)
    np.testing.assert_allclose(np.array(got), np.array(ref), atol=1e-12)
    for d in real:
        p = num(d)
        ev = np.linalg.eigvalsh(fd_hess(lambda q: loss_np(q, lam=0.1), p))
        kind, eig = A.classify_point(L, as_dict(p))
        np.testing.assert_allclose(sorted(float(e) for e in eig), ev, atol=1e-5)
        assert kind == ("saddle" if np.allclose(p, 0) else "minimum")


def test_origin_hessian_eigenvalues():
    for lam, kind in ((0.5, "saddle"), (3.0, "minimum")):
        ev = np.linalg.eigvalsh(fd_hess(lambda q, lam=lam: loss_np(q, lam=lam), np.zeros(4)))
        sym = sorted(
            float(e.subs({A.gamma: GAMMA, A.lam: lam})) for e in A.origin_hessian_eigenvalues()
        )
        np.testing.assert_allclose(sym, ev, atol=1e-6)
        assert (ev.min() < 0) == (kind == "saddle")


# --- the l1 exercise -----------------------------------------------------------------------------


def l1_global_min(x, lam, n_starts=10):
    """Independent non-smooth solver: theta = p - q with p, q >= 0 makes the l1 norm linear."""

    def f(w):
        return loss_np(w[:4] - w[4:], x) + lam * np.sum(w)

    best = None
    for _ in range(n_starts):
        w0 = np.abs(RNG.normal(size=8))
        opts = {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000}
        res = optimize.minimize(f, w0, method="L-BFGS-B", bounds=[(0, None)] * 8, options=opts)
        if best is None or res.fun < best.fun:
            best = res
    p = best.x[:4] - best.x[4:]
    return (p if p[1] >= 0 else -p), best.fun


@pytest.mark.parametrize("lam", [0.05, 0.5, 0.9, 1.2])
def test_l1_minimiser_vs_scipy(lam):
    p, fmin = l1_global_min(X, lam)
    ref = A.l1_minimiser_float(GAMMA, lam)
    assert abs(fmin - loss_np(ref, lam=lam, kind="l1")) < 1e-8
    np.testing.assert_allclose(p, ref, atol=1e-4)
    if np.any(ref != 0):
        assert abs(p[0]) < 1e-6  # sparse encoder: a1 = 0
        assert p[3] / p[2] > 2 + 1e-3  # reconstruction leaves the line x2 = 2 x1


def test_l1_threshold_vs_scipy():
    lam_star = A.l1_threshold_float() * GAMMA
    t_star, mu_star = A.l1_threshold()
    assert abs(float(t_star) - (1 + np.sqrt(2 / 3))) < 1e-12

    # independent: root in mu of min_{t >= 1} F(t) = 5 (F over gamma), by brentq + bounded search
    def gap(m):
        F = lambda t: (3 - t) ** 2 / 2 + m * np.sqrt(2 * t)  # noqa: E731
        return optimize.minimize_scalar(F, bounds=(1, 3), method="bounded",
                                        options={"xatol": 1e-12}).fun - 5  # fmt: skip

    assert abs(optimize.brentq(gap, 1.0, 2.8, xtol=1e-12) - float(mu_star)) < 1e-8
    below, f_below = l1_global_min(X, lam_star - 0.02)
    above, f_above = l1_global_min(X, lam_star + 0.02)
    assert np.abs(below).max() > 0.3 and f_below < 5 * GAMMA  # jumps: no continuous shrinking
    assert np.abs(above).max() < 1e-6 and abs(f_above - 5 * GAMMA) < 1e-10


def test_l1_reduced_problem_steps():
    a2_star, val = A.l1_encoder_for_given_s()
    s_pos = sp.Symbol("s", positive=True)
    assert sp.simplify(a2_star - s_pos / 2) == 0 and sp.simplify(val - s_pos / 2) == 0
    # numeric: min |a1|+|a2| on a1 + 2 a2 = 1 by a fine grid
    a2g = np.linspace(-2, 2, 400001)
    k = np.argmin(np.abs(1 - 2 * a2g) + np.abs(a2g))
    assert abs(a2g[k] - 0.5) < 1e-4
    # t(mu) solves F'(t) = 0 on t >= 1
    t_mu = sp.lambdify(A.mu, A.l1_t_of_mu(), "numpy")
    for m in (0.2, 1.0, 2.2):
        t = optimize.minimize_scalar(lambda t, m=m: (3 - t) ** 2 / 2 + m * np.sqrt(2 * t),
                                     bounds=(1, 3), method="bounded",
                                     options={"xatol": 1e-12}).x  # fmt: skip
        assert abs(t_mu(m) - t) < 1e-6


# --- Torch training ------------------------------------------------------------------------------


def test_torch_unpenalised_lands_on_manifold_at_different_points():
    torch.manual_seed(0)
    x = torch.tensor(X)
    m = LinearAutoencoder(32, init_scale=0.7, seed=0)
    a_perp0 = (m.a.detach() @ torch.tensor([2.0, -1.0], dtype=torch.float64)).clone()
    fit(m, x, optimizer="sgd", lr=0.04, n_steps=800)
    p = m.params().numpy()
    s = p[:, 0] + 2 * p[:, 1]
    assert np.abs(p[:, 2] * s - 1).max() < 1e-8 and np.abs(p[:, 3] - 2 * p[:, 2]).max() < 1e-8
    assert np.ptp(s) > 1.0  # different points of the manifold
    # plain gradient descent never moves a along (2, -1): dL/da is parallel to (1, 2)
    a_perp = m.a.detach() @ torch.tensor([2.0, -1.0], dtype=torch.float64)
    assert torch.allclose(a_perp, a_perp0, atol=1e-12)
    m2 = LinearAutoencoder(8, init_scale=0.7, seed=0)
    fit(m2, x, optimizer="adam", lr=0.01, n_steps=300)
    a_perp2 = m2.a.detach() @ torch.tensor([2.0, -1.0], dtype=torch.float64)
    assert (a_perp2 - a_perp0[:8]).abs().max() > 1e-2  # Adam does: the algorithm picks the point


@pytest.mark.parametrize(
    ("c", "lams"), [(1.0, (0.2, 1.0, 3.0)), (1.4, (0.5, 2.0)), (0.7, (0.1, 0.5))]
)
def test_torch_l2_lands_on_closed_form(c, lams):
    x = torch.tensor(c * X)
    gam = GAMMA * c**2
    reps = 4
    lam = torch.tensor(np.repeat(lams, reps))
    m = LinearAutoencoder(len(lam), init_scale=0.7, seed=1)
    fit(m, x, lam=lam, optimizer="sgd", lr=0.04 / c**2, n_steps=1000)
    p = m.params().numpy()
    p = np.where(p[:, 1:2] < 0, -p, p)
    for i, lv in enumerate(lam.numpy()):
        np.testing.assert_allclose(p[i], A.penalised_minimiser_float(gam, lv), atol=1e-6)


def test_torch_l1_prox_lands_on_closed_form():
    lams = np.repeat([0.1, 0.5, 0.9, 1.2], 4)
    m = LinearAutoencoder(len(lams), init_scale=0.7, seed=2)
    fit(m, torch.tensor(X), lam=torch.tensor(lams), penalty="l1", optimizer="prox", lr=0.1,
        n_steps=2500)  # fmt: skip
    p = m.params().numpy()
    p = np.where(p[:, 1:2] < 0, -p, p)
    for i, lv in enumerate(lams):
        ref = A.l1_minimiser_float(GAMMA, lv)
        f_ref = loss_np(ref, lam=lv, kind="l1")
        # a run may stop in the origin's basin (a local minimum for l1): then it is exactly 0
        if np.abs(p[i]).max() == 0:
            assert f_ref <= 5 * GAMMA
        else:
            np.testing.assert_allclose(p[i], ref, atol=1e-6)


def test_fit_rejects_bad_input():
    m = LinearAutoencoder(2)
    x = torch.tensor(X)
    with pytest.raises(ValueError, match="lam"):
        fit(m, x, lam=-1.0)
    with pytest.raises(ValueError, match="prox"):
        fit(m, x, lam=0.1, penalty="l1", optimizer="sgd")
    with pytest.raises(ValueError, match="shape"):
        fit(m, x[:, :1])
    with pytest.raises(ValueError, match="one value per replica"):
        fit(m, x, lam=torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="penalty"):
        m.norm("l3")


# --- the exercise check --------------------------------------------------------------------------


def test_exercise_check_accepts_right_and_rejects_wrong():
    p, _ = l1_global_min(X, A.EXERCISE_LAMBDA)  # independent solver
    gap = lambda m: (optimize.minimize_scalar(  # noqa: E731
        lambda t: (3 - t) ** 2 / 2 + m * np.sqrt(2 * t), bounds=(1, 3), method="bounded",
        options={"xatol": 1e-12}).fun - 5)  # fmt: skip
    lam_star = optimize.brentq(gap, 1.0, 2.8, xtol=1e-12) * GAMMA
    A.check_exercise_l1(p, lam_star)
    A.check_exercise_l1(-p, lam_star)  # the mirror solution is right too
    with pytest.raises(AssertionError):
        A.check_exercise_l1(A.penalised_minimiser_float(GAMMA, 0.5), lam_star)  # the l2 answer
    with pytest.raises(AssertionError):
        A.check_exercise_l1(p + np.array([0.05, -0.025, 0, 0]), lam_star)  # a1 != 0
    with pytest.raises(AssertionError):
        A.check_exercise_l1(p, 5 * GAMMA)  # the l2 threshold
    with pytest.raises(ValueError):
        A.check_exercise_l1([0.1, 0.2], lam_star)
