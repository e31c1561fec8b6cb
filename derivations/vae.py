"""Chapter 2, the variational autoencoder: eqs. (29)-(54) derived with sympy.

The running example (tutorial eqs. (39)-(40) with gamma = 1, (47)-(48) in general)::

    z ~ N(0, 1),    x | z ~ N([z, 2z], gamma * I)

(the tutorial prints the noise covariance as [[0, gamma], [gamma, 0]], which is not a covariance:
ledger entries (39) and (47)). Everything below is *derived* from these two densities by
Gaussian integration; no formula is copied from the tutorial. The printed formulas live only in
``derivations/ledger_vae.py``, where they are compared with what is derived here.

Contents, top to bottom:

* Gaussian integration helpers (a 1-d Gaussian integral and Gaussian expectations of polynomials,
  both computed by ``sympy.integrate`` on the standard normal, then linear algebra);
* the example's marginal p(x) (eqs. (33)-(34), (48)) and posterior p(z | x) (eqs. (40), (48));
* the ELBO identity log p(x) = ELBO + KL(q || p(z | x)) (eqs. (29)-(32)) for any Gaussian q;
* the closed-form ELBO of the linear Gaussian VAE (eqs. (41)-(44), (49)-(52));
* its population objective, the stationary conditions (45)/(53)/(54), *every* stationary point
  (the tutorial says it cannot solve them) and their Hessian classification;
* the tightness of the bound at the optimum;
* exact means and variances of the score-function and reparameterised gradient estimators
  (eqs. (35)-(36)).
"""

from __future__ import annotations

from functools import cache

import sympy as sp

# --------------------------------------------------------------------------------------------
# Symbols
# --------------------------------------------------------------------------------------------
z = sp.Symbol("z", real=True)
x1, x2 = sp.symbols("x1 x2", real=True)
gamma = sp.Symbol("gamma", positive=True)
a1, a2, b1, b2 = sp.symbols("a1 a2 b1 b2", real=True)
m = sp.Symbol("m", real=True)  # mean of a generic Gaussian q(z | x)
v = sp.Symbol("v", positive=True)  # variance of a generic Gaussian q(z | x)
s2x = sp.Symbol("sigma_x2", positive=True)  # decoder noise variance (learned-variance model)

X = sp.Matrix([x1, x2])
A = sp.Matrix([a1, a2])
B = sp.Matrix([b1, b2])
W = sp.Matrix([1, 2])  # the true decoder direction, x = W z + noise
PARAMS = (a1, a2, b1, b2)


# --------------------------------------------------------------------------------------------
# Gaussian integration
# --------------------------------------------------------------------------------------------
def log_normal_pdf(u: sp.Expr, mean: sp.Expr, var: sp.Expr) -> sp.Expr:
    """log N(u | mean, var), written out (a polynomial in u plus constants)."""
    return -sp.log(2 * sp.pi * var) / 2 - (u - mean) ** 2 / (2 * var)


@cache
def standard_normal_moment(k: int) -> sp.Expr:
    """E[t**k] for t ~ N(0, 1).

    k = 0, 1, 2 by ``sympy.integrate``; higher k by integration by parts,
    E[t**k] = (k - 1) E[t**(k-2)] (``tests/test_vae.py`` checks the recursion against
    ``sympy.integrate``).
    """
    if k <= 2:
        t = sp.Symbol("t", real=True)
        return sp.integrate(t**k * sp.exp(-(t**2) / 2) / sp.sqrt(2 * sp.pi), (t, -sp.oo, sp.oo))
    return (k - 1) * standard_normal_moment(k - 2)


def gaussian_expectation(f: sp.Expr, var_: sp.Symbol, mean: sp.Expr, variance: sp.Expr) -> sp.Expr:
    """E[f(u)] for u ~ N(mean, variance), f a polynomial in u (any coefficients).

    Substitutes u = mean + sqrt(variance) t and integrates each power of t against N(0, 1).
    """
    t = sp.Symbol("t_", real=True)
    poly = sp.Poly(sp.expand(f.subs(var_, mean + sp.sqrt(variance) * t)), t)
    return sp.expand(sum(c * standard_normal_moment(k) for (k,), c in poly.terms()))


def gaussian_integral(exponent: sp.Expr, var_: sp.Symbol) -> sp.Expr:
    """The integral over the real line of exp(exponent), exponent = -alpha u**2 + beta u + c.

    Completes the square and integrates exp(-alpha t**2) with ``sympy.integrate`` (alpha > 0 is
    required and checked).
    """
    poly = sp.Poly(sp.expand(exponent), var_)
    if poly.degree() != 2:
        raise ValueError(f"exponent must be quadratic in {var_}, got degree {poly.degree()}")
    alpha = -poly.coeff_monomial(var_**2)
    beta = poly.coeff_monomial(var_)
    c = poly.coeff_monomial(1)
    if sp.ask(sp.Q.positive(alpha)) is False:
        raise ValueError(f"the Gaussian integral diverges: coefficient of {var_}**2 is {-alpha}")
    t = sp.Symbol("t", real=True)
    al = sp.Symbol("alpha", positive=True)
    base = sp.integrate(sp.exp(-al * t**2), (t, -sp.oo, sp.oo)).subs(al, alpha)
    return base * sp.exp(beta**2 / (4 * alpha) + c)


# --------------------------------------------------------------------------------------------
# The example: prior, likelihood, marginal, posterior (eqs. (33)-(34), (39)-(40), (47)-(48))
# --------------------------------------------------------------------------------------------
def log_prior(u: sp.Expr = z) -> sp.Expr:
    """log p(z), z ~ N(0, 1)."""
    return log_normal_pdf(u, 0, 1)


def log_likelihood(g: sp.Expr = gamma, u: sp.Expr = z, mean_dir: sp.Matrix = W) -> sp.Expr:
    """log p(x | z) with x | z ~ N(mean_dir * z, g * I) (the corrected eq. (39)/(47))."""
    return sum(log_normal_pdf(X[i], mean_dir[i] * u, g) for i in range(2))


def true_covariance(g: sp.Expr = gamma) -> sp.Matrix:
    """Cov(x) = W W^T + g I = [[1 + g, 2], [2, 4 + g]], derived as E[x x^T] by integration."""
    # E[x_i x_j] = E_z E[x_i x_j | z] = E_z[(W_i z)(W_j z)] + g delta_ij, by integration over z.
    cov = sp.zeros(2, 2)
    for i in range(2):
        for j in range(2):
            cond = W[i] * W[j] * z**2 + (g if i == j else 0)
            cov[i, j] = gaussian_expectation(cond, z, 0, 1)
    return cov


@cache
def log_marginal(g: sp.Expr = gamma) -> sp.Expr:
    """log p(x) = log of the integral of p(z) p(x | z) dz (eqs. (33), (48))."""
    joint = log_prior() + log_likelihood(g)
    return sp.expand(sp.expand_log(sp.log(gaussian_integral(joint, z)), force=True))


def log_mvn_pdf(cov: sp.Matrix) -> sp.Expr:
    """log N(x | 0, cov) for the 2-vector x = (x1, x2)."""
    q = (X.T * cov.inv() * X)[0]
    return -sp.log((2 * sp.pi) ** 2 * cov.det()) / 2 - q / 2


@cache
def posterior(g: sp.Expr = gamma) -> tuple[sp.Expr, sp.Expr]:
    """(mean, variance) of p(z | x) = p(z) p(x | z) / p(x) (eqs. (40), (48)).

    Read off from the quadratic log p(z, x) - log p(x); the normalisation is checked by
    ``posterior_is_normalised``.
    """
    logpost = sp.expand(log_prior() + log_likelihood(g) - log_marginal(g))
    poly = sp.Poly(logpost, z)
    variance = sp.simplify(-1 / (2 * poly.coeff_monomial(z**2)))
    mean = sp.simplify(poly.coeff_monomial(z) * variance)
    return mean, variance


def posterior_is_normalised(g: sp.Expr = gamma) -> bool:
    """log p(z) + log p(x | z) - log p(x) equals log N(z | mean, variance) identically."""
    mean, variance = posterior(g)
    diff = log_prior() + log_likelihood(g) - log_marginal(g) - log_normal_pdf(z, mean, variance)
    return sp.simplify(sp.expand(sp.expand_log(diff, force=True))) == 0


# --------------------------------------------------------------------------------------------
# The ELBO identity (eqs. (29)-(32)) for a Gaussian q(z | x) = N(m, v)
# --------------------------------------------------------------------------------------------
def kl_q_prior(mean: sp.Expr = m, variance: sp.Expr = v) -> sp.Expr:
    """KL(N(mean, variance) || N(0, 1)) = E_q[log q - log p(z)], by integration."""
    integrand = log_normal_pdf(z, mean, variance) - log_prior()
    return gaussian_expectation(integrand, z, mean, variance)


def expected_log_likelihood(
    g: sp.Expr = gamma, mean: sp.Expr = m, variance: sp.Expr = v, mean_dir: sp.Matrix = W
) -> sp.Expr:
    """E_{q}[log p(x | z)] for q = N(mean, variance), by integration."""
    return gaussian_expectation(log_likelihood(g, z, mean_dir), z, mean, variance)


def elbo_31(g: sp.Expr = gamma, mean: sp.Expr = m, variance: sp.Expr = v) -> sp.Expr:
    """ELBO in the form (31): -KL(q || p(z)) + E_q log p(x | z)."""
    return -kl_q_prior(mean, variance) + expected_log_likelihood(g, mean, variance)


def elbo_joint_form(g: sp.Expr = gamma, mean: sp.Expr = m, variance: sp.Expr = v) -> sp.Expr:
    """ELBO in the form of the 4th line of (30): E_q[log p(z, x) - log q(z | x)]."""
    integrand = log_prior() + log_likelihood(g) - log_normal_pdf(z, mean, variance)
    return gaussian_expectation(integrand, z, mean, variance)


def kl_q_posterior(g: sp.Expr = gamma, mean: sp.Expr = m, variance: sp.Expr = v) -> sp.Expr:
    """KL(q || p(z | x)) = E_q[log q - log p(z | x)], by integration (the derived posterior)."""
    pm, pv = posterior(g)
    integrand = log_normal_pdf(z, mean, variance) - log_normal_pdf(z, pm, pv)
    return gaussian_expectation(integrand, z, mean, variance)


def elbo_identity_residual(g: sp.Expr = gamma) -> sp.Expr:
    """log p(x) - KL(q || p(z | x)) - ELBO_(31), simplified: 0 proves eqs. (29)-(31)."""
    diff = log_marginal(g) - kl_q_posterior(g) - elbo_31(g)
    return sp.simplify(sp.expand(sp.expand_log(diff, force=True)))


# --------------------------------------------------------------------------------------------
# The linear Gaussian VAE (eqs. (41)-(44), (49)-(52))
# --------------------------------------------------------------------------------------------
def encoder_variance_fixed(g: sp.Expr = gamma) -> sp.Expr:
    """The tutorial's fixed encoder variance, chosen equal to the true posterior variance."""
    return posterior(g)[1]


def elbo_linear(
    g: sp.Expr = gamma,
    var_q: sp.Expr | None = None,
    var_x: sp.Expr | None = None,
) -> sp.Expr:
    """Closed-form ELBO of the linear VAE, q = N(a.x, var_q), p(x | z) = N(b z, var_x I).

    Defaults are the tutorial's fixed variances (var_q = g/(5+g), var_x = g): eqs. (43), (51).
    """
    var_q = encoder_variance_fixed(g) if var_q is None else var_q
    var_x = g if var_x is None else var_x
    mu = (A.T * X)[0]
    return sp.expand(-kl_q_prior(mu, var_q) + expected_log_likelihood(var_x, mu, var_q, mean_dir=B))


def loss_tutorial_summand(g: sp.Expr = gamma) -> sp.Expr:
    """The per-sample loss of (44)/(52): -ELBO minus its constant (parameter-free) part."""
    elbo = elbo_linear(g)
    const = elbo.subs({a1: 0, a2: 0, b1: 0, b2: 0}) + (x1**2 + x2**2) / (2 * g)
    return sp.expand(-(elbo - const))


def elbo_constant(g: sp.Expr = gamma) -> sp.Expr:
    """The parameter-free constant c with ELBO = c - loss_(52) (printed: -log(2 pi ...) + ...)."""
    return sp.simplify(sp.expand(elbo_linear(g) + loss_tutorial_summand(g)))


def expect_over_data(expr: sp.Expr, cov: sp.Matrix) -> sp.Expr:
    """E over x ~ N(0, cov) of a polynomial of degree <= 2 in (x1, x2) (moments substituted)."""
    poly = sp.Poly(sp.expand(expr), x1, x2)
    if poly.total_degree() > 2:
        raise ValueError("expect_over_data handles polynomials of degree <= 2 in x only")
    moments = {
        (0, 0): 1,
        (1, 0): 0,
        (0, 1): 0,
        (2, 0): cov[0, 0],
        (0, 2): cov[1, 1],
        (1, 1): cov[0, 1],
    }
    return sp.expand(sum(c * moments[k] for k, c in poly.terms()))


@cache
def population_loss(g: sp.Expr = gamma) -> sp.Expr:
    """E_x of the per-sample loss (52), x ~ N(0, Cov(x)): the population objective."""
    return expect_over_data(loss_tutorial_summand(g), true_covariance(g))


def sample_loss(g: sp.Expr, s11: sp.Expr, s12: sp.Expr, s22: sp.Expr) -> sp.Expr:
    """The loss (52) averaged over a sample with second moments S = [[s11, s12], [s12, s22]]."""
    return expect_over_data(loss_tutorial_summand(g), sp.Matrix([[s11, s12], [s12, s22]]))


def stationary_conditions(g: sp.Expr = gamma) -> list[sp.Expr]:
    """The gradient of the population loss, [dL/da1, dL/da2, dL/db1, dL/db2] (eq. (54))."""
    loss = population_loss(g)
    return [sp.expand(sp.diff(loss, p)) for p in PARAMS]


# --------------------------------------------------------------------------------------------
# Every stationary point, and its type
# --------------------------------------------------------------------------------------------
def gradient_a_factorised_residual(g: sp.Expr = gamma) -> sp.Matrix:
    """grad_a L - C((g + |b|^2) a - b)/g; zero proves a = b/(g + |b|^2) at any stationary point.

    (Cov(x) is invertible for g > 0: det = g (5 + g).)
    """
    cov = true_covariance(g)
    grad_a = sp.Matrix(stationary_conditions(g)[:2])
    s = (B.T * B)[0]
    return (grad_a - cov * ((g + s) * A - B) / g).applyfunc(sp.cancel)


def gradient_b_reduced_residual(g: sp.Expr = gamma) -> sp.Matrix:
    """grad_b L at a = b/(g+s), minus  [g (g+s)^2 b/(5+g) + (b'Cb) b - (g+s) C b] / (g (g+s)^2).

    Zero proves: at a stationary point with b != 0, C b is parallel to b (b is an eigenvector of
    Cov(x)), since the first two terms are parallel to b.
    """
    cov = true_covariance(g)
    s = (B.T * B)[0]
    grad_b = sp.Matrix(stationary_conditions(g)[2:])
    on_curve = grad_b.subs({a1: b1 / (g + s), a2: b2 / (g + s)}, simultaneous=True)
    reduced = (g * (g + s) ** 2 * B / (5 + g) + (B.T * cov * B)[0] * B - (g + s) * cov * B) / (
        g * (g + s) ** 2
    )
    return (on_curve - reduced).applyfunc(lambda e: sp.cancel(sp.together(e)))


def stationary_points(g: sp.Expr = gamma) -> list[dict]:
    """All five stationary points of the population loss, with their (a, b) and a name.

    Derivation (each step checked in tests and in the ledger): a = b/(g + |b|^2); b = 0 or b an
    eigenvector of Cov(x) = W W^T + g I, whose eigenpairs are (5 + g, (1, 2)/sqrt5) and
    (g, (2, -1)/sqrt5). Along an eigenvector u with eigenvalue lam, b = beta u and the reduced
    condition reads (g + beta^2)^2 = lam (5 + g): beta^2 = 5 on the signal direction,
    beta^2 = sqrt(g (5 + g)) - g > 0 on the noise direction.
    """
    u_sig = W / sp.sqrt(5)
    u_noise = sp.Matrix([2, -1]) / sp.sqrt(5)
    beta_sig = sp.sqrt(5)
    beta_noise = sp.sqrt(sp.sqrt(g * (5 + g)) - g)
    points = [{"name": "origin", "a": sp.zeros(2, 1), "b": sp.zeros(2, 1)}]
    for sign in (1, -1):
        b = sign * beta_sig * u_sig
        points.append({"name": f"signal{'+' if sign > 0 else '-'}", "a": b / (g + 5), "b": b})
    for sign in (1, -1):
        b = sign * beta_noise * u_noise
        points.append(
            {"name": f"noise{'+' if sign > 0 else '-'}", "a": b / sp.sqrt(g * (5 + g)), "b": b}
        )
    return points


def point_subs(point: dict) -> dict:
    """The substitution {a1: ., a2: ., b1: ., b2: .} of a stationary point."""
    return {a1: point["a"][0], a2: point["a"][1], b1: point["b"][0], b2: point["b"][1]}


def solve_stationary_exactly(g_value: sp.Rational) -> list[dict]:
    """All real solutions of (54) for one numeric gamma, by ``sympy.solve`` (completeness check)."""
    eqs = [sp.expand(e * 2 * g_value * (5 + g_value)) for e in stationary_conditions(g_value)]
    sols = sp.solve(eqs, list(PARAMS), dict=True)
    return [s for s in sols if all(sp.im(sp.N(val)) == 0 for val in s.values())]


def hessian(g: sp.Expr = gamma) -> sp.Matrix:
    """Hessian of the population loss in (a1, a2, b1, b2)."""
    return sp.hessian(population_loss(g), PARAMS)


def inertia(matrix: sp.Matrix, digits: int = 50) -> tuple[int, int, int]:
    """(#negative, #zero, #positive) eigenvalues of a numeric symmetric matrix.

    Eigenvalues by mpmath at ``digits`` significant digits; |eigenvalue| < 10**(-digits/2) counts
    as zero.
    """
    import mpmath

    with mpmath.workdps(digits):
        mat = mpmath.matrix([[sp.N(e, digits) for e in row] for row in matrix.tolist()])
        vals = mpmath.eigsy(mat, eigvals_only=True)
        tol = mpmath.mpf(10) ** (-digits // 2)
        neg = sum(1 for val in vals if val < -tol)
        zer = sum(1 for val in vals if abs(val) <= tol)
    return neg, zer, len(vals) - neg - zer


def classify_stationary_points(g_value: sp.Expr) -> dict[str, tuple[str, sp.Expr]]:
    """{name: (type, loss value)} of the five stationary points for one numeric gamma."""
    hess = hessian(gamma)
    loss = population_loss(gamma)
    out = {}
    for p in stationary_points(gamma):
        subs = {k: val.subs(gamma, g_value) for k, val in point_subs(p).items()}
        subs[gamma] = g_value
        neg, zer, _ = inertia(hess.subs(subs))
        if zer:
            kind = "degenerate"
        elif neg == 0:
            kind = "minimum"
        else:
            kind = f"saddle (index {neg})"
        out[p["name"]] = (kind, sp.simplify(loss.subs(subs)))
    return out


def signal_hessian_blocks(g: sp.Expr = gamma) -> tuple[sp.Matrix, sp.Matrix]:
    """Hessian at the optimum in the eigenbasis of Cov(x): two 2x2 blocks (signal, noise).

    In coordinates a = alpha1 u1 + alpha2 u2, b = beta1 u1 + beta2 u2 (u1 = (1,2)/sqrt5,
    u2 = (2,-1)/sqrt5) the Hessian at the optimum is block diagonal; positive determinants and
    traces of both blocks for every gamma > 0 prove it is a strict local (and, the loss being
    coercive, global) minimum.
    """
    al1, al2, be1, be2 = sp.symbols("alpha1 alpha2 beta1 beta2", real=True)
    u1 = W / sp.sqrt(5)
    u2 = sp.Matrix([2, -1]) / sp.sqrt(5)
    a_vec = al1 * u1 + al2 * u2
    b_vec = be1 * u1 + be2 * u2
    rot = {a1: a_vec[0], a2: a_vec[1], b1: b_vec[0], b2: b_vec[1]}
    loss = sp.expand(population_loss(g).subs(rot, simultaneous=True))
    h = sp.hessian(loss, (al1, be1, al2, be2))
    at = {al1: sp.sqrt(5) / (5 + g), be1: sp.sqrt(5), al2: 0, be2: 0}
    h = sp.simplify(h.subs(at))
    if any(sp.simplify(h[i, j]) != 0 for i in range(2) for j in range(2, 4)):
        raise AssertionError("the Hessian at the optimum is not block diagonal")
    return h[:2, :2], h[2:, 2:]


# --------------------------------------------------------------------------------------------
# Tightness at the optimum
# --------------------------------------------------------------------------------------------
def kl_at_optimum(g: sp.Expr = gamma) -> sp.Expr:
    """KL(q_{phi*}(z | x) || p_{theta*}(z | x)) at the optimum (a*, b*) with the fixed variances."""
    mu = (A.T * X)[0].subs({a1: 1 / (5 + g), a2: 2 / (5 + g)})
    return sp.simplify(kl_q_posterior(g, mu, encoder_variance_fixed(g)))


def elbo_gap_at_optimum(g: sp.Expr = gamma) -> sp.Expr:
    """log p(x) - ELBO(a*, b*), for every x: 0 means the bound is tight."""
    elbo = elbo_linear(g).subs({a1: 1 / (5 + g), a2: 2 / (5 + g), b1: 1, b2: 2})
    return sp.simplify(sp.expand(sp.expand_log(log_marginal(g) - elbo, force=True)))


# --------------------------------------------------------------------------------------------
# Gradient estimators (eqs. (35)-(36)): exact means and variances
# --------------------------------------------------------------------------------------------
def gradient_estimators(g: sp.Expr = gamma) -> dict[str, sp.Matrix]:
    """Single-sample estimators of d/da E_q[log p(x | z)] (q = N(a.x, v), decoder N(b z, g I)).

    ``score``: f(z) d/da log q(z) = f(z) (z - mu) x / v, z ~ q (the naive route from (35));
    ``reparam``: d/da f(mu + sqrt(v) eps) = f'(z) x, eps ~ N(0, 1) (eq. (36)); both as
    polynomials in z, to be averaged over z ~ q.
    """
    mu = (A.T * X)[0]
    f = log_likelihood(g, z, B)
    score = sp.Matrix([f * (z - mu) / v * X[i] for i in range(2)])
    reparam = sp.Matrix([sp.diff(f, z) * X[i] for i in range(2)])
    return {"score": score, "reparam": reparam}


def exact_gradient(g: sp.Expr = gamma) -> sp.Matrix:
    """d/da E_q[log p(x | z)], differentiating the closed-form expectation."""
    mu = (A.T * X)[0]
    e = expected_log_likelihood(g, mu, v, mean_dir=B)
    return sp.Matrix([sp.diff(e, p) for p in (a1, a2)])


def estimator_moments(
    g: sp.Expr = gamma, at: dict | None = None
) -> dict[str, tuple[sp.Matrix, sp.Matrix]]:
    """{name: (mean, variance)} of each single-sample estimator, by integration over z ~ q.

    ``at`` substitutes values (e.g. numbers for x, a, b, v) before integrating, which is faster.
    """
    at = at or {}
    mu = (A.T * X)[0].subs(at)
    vv = v.subs(at)
    out = {}
    for name, est in gradient_estimators(g).items():
        est = est.subs(at)
        mean = est.applyfunc(lambda e: gaussian_expectation(e, z, mu, vv))
        second = est.applyfunc(lambda e: gaussian_expectation(sp.expand(e**2), z, mu, vv))
        out[name] = (mean, (second - mean.applyfunc(lambda e: e**2)).applyfunc(sp.expand))
    return out
