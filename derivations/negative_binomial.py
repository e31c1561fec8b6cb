"""Chapter 3: from the Gamma-Poisson mixture to the (zero-inflated) negative binomial.

Tutorial section 3, eqs. (55)-(59). Every result is derived here with sympy from the generative
process (55); nothing is transcribed from the tutorial, whose (57)-(59) contain mistakes (see
``derivations/ledger_scvi.py``).

Symbols: ``k`` a count, ``theta`` the inverse dispersion (NB size), ``rho`` the expected frequency,
``l`` the library size, ``mu = l rho`` the NB mean, ``zi`` the zero-inflation logit with
``sigmoid(zi) = P(technical zero)`` (scvi-tools' ``zi_logits``). The tutorial's (55) draws
``h ~ Bernoulli(sigmoid(f_h))`` and keeps the count when ``h = 1``, so ``zi = -f_h``.
"""

from __future__ import annotations

import functools

import mpmath
import sympy as sp

k = sp.Symbol("k", integer=True, nonnegative=True)
w = sp.Symbol("w", positive=True)
s = sp.Symbol("s", positive=True)  # argument of the probability generating function
theta, rho, l, mu = sp.symbols("theta rho l mu", positive=True)
n_size, p = sp.symbols("n p", positive=True)  # NB(size n, prob p) of eq. (57)
zi = sp.Symbol("zi", real=True)
f_h = sp.Symbol("f_h", real=True)


def softplus(x: sp.Expr) -> sp.Expr:
    """S(x) = log(1 + e^x), the tutorial's S in (58)."""
    return sp.log(1 + sp.exp(x))


def sigmoid(x: sp.Expr) -> sp.Expr:
    """1 / (1 + e^{-x})."""
    return 1 / (1 + sp.exp(-x))


# --- the ingredients of the generative process (55) ------------------------------------------


def gamma_pdf(x: sp.Expr, shape: sp.Expr, rate: sp.Expr) -> sp.Expr:
    """Gamma(shape, rate) density on x > 0 (eq. (55), w | rho, theta ~ Gamma(theta, theta/rho))."""
    return rate**shape / sp.gamma(shape) * x ** (shape - 1) * sp.exp(-rate * x)


def poisson_pmf(x: sp.Expr, rate: sp.Expr) -> sp.Expr:
    """Poisson(rate) pmf (eq. (55), y | l, w ~ Poisson(l w))."""
    return rate**x * sp.exp(-rate) / sp.factorial(x)


# --- eq. (56): the Gamma-Poisson mixture ----------------------------------------------------


@functools.cache
def gamma_poisson_mixture() -> sp.Expr:
    """P(y = k | l, rho, theta) = int_0^oo Poisson(k | l w) Gamma(w | theta, theta/rho) dw.

    Integrated by sympy; the result is :func:`nb_pmf` evaluated at mu = l rho (eq. (56)).
    """
    integrand = poisson_pmf(k, l * w) * gamma_pdf(w, theta, theta / rho)
    return sp.integrate(integrand, (w, 0, sp.oo), conds="none")


def nb_pmf(x: sp.Expr, mean: sp.Expr, inv_disp: sp.Expr) -> sp.Expr:
    """NB(x | mean, theta) in the (mean, dispersion) parameterisation, eq. (56) last lines.

    Gamma(x + theta) / (Gamma(theta) x!) (theta / (theta + mu))^theta (mu / (theta + mu))^x.
    """
    return (
        sp.gamma(x + inv_disp)
        / (sp.gamma(inv_disp) * sp.factorial(x))
        * (inv_disp / (inv_disp + mean)) ** inv_disp
        * (mean / (inv_disp + mean)) ** x
    )


def nb_pmf_size_prob(x: sp.Expr, size: sp.Expr, prob: sp.Expr) -> sp.Expr:
    """NB(size n, prob p) of eq. (57), corrected: Gamma(x + n) / (Gamma(n) x!) (1-p)^n p^x.

    The tutorial prints ``Gamma(x)!`` for ``x!`` (ledger (57)). With this convention p is the
    probability of a *success* and x counts successes before the n-th failure, so p is in [0, 1)
    (the tutorial's ``(0, 1]`` is R's range for its other convention).
    """
    return sp.gamma(x + size) / (sp.gamma(size) * sp.factorial(x)) * (1 - prob) ** size * prob**x


def size_prob_from_mean(mean: sp.Expr, inv_disp: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """(mu, theta) -> (n, p) = (theta, mu / (theta + mu)), text after eq. (57)."""
    return inv_disp, mean / (inv_disp + mean)


def mean_from_size_prob(size: sp.Expr, prob: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """(n, p) -> (mu, theta) = (n p / (1 - p), n), the inverse of :func:`size_prob_from_mean`."""
    return size * prob / (1 - prob), size


@functools.cache
def nb_pgf() -> sp.Expr:
    """Probability generating function E[s^X] of NB(size n, prob p), summed by sympy.

    sum_k Gamma(k+n)/(Gamma(n) k!) (1-p)^n (p s)^k = ((1 - p) / (1 - p s))^n  for p s < 1.
    """
    series = sp.summation(sp.rf(n_size, k) / sp.factorial(k) * (p * s) ** k, (k, 0, sp.oo))
    series = series.args[0][0] if isinstance(series, sp.Piecewise) else series
    return sp.simplify((1 - p) ** n_size * series)


def moments_from_pgf(pgf: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """(mean, variance) from a pgf G: E X = G'(1), Var X = G''(1) + G'(1) - G'(1)^2."""
    d1 = sp.diff(pgf, s).subs(s, 1)
    d2 = sp.diff(pgf, s, 2).subs(s, 1)
    return sp.simplify(d1), sp.simplify(d2 + d1 - d1**2)


@functools.cache
def nb_moments_size_prob() -> tuple[sp.Expr, sp.Expr]:
    """Mean n p / (1 - p) and variance n p / (1 - p)^2 of NB(n, p) (text after (57))."""
    return moments_from_pgf(nb_pgf())


def nb_moments_mean_disp() -> tuple[sp.Expr, sp.Expr]:
    """Mean mu and variance mu + mu^2 / theta, by substituting (n, p) = (theta, mu/(theta+mu))."""
    m, v = nb_moments_size_prob()
    size, prob = size_prob_from_mean(mu, theta)
    return sp.simplify(m.subs({n_size: size, p: prob})), sp.simplify(
        v.subs({n_size: size, p: prob})
    )


def gamma_poisson_moments() -> tuple[sp.Expr, sp.Expr]:
    """Mean and variance of y by the hierarchy (55): E y = E[l w], Var y = E[l w] + Var(l w).

    The Gamma moments are integrated by sympy; an independent route to :func:`nb_moments_mean_disp`.
    """
    g = gamma_pdf(w, theta, theta / rho)
    m1 = sp.integrate(l * w * g, (w, 0, sp.oo), conds="none")
    m2 = sp.integrate((l * w) ** 2 * g, (w, 0, sp.oo), conds="none")
    return sp.simplify(m1), sp.simplify(m1 + m2 - m1**2)


# --- eqs. (58)-(59): zero inflation ---------------------------------------------------------


def zinb_pmf_naive(x: sp.Expr, mean: sp.Expr, inv_disp: sp.Expr, logit: sp.Expr) -> sp.Expr:
    """ZINB pmf as the two-component mixture, pi = sigmoid(logit) = P(technical zero).

    P(0) = pi + (1 - pi) NB(0),   P(x > 0) = (1 - pi) NB(x).
    """
    pi = sigmoid(logit)
    nb = nb_pmf(x, mean, inv_disp)
    return sp.Piecewise((pi + (1 - pi) * nb, sp.Eq(x, 0)), ((1 - pi) * nb, True))


def zinb_log_pmf_stable(x: sp.Expr, mean: sp.Expr, inv_disp: sp.Expr, logit: sp.Expr) -> sp.Expr:
    """log ZINB in the softplus form (the corrected eqs. (58)-(59)).

    x = 0:  S(-zi + theta log(theta/(theta+mu))) - S(-zi)
    x > 0:  -S(zi) + theta log(theta/(theta+mu)) + x log(mu/(theta+mu))
            + log Gamma(x+theta) - log Gamma(theta) - log Gamma(x+1)
    """
    log_nb0 = inv_disp * sp.log(inv_disp / (inv_disp + mean))
    zero = softplus(-logit + log_nb0) - softplus(-logit)
    positive = (
        -softplus(logit)
        + log_nb0
        + x * sp.log(mean / (inv_disp + mean))
        + sp.loggamma(x + inv_disp)
        - sp.loggamma(inv_disp)
        - sp.loggamma(x + 1)
    )
    return sp.Piecewise((zero, sp.Eq(x, 0)), (positive, True))


def zinb_stable_equals_naive() -> tuple[sp.Expr, sp.Expr]:
    """Differences exp(stable) - naive for x = 0 and x = k > 0, simplified (both are 0)."""
    a = sp.Symbol("a", negative=True)  # a = log NB(0) = theta log(theta/(theta+mu)) < 0
    pi = sigmoid(zi)
    zero = sp.exp(softplus(-zi + a) - softplus(-zi)) - (pi + (1 - pi) * sp.exp(a))
    zero = sp.simplify(sp.expand(sp.simplify(zero.rewrite(sp.exp))))
    nb = sp.Symbol("NB_k", positive=True)
    positive = sp.simplify(sp.exp(-softplus(zi) + sp.log(nb)) - (1 - pi) * nb)
    return zero, positive


def zinb_stable_vs_naive_mp(points, dps: int = 50) -> float:
    """Largest relative difference of exp(stable log-pmf) and the naive mixture, in mpmath.

    ``points`` is an iterable of (x, mu, theta, zi) tuples; evaluated at ``dps`` digits.
    """
    worst = mpmath.mpf(0)
    with mpmath.workdps(dps):
        for x_, mu_, th_, zi_ in points:
            x_, mu_, th_, zi_ = (mpmath.mpf(v) for v in (x_, mu_, th_, zi_))
            log_nb0 = th_ * mpmath.log(th_ / (th_ + mu_))
            sp_ = lambda t: mpmath.log1p(mpmath.exp(t))  # noqa: E731
            pi = 1 / (1 + mpmath.exp(-zi_))
            if x_ == 0:
                stable = sp_(-zi_ + log_nb0) - sp_(-zi_)
                naive = pi + (1 - pi) * mpmath.exp(log_nb0)
            else:
                log_nb = (
                    log_nb0
                    + x_ * mpmath.log(mu_ / (th_ + mu_))
                    + mpmath.loggamma(x_ + th_)
                    - mpmath.loggamma(th_)
                    - mpmath.loggamma(x_ + 1)
                )
                stable = -sp_(zi_) + log_nb
                naive = (1 - pi) * mpmath.exp(log_nb)
            worst = max(worst, abs(mpmath.exp(stable) - naive) / naive)
    return float(worst)


def zinb_moments() -> tuple[sp.Expr, sp.Expr]:
    """Mean (1 - pi) mu and variance (1 - pi) mu (1 + mu/theta + pi mu) of the ZINB.

    E X^j = (1 - pi) E Y^j for the mixture with a point mass at 0; the NB moments come from
    :func:`nb_moments_mean_disp`. Returned with pi = sigmoid(zi) written as the symbol ``pi``.
    """
    pi = sp.Symbol("pi", positive=True)
    m, v = nb_moments_mean_disp()
    ex = (1 - pi) * m
    ex2 = (1 - pi) * (v + m**2)
    return sp.factor(ex), sp.factor(sp.simplify(ex2 - ex**2))


# --- exercises ------------------------------------------------------------------------------


def check_matched_theta(answer) -> None:
    """Chapter 3, exercise 1: theta' of the NB with the mean and variance of ZINB(mu, theta, pi).

    ``answer`` is a sympy expression (or a string) in ``theta`` (this module's symbol), ``pi``
    (the probability of a technical zero) and optionally ``mu``. The reference is computed here
    from :func:`zinb_moments` by matching moments, theta' = mean^2 / (variance - mean); it is
    (1 - pi) theta / (1 + pi theta), independent of mu. Raises AssertionError on a wrong answer.
    """
    pi = sp.Symbol("pi", positive=True)
    expr = sp.sympify(answer, locals={"mu": mu, "theta": theta, "pi": pi})
    m, v = zinb_moments()
    truth = m**2 / (v - m)
    if sp.simplify(expr - theta * (1 - pi)) == 0:
        raise AssertionError(
            "theta (1 - pi) matches the mean but not the variance: the dropout adds pi mu to the"
            " over-dispersion mu/theta"
        )
    if sp.simplify(expr - truth) != 0:
        raise AssertionError(
            "not theta' = mean^2 / (variance - mean) with the ZINB's mean (1 - pi) mu and variance"
            " (1 - pi) mu (1 + mu/theta + pi mu)"
        )
