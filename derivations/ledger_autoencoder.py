"""Ledger of chapter 1 (the autoencoder): eqs. (1)-(28) and the claims of the text between them.

Every ``check`` computes its verdict: the printed formula is entered as a sympy expression (what
the tutorial prints, including its mistakes) and compared with what :mod:`derivations.autoencoder`
derives (``sp.diff``, ``sp.solve``), by simplifying the difference, never by comparing strings.
Corrections of ``slip`` and ``wrong`` entries are proved inside the check.

Data conventions inside checks: ``_general(n)`` is n symbolic samples with independent
coordinates (for the general formulas (6), (7), (10), (17), (18), (22)); ``_line(n)`` puts them on
the line x2 = 2 x1 (for the simplified formulas (8), (11), (19), (23)).
"""

from __future__ import annotations

import sympy as sp

from derivations import autoencoder as A
from derivations.ledger import Entry, classify

a1, a2, b1, b2 = A.PARAMS
g, lam = A.gamma, A.lam
N_SYM = 3  # three symbolic samples are enough to make every sum identity non-trivial


def _general(n: int = N_SYM) -> sp.Matrix:
    xs = sp.symbols(f"x1_1:{n + 1}", real=True)
    ys = sp.symbols(f"x2_1:{n + 1}", real=True)
    return sp.Matrix([[x, y] for x, y in zip(xs, ys, strict=True)])


def _line(n: int = N_SYM) -> sp.Matrix:
    xs = sp.symbols(f"x1_1:{n + 1}", real=True)
    return sp.Matrix([[x, 2 * x] for x in xs])


def _zero(expr) -> bool:
    """True when a sympy expression (or matrix) is identically 0.

    A nonzero exact value at a rational point proves "not identically 0" quickly; otherwise the
    expression is cancelled (exact for rational functions) and, failing that, simplified.
    """
    if isinstance(expr, sp.MatrixBase):
        return all(_zero(e) for e in expr)
    expr = sp.sympify(expr)
    point = {
        x: sp.Rational(3 + 2 * i, 7 + i) for i, x in enumerate(sorted(expr.free_symbols, key=str))
    }
    value = expr.subs(point)
    if value.is_number and sp.N(value, 40) != 0 and abs(sp.N(value, 40)) > 1e-30:
        return False
    if sp.cancel(sp.together(expr)) == 0:
        return True
    return sp.simplify(expr) == 0


def _z(X, n):
    return a1 * X[n, 0] + a2 * X[n, 1]


# --- (1)-(5) ----------------------------------------------------------------------------------


def _check_1() -> str:
    # x = (z, 2z), z ~ N(0, 1): mean 0 and covariance [[1, 2], [2, 4]], derived by integration
    return classify(A.covariance_of_generator() == sp.Matrix([[1, 2], [2, 4]]))


def _check_2() -> str:
    Sigma = A.covariance_of_generator()
    return classify(Sigma.det() == 0 and Sigma.rank() == 1)


def _check_3() -> str:
    X = A.data()
    return classify(X.rows == 9 and all(X[n, 1] == 2 * X[n, 0] for n in range(X.rows)))


def _check_regression() -> str:
    # least squares x2 = c x1 (+ intercept): slope 2, intercept 0, residual 0
    X = A.data()
    c, d = sp.symbols("c d", real=True)
    rss = sum((X[n, 1] - c * X[n, 0] - d) ** 2 for n in range(X.rows))
    sol = sp.solve([sp.diff(rss, c), sp.diff(rss, d)], [c, d], dict=True)[0]
    return classify(sol[c] == 2 and sol[d] == 0 and rss.subs(sol) == 0)


def _check_4() -> str:
    # (4) with x~ = g(f(x)) = (b1 z, b2 z) is the mean squared norm; equals (5) on any data
    X = _general()
    x_tilde = [sp.Matrix([b1 * _z(X, n), b2 * _z(X, n)]) for n in range(X.rows)]
    diff = [x_tilde[n] - X[n, :].T for n in range(X.rows)]
    eq4 = sum((d.T * d)[0] for d in diff) / X.rows  # squared Euclidean norm
    return classify(_zero(eq4 - A.loss(X)))


def _check_5() -> str:
    # printed (5): 1/N sum_n (x1 - b1 z)^2 + (x2 - b2 z)^2 (the sum covers both squares: n is
    # bound in both) equals the derived loss, and it is 0 at the tutorial's a=(1,0), b=(1,2)
    X = _general()
    printed = (
        sum((X[n, 0] - b1 * _z(X, n)) ** 2 + (X[n, 1] - b2 * _z(X, n)) ** 2 for n in range(X.rows))
        / X.rows
    )
    return classify(_zero(printed - A.loss(X)))


def _check_optimal_guess() -> str:
    # "Can we learn a1 = 1, a2 = 0, b1 = 1, b2 = 2? yes": loss 0 (global minimum) on the data (3)
    return classify(A.loss().subs({a1: 1, a2: 0, b1: 1, b2: 2}) == 0)


# --- (6)-(14): the unpenalised stationary conditions -------------------------------------------


def _printed_6(X, penalty=0):
    n_ = X.rows
    z = [_z(X, n) for n in range(n_)]
    r1 = [X[n, 0] - b1 * z[n] for n in range(n_)]
    r2 = [X[n, 1] - b2 * z[n] for n in range(n_)]
    ga1 = sp.Rational(2, n_) * sum(-b1 * X[n, 0] * r1[n] - b2 * X[n, 0] * r2[n] for n in range(n_))
    ga2 = sp.Rational(2, n_) * sum(-b1 * X[n, 1] * r1[n] - b2 * X[n, 1] * r2[n] for n in range(n_))
    gb1 = sp.Rational(2, n_) * sum(-z[n] * r1[n] for n in range(n_))
    gb2 = sp.Rational(2, n_) * sum(-z[n] * r2[n] for n in range(n_))
    return sp.Matrix([ga1, ga2, gb1, gb2]) + 2 * penalty * sp.Matrix([a1, a2, b1, b2])


def _check_6() -> str:
    X = _general()
    return classify(_zero(_printed_6(X) - A.gradient(A.loss(X))))


def _system_holds(M, r, X, penalty=0, scale=1) -> bool:
    """M a = r is dL/da = 0, i.e. grad_a == (2/N)/scale (M a - r) identically in a, b."""
    grad_a = A.gradient(A.loss(X, penalty))[:2, 0]
    return _zero(grad_a - sp.Rational(2, X.rows) * scale * (M * sp.Matrix([a1, a2]) - r))


def _check_7() -> str:
    X = _general()
    d = b1**2 + b2**2
    S = lambda f: sum(f(n) for n in range(X.rows))  # noqa: E731
    M = sp.Matrix(
        [
            [S(lambda n: d * X[n, 0] ** 2), S(lambda n: d * X[n, 0] * X[n, 1])],
            [S(lambda n: d * X[n, 0] * X[n, 1]), S(lambda n: d * X[n, 1] ** 2)],
        ]
    )
    r_printed = sp.Matrix(
        [
            S(lambda n: b1 * X[n, 0] ** 2 + b2 * X[n, 0] * X[n, 1]),
            S(lambda n: b1 * X[n, 0] * X[n, 1] + b2 * X[n, 0] ** 2),  # printed: b2 x_{n,1}^2
        ]
    )
    r_read = sp.Matrix([r_printed[0], S(lambda n: b1 * X[n, 0] * X[n, 1] + b2 * X[n, 1] ** 2)])
    printed = _system_holds(M, r_printed, X)
    reading = _system_holds(M, r_read, X)
    # (8) follows from the reading: on the line, row 2 of r is 2 b1 + 4 b2 (times sum x1^2)
    L = _line()
    S1 = sum(L[n, 0] ** 2 for n in range(L.rows))
    r_read_line = r_read.subs(dict(zip(X[:, 1], L[:, 1], strict=True)))
    r_read_line = r_read_line.subs(dict(zip(X[:, 0], L[:, 0], strict=True)))
    assert _zero(r_read_line - S1 * sp.Matrix([b1 + 2 * b2, 2 * b1 + 4 * b2]))
    return classify(printed, reading)


def _check_8() -> str:
    # on the line, dL/da = 0 <=> (printed 8) after dividing by sum x1^2 (> 0)
    X = _line()
    S1 = sum(X[n, 0] ** 2 for n in range(X.rows))
    d = b1**2 + b2**2
    M = sp.Matrix([[d, 2 * d], [2 * d, 4 * d]])
    r = sp.Matrix([b1 + 2 * b2, 2 * b1 + 4 * b2])
    return classify(_system_holds(S1 * M, S1 * r, X))


def _check_9() -> str:
    # (8) row 2 = 2 x row 1, so the system is the single equation (9)
    d = b1**2 + b2**2
    row1 = d * a1 + 2 * d * a2 - (b1 + 2 * b2)
    row2 = 2 * d * a1 + 4 * d * a2 - (2 * b1 + 4 * b2)
    eq9 = (b1**2 + b2**2) * (a1 + 2 * a2) - (b1 + 2 * b2)
    return classify(_zero(row2 - 2 * row1) and _zero(row1 - eq9))


def _b_given_a(X, penalty=0):
    grad_b = A.gradient(A.loss(X, penalty))[2:, 0]
    sol = sp.solve(list(grad_b), [b1, b2], dict=True)[0]
    return sp.Matrix([sol[b1], sol[b2]])


def _check_10() -> str:
    X = _general()
    z = [_z(X, n) for n in range(X.rows)]
    den = sum(zn**2 for zn in z)
    printed = sp.Matrix([sum(X[n, k] * z[n] for n in range(X.rows)) / den for k in (0, 1)])
    return classify(_zero(printed - _b_given_a(X)))


def _check_11() -> str:
    # printed: b1 = sum_n (a1+2a2) / sum_n (a1+2a2)^2 (the factors x_{n,1}^2 are dropped from both
    # sums; they cancel, so the value 1/(a1+2a2) is right), b2 = 2 b1
    X = _line()
    n_ = X.rows
    ss = a1 + 2 * a2
    printed = sp.Matrix([n_ * ss / (n_ * ss**2), 2 * n_ * ss / (n_ * ss**2)])
    derived = _b_given_a(X)
    return classify(_zero(printed - derived) and _zero(derived[1] - 2 * derived[0]))


def _check_12() -> str:
    ss = a1 + 2 * a2
    derived_b1 = _b_given_a(_line())[0]
    printed = _zero(ss / (a1 + a2) ** 2 - derived_b1)
    reading = _zero(ss / ss**2 - derived_b1)  # the denominator (a1 + 2 a2)^2, as in (13)
    # the first line of (12) is (9): fine
    return classify(printed, reading)


def _check_13() -> str:
    # with b2 = 2 b1, (9) becomes 5 b1^2 s = 5 b1, i.e. b1^2 s = b1; b1 = s/s^2 from (11)
    ss = a1 + 2 * a2
    eq9 = ((b1**2 + b2**2) * ss - (b1 + 2 * b2)).subs(b2, 2 * b1)
    line1 = _zero(eq9 - 5 * (b1**2 * ss - b1))
    line2 = _zero(_b_given_a(_line())[0] - ss / ss**2)
    return classify(line1 and line2)


def _check_14() -> str:
    # the stationary points with s != 0 are exactly {b1 s = 1, b2 = 2 b1}; b1 != 0 is automatic
    fams = A.stationary_points_unpenalised()
    s = A.s
    nonzero = [f for f in fams if f.get(s, None) != 0]
    (fam,) = nonzero
    ok = _zero(fam[b1] * s - 1) and _zero(fam[b2] - 2 * fam[b1])
    # and the rest (s = 0, b1 = -2 b2) is excluded by the restriction s != 0
    rest = [f for f in fams if f.get(s, None) == 0]
    return classify(ok and len(rest) == 1)


def _check_examples_14() -> str:
    pts = [
        {a1: 1, a2: 0, b1: 1, b2: 2},
        {a1: 0, a2: sp.Rational(1, 2), b1: 1, b2: 2},
        {a1: 0, a2: sp.Rational(1, 4), b1: 2, b2: 4},
    ]
    eqs = A.solution_manifold()
    grad = A.gradient(A.loss())
    ok = all(all(e.subs(p) == 0 for e in eqs) and grad.subs(p) == sp.zeros(4, 1) for p in pts)
    return classify(ok and all(A.loss().subs(p) == 0 for p in pts))


def _check_infinitely_many() -> str:
    # the minimisers form a 2-dimensional manifold (two sheets s > 0, s < 0), not a point
    return classify(A.manifold_dimension() == 2)


def _check_vae_claim() -> str:
    # z = s x1 with x1 ~ N(0, 1): z ~ N(0, 1) iff s^2 = 1, so s = +1 OR s = -1 (and b = v / s)
    ss = sp.Symbol("s", real=True)
    roots = sp.solve(sp.Eq(ss**2, 1), ss)  # Var(z) = s^2 Var(x1) = 1
    printed = roots == [1]
    b_of_s = [sp.Matrix([1, 2]) / r for r in roots]
    # a sign ambiguity, not an error: the printed solution is one of the two, read "up to sign"
    reading = 1 in roots and sp.Matrix([1, 2]) in b_of_s
    assert sorted(roots) == [-1, 1] and b_of_s[0] == -b_of_s[1]
    return classify(printed, reading)


# --- (15)-(28): the l2-penalised problem --------------------------------------------------------


def _check_15() -> str:
    # (15) with x~ = g(f(x)) is (16)
    X = _general()
    x_tilde = [sp.Matrix([b1 * _z(X, n), b2 * _z(X, n)]) for n in range(X.rows)]
    rec = sum(((x_tilde[n] - X[n, :].T).T * (x_tilde[n] - X[n, :].T))[0] for n in range(X.rows))
    eq15 = rec / X.rows + lam * (a1**2 + a2**2 + b1**2 + b2**2)
    return classify(_zero(eq15 - A.loss(X, lam)))


def _check_16() -> str:
    X = _general()
    rec = sum(
        (X[n, 0] - b1 * _z(X, n)) ** 2 + (X[n, 1] - b2 * _z(X, n)) ** 2 for n in range(X.rows)
    )
    printed = rec / X.rows + lam * (a1**2 + a2**2 + b1**2 + b2**2)
    return classify(_zero(printed - A.loss(X, lam)) and A.loss_on_line_is_exact(3))


def _check_17() -> str:
    X = _general()
    return classify(_zero(_printed_6(X, lam) - A.gradient(A.loss(X, lam))))


def _check_18() -> str:
    # 1/N scaling: dL/da = 2 (M a - r) with M, r as printed (1/N inside); lam on the diagonal
    X = _general()
    n_ = X.rows
    d = b1**2 + b2**2
    S = lambda f: sum(f(n) for n in range(n_)) / n_  # noqa: E731
    M = sp.Matrix(
        [
            [S(lambda n: d * X[n, 0] ** 2) + lam, S(lambda n: d * X[n, 0] * X[n, 1])],
            [S(lambda n: d * X[n, 0] * X[n, 1]), S(lambda n: d * X[n, 1] ** 2) + lam],
        ]
    )
    r = sp.Matrix(
        [
            S(lambda n: b1 * X[n, 0] ** 2 + b2 * X[n, 0] * X[n, 1]),
            S(lambda n: b1 * X[n, 0] * X[n, 1] + b2 * X[n, 1] ** 2),
        ]
    )
    return classify(_system_holds(M, r, X, lam, scale=n_))


def _matrix_19(entry21):
    d = b1**2 + b2**2
    return sp.Matrix([[g * d + lam, 2 * g * d], [entry21, 4 * g * d + lam]])


def _check_19() -> str:
    d = b1**2 + b2**2
    r = sp.Matrix([(b1 + 2 * b2) * g, 2 * (b1 + 2 * b2) * g])
    grad_a = A.gradient(A.loss_on_line(g, lam))[:2, 0]
    a = sp.Matrix([a1, a2])
    printed = _zero(grad_a - 2 * (_matrix_19(g * d) * a - r))
    reading = _zero(grad_a - 2 * (_matrix_19(2 * g * d) * a - r))  # symmetric: (2,1) = 2 g d
    # (20) is the solution of the reading, not of the printed matrix
    sol_read = _matrix_19(2 * g * d).LUsolve(r)
    sol_printed = _matrix_19(g * d).LUsolve(r)
    assert _zero(sol_read - A.encoder_given_decoder())
    assert not _zero(sol_printed - A.encoder_given_decoder())
    return classify(printed, reading)


def _check_text_19() -> str:
    # "delta > 0, lambda > 0 makes the matrix invertible": det = lam (5 g delta + lam) > 0
    d = sp.Symbol("delta", nonnegative=True)
    M = sp.Matrix([[g * d + lam, 2 * g * d], [2 * g * d, 4 * g * d + lam]])
    det = sp.factor(M.det())
    return classify(_zero(det - lam * (5 * g * d + lam)) and det.subs(d, 0) != 0)


def _check_20() -> str:
    d = b1**2 + b2**2
    c = b1 + 2 * b2
    first = c * lam / ((5 * g * d + lam) * lam) * sp.Matrix([g, 2 * g])
    second = c / (5 * g * d + lam) * sp.Matrix([g, 2 * g])
    derived = A.encoder_given_decoder()
    return classify(_zero(first - derived) and _zero(second - derived))


def _check_21() -> str:
    # (20) at b = (1, 2), lam -> 0: (1/5, 2/5) for every gamma > 0 (not only gamma ~ 1); s = 1
    a = A.encoder_given_decoder().subs({b1: 1, b2: 2})
    lim = a.applyfunc(lambda e: sp.limit(e, lam, 0))
    return classify(
        lim == sp.Matrix([sp.Rational(1, 5), sp.Rational(2, 5)]) and lim[0] + 2 * lim[1] == 1
    )


def _check_22() -> str:
    X = _general()
    n_ = X.rows
    z = [_z(X, n) for n in range(n_)]
    den = sum(zn**2 for zn in z) / n_ + lam
    printed = sp.Matrix([sum(X[n, k] * z[n] for n in range(n_)) / n_ / den for k in (0, 1)])
    return classify(_zero(printed - _b_given_a(X, lam)))


def _check_23() -> str:
    ss = a1 + 2 * a2
    printed = sp.Matrix([ss * g / (ss**2 * g + lam), 2 * ss * g / (ss**2 * g + lam)])
    derived = A.decoder_given_encoder()
    return classify(_zero(printed - derived) and _zero(derived[1] - 2 * derived[0]))


def _check_text_23() -> str:
    # "b ~ (1, 2) for lam ~ 0 and a ~ (1/5, 2/5)": holds for every gamma (gamma cancels)
    b = A.decoder_given_encoder().subs({a1: sp.Rational(1, 5), a2: sp.Rational(2, 5)})
    return classify(b.applyfunc(lambda e: sp.limit(e, lam, 0)) == sp.Matrix([1, 2]))


def _check_gamma_is_one() -> str:
    # "Note that gamma ~ 1": for the data (3), gamma = 77/180 ~ 0.43
    gam = A.gamma_of()
    assert gam == sp.Rational(77, 180)
    return classify(abs(gam - 1) < sp.Rational(1, 10))


def _check_24() -> str:
    d = b1**2 + b2**2
    ss = a1 + 2 * a2
    printed_a1 = (b1 + 2 * b2) / (5 * g * d + lam) * g
    printed_b1 = ss * g / (ss**2 * g + lam)
    ok = _zero(printed_a1 - A.encoder_given_decoder()[0])
    ok &= _zero(printed_b1 - A.decoder_given_encoder()[0])
    # a2 = 2 a1 and b2 = 2 b1 are the second components of (20) and (23)
    ok &= _zero(A.encoder_given_decoder()[1] - 2 * A.encoder_given_decoder()[0])
    ok &= _zero(A.decoder_given_encoder()[1] - 2 * A.decoder_given_encoder()[0])
    return classify(ok)


def _printed_25(sign=1):
    r = sp.sqrt(5 * sp.sqrt(g) - lam)
    return {a1: sign * r / (5 * g), a2: sign * 2 * r / (5 * g), b1: sign * r / (5 * sp.sqrt(g)),
            b2: sign * 2 * r / (5 * sp.sqrt(g))}  # fmt: skip


def _corrected_25(sign=1):
    r = sp.sqrt(5 * g - lam) / (5 * sp.sqrt(g))
    return {a1: sign * r, a2: sign * 2 * r, b1: sign * r, b2: sign * 2 * r}


def _check_25_26(sign: int) -> str:
    L = A.loss_on_line(g, lam)
    grad = A.gradient(L)
    # printed: not stationary (gradient != 0 at gamma = 77/180, lam = 1/10, inside its range)
    at = {g: A.gamma_of(), lam: sp.Rational(1, 10)}
    printed = all(sp.simplify(e.subs(_printed_25(sign)).subs(at)) == 0 for e in grad)
    # correction: stationary for all gamma, lam (lam < 5 gamma), a strict minimum, and these two
    # points and the origin are ALL the stationary points
    corr = _corrected_25(sign)
    assert _zero(grad.subs(corr).subs(lam, 5 * g * sp.Symbol("q", positive=True)))
    sols = A.penalised_solutions()
    assert len(sols) == 3 and any(
        _zero(sp.Matrix([so[p] - corr[p] for p in A.PARAMS])) for so in sols
    )
    kind, _ = A.classify_point(L.subs(at), {p: corr[p].subs(at) for p in A.PARAMS})
    assert kind == "minimum", kind
    return classify(printed)


def _check_27() -> str:
    # the corrected (25) at lam = 0, gamma = 1 (in fact for every gamma at lam = 0)
    corr = _corrected_25(1)
    want = {a1: sp.sqrt(5) / 5, a2: 2 * sp.sqrt(5) / 5, b1: sp.sqrt(5) / 5, b2: 2 * sp.sqrt(5) / 5}
    at_1 = all(_zero(corr[p].subs({lam: 0, g: 1}) - want[p]) for p in A.PARAMS)
    any_g = all(_zero(corr[p].subs(lam, 0) - want[p]) for p in A.PARAMS)
    return classify(at_1 and any_g)


def _check_text_27_ok() -> str:
    # at (27): z = sqrt(5) x1 and g(z) = (x1, 2 x1)
    x1 = sp.Symbol("x1", real=True)
    p = {a1: sp.sqrt(5) / 5, a2: 2 * sp.sqrt(5) / 5, b1: sp.sqrt(5) / 5, b2: 2 * sp.sqrt(5) / 5}
    z = (a1 * x1 + a2 * 2 * x1).subs(p)
    return classify(
        _zero(z - sp.sqrt(5) * x1)
        and _zero(sp.Matrix([b1 * z, b2 * z]).subs(p) - sp.Matrix([x1, 2 * x1]))
    )


def _check_text_27_gain() -> str:
    # printed: g(f(x)) = (5 sqrt(g) - lam)/(5 g sqrt(g)) x and z ~ N(0, (5 sqrt(g) - lam)/g^2)
    corr = _corrected_25(1)
    gain = sp.simplify((5 * a1 * b1).subs(corr))  # x~ = 5 a1 b1 x on the line
    z_scale = sp.simplify((5 * a1).subs(corr))  # z = 5 a1 x1
    printed_gain = (5 * sp.sqrt(g) - lam) / (5 * g * sp.sqrt(g))
    printed_var = (5 * sp.sqrt(g) - lam) / g**2
    printed = _zero(gain - printed_gain) and _zero(z_scale**2 - printed_var)
    assert _zero(gain - (1 - lam / (5 * g))) and _zero(z_scale**2 - (5 * g - lam) / g)
    return classify(printed)


# --- what the "breaks computation" entries cost: printed vs correct, at one input ------------
_AT = {g: A.gamma_of(), lam: sp.Rational(1, 10)}  # the data (3): gamma = 77/180; lam = 1/10


def _consequence_25(sign: int = 1) -> tuple[float, float]:
    r"""Loss (16) at the printed (25) and at the corrected minimiser (data (3),
    $\lambda = 1/10$)."""
    L = A.loss_on_line(g, lam)
    return (
        float(L.subs(_printed_25(sign)).subs(_AT)),
        float(L.subs(_corrected_25(sign)).subs(_AT)),
    )


def _consequence_26() -> tuple[float, float]:
    r"""Loss (16) at the printed (26) and at the corrected minimiser (data (3),
    $\lambda = 1/10$)."""
    return _consequence_25(-1)


def _consequence_gain() -> tuple[float, float]:
    r"""Reconstruction gain $g(f(x))/x$: printed vs at the corrected (25) (data (3),
    $\lambda = 1/10$)."""
    printed = (5 * sp.sqrt(g) - lam) / (5 * g * sp.sqrt(g))
    correct = (5 * a1 * b1).subs(_corrected_25(1))
    return float(printed.subs(_AT)), float(correct.subs(_AT))


def _check_28() -> str:
    # (28) with the linear f, g and lam |theta|^2 is (16) only when f is evaluated at x_n
    X = _general()
    n_ = X.rows
    x = sp.Matrix(sp.symbols("y1 y2", real=True))  # the printed free 'x'

    def rec(n, arg):
        z = a1 * arg[0] + a2 * arg[1]
        return (b1 * z - X[n, 0]) ** 2 + (b2 * z - X[n, 1]) ** 2

    pen = lam * (a1**2 + a2**2 + b1**2 + b2**2)
    printed = sum(rec(n, x) for n in range(n_)) / n_ + pen
    reading = sum(rec(n, X[n, :]) for n in range(n_)) / n_ + pen
    return classify(_zero(printed - A.loss(X, lam)), _zero(reading - A.loss(X, lam)))


ENTRIES: list[Entry] = [
    Entry(
        "(1)",
        "distribution of x = (z, 2z)",
        r"x \sim N([0,0],[1,2;2,4])",
        "ok",
        "",
        "E[x x^T] integrated against the N(0,1) density with sympy",
        _check_1,
    ),
    Entry(
        "(2)",
        "singular covariance",
        r"\Sigma_x = [1,2;2,4] \text{ not invertible}",
        "ok",
        "",
        "det = 0 and rank 1, computed",
        _check_2,
    ),
    Entry(
        "(3)",
        "the data",
        r"X: 9 \text{ rows with } x_2 = 2x_1",
        "ok",
        "",
        "every row of the exact data satisfies x2 = 2 x1",
        _check_3,
    ),
    Entry(
        "text after (3): regression",
        "the line x2 = 2 x1",
        "a linear regression gives x2 = 2 x1",
        "ok",
        "",
        "least squares with intercept solved by sympy: slope 2, intercept 0, residual 0",
        _check_regression,
    ),
    Entry(
        "(4)",
        "autoencoder objective",
        r"\frac1N\sum_n \|\tilde x_n - x_n\|^2",
        "ok",
        "",
        "with x~ = (b1 z, b2 z), expanded and compared with the loss on 3 symbolic samples",
        _check_4,
    ),
    Entry(
        "(5)",
        "loss in the parameters",
        r"L = \frac1N\sum_n (x_{n1}-b_1z_n)^2 + (x_{n2}-b_2z_n)^2",
        "ok",
        "",
        "the sum covers both squares (n is bound in both); equal to (4) on symbolic data",
        _check_5,
    ),
    Entry(
        "text after (5): optimal guess",
        "a = (1, 0), b = (1, 2)",
        "a1=1, a2=0, b1=1, b2=2 can be learned",
        "ok",
        "",
        "the loss is exactly 0 (its minimum) there",
        _check_optimal_guess,
    ),
    Entry(
        "(6)",
        "gradient",
        r"\partial L/\partial a_1 = \frac2N\sum_n -b_1x_{n1}(\dots) - b_2x_{n1}(\dots)",
        "ok",
        "",
        "printed gradient minus sp.diff of (5) simplifies to 0 on 3 symbolic samples",
        _check_6,
    ),
    Entry(
        "(7)",
        "normal equations in a",
        r"r_2 = \sum_n b_1x_{n1}x_{n2} + b_2x_{n1}^2",
        "slip",
        r"r_2 = \sum_n b_1x_{n,1}x_{n,2} + b_2x_{n,2}^2",
        "grad_a = (2/N)(M a - r) identically: false with the printed r2, true with x_{n,2}^2; (8) "
        "uses the corrected r2",
        _check_7,
    ),
    Entry(
        "(8)",
        "normal equations on the line",
        r"[\delta, 2\delta; 2\delta, 4\delta] a = [b_1+2b_2; 2b_1+4b_2]",
        "ok",
        "",
        "times sum x1^2 it is grad_a = 0 identically for data on the line",
        _check_8,
    ),
    Entry(
        "(9)",
        "one equation",
        r"(b_1^2+b_2^2)(a_1+2a_2) = b_1+2b_2",
        "ok",
        "",
        "row 2 of (8) is 2 x row 1, and row 1 is (9)",
        _check_9,
    ),
    Entry(
        "(10)",
        "decoder given encoder",
        r"b_k = \sum_n x_{nk}z_n / \sum_n z_n^2",
        "ok",
        "",
        "sympy solves grad_b = 0 on 3 symbolic samples",
        _check_10,
    ),
    Entry(
        "(11)",
        "decoder on the line",
        r"b_1 = \sum_n(a_1+2a_2)/\sum_n(a_1+2a_2)^2,\ b_2 = 2b_1",
        "ok",
        "",
        "equals (10) on line data: the dropped factors x_{n,1}^2 cancel, the value 1/(a1+2a2) is "
        "right",
        _check_11,
    ),
    Entry(
        "(12)",
        "stationary conditions",
        r"b_1 = \frac{a_1+2a_2}{(a_1+a_2)^2}",
        "slip",
        r"b_1 = \frac{a_1+2a_2}{(a_1+2a_2)^2},\ b_2 = 2b_1",
        "printed denominators differ from the derived b1 = 1/(a1+2a2); (a1+2a2)^2 (as in (13)) "
        "matches",
        _check_12,
    ),
    Entry(
        "(13)",
        "simplified conditions",
        r"b_1^2(a_1+2a_2) = b_1,\ b_1 = \frac{a_1+2a_2}{(a_1+2a_2)^2}",
        "ok",
        "",
        "(9) with b2 = 2 b1 is 5 (b1^2 s - b1) = 0; b1 from (11)",
        _check_13,
    ),
    Entry(
        "(14)",
        "solution set",
        r"b_1(a_1+2a_2) = 1,\ b_2 = 2b_1",
        "ok",
        "",
        "sympy solves grad = 0: the s != 0 family is exactly (14) (b1 != 0 is then automatic); "
        "the other family s = 0, b1 = -2 b2 are saddles",
        _check_14,
    ),
    Entry(
        "text after (14): examples",
        "points of (14)",
        "(1,0,1,2), (0,0.5,1,2), (0,0.25,2,4) satisfy (14)",
        "ok",
        "",
        "each satisfies (14), has zero gradient and zero loss",
        _check_examples_14,
    ),
    Entry(
        "text after (14): infinitely many",
        "non-identifiability",
        "there are infinite solutions of (14)",
        "ok",
        "",
        "the minimisers form a 2-dimensional manifold: 4 minus the rank (2) of the constraints' "
        "Jacobian",
        _check_infinitely_many,
    ),
    Entry(
        "text after (14): VAE",
        "unit-variance code",
        r"Z \sim N(0,1) \Rightarrow a_1+2a_2 = 1,\ b_1=1,\ b_2=2",
        "slip",
        r"a_1+2a_2 = \pm 1,\ (b_1, b_2) = \pm(1, 2)",
        "Var z = s^2 Var x1 = 1 solved by sympy: s = -1 and s = 1",
        _check_vae_claim,
        demo="N(0, 1) is symmetric: s = -1 with b = (-1, -2) gives the same code distribution "
        "and the same (zero) loss as s = 1, so the constraint cannot choose the sign; the start of "
        "the optimisation does.",
        tier="slip",
    ),
    Entry(
        "(15)",
        "l2-penalised objective",
        r"\frac1N\sum_n\|\tilde x_n - x_n\|^2 + \lambda|\theta|^2",
        "ok",
        "",
        "expanded and compared with the penalised loss on symbolic data",
        _check_15,
    ),
    Entry(
        "(16)",
        "penalised loss",
        r"L(X, a, b, \lambda)",
        "ok",
        "",
        "compared with the derived loss; on line data it is gamma |v - s b|^2 + lam |theta|^2",
        _check_16,
    ),
    Entry(
        "(17)",
        "penalised gradient",
        r"\partial L/\partial a_1 = \{\dots\} + 2\lambda a_1",
        "ok",
        "",
        "printed gradient minus sp.diff simplifies to 0",
        _check_17,
    ),
    Entry(
        "(18)",
        "penalised normal equations",
        r"M = \frac1N\sum_n \delta x x^T + \lambda I",
        "ok",
        "",
        "grad_a = 2 (M a - r) identically in a, b on symbolic data",
        _check_18,
    ),
    Entry(
        "(19)",
        "normal equations on the line",
        r"[\gamma\delta+\lambda, 2\gamma\delta; \gamma\delta, 4\gamma\delta+\lambda]",
        "slip",
        r"[\gamma\delta+\lambda, 2\gamma\delta; 2\gamma\delta, 4\gamma\delta+\lambda]",
        "grad_a = 2 (M a - r): false with entry (2,1) = gamma delta, true with 2 gamma delta; "
        "(20) solves the corrected matrix, not the printed one",
        _check_19,
    ),
    Entry(
        "text after (19): invertible",
        "invertibility",
        r"\delta>0,\ \lambda>0 \Rightarrow \text{invertible}",
        "ok",
        "",
        "det = lam (5 gamma delta + lam), factored: positive for lam > 0 (delta > 0 is not needed)",
        _check_text_19,
    ),
    Entry(
        "(20)",
        "encoder given decoder",
        r"a = \frac{b_1+2b_2}{5\gamma\delta+\lambda}(\gamma, 2\gamma)",
        "ok",
        "",
        "both printed forms equal sympy's solution of grad_a = 0",
        _check_20,
    ),
    Entry(
        "(21)",
        "small-penalty encoder",
        r"a \approx (1/5, 2/5)",
        "ok",
        "",
        "limit lam -> 0 of (20) at b = (1, 2) is (1/5, 2/5) for every gamma; a1 + 2 a2 = 1",
        _check_21,
    ),
    Entry(
        "(22)",
        "decoder given encoder",
        r"b_k = \frac{\frac1N\sum x_{nk}z_n}{\frac1N\sum z_n^2+\lambda}",
        "ok",
        "",
        "sympy solves grad_b = 0 of the penalised loss",
        _check_22,
    ),
    Entry(
        "(23)",
        "decoder on the line",
        r"b_1 = \frac{(a_1+2a_2)\gamma}{(a_1+2a_2)^2\gamma+\lambda},\ b_2 = 2b_1",
        "ok",
        "",
        "equals sympy's solution for line data",
        _check_23,
    ),
    Entry(
        "text after (23): b ~ (1, 2)",
        "small-penalty decoder",
        r"a \approx (1/5,2/5) \Rightarrow b \approx (1, 2)",
        "ok",
        "",
        "limit lam -> 0 of (23) at a = (1/5, 2/5) is (1, 2) for every gamma",
        _check_text_23,
    ),
    Entry(
        "text after (23): gamma ~ 1",
        "gamma of the data (3)",
        r"\gamma \approx 1",
        "wrong",
        r"\gamma = 77/180 \approx 0.43 \text{ for the data (3)}",
        "gamma computed exactly from (3)",
        _check_gamma_is_one,
        demo="Only at gamma = 1 does the printed (25) coincide with the true minimiser, so "
        "checking (25) "
        "through (27) with gamma = 1 hides its error; (21) and b ~ (1, 2) hold for every gamma "
        "anyway.",
        tier="wrong statement",
    ),
    Entry(
        "(24)",
        "penalised stationary conditions",
        r"a_1 = \frac{(b_1+2b_2)\gamma}{5\gamma\delta+\lambda},\ a_2 = 2a_1,\ \dots",
        "ok",
        "",
        "each line equals the sympy solution of the corresponding block of grad = 0",
        _check_24,
    ),
    Entry(
        "(25)",
        "penalised minimiser",
        r"a_1 = \frac{\sqrt{5\sqrt\gamma-\lambda}}{5\gamma},\ b_1 = "
        r"\frac{\sqrt{5\sqrt\gamma-\lambda}}{5\sqrt\gamma}",
        "wrong",
        r"a_1 = b_1 = \frac{\sqrt{5\gamma-\lambda}}{5\sqrt\gamma},\ a_2 = 2a_1,\ b_2 = 2b_1 \ "
        r"(0<\lambda<5\gamma;\ "
        r"\text{else only } 0)",
        "the printed point has a nonzero gradient (gamma = 77/180, lam = 1/10); the corrected one "
        "is stationary "
        "for all gamma, lam, a strict minimum (Hessian), and sympy finds no other stationary "
        "points but 0",
        lambda: _check_25_26(1),
        demo="On the data (3) with lam = 0.1 the printed (25) gives a1 = 0.832, b1 = 0.544 instead "
        "of "
        "a1 = b1 = 0.437, and it predicts a nonzero solution up to lam = 5 sqrt(gamma) = 3.27, "
        "while the "
        "minimiser is 0 from lam = 5 gamma = 2.14 on.",
        tier="breaks computation",
        consequence=_consequence_25,
    ),
    Entry(
        "(26)",
        "penalised minimiser, negative branch",
        r"-\text{(25)}",
        "wrong",
        r"a_1 = b_1 = -\frac{\sqrt{5\gamma-\lambda}}{5\sqrt\gamma},\ a_2 = 2a_1,\ b_2 = 2b_1",
        "as (25), with the sign flipped (a symmetry of the loss)",
        lambda: _check_25_26(-1),
        demo="Same error as (25) with the opposite sign.",
        tier="breaks computation",
        consequence=_consequence_26,
    ),
    Entry(
        "(27)",
        "penalised minimiser at lam = 0, gamma = 1",
        r"a_1 = b_1 = \sqrt5/5,\ a_2 = b_2 = 2\sqrt5/5",
        "ok",
        "",
        "the corrected (25) at lam = 0 equals it for gamma = 1 (and for every gamma)",
        _check_27,
    ),
    Entry(
        "text after (27): code",
        "code and reconstruction at (27)",
        r"z = \sqrt5 x_1,\ g(z) = (x_1, x_2)",
        "ok",
        "",
        "substituted and simplified",
        _check_text_27_ok,
    ),
    Entry(
        "text after (27): gain",
        "reconstruction gain and code variance",
        r"g(f(x)) = \frac{5\sqrt\gamma-\lambda}{5\gamma\sqrt\gamma}x,\ z\sim N(0, "
        r"\frac{5\sqrt\gamma-\lambda}{\gamma^2})",
        "wrong",
        r"g(f(x)) = (1-\frac{\lambda}{5\gamma})x,\ z = \sqrt{\frac{5\gamma-\lambda}{\gamma}}\,x_1",
        "5 a1 b1 and (5 a1)^2 at the corrected (25), simplified",
        _check_text_27_gain,
        demo="At lam = 0 the printed gain is 1/gamma = 180/77 = 2.34 for the data (3): it would "
        "reconstruct 2.34 x instead of x, while the true l2 solution reconstructs perfectly as lam "
        "-> 0.",
        tier="breaks computation",
        consequence=_consequence_gain,
    ),
    Entry(
        "(28)",
        "general autoencoder loss",
        r"\frac1N\sum_n\|g(f(x,\theta_f),\theta_g) - x_n\|^2 + \lambda(\dots)",
        "slip",
        r"\frac1N\sum_n\|g(f(x_n,\theta_f),\theta_g) - x_n\|^2 + "
        r"\lambda(\|\theta_f\|_2^2+\|\theta_g\|_2^2)",
        "with the linear f, g: the printed f(x) does not give (16), f(x_n) does",
        _check_28,
    ),
]
