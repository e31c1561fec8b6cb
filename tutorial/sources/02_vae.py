# %% [markdown]
# # 2 The variational autoencoder: the ELBO and a Gaussian example you can solve exactly
#
# The tutorial's section 2 (eqs. (29)–(54)) derives the evidence lower bound (ELBO), introduces the
# reparameterisation trick, and studies a linear Gaussian example:
#
# $$z \sim \mathcal N(0, 1), \qquad \tilde x = \begin{bmatrix} z \\ 2z\end{bmatrix} + \epsilon,
# \qquad \epsilon \sim \mathcal N(0, \gamma I).$$
#
# It then writes the ELBO in closed form, sets its gradient to zero (eq. (54)), says that this
# system *cannot be solved explicitly*, and checks that $a^* = (\tfrac1{5+\gamma}, \tfrac2{5+\gamma})$,
# $b^* = (1, 2)$ satisfies it. In this chapter we
#
# 1. derive every density and the ELBO identity by integration (sympy, `derivations/vae.py`);
# 2. **solve** the stationary conditions completely: there are exactly five stationary points, and
#    we classify each with its Hessian;
# 3. show that at the optimum the bound is **tight** ($q$ is the exact posterior);
# 4. train the model in Torch with the reparameterisation trick, with fixed and with learned
#    variances, and land on the derived optima within a tolerance set by the sample size;
# 5. measure the variance of the two gradient estimators behind eqs. (35)–(36).
#
# Two typographic slips are corrected throughout: the tutorial prints the noise covariance in (39)
# and (47) as $\begin{bmatrix}0&\gamma\\\gamma&0\end{bmatrix}$, which has determinant $-\gamma^2<0$
# and is not a covariance; everything downstream (and the text after (54)) uses $\gamma I$.

# %%
import random
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, "..")  # derivations/ (the sympy side) is read from the checkout

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch
from IPython.display import Math, display

from derivations import vae as V
from derivations.ledger_vae import ENTRIES
from scvi_edu.toys import vae as T

torch.manual_seed(0)
rng = np.random.default_rng(0)
random.seed(0)
torch.set_num_threads(1)
# %matplotlib inline

g, x1, x2, z = V.gamma, V.x1, V.x2, V.z
a1, a2, b1, b2 = V.PARAMS

# %% [markdown]
# ## 2.1 The marginal and the posterior (eqs. (33)–(34), (40), (48))
#
# $p(\tilde x) = \int p(z)\,p(\tilde x\mid z)\,dz$ is a Gaussian integral in $z$; the posterior
# $p(z\mid\tilde x)$ is what remains of $\log p(z) + \log p(\tilde x\mid z) - \log p(\tilde x)$,
# a quadratic in $z$. Both are computed below for a symbolic $\gamma$.

# %%
cov = V.true_covariance()
post_mean, post_var = V.posterior()
display(Math(r"\mathrm{Cov}(\tilde x) = " + sp.latex(cov)))
display(
    Math(
        r"p(z\mid\tilde x) = \mathcal N\left("
        + sp.latex(post_mean)
        + ",\\ "
        + sp.latex(post_var)
        + r"\right)"
    )
)
# the derived log-marginal is the log-density of N(0, Cov), and the posterior is normalised
assert sp.simplify(V.log_mvn_pdf(cov) - V.log_marginal()) == 0
assert V.posterior_is_normalised()
assert (
    sp.simplify(post_mean - (x1 + 2 * x2) / (5 + g)) == 0
    and sp.simplify(post_var - g / (5 + g)) == 0
)

# %% [markdown]
# With $\gamma = 1$ this is eq. (34), $\mathrm{Cov}(x) = \begin{bmatrix}2&2\\2&5\end{bmatrix}$, and the
# posterior of (40), $\mathcal N(\frac{x_1+2x_2}{6}, \frac16)$: both as printed.
#
# ## 2.2 The ELBO identity (eqs. (29)–(32))
#
# For *any* Gaussian $q(z\mid x) = \mathcal N(m, v)$ we compute, by integration,
# $\log p(x)$, $\mathrm{KL}(q\,\|\,p(z\mid x))$, and the ELBO in the form (31),
# $-\mathrm{KL}(q\,\|\,p(z)) + \mathbb E_q\log p(x\mid z)$. Eq. (29) says that the three add up:

# %%
# KL(q || posterior) in the standard form, with mu_p, s2_p the posterior mean and variance
mu_p, s2_p = sp.symbols("mu_p sigma_p^2", positive=True)
kl_form = (V.m - mu_p) ** 2 / (2 * s2_p) + (V.v / s2_p - 1 - sp.log(V.v / s2_p)) / 2
kl_diff = V.kl_q_posterior() - kl_form.subs({mu_p: post_mean, s2_p: post_var})
assert sp.simplify(sp.expand_log(sp.expand(kl_diff), force=True)) == 0
display(Math(r"\mathrm{KL}(q\,\|\,p(z|x)) = " + sp.latex(kl_form)))
residual = V.elbo_identity_residual()
display(Math(r"\log p(x) - \mathrm{KL}(q\,\|\,p(z|x)) - \mathcal L_{(31)} = " + sp.latex(residual)))
assert residual == 0

# %% [markdown]
# ($\mu_p$, $\sigma_p^2$: the posterior mean and variance of 2.1.) Since $r - 1 - \log r \ge 0$ with
# equality only at $r = 1$, the KL vanishes exactly when $m$ and $v$ are the posterior mean and variance: then the bound is
# tight, eq. (32). (The sentence after (32) says the maximum is reached "when
# $p_\theta(x\mid z) = q_\phi(z\mid x)$"; it means $q_\phi(z\mid x) = p_\theta(z\mid x)$ — ledger
# entry *text after (32)*, a slip.)
#
# ## 2.3 The closed-form ELBO and the loss (eqs. (41)–(44), (49)–(52))
#
# With $q(z\mid\tilde x) = \mathcal N(a\cdot\tilde x, \frac{\gamma}{5+\gamma})$ and
# $p(\tilde x\mid z) = \mathcal N(bz, \gamma I)$ the expectation over $q$ is a Gaussian moment
# computation. Averaging the per-sample loss (52) over $\tilde x\sim\mathcal N(0, \mathrm{Cov}(\tilde x))$
# gives the population objective, here written with $C = \mathrm{Cov}(\tilde x)$:
#
# $$L(a, b) = \tfrac12 a^\top C a + \frac{\|b\|^2}{2(5+\gamma)} + \frac{\|b\|^2\,a^\top C a - 2\,b^\top C a + \operatorname{tr} C}{2\gamma}.$$
#
# We check this against the sympy derivation, and the printed constant
# $-\log(2\pi\sqrt{\gamma(5+\gamma)}) + \frac{5}{2(5+\gamma)}$ of (50)–(51). (The printed
# (41)–(54) are all compared with the derivation in their ledger entries: they hold as printed.)

# %%
A, B = V.A, V.B
L_matrix_form = (
    (A.T * cov * A)[0] / 2
    + (B.T * B)[0] / (2 * (5 + g))
    + ((B.T * B)[0] * (A.T * cov * A)[0] - 2 * (B.T * cov * A)[0] + cov.trace()) / (2 * g)
)
assert sp.simplify(sp.expand(V.population_loss() - L_matrix_form)) == 0
# the printed constant of (50)-(51): -log(2 pi sqrt(g (5 + g))) + 5 / (2 (5 + g))
printed_const = -sp.log(2 * sp.pi * sp.sqrt(g * (5 + g))) + 5 / (2 * (5 + g))
assert sp.simplify(sp.expand_log(V.elbo_constant() - printed_const, force=True)) == 0
display(Math(r"\mathcal L = " + sp.latex(printed_const) + r" - \mathrm{loss}_{(52)}"))

# %% [markdown]
# ## 2.4 Solving the stationary conditions (54) — all of them
#
# The tutorial: *"I can not solve the above equation with explicit solution since it will evolve a
# five order equation"*. It can be solved in two steps.
#
# **Step 1.** $\nabla_a L = C\big((\gamma + \|b\|^2)\,a - b\big)/\gamma$, and $C$ is invertible
# ($\det C = \gamma(5+\gamma) > 0$), so every stationary point has $a = b/(\gamma + \|b\|^2)$.
#
# **Step 2.** Substituting into $\nabla_b L$ gives
# $\big[\gamma(\gamma+s)^2 b/(5+\gamma) + (b^\top C b)\,b - (\gamma+s)\,Cb\big] / \big(\gamma(\gamma+s)^2\big)$,
# $s = \|b\|^2$. The first two terms are parallel to $b$, so either $b = 0$ or $Cb \parallel b$:
# $b$ is an eigenvector of $C = ww^\top + \gamma I$, $w = (1, 2)$. Its eigenpairs are
# $(5+\gamma, w/\sqrt5)$ and $(\gamma, (2,-1)/\sqrt5)$. With $b = \beta u$ the condition becomes
# $(\gamma + \beta^2)^2 = \lambda(5+\gamma)$:
#
# * signal direction, $\lambda = 5 + \gamma$: $\beta^2 = 5$, i.e. $b = \pm(1, 2)$, $a = \pm(1,2)/(5+\gamma)$ — the tutorial's optimum;
# * noise direction, $\lambda = \gamma$: $\beta^2 = \sqrt{\gamma(5+\gamma)} - \gamma > 0$ — two more stationary points the tutorial does not mention;
# * $b = 0$, $a = 0$.
#
# Both steps are verified symbolically (the residuals below are zero), and `sympy.solve` on the raw
# polynomial system for $\gamma = 1$ finds exactly these five real solutions.

# %%
assert V.gradient_a_factorised_residual() == sp.zeros(2, 1)
assert V.gradient_b_reduced_residual() == sp.zeros(2, 1)
points = V.stationary_points()
grad = V.stationary_conditions()
for p in points:
    # check at gamma = 1 and 7/3 to 40 digits (the symbolic proof is the two residuals above)
    for gv in (sp.Integer(1), sp.Rational(7, 3)):
        sub = {k: val.subs(g, gv) for k, val in V.point_subs(p).items()}
        assert all(abs(sp.N(e.subs(g, gv).subs(sub), 40)) < 1e-30 for e in grad)
    display(
        Math(
            r"\text{"
            + p["name"]
            + r"}:\quad a = "
            + sp.latex(p["a"].T)
            + r",\quad b = "
            + sp.latex(p["b"].T)
        )
    )

# %% [markdown]
# **Which are minima?** At the optimum, in the eigenbasis of $C$, the Hessian splits into two
# $2\times2$ blocks whose determinants and traces are positive for every $\gamma > 0$: a strict
# minimum. The loss is coercive (it grows without bound as $\|a\|$ or $\|b\|\to\infty$) and
# bounded below, so its global minimum is a stationary point — the one with the smallest value.
# For the other points we count negative Hessian eigenvalues at $\gamma = 1$:

# %%
blocks = V.signal_hessian_blocks()
for blk in blocks:
    display(
        Math(
            r"\det = "
            + sp.latex(sp.factor(blk.det()))
            + r",\quad \operatorname{tr} = "
            + sp.latex(sp.factor(blk.trace()))
        )
    )
    assert sp.factor(blk.det()).is_positive and sp.factor(blk.trace()).is_positive
kinds = V.classify_stationary_points(sp.Integer(1))
for name, (kind, value) in kinds.items():
    print(f"{name:8s} {kind:18s} L = {sp.nsimplify(value)}")
assert kinds["signal+"][0] == kinds["signal-"][0] == "minimum"
assert kinds["origin"][0] == "saddle (index 2)" and kinds["noise+"][0] == "saddle (index 1)"
assert min(sp.N(v) for _, v in kinds.values()) == sp.N(kinds["signal+"][1])

# %% [markdown]
# The figure shows the *profile* of the loss over the decoder weights, $\min_a L(a, b)$ (the inner
# minimum is $a = b/(\gamma+\|b\|^2)$ by Step 1), for $\gamma = 1$: two minima at $\pm(1,2)$, two
# saddles on the noise direction $(2,-1)$, and a maximum of the profile at the origin.

# %%
gv = 1.0
C1 = np.array([[1 + gv, 2.0], [2.0, 4 + gv]])
grid = np.linspace(-2.6, 2.6, 161)
B1, B2 = np.meshgrid(grid, grid)


def profile(u1, u2):
    # inner minimum a = b / (gamma + |b|^2) (Step 1), then the loss written with C, vectorised
    ss = u1**2 + u2**2
    bCb = C1[0, 0] * u1**2 + 2 * C1[0, 1] * u1 * u2 + C1[1, 1] * u2**2
    aCa, bCa = bCb / (gv + ss) ** 2, bCb / (gv + ss)
    return aCa / 2 + ss / (2 * (5 + gv)) + (ss * aCa - 2 * bCa + np.trace(C1)) / (2 * gv)


prof = profile(B1, B2)
bb = np.array([0.7, -1.1])  # spot check against the loss written directly
assert np.isclose(profile(*bb), T.loss_fixed_numpy(np.r_[bb / (gv + bb @ bb), bb], C1, gv))
fig, ax = plt.subplots(figsize=(5.2, 4.6))
cs = ax.contour(B1, B2, prof, levels=np.quantile(prof, np.linspace(0.01, 0.9, 25)), cmap="viridis")
marker = {"origin": "kx", "signal+": "r*", "signal-": "r*", "noise+": "bs", "noise-": "bs"}
for p in points:
    bb = [float(e.subs(g, gv)) for e in p["b"]]
    ax.plot(*bb, marker[p["name"]], ms=11)
ax.set_xlabel("$b_1$")
ax.set_ylabel("$b_2$")
ax.set_title(r"profile loss $\min_a L(a,b)$, $\gamma=1$: minima (*), saddles ($\blacksquare$)")
ax.set_aspect("equal")
plt.show()

# %% [markdown]
# ## 2.5 Is the bound tight at the optimum?
#
# The encoder variance is *fixed* at $\gamma/(5+\gamma)$, which is exactly the posterior variance,
# and the decoder variance at the true noise $\gamma$. At $(a^*, b^*)$ the encoder mean
# $\frac{\tilde x_1 + 2\tilde x_2}{5+\gamma}$ is the posterior mean: $q$ *is* the posterior, so
# $\mathrm{KL}(q\,\|\,p(z\mid\tilde x)) = 0$ and the ELBO equals $\log p(\tilde x)$ for every $\tilde x$.
# The encoder mean has variance $a^{*\top} C a^* = \frac{5}{5+\gamma}$, and
# $z = \mu + \epsilon_z$ with $\epsilon_z\sim\mathcal N(0, \frac{\gamma}{5+\gamma})$ independent of
# $\mu$ (as the tutorial says). But the tutorial's "the impact of noise on the hidden variable is
# proportional with the noise level" is not right: $\frac{\gamma}{5+\gamma}\approx\gamma/5$ only for
# small $\gamma$, and it saturates at the prior variance 1.

# %%
display(Math(r"\mathrm{KL}(q_{\phi^*}\,\|\,p(z|\tilde x)) = " + sp.latex(V.kl_at_optimum())))
display(Math(r"\log p(\tilde x) - \mathcal L(a^*, b^*) = " + sp.latex(V.elbo_gap_at_optimum())))
assert V.kl_at_optimum() == 0 and V.elbo_gap_at_optimum() == 0
a_star = V.W / (5 + g)
var_mu = sp.simplify((a_star.T * cov * a_star)[0])
cov_mu_z = (a_star.T * V.W)[0]  # Cov(mu, z) = a*' E[x z] = a*' w
display(Math(r"\mathrm{Var}\,\mu(\tilde x, \phi^*) = " + sp.latex(var_mu)))
assert (
    sp.simplify(var_mu - 5 / (5 + g)) == 0 and sp.simplify(cov_mu_z - var_mu) == 0
)  # eps_z independent of mu
assert sp.simplify((1 - var_mu) - g / (5 + g)) == 0  # Var(eps_z)
assert (
    sp.limit((g / (5 + g)) / g, g, 0) == sp.Rational(1, 5) and sp.limit(g / (5 + g), g, sp.oo) == 1
)

# %% [markdown]
# ## 2.6 Training the VAE in Torch (reparameterisation trick)
#
# `scvi_edu.toys.vae.LinearGaussianVAE` implements the model in float64; `fit` maximises the
# reparameterised ELBO (38) ($L = 16$ draws of $\epsilon$ per point, to make the Monte Carlo
# error small against the statistical one) on the full batch with Adam, a linearly decaying learning
# rate and averaging of the last quarter of the iterates.
#
# **What should it land on?** Training sees $N$ samples, so it optimises the *sample* objective,
# whose minimiser differs from the population one by $O(1/\sqrt N)$. The sample optimum has the
# same closed form with the second-moment matrix $S = \frac1N\sum_n \tilde x_n\tilde x_n^\top$ in
# place of $C$: $b = \beta u_1(S)$, $(\gamma+\beta^2)^2 = \lambda_1(S)(5+\gamma)$,
# $a = b/(\gamma+\beta^2)$ (checked against `scipy.optimize` in `tests/test_vae.py`). Its spread
# around the population optimum is measured by a parametric bootstrap ($NS\sim$ Wishart$(N, C)$
# exactly for Gaussian data). Tolerances: the trained weights must be within **a quarter** of that
# spread from the sample optimum (optimiser + Monte Carlo error; $N = 500$, 1000 bootstrap data sets), and within **four** times the
# spread from the population optimum.

# %%
N = 500
rows = []
for gv in (0.5, 1.0, 4.0):
    x = T.sample_data(N, gv, seed=11)
    res = T.fit(T.LinearGaussianVAE(gv), x, steps=400, lr=0.05, n_samples=16, seed=0)
    sample, pop = T.sample_optimum_fixed(x, gv), T.population_optimum(gv)
    sd = T.optimum_sampling_std(N, gv, n_boot=1000, seed=0)
    assert np.abs(res["a"] - sample["a"]).max() < 0.25 * sd["a"].min()
    assert np.abs(res["b"] - sample["b"]).max() < 0.25 * sd["b"].min()
    assert np.all(np.abs(res["a"] - pop["a"]) < 4 * sd["a"]) and np.all(
        np.abs(res["b"] - pop["b"]) < 4 * sd["b"]
    )
    rows.append((gv, res, sample, pop, sd))
    print(
        f"gamma={gv}: sample optimum a=({sample['a'][0]:.3f}, {sample['a'][1]:.3f}), "
        f"b=({sample['b'][0]:.3f}, {sample['b'][1]:.3f}); population a*=({pop['a'][0]:.3f}, "
        f"{pop['a'][1]:.3f}), b*=(1, 2); trained = sample optimum within sd/4"
    )

# %% [markdown]
# **Learned variances.** Make $\log\sigma_q^2$ and a shared $\log\sigma_x^2$ parameters too. The
# encoder family $\mathcal N(a\cdot\tilde x, \sigma_q^2)$ contains the exact posterior of *every*
# linear decoder, so maximising the ELBO maximises the likelihood of
# $\tilde x\sim\mathcal N(0, bb^\top + \sigma_x^2 I)$: probabilistic PCA. Its maximiser is
# $\sigma_x^2 = \lambda_2(S)\to\gamma$, $b = \sqrt{\lambda_1-\lambda_2}\,u_1\to\pm(1,2)$,
# $\sigma_q^2 = \lambda_2/\lambda_1\to\frac{\gamma}{5+\gamma}$ (the posterior variance) and
# $a = b/\lambda_1$, and there the ELBO equals the log-likelihood: the bound is tight. (One variance
# per coordinate would not be identifiable here: 4 parameters for the 3 entries of $C$.)

# %%
gv = 1.0
x = T.sample_data(N, gv, seed=12)
model = T.LinearGaussianVAE(learn_variances=True)
res_l = T.fit(model, x, steps=400, lr=0.05, n_samples=16, seed=0)
opt_l = T.sample_optimum_learned(x)
sd_l = T.optimum_sampling_std(N, gv, learn_variances=True, n_boot=1000, seed=0)
cov_model = np.outer(res_l["b"], res_l["b"]) + res_l["var_x"] * np.eye(2)
loglik = float(
    np.mean(
        [
            -np.log(2 * np.pi)
            - 0.5 * np.log(np.linalg.det(cov_model))
            - 0.5 * xi @ np.linalg.solve(cov_model, xi)
            for xi in x.numpy()
        ]
    )
)
assert (
    abs(res_l["var_x"] - opt_l["var_x"]) < 0.25 * sd_l["var_x"]
    and abs(res_l["var_x"] - gv) < 4 * sd_l["var_x"]
)
assert (
    abs(res_l["var_q"] - opt_l["var_q"]) < 0.25 * sd_l["var_q"]
    and abs(res_l["var_q"] - gv / (5 + gv)) < 4 * sd_l["var_q"]
)
assert abs(res_l["elbo"] - opt_l["elbo"]) < 1e-3 and abs(res_l["elbo"] - loglik) < 1e-3
print(
    f"sample optimum: decoder variance {opt_l['var_x']:.3f} (gamma = {gv}), encoder variance "
    f"{opt_l['var_q']:.3f} (posterior variance {gv / (5 + gv):.3f}); trained = sample optimum "
    "within sd/4; |ELBO - log-likelihood| < 1e-3: the bound is tight"
)

# %% [markdown]
# The figure compares, as $\gamma$ varies, the encoder weight $a_1$ with the posterior-mean weight
# $\frac1{5+\gamma}$ (left), and the training curves of the exact ELBO (right).

# %%
gs = np.linspace(0.05, 5, 200)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
axes[0].plot(gs, 1 / (5 + gs), "k-", label=r"posterior mean weight $1/(5+\gamma)$")
axes[0].plot(gs, 2 / (5 + gs), "k--", label=r"$2/(5+\gamma)$")
for gv_, res, _sample, _pop, sd in rows:
    axes[0].errorbar([gv_, gv_], res["a"], yerr=4 * sd["a"], fmt="o", color="C1", capsize=3)
axes[0].set_xlabel(r"noise variance $\gamma$")
axes[0].set_ylabel(r"trained encoder weights $a_1, a_2$ ($\pm 4$ sd)")
axes[0].legend()
for gv_, res, *_ in rows:
    axes[1].plot(
        np.arange(len(res["elbo_trace"])) * 10,
        res["elbo_trace"],
        label=rf"fixed variances, $\gamma$={gv_}",
    )
axes[1].plot(
    np.arange(len(res_l["elbo_trace"])) * 10,
    res_l["elbo_trace"],
    "k",
    label=r"learned variances, $\gamma$=1",
)
axes[1].set_xlabel("Adam step")
axes[1].set_ylabel("mean ELBO (exact)")
axes[1].set_ylim(-8, -2)
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2.7 The two gradient estimators (eqs. (35)–(36))
#
# The tutorial says the plain Monte Carlo estimate (35) "has very high variance" and the
# reparameterised one (36) lower variance. As *estimates of the value* they are the same random
# variable ($z = \mu + \sigma\epsilon$ has law $q$), so their variances are equal — ledger entry
# *text after (35)*, **wrong**. What differs is the estimate of the **gradient** with respect to the
# encoder parameters $\phi = a$:
#
# * score function (what one gets from (35), since $z$ carries no gradient):
#   $\;\hat g_{\rm SF} = \frac1L\sum_l f(z_l)\,\nabla_a\log q(z_l\mid x) = \frac1L\sum_l f(z_l)\,\frac{z_l-\mu}{\sigma^2}\,x$;
# * reparameterised (36): $\;\hat g_{\rm RP} = \frac1L\sum_l \nabla_a f(\mu + \sigma\epsilon_l) = \frac1L\sum_l f'(z_l)\,x$,
#
# with $f(z) = \log p(x\mid z)$. Both are unbiased; sympy gives their exact single-sample variances.
# We compare with 4000 Torch repetitions for each $L$, at $x = (1, 2)$, $a = (0.1, 0.1)$,
# $b = (0.5, 1)$, $\gamma = 1$, $\sigma^2 = 1/6$.

# %%
at = {
    x1: 1,
    x2: 2,
    a1: sp.Rational(1, 10),
    a2: sp.Rational(1, 10),
    b1: sp.Rational(1, 2),
    b2: 1,
    V.v: sp.Rational(1, 6),
}
moments = V.estimator_moments(1, at)
exact_grad = V.exact_gradient(1).subs(at)
display(Math(r"\nabla_a \mathbb E_q \log p(x|z) = " + sp.latex(exact_grad.T)))
display(Math(r"\mathrm{Var}\,\hat g_{\rm RP}^{(L=1)} = " + sp.latex(moments["reparam"][1].T)))
assert moments["score"][0] == exact_grad and moments["reparam"][0] == exact_grad
var_sf = np.array([float(sp.N(e)) for e in moments["score"][1]])
var_rp = np.array([float(e) for e in moments["reparam"][1]])
print(
    "variance ratio score/reparam (exact, both coordinates):", np.round(var_sf / var_rp).astype(int)
)

Ls = [1, 2, 4, 8, 16, 32, 64]
emp = {"score": [], "reparam": []}
for L in Ls:
    est = T.gradient_estimates(
        torch.tensor([1.0, 2.0]),
        torch.tensor([0.1, 0.1]),
        torch.tensor([0.5, 1.0]),
        1.0,
        1 / 6,
        L,
        4000,
        seed=L,
    )
    for name in emp:
        mean, var = est[name][:, 0].mean(), est[name][:, 0].var()
        exact_var = (var_sf if name == "score" else var_rp)[0] / L
        assert abs(mean - float(exact_grad[0])) < 5 * np.sqrt(exact_var / 4000)  # unbiased
        assert abs(var / exact_var - 1) < 0.15  # variance = single-sample variance / L
        emp[name].append(var)
fig, ax = plt.subplots(figsize=(5.5, 4))
for name, col in (("score", "C3"), ("reparam", "C0")):
    v1 = (var_sf if name == "score" else var_rp)[0]
    ax.loglog(Ls, emp[name], "o", color=col, label=f"{name} (Torch, 4000 reps)")
    ax.loglog(Ls, v1 / np.array(Ls), "-", color=col, label=f"{name}: exact / L (sympy)")
ax.set_xlabel("samples per estimate $L$")
ax.set_ylabel(r"variance of $\partial/\partial a_1$ estimate")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The score-function estimator needs about 400 times more samples for the same precision here, and
# its variance even depends on the additive constant $-\log(2\pi\gamma)$ in $f$ (a baseline would
# remove that part); the pathwise estimator does not see constants at all. This — not the
# variance of the value estimate — is why $L = 1$ suffices with the reparameterisation trick.
#
# ## 2.8 What the ledger says about (29)–(54)
#
# Every equation (29)–(54) has an entry in `derivations/ledger_vae.py` whose `check()` computes the
# verdict (run by `tests/test_ledger.py`). The entries that are not `ok`:

# %%
for e in ENTRIES:
    if e.verdict != "ok":
        print(f"{e.verdict:5s} {e.label}: {e.topic}")
print(f"{sum(e.verdict == 'ok' for e in ENTRIES)} of {len(ENTRIES)} entries are ok")

# %% [markdown]
# ## Exercise
#
# For $\gamma = 4$, the stationary points on the noise direction have $b\parallel(2,-1)$.
# What is $\|b\|^2$ there? (Hint: Step 2 of section 2.4 with the right eigenvalue of $C$.) Replace
# the value of `answer` by yours and run the check; it raises an `AssertionError` on a wrong answer.

# %%
lam_noise = 4  # the eigenvalue of C = w w^T + 4 I along (2, -1)
answer = float(sp.sqrt(lam_noise * (5 + 4)) - 4)  # our solution: replace with yours
T.check_exercise_2(answer)
