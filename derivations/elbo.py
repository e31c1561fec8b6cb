"""Chapter 4: the scVI lower bound, eqs. (60)-(70), derived with sympy.

* KL of two Gaussians (63) and of two log-normals (65) by integration; the diagonal case (64).
* The per-batch library prior (62): maximum-likelihood mean and variance of the log library
  sizes, and why the printed variance (square outside the sum) is identically 0.
* The lower bound of one cell (60), (67)-(69) assembled symbolically from the encoder outputs,
  the noise samples, theta, the decoder outputs rho and zi, and the counts x; the tutorial's
  printed (69) (KL *added*, zero case mis-bracketed) for comparison.
* A toy scVI small enough that log p(x) is computable by quadrature, to show that the corrected
  bound is below log p(x) and the printed one is not.

Zero-inflation convention: ``sigmoid(zi) = P(technical zero)`` (scvi-tools), see
``derivations/negative_binomial.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import mpmath
import numpy as np
import sympy as sp
from scipy import special

from derivations.negative_binomial import softplus

x = sp.Symbol("x", real=True)
m1, m2 = sp.symbols("m1 m2", real=True)
s1, s2 = sp.symbols("sigma1 sigma2", positive=True)


def normal_pdf(v: sp.Expr, mean: sp.Expr, std: sp.Expr) -> sp.Expr:
    """N(mean, std^2) density, with the 1/sqrt(2 pi std^2) the tutorial's (63) drops."""
    return sp.exp(-((v - mean) ** 2) / (2 * std**2)) / sp.sqrt(2 * sp.pi * std**2)


def lognormal_pdf(v: sp.Expr, mean: sp.Expr, std: sp.Expr) -> sp.Expr:
    """LogNormal(mean, std^2) density on v > 0 (mean, std of log v); text after (55) drops std."""
    return sp.exp(-((sp.log(v) - mean) ** 2) / (2 * std**2)) / (v * std * sp.sqrt(2 * sp.pi))


def kl_closed(loc1, scale1, loc2, scale2):
    """log(scale2/scale1) - 1/2 + (scale1^2 + (loc1-loc2)^2) / (2 scale2^2), eq. (63)."""
    return (
        sp.log(scale2 / scale1)
        - sp.Rational(1, 2)
        + (scale1**2 + (loc1 - loc2) ** 2) / (2 * scale2**2)
    )


@functools.cache
def kl_normal_integral() -> sp.Expr:
    """KL(N(m1, s1^2) || N(m2, s2^2)) = int p1 log(p1/p2) dx, integrated by sympy (eq. (63))."""
    p1, p2 = normal_pdf(x, m1, s1), normal_pdf(x, m2, s2)
    log_ratio = sp.Poly(sp.expand(sp.expand_log(sp.log(p1) - sp.log(p2), force=True)), x)
    # log_ratio = c0 + c1 x + c2 x^2: integrate p1 against each power of x (term by term, fast)
    moments = [sp.integrate(p1 * x**j, (x, -sp.oo, sp.oo)) for j in range(log_ratio.degree() + 1)]
    total = sum(c * moments[j] for (j,), c in log_ratio.terms())
    return sp.simplify(total)


@functools.cache
def kl_lognormal_integral() -> sp.Expr:
    """KL(LogNormal(m1, s1^2) || LogNormal(m2, s2^2)) by the substitution y = e^x (eq. (65)).

    sympy rewrites the integrand p1(y) log(p1(y)/p2(y)) dy with y = e^x, dy = e^x dx and proves
    it equal to the Gaussian KL integrand N(x; m1, s1^2) log(N(x; m1, s1^2)/N(x; m2, s2^2)); the
    integral is then :func:`kl_normal_integral` (a direct integral over y is checked numerically
    in the tests with scipy.integrate.quad).
    """
    y = sp.Symbol("y", positive=True)
    p1, p2 = lognormal_pdf(y, m1, s1), lognormal_pdf(y, m2, s2)
    log_ratio = sp.expand(sp.expand_log(sp.log(p1) - sp.log(p2), force=True))
    substituted = (p1 * log_ratio).subs(y, sp.exp(x)) * sp.exp(x)
    q1, q2 = normal_pdf(x, m1, s1), normal_pdf(x, m2, s2)
    gaussian = q1 * sp.expand(sp.expand_log(sp.log(q1) - sp.log(q2), force=True))
    difference = sp.simplify(sp.expand(sp.expand_log(substituted / q1 - gaussian / q1, force=True)))
    if difference != 0:  # pragma: no cover - a failed derivation
        raise AssertionError(f"substituted integrand differs from the Gaussian one: {difference}")
    return kl_normal_integral()


def kl_diag_standard(loc: Sequence, scale: Sequence) -> sp.Expr:
    """KL(N(loc, diag(scale^2)) || N(0, I)): the sum of the 1-d KLs (eq. (64)).

    The log-density ratio of product densities is a sum, so the KL is a sum (not the product
    that (67) prints).
    """
    return sum(kl_closed(m, s_, 0, 1) for m, s_ in zip(loc, scale, strict=True))


# --- eq. (62): the library-size prior ------------------------------------------------------


@functools.cache
def library_prior_mle(n: int = 4) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """Maximum-likelihood (mu_b, sigma_b^2) of log library sizes a_1..a_n, solved by sympy.

    Returns (mu, sigma2, printed_sigma2) with printed_sigma2 = (sum(a_i - mu))^2 / n, the
    tutorial's (62), which simplifies to 0.
    """
    a = sp.symbols(f"a1:{n + 1}", real=True)
    mu_, v_ = sp.Symbol("mu_b", real=True), sp.Symbol("v_b", positive=True)
    loglik = sum(sp.expand_log(sp.log(normal_pdf(ai, mu_, sp.sqrt(v_))), force=True) for ai in a)
    mu_hat = sp.solve(sp.diff(loglik, mu_), mu_)[0]  # linear in mu_b
    v_hat = sp.solve(sp.diff(loglik, v_).subs(mu_, mu_hat), v_)[0]
    sol = {mu_: mu_hat, v_: v_hat}
    printed = sp.simplify(sum(ai - sol[mu_] for ai in a) ** 2 / n)
    return sp.simplify(sol[mu_]), sp.simplify(sol[v_]), printed


def library_prior(counts: np.ndarray, batch: np.ndarray | None = None):
    """Per-batch mean and (ML) variance of log library sizes, eq. (62) corrected (float64)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2:
        raise ValueError(f"counts must be (cells, genes), got shape {counts.shape}")
    lib = counts.sum(axis=1)
    if (lib <= 0).any():
        raise ValueError("every cell needs a positive library size (log of 0)")
    batch = np.zeros(len(lib), dtype=int) if batch is None else np.asarray(batch)
    log_lib = np.log(lib)
    cats = np.unique(batch)
    means = np.array([log_lib[batch == b].mean() for b in cats])
    vars_ = np.array(
        [((log_lib[batch == b] - log_lib[batch == b].mean()) ** 2).mean() for b in cats]
    )
    return means, vars_


# --- eqs. (60), (67)-(69): the bound of one cell -------------------------------------------


def log_zinb(xg, mean, inv_disp, logit):
    """Symbolic log ZINB(x | mu, theta, sigmoid(logit) = P(technical zero)) for a *number* x."""
    log_nb0 = inv_disp * sp.log(inv_disp / (inv_disp + mean))
    if xg == 0:
        return softplus(-logit + log_nb0) - softplus(-logit)
    return (
        -softplus(logit)
        + log_nb0
        + xg * sp.log(mean / (inv_disp + mean))
        + sp.loggamma(xg + inv_disp)
        - sp.loggamma(inv_disp)
        - sp.loggamma(xg + 1)
    )


def scvi_elbo(
    x_counts: Sequence[int],
    qz_loc: Sequence,
    qz_scale: Sequence,
    log_library: Sequence,
    rho: Sequence[Sequence],
    zi_logits: Sequence[Sequence],
    theta: Sequence,
    ql: tuple | None = None,
    prior_l: tuple | None = None,
) -> dict[str, sp.Expr]:
    """The corrected bound (60) = (69) of one cell, as a sympy expression.

    Parameters
    ----------
    x_counts
        The counts x_ng (numbers), length G.
    qz_loc, qz_scale
        Encoder outputs NN1, NN2 (length d).
    log_library
        log l^(k) for each of the K samples: ``ql_loc + ql_scale * eps_l^(k)`` (eq. (61)) or the
        observed log library.
    rho, zi_logits
        Decoder outputs at z^(k) = qz_loc + qz_scale * eps_z^(k), K x G (NN5, NN6).
    theta
        Inverse dispersions (length G).
    ql, prior_l
        (loc, scale) of q(log l | x) and of the prior (mu_b, sigma_b) (eq. (62)); ``None`` for
        an observed library (no KL term).

    Returns a dict with ``reconstruction`` (1/K sum_k log p(x | z^(k), l^(k)), eq. (68)),
    ``kl_z`` (64), ``kl_l`` (66), and ``elbo = reconstruction - kl_z - kl_l`` (the sign (69)
    gets wrong).
    """
    n_samples = len(log_library)
    rec = 0
    for k_ in range(n_samples):
        lib = sp.exp(log_library[k_])
        for g, xg in enumerate(x_counts):
            rec += log_zinb(xg, lib * rho[k_][g], theta[g], zi_logits[k_][g])
    rec = rec / n_samples
    kl_z = kl_diag_standard(qz_loc, qz_scale)
    kl_l = kl_closed(ql[0], ql[1], prior_l[0], prior_l[1]) if ql is not None else sp.Integer(0)
    return dict(reconstruction=rec, kl_z=kl_z, kl_l=kl_l, elbo=rec - kl_z - kl_l)


def printed_bound_69(x_counts, qz_loc, qz_scale, log_library, rho, zi_logits, theta, ql, prior_l):
    """The tutorial's (69) as printed: KL terms *added*, zero case S(-f) + nb0 - S(-f).

    The tutorial's f_h is -zi (keep-probability logit of (55)); the printed zero case does not
    depend on it at all. The positive case is taken with the corrected x log(mu/(theta+mu)) so
    that only the sign and the zero bracket differ from :func:`scvi_elbo`.
    """
    out = scvi_elbo(x_counts, qz_loc, qz_scale, log_library, rho, zi_logits, theta, ql, prior_l)
    rec = 0
    n_samples = len(log_library)
    for k_ in range(n_samples):
        lib = sp.exp(log_library[k_])
        for g, xg in enumerate(x_counts):
            mean, th = lib * rho[k_][g], theta[g]
            if xg == 0:
                f = -zi_logits[k_][g]
                rec += softplus(-f) + th * sp.log(th / (th + mean)) - softplus(-f)
            else:
                rec += log_zinb(xg, mean, th, zi_logits[k_][g])
    return rec / n_samples + out["kl_z"] + out["kl_l"]


def fig3_decoder(z: Sequence, w1, b1, w_rho, b_rho, w_zi, b_zi, bn=None):
    """The one-hidden-layer network of Fig. 3 (NN5, NN6), symbolically.

    h = ReLU(BN(W1 z + b1)), o = W_rho h + b_rho, rho = softmax(o) = exp(o_g) / sum_j exp(o_j)
    (Fig. 3 prints o_g / sum_j exp(o_j)), zi = W_zi h + b_zi. ``bn`` = (mean, var, weight, bias,
    eps) applies BatchNorm in evaluation mode. Weights are nested lists of numbers.
    """
    pre = [
        sum(wij * zj for wij, zj in zip(row, z, strict=True)) + bi
        for row, bi in zip(w1, b1, strict=True)
    ]
    if bn is not None:
        mean, var, weight, bias, eps = bn
        pre = [
            (p_ - m_) / sp.sqrt(v_ + eps) * g_ + c_
            for p_, m_, v_, g_, c_ in zip(pre, mean, var, weight, bias, strict=True)
        ]
    h = [sp.Max(p_, 0) for p_ in pre]
    o = [
        sum(wij * hj for wij, hj in zip(row, h, strict=True)) + bi
        for row, bi in zip(w_rho, b_rho, strict=True)
    ]
    norm = sum(sp.exp(o_) for o_ in o)
    rho = [sp.exp(o_) / norm for o_ in o]
    zi = [
        sum(wij * hj for wij, hj in zip(row, h, strict=True)) + bi
        for row, bi in zip(w_zi, b_zi, strict=True)
    ]
    return rho, zi


def evaluate(expr: sp.Expr, dps: int = 30) -> float:
    """Evaluate a closed sympy expression with mpmath at ``dps`` digits."""
    with mpmath.workdps(dps):
        return float(sp.N(expr, dps))


def bound_from_vae(vae, x, batch_index, inference_outputs, n: int) -> dict[str, sp.Expr]:
    """The symbolic bound of cell ``n`` for a one-layer ``scvi_edu.module.VAE`` in eval mode.

    The decoder is rebuilt symbolically as the Fig. 3 network (:func:`fig3_decoder`) from the
    module's weights and BatchNorm statistics; z^(k) = qz_loc + qz_scale * eps^(k) with the
    module's own noise eps^(k) = (z^(k) - qz_loc) / qz_scale, and the module's log library
    samples. Nothing of the module's loss code is used, so comparing with ``vae.loss`` checks it.
    """
    d, n_batch = vae.n_latent, vae.n_batch
    n_samples = inference_outputs["z"].numel() // (x.shape[0] * d)
    z_all = inference_outputs["z"].reshape(n_samples, -1, d)
    lib_all = inference_outputs["library"].reshape(n_samples, -1, 1)
    qz_loc, qz_scale = inference_outputs["qz_loc"][n], inference_outputs["qz_scale"][n]
    dec = vae.decoder
    (layer,) = dec.px_decoder.fc_layers  # one hidden layer, as in Fig. 3
    bn = layer[1]
    bn_params = (
        bn.running_mean.tolist(),
        bn.running_var.tolist(),
        bn.weight.tolist(),
        bn.bias.tolist(),
        bn.eps,
    )
    weights = (
        layer[0].weight.tolist(),
        layer[0].bias.tolist(),
        dec.px_scale_decoder[0].weight.tolist(),
        dec.px_scale_decoder[0].bias.tolist(),
        dec.px_dropout_decoder.weight.tolist(),
        dec.px_dropout_decoder.bias.tolist(),
    )
    s_onehot = (
        [1.0 if j == int(batch_index[n]) else 0.0 for j in range(n_batch)] if n_batch > 1 else []
    )
    rho, zi, logs = [], [], []
    for k_ in range(n_samples):
        eps = ((z_all[k_, n] - qz_loc) / qz_scale).tolist()
        z_sym = [
            m_ + s_ * e_ for m_, s_, e_ in zip(qz_loc.tolist(), qz_scale.tolist(), eps, strict=True)
        ]
        r, f = fig3_decoder(z_sym + s_onehot, *weights, bn=bn_params)
        rho.append(r)
        zi.append(f)
        logs.append(float(lib_all[k_, n, 0]))
    theta = [float(v) for v in np.exp(vae.px_r.detach().double().numpy())]
    ql = prior = None
    if not vae.use_observed_lib_size:
        ql = (float(inference_outputs["ql_loc"][n, 0]), float(inference_outputs["ql_scale"][n, 0]))
        j = int(batch_index[n])
        prior = (float(vae.library_log_means[j]), float(vae.library_log_vars[j]) ** 0.5)
    counts = [int(v) for v in x[n].tolist()]
    return scvi_elbo(
        counts, qz_loc.tolist(), qz_scale.tolist(), logs, rho, zi, theta, ql=ql, prior_l=prior
    )


# --- a toy scVI with a computable marginal likelihood --------------------------------------


class ToySCVI:
    """d = 1 latent, G genes, latent log-normal library; log p(x) by Gauss-Hermite quadrature.

    z ~ N(0, 1), log l ~ N(prior_loc, prior_scale^2), rho = softmax(a z + b),
    zi = c z + e (sigmoid = P(technical zero)), x_g ~ ZINB(l rho_g, theta_g, zi_g).
    """

    def __init__(
        self, a, b, c, e, theta, prior_loc=3.912023005428146, prior_scale=0.3, n_nodes=60
    ):  # log 50
        self.a, self.b, self.c, self.e = (np.asarray(v, dtype=np.float64) for v in (a, b, c, e))
        self.theta = np.asarray(theta, dtype=np.float64)
        self.prior_loc, self.prior_scale = float(prior_loc), float(prior_scale)
        nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)  # weight exp(-t^2/2)
        self.nodes, self.log_w = nodes, np.log(weights / np.sqrt(2 * np.pi))

    def log_lik(self, xv, z, log_l):
        """log p(x | z, l) for arrays z, log_l of the same shape (broadcast over genes)."""
        xv = np.asarray(xv, dtype=np.float64)
        o = self.a * z[..., None] + self.b
        log_rho = o - special.logsumexp(o, axis=-1, keepdims=True)
        mean = np.exp(log_l[..., None] + log_rho)
        zi = self.c * z[..., None] + self.e
        th = self.theta
        log_nb0 = -th * np.log1p(mean / th)
        log_nb = (
            log_nb0
            + xv * (np.log(mean) - np.log(th + mean))
            + special.gammaln(xv + th)
            - special.gammaln(th)
            - special.gammaln(xv + 1)
        )
        zero = np.logaddexp(0, log_nb0 - zi) - np.logaddexp(0, -zi)
        pos = -np.logaddexp(0, zi) + log_nb
        return np.where(xv == 0, zero, pos).sum(-1)

    def log_marginal(self, xv) -> float:
        """log p(x) = log int int p(x | z, l) N(z) LogNormal(l) by tensor Gauss-Hermite."""
        zz, tt = np.meshgrid(self.nodes, self.nodes, indexing="ij")
        lw = self.log_w[:, None] + self.log_w[None, :]
        ll = self.log_lik(xv, zz, self.prior_loc + self.prior_scale * tt)
        return float(special.logsumexp(ll + lw))

    def elbo(self, xv, qz, ql, printed: bool = False) -> float:
        """Exact-expectation bound for q(z) = N(qz), q(log l) = N(ql); ``printed``: KL added."""
        zz, tt = np.meshgrid(self.nodes, self.nodes, indexing="ij")
        lw = np.exp(self.log_w[:, None] + self.log_w[None, :])
        rec = float((lw * self.log_lik(xv, qz[0] + qz[1] * zz, ql[0] + ql[1] * tt)).sum())
        kl = float(
            kl_closed(qz[0], qz[1], 0, 1)
            + kl_closed(ql[0], ql[1], self.prior_loc, self.prior_scale)
        )
        return rec + kl if printed else rec - kl
