"""Chapter 1: the linear autoencoder of the tutorial, eqs. (1)-(28), derived with sympy.

The encoder is ``z = a1*x1 + a2*x2`` and the decoder ``x~ = (b1*z, b2*z)`` (text before eq. (4)).
Everything here is *derived* (``sp.diff``, ``sp.solve``), never typed in from the tutorial; the
tutorial's printed formulas live in :mod:`derivations.ledger_autoencoder`, which compares them with
what is derived here.

Notation used throughout:

* ``s = a1 + 2*a2``: what the encoder does to a point of the line ``x2 = 2*x1`` (``z = s*x1``);
* ``v = (1, 2)``: the direction of that line;
* ``gamma = mean(x1**2)`` over the data, ``lam`` the penalty weight (``lambda`` in the tutorial).

Where this module differs from the tutorial: the penalised minimiser is
``a1 = b1 = sqrt(5*gamma - lam)/(5*sqrt(gamma))`` (the tutorial's eq. (25) has ``5*sqrt(gamma)``
inside the root and different denominators; ledger entries (25), (26)), and it exists only for
``lam < 5*gamma``; above that the only stationary point, and the minimiser, is 0.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

a1, a2, b1, b2 = sp.symbols("a1 a2 b1 b2", real=True)
PARAMS = (a1, a2, b1, b2)
gamma = sp.Symbol("gamma", positive=True)
lam = sp.Symbol("lambda", positive=True)
s = sp.Symbol("s", real=True)  # s = a1 + 2 a2
V = sp.Matrix([1, 2])  # direction of the data line x2 = 2 x1

# ---------------------------------------------------------------------------------------------
# Data and loss, eqs. (1)-(5), (15)-(16)
# ---------------------------------------------------------------------------------------------


def data() -> sp.Matrix:
    """The nine samples of eq. (3) as exact rationals (an N x 2 matrix)."""
    x1 = [sp.Rational(v) for v in ("-1.5", "-0.5", "-0.2", "-0.1", "0", "0.1", "0.2", "0.5", "1")]
    return sp.Matrix([[v, 2 * v] for v in x1])


def data_array() -> np.ndarray:
    """The samples of eq. (3) as a float64 array (for numerical checks)."""
    return np.array(data().tolist(), dtype=np.float64)


def gamma_of(X: sp.Matrix | None = None) -> sp.Expr:
    """gamma = (1/N) sum_n x_{n,1}^2 (text before eq. (19)); 77/180 for the data (3)."""
    X = data() if X is None else X
    return sum(X[n, 0] ** 2 for n in range(X.rows)) / X.rows


@lru_cache(maxsize=8)
def covariance_of_generator() -> sp.Matrix:
    """Covariance of x = (z, 2z) with z ~ N(0, 1): v v^T (eqs. (1)-(2)), derived as E[x x^T]."""
    z = sp.Symbol("z", real=True)
    x = sp.Matrix([z, 2 * z])
    density = sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi)
    return (x * x.T).applyfunc(lambda e: sp.integrate(e * density, (z, -sp.oo, sp.oo)))


def loss(X: sp.Matrix | None = None, penalty: float | sp.Expr = 0, kind: str = "l2") -> sp.Expr:
    """Mean squared reconstruction error (4)/(5) plus ``penalty`` times the l2 (16) or l1 norm.

    ``X`` defaults to the data (3); ``kind`` is ``"l2"`` (sum of squares, eq. (15)) or ``"l1"``
    (sum of absolute values, the tutorial's open exercise).
    """
    X = data() if X is None else X
    if kind not in ("l2", "l1"):
        raise ValueError(f"kind must be 'l2' or 'l1', got {kind!r}")
    z = [a1 * X[n, 0] + a2 * X[n, 1] for n in range(X.rows)]
    rec = sum((X[n, 0] - b1 * z[n]) ** 2 + (X[n, 1] - b2 * z[n]) ** 2 for n in range(X.rows))
    norm = sum(p**2 for p in PARAMS) if kind == "l2" else sum(sp.Abs(p) for p in PARAMS)
    return rec / X.rows + penalty * norm


def loss_on_line(g: sp.Expr = gamma, penalty: sp.Expr = lam) -> sp.Expr:
    """The l2-penalised loss (16) for any data on the line x2 = 2 x1, in terms of gamma.

    ``gamma*((1 - b1*s)**2 + (2 - b2*s)**2) + penalty*|theta|^2`` with ``s = a1 + 2*a2``;
    :func:`loss_on_line_is_exact` proves that it equals (16).
    """
    ss = a1 + 2 * a2
    return g * ((1 - b1 * ss) ** 2 + (2 - b2 * ss) ** 2) + penalty * sum(p**2 for p in PARAMS)


def loss_on_line_is_exact(n: int = 5) -> bool:
    """(16) with n symbolic samples x_{n,2} = 2 x_{n,1} equals :func:`loss_on_line` exactly."""
    xs = sp.symbols(f"x1:{n + 1}", real=True)
    X = sp.Matrix([[x, 2 * x] for x in xs])
    g = sum(x**2 for x in xs) / n
    return sp.expand(loss(X, lam) - loss_on_line(g, lam)) == 0


# ---------------------------------------------------------------------------------------------
# Gradient, Hessian, stationary points: eqs. (6)-(14) and (17)-(27)
# ---------------------------------------------------------------------------------------------


def gradient(expr: sp.Expr) -> sp.Matrix:
    """The gradient in (a1, a2, b1, b2), by ``sp.diff`` (eqs. (6) and (17))."""
    return sp.Matrix([sp.diff(expr, p) for p in PARAMS])


def hessian(expr: sp.Expr) -> sp.Matrix:
    """The 4 x 4 Hessian in (a1, a2, b1, b2)."""
    return sp.hessian(expr, PARAMS)


def normal_equations_encoder(X: sp.Matrix | None = None, penalty: sp.Expr = 0):
    """dL/da = 0 as the linear system ``M a = r`` for fixed b (eqs. (7) and (18)).

    Returns ``(M, r)`` with ``dL/da = 2 (M a - r)``, i.e. the scale of (18) (1/N inside the sums),
    derived as ``M = d(grad_a / 2)/da`` and ``r = -(grad_a / 2)`` at a = 0.
    """
    grad_a = gradient(loss(X, penalty))[:2, 0] / 2
    M = grad_a.jacobian([a1, a2])
    r = -grad_a.subs({a1: 0, a2: 0})
    return sp.simplify(M), sp.expand(r)


@lru_cache(maxsize=8)
def encoder_given_decoder(g: sp.Expr = gamma, penalty: sp.Expr = lam) -> sp.Matrix:
    """argmin over a of (16) for fixed b, data on x2 = 2 x1 (eq. (20)): solved by sympy."""
    grad_a = gradient(loss_on_line(g, penalty))[:2, 0]
    sol = sp.solve(list(grad_a), [a1, a2], dict=True)[0]
    return sp.Matrix([sp.factor(sol[a1]), sp.factor(sol[a2])])


@lru_cache(maxsize=8)
def decoder_given_encoder(g: sp.Expr = gamma, penalty: sp.Expr = lam) -> sp.Matrix:
    """argmin over b of (16) for fixed a, data on x2 = 2 x1 (eq. (23)): solved by sympy."""
    grad_b = gradient(loss_on_line(g, penalty))[2:, 0]
    sol = sp.solve(list(grad_b), [b1, b2], dict=True)[0]
    return sp.Matrix([sp.factor(sol[b1]), sp.factor(sol[b2])])


@lru_cache(maxsize=8)
def stationary_points_unpenalised() -> tuple[dict, ...]:
    """All stationary points of the unpenalised loss (5) on data on x2 = 2 x1.

    The loss depends on a only through s = a1 + 2 a2 and dL/da = (dL/ds) (1, 2), so grad = 0 is
    solved in (s, b1, b2). Returns two families (dicts of equations' solutions):
    ``{b1: 1/s, b2: 2/s}`` (eq. (14), the minima, L = 0) and ``{s: 0, b1: -2 b2}`` (saddles,
    which the tutorial excludes by assuming s != 0).
    """
    Ls = gamma * ((1 - b1 * s) ** 2 + (2 - b2 * s) ** 2)
    return tuple(sp.solve([sp.diff(Ls, p) for p in (s, b1, b2)], [s, b1, b2], dict=True))


def solution_manifold() -> list[sp.Expr]:
    """The set where the unpenalised loss (5) is 0 (its minimum), as equations ``expr = 0``.

    Derived: L = gamma*|v - s*b|^2 vanishes iff s*b = v, i.e. ``b1*s = 1`` and ``b2 = 2*b1``
    (eq. (14)); sympy solves ``s*b = v`` for b.
    """
    ss = a1 + 2 * a2
    sol = sp.solve([1 - b1 * ss, 2 - b2 * ss], [b1, b2], dict=True)[0]
    return [b1 - sol[b1], b2 - sol[b2]]


def manifold_dimension() -> int:
    """Dimension of the solution set (14): 4 minus the rank of the constraints' Jacobian.

    The constraints ``b1*s - 1 = 0, b2 - 2*b1 = 0`` have a Jacobian of rank 2 at every point of
    the set (checked generically, with b = v/s substituted), so the set is a 2-dimensional
    manifold (two sheets, s > 0 and s < 0): a whole family, not a point.
    """
    ss = a1 + 2 * a2
    F = sp.Matrix([b1 * ss - 1, b2 - 2 * b1])
    J = F.jacobian(PARAMS).subs({b1: 1 / ss, b2: 2 / ss})
    return len(PARAMS) - J.rank(simplify=True)


@lru_cache(maxsize=8)
def penalised_solutions(g: sp.Expr = gamma, penalty: sp.Expr = lam) -> tuple[dict, ...]:
    """All stationary points of the l2-penalised loss (16) for data on x2 = 2 x1 (eqs. (24)-(26)).

    Route of the tutorial, done by sympy: for penalty > 0, (20) and (23) give a = alpha*v and
    b = beta*v; substituting into (24) leaves two equations in (alpha, beta), solved here.
    Returns dicts over (a1, a2, b1, b2): the origin and +/- ``a1 = b1 =
    sqrt(5*gamma - lam)/(5*sqrt(gamma))`` (real only for lam < 5*gamma).
    """
    al, be = sp.symbols("alpha beta", real=True)
    a_of_b = encoder_given_decoder(g, penalty).subs({b1: be, b2: 2 * be})
    b_of_a = decoder_given_encoder(g, penalty).subs({a1: al, a2: 2 * al})
    # a = alpha v, b = beta v: first components of (20) and (23), denominators cleared
    eqs = [sp.numer(sp.together(al - a_of_b[0])), sp.numer(sp.together(be - b_of_a[0]))]
    out = []
    for sol in sp.solve(eqs, [al, be], dict=True):
        A, B = sp.simplify(sol[al]), sp.simplify(sol[be])
        out.append({a1: A, a2: 2 * A, b1: B, b2: 2 * B})
    return tuple(out)


def penalised_minimiser_float(g: float, penalty: float) -> np.ndarray:
    """The positive l2-penalised minimiser (a1, a2, b1, b2) as floats (0 when penalty >= 5 g)."""
    if g <= 0 or penalty < 0:
        raise ValueError(f"need gamma > 0 and penalty >= 0, got gamma={g}, penalty={penalty}")
    alpha = np.sqrt(max(5 * g - penalty, 0.0) / (25 * g))
    return np.array([alpha, 2 * alpha, alpha, 2 * alpha])


def classify_point(expr: sp.Expr, point: dict) -> tuple[str, list]:
    """Nature of a stationary point from the Hessian's eigenvalues.

    Returns ``(kind, eigenvalues)`` with kind ``"minimum"`` (all > 0), ``"maximum"`` (all < 0),
    ``"saddle"`` (both signs), or ``"degenerate minimum"`` (>= 0 with zeros: a minimum along a
    manifold when the point is a known global minimum). Eigenvalues must be numeric after
    substitution.
    """
    H = hessian(expr).subs(point)
    if H.has(sp.Float):  # a numerical point: numerical eigenvalues, zero up to 1e-9
        eig = [sp.Float(e) for e in np.linalg.eigvalsh(np.array(H.evalf(), dtype=np.float64))]
        signs = [0 if abs(e) < 1e-9 else (1 if e > 0 else -1) for e in eig]
    else:
        eig = []
        for value, mult in H.eigenvals().items():
            eig += [sp.nsimplify(sp.simplify(value))] * mult
        signs = [sp.sign(sp.N(e, 30)) if abs(sp.N(e, 30)) > 1e-25 else 0 for e in eig]
    if all(x > 0 for x in signs):
        kind = "minimum"
    elif all(x < 0 for x in signs):
        kind = "maximum"
    elif any(x > 0 for x in signs) and any(x < 0 for x in signs):
        kind = "saddle"
    elif all(x >= 0 for x in signs):
        kind = "degenerate minimum"
    else:
        kind = "degenerate maximum"
    return kind, sorted(eig, key=lambda e: float(sp.N(e)))


def origin_hessian_eigenvalues(g: sp.Expr = gamma, penalty: sp.Expr = lam) -> list:
    """Hessian eigenvalues of (16) at the origin: 2*lam (twice) and 2*lam +/- 10*gamma.

    So the origin is a saddle for lam < 5 gamma (a saddle, not a maximum, also at lam = 0) and a
    minimum for lam > 5 gamma.
    """
    H = hessian(loss_on_line(g, penalty)).subs({p: 0 for p in PARAMS})
    return [sp.simplify(e) for e, m in H.eigenvals().items() for _ in range(m)]


# ---------------------------------------------------------------------------------------------
# The open exercise: an l1 penalty instead of l2
# ---------------------------------------------------------------------------------------------
# Loss: gamma*|v - s*b|^2 + lam*(|a1| + |a2| + |b1| + |b2|). By the symmetry (a, b) -> (-a, -b)
# take s > 0. Three reductions, each solved below:
#  1. for a given s the encoder only enters the penalty: min |a|_1 on a1 + 2 a2 = s is |s|/2 at
#     a = (0, s/2) (the encoder becomes sparse: it reads only x2);
#  2. write the decoder through the gains u = s*b (reconstruction x~ = (u1 x1, u2 x1)); for fixed
#     u the penalty lam*(s/2 + (u1 + u2)/s) is minimised by s = sqrt(2 t), t = u1 + u2, giving
#     lam*sqrt(2 t) (balanced: |a|_1 = |b|_1);
#  3. for fixed t, the residual |v - u|^2 on u1 + u2 = t is minimised by the projection
#     u = ((t - 1)/2, (t + 1)/2) (t >= 1): both gains are shrunk by the SAME amount (3 - t)/2,
#     so the reconstruction leaves the line x2 = 2 x1.
# What is left is a 1-d problem F(t) = gamma (3 - t)^2/2 + lam sqrt(2 t), compared with F(0) =
# 5 gamma (the origin, which the l1 penalty makes a strict local minimum for every lam > 0).

t_sym = sp.Symbol("t", positive=True)  # t = u1 + u2 = s^2 / 2
mu = sp.Symbol("mu", positive=True)  # mu = lam / gamma


def l1_encoder_for_given_s() -> tuple[sp.Expr, sp.Expr]:
    """min |a1| + |a2| subject to a1 + 2 a2 = s (s > 0): returns (argmin a2, min value).

    Case analysis on the signs: h(a2) = |s - 2 a2| + |a2| is convex and piecewise linear with
    kinks at 0 and s/2; its slopes on the three pieces are -3, -1, +3 (computed), so the unique
    minimiser is the kink a2 = s/2, i.e. a = (0, s/2), with value s/2.
    """
    sp_ = sp.Symbol("s", positive=True)
    x = sp.Symbol("a2", real=True)
    h = sp.Abs(sp_ - 2 * x) + sp.Abs(x)
    kinks = [sp.Integer(0), sp_ / 2]
    # slopes left of 0, between the kinks, right of s/2
    probes = [-sp_, sp_ / 4, sp_]
    slopes = [sp.diff(h, x).subs(x, p) for p in probes]
    assert [sp.simplify(d) for d in slopes] == [-3, -1, 3], slopes
    best = min(kinks, key=lambda k: h.subs(x, k).subs(sp_, 1))
    return best, sp.simplify(h.subs(x, best))


def l1_scale_for_given_gains() -> tuple[sp.Expr, sp.Expr]:
    """min over s > 0 of s/2 + t/s (the l1 norm of a = (0, s/2) and b = u/s, |u|_1 = t).

    Returns (argmin s, min value) = (sqrt(2 t), sqrt(2 t)).
    """
    sp_ = sp.Symbol("s", positive=True)
    f = sp_ / 2 + t_sym / sp_
    (smin,) = sp.solve(sp.diff(f, sp_), sp_)
    return smin, sp.simplify(f.subs(sp_, smin))


def l1_gains_for_given_t() -> sp.Matrix:
    """argmin of (1 - u1)^2 + (2 - u2)^2 on u1 + u2 = t (Lagrange), valid while u1 >= 0 (t >= 1)."""
    u1, u2, k = sp.symbols("u1 u2 k", real=True)
    f = (1 - u1) ** 2 + (2 - u2) ** 2 - k * (u1 + u2 - t_sym)
    sol = sp.solve([sp.diff(f, u1), sp.diff(f, u2), u1 + u2 - t_sym], [u1, u2, k], dict=True)[0]
    return sp.Matrix([sol[u1], sol[u2]])


def l1_reduced_loss() -> sp.Expr:
    """F(t)/gamma for t >= 1: (3 - t)^2/2 + mu*sqrt(2 t), with mu = lam/gamma (derived)."""
    u = l1_gains_for_given_t()
    _, pen = l1_scale_for_given_gains()
    return sp.simplify((1 - u[0]) ** 2 + (2 - u[1]) ** 2 + mu * pen)


def l1_t_of_mu() -> sp.Expr:
    """The minimiser t(mu) of the reduced loss on t >= 1, in closed (trigonometric) form.

    F'(t) = 0 is, with r = sqrt(t), the depressed cubic r^3 - 3 r + mu/sqrt(2) = 0 (derived and
    asserted); its largest root is r = 2 cos(arccos(-mu/(2 sqrt 2))/3) (Viete), so
    t = 4 cos^2(arccos(-mu/(2 sqrt 2))/3), which is >= 1 for mu <= 2 sqrt 2.
    """
    r = sp.Symbol("r", positive=True)
    dF = sp.diff(l1_reduced_loss(), t_sym).subs(t_sym, r**2)
    poly = sp.Poly(sp.numer(sp.together(dF)), r)
    monic = sp.expand(poly.as_expr() / poly.LC())
    assert sp.simplify(monic - (r**3 - 3 * r + mu / sp.sqrt(2))) == 0, monic
    root = 2 * sp.cos(sp.acos(-mu / (2 * sp.sqrt(2))) / 3)
    # Viete: (2 cos th)^3 - 3 (2 cos th) = 2 cos(3 th) = -mu/sqrt(2); confirmed at sample mu
    for m in (sp.Rational(1, 3), 1, 2, sp.Rational(14, 5)):
        assert abs(sp.N(monic.subs(r, root).subs(mu, m), 30)) < 1e-25
    return root**2


def l1_threshold() -> tuple[sp.Expr, sp.Expr]:
    """The collapse threshold: (t*, mu*) with F(t*) = F(0) and F'(t*) = 0 (t* >= 1).

    Above lam* = mu* gamma the global l1 minimiser jumps from the nonzero branch to 0 (a
    discontinuous transition; the l2 minimiser instead shrinks continuously to 0 at lam = 5 gamma).
    Returns t* = 1 + sqrt(2/3) and mu* = (2 - sqrt(2/3)) sqrt(2 + 2 sqrt(2/3)) ~ 2.2558.
    """
    F = l1_reduced_loss()
    mu_at_stationary = sp.solve(sp.diff(F, t_sym), mu)[0]
    level = sp.simplify(F.subs(mu, mu_at_stationary) - 5)  # F(t) - F(0) = 0, over gamma
    roots = [r for r in sp.solve(sp.numer(sp.together(level)), t_sym) if r.is_real and r >= 1]
    (t_star,) = roots
    return sp.radsimp(t_star), sp.simplify(mu_at_stationary.subs(t_sym, t_star))


def l1_minimiser_float(g: float, penalty: float) -> np.ndarray:
    """The l1-penalised minimiser with s > 0, (a1, a2, b1, b2), as floats (0 above the threshold).

    At exactly the threshold both 0 and the nonzero branch are minimisers; the nonzero one is
    returned.
    """
    if g <= 0 or penalty < 0:
        raise ValueError(f"need gamma > 0 and penalty >= 0, got gamma={g}, penalty={penalty}")
    m = penalty / g
    m_star = float(l1_threshold_float())
    if m > m_star:
        return np.zeros(4)
    t = 4 * np.cos(np.arccos(-m / (2 * np.sqrt(2))) / 3) ** 2
    sc = np.sqrt(2 * t)
    u = np.array([(t - 1) / 2, (t + 1) / 2])
    return np.array([0.0, sc / 2, u[0] / sc, u[1] / sc])


@lru_cache(maxsize=1)
def l1_threshold_float() -> float:
    """mu* = lam*/gamma of :func:`l1_threshold` as a float."""
    return float(sp.N(l1_threshold()[1], 20))


def l1_loss_float(params, X: np.ndarray, penalty: float) -> float:
    """The l1-penalised loss (numpy), eq. (5) + penalty * |theta|_1."""
    p = np.asarray(params, dtype=np.float64)
    z = X @ p[:2]
    rec = np.mean((X[:, 0] - p[2] * z) ** 2 + (X[:, 1] - p[3] * z) ** 2)
    return float(rec + penalty * np.abs(p).sum())


# ---------------------------------------------------------------------------------------------
# Exercise check
# ---------------------------------------------------------------------------------------------

EXERCISE_LAMBDA = 0.5


def check_exercise_l1(params, threshold: float) -> None:
    """Check the reader's answer to the l1 exercise for the data (3).

    params: an l1-penalised minimiser (a1, a2, b1, b2) of eq. (5) + 0.5 * |theta|_1 (either sign);
    threshold: the penalty lam* above which the minimiser is 0. Raises AssertionError with a hint
    on a wrong answer, ValueError on malformed input.
    """
    p = np.asarray(params, dtype=np.float64)
    if p.shape != (4,) or not np.all(np.isfinite(p)):
        raise ValueError(f"params must be 4 finite numbers (a1, a2, b1, b2), got {params!r}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    g = float(gamma_of())
    X = data_array()
    best = l1_minimiser_float(g, EXERCISE_LAMBDA)
    if p[1] < 0:
        p = -p  # (a, b) -> (-a, -b) is a symmetry of the loss
    f_best, f_p = l1_loss_float(best, X, EXERCISE_LAMBDA), l1_loss_float(p, X, EXERCISE_LAMBDA)
    assert abs(p[0]) < 1e-3, (
        f"a1 = {p[0]:.4f}: the l1 norm of a on a1 + 2 a2 = s is smallest at a1 = 0"
    )
    on_line = p[2] != 0 and abs(p[3] / p[2] - 2) < 0.05
    assert not on_line, (
        "b2 = 2 b1 is the l2 answer: the l1 penalty shrinks b1 and b2 by the same amount"
    )
    assert f_p <= f_best + 1e-6, f"loss {f_p:.6f} > minimum {f_best:.6f}: not a minimiser"
    assert np.allclose(p, best, atol=1e-3), f"{np.round(p, 4)} is not the minimiser"
    lam_star = l1_threshold_float() * g
    assert abs(threshold - lam_star) < 1e-3, (
        f"threshold {threshold:.4f} is wrong: compare the loss of the nonzero branch with the loss "
        "5 gamma at 0 (the l1 penalty makes 0 a local minimum for every lam > 0)"
    )
