# %% [markdown]
# # Chapter 2 — The variational autoencoder and the ELBO (tutorial eqs. (29)–(54))
#
# The autoencoder of chapter 1 compresses a cell to a code and back, but it is not a model of the
# data: it cannot generate new cells, it says nothing about how certain a code is, and its penalty
# $\lambda$ had to be chosen by hand. The variational autoencoder (VAE) starts from a *generative*
# model instead — draw a code $z\sim p(z)$, then a cell $x\sim p_\theta(x\mid z)$ — and fits it by
# maximum likelihood. The likelihood $p_\theta(x) = \int p(z)\,p_\theta(x\mid z)\,dz$ is an
# integral nobody can do for a neural-network decoder, so the VAE maximises a lower bound on it,
# the ELBO, computed with a second network $q_\phi(z\mid x)$, the encoder. scVI (chapters 3–5) is a
# VAE with a count decoder; everything it does with the bound is in this chapter.
#
# The tutorial's section 2 (eqs. (29)–(54)) derives the bound and then studies a linear Gaussian
# example small enough to solve by hand. In this chapter we
#
# 1. derive the bound in three lines for **any** model (section 2.1);
# 2. work the example out: marginal, posterior, and where the gene–gene covariance lives (2.2–2.3);
# 3. write the ELBO of the example in closed form and read it as an autoencoder loss with two
#    penalties, one of which is a ridge on the decoder that nobody has to tune (2.4);
# 4. **solve** the stationary conditions (54), which the tutorial says cannot be solved: there are
#    five stationary points, and we classify each (2.5–2.6);
# 5. train the model in Torch and watch the gap between log-likelihood and ELBO close (2.7);
# 6. compare the two gradient estimators behind eqs. (35)–(36) (2.8).
#
# **Notation.** In this chapter $\gamma$ is the variance of the observation noise (in chapter 1 it
# was the second moment of $x_1$). $\lambda$ is chapter 1's penalty weight, and (from 2.5 on) an
# eigenvalue of a covariance matrix; the context says which.
#
# Every formula is derived twice: by hand in the text, then by a short sympy cell you can edit and
# re-run. Longer checks live in `derivations/vae.py`, and every printed equation (29)–(54) has a
# ledger entry in `derivations/ledger_vae.py` that computes its verdict.

# %%
import contextlib
import io
import random
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, "..")  # derivations/ (the sympy side) is read from the checkout

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import sympy as sp
import torch
from IPython.display import Markdown, Math, display
from matplotlib.lines import Line2D

from derivations import vae as V
from derivations.ledger_vae import ENTRIES
from scvi_edu.display import markdown_table
from scvi_edu.exercises import (
    EXERCISE_CH2_BETA,
    EXERCISE_CH2_SADDLE,
    check_beta_vae,
    check_noise_saddle_curvature,
)
from scvi_edu.toys import vae as T

torch.manual_seed(0)
rng = np.random.default_rng(0)
random.seed(0)
torch.set_num_threads(1)
# %matplotlib inline

g, x1, x2, z = V.gamma, V.x1, V.x2, V.z
a1, a2, b1, b2 = V.PARAMS


md = markdown_table  # a DataFrame as a Markdown table: $...$ in labels renders


def show(lhs, expr):
    display(Math(lhs + " = " + sp.latex(expr)))


# %% [markdown]
# ## 2.1 The evidence lower bound, for any model (eqs. (29)–(32))
#
# Take any density $q(z\mid x)$ (the encoder) and any model $p(z)\,p(x\mid z)$. Since $q$ integrates
# to 1 and $p(x) = p(x, z)/p(z\mid x)$ for every $z$,
#
# $$
# \begin{aligned}
# \log p(x) &= \mathbb E_{q}\big[\log p(x)\big]\\
#   &= \mathbb E_{q}\Big[\log\frac{p(x,z)}{q(z\mid x)}\Big]
#   + \mathbb E_{q}\Big[\log\frac{q(z\mid x)}{p(z\mid x)}\Big]\\
#   &= \mathcal L(x) + \mathrm{KL}\big(q(z\mid x)\,\|\,p(z\mid x)\big),
# \end{aligned}
# $$
#
# where, splitting $p(x, z) = p(z)\,p(x\mid z)$,
#
# $$
# \mathcal L(x) = \mathbb E_{q}\Big[\log\frac{p(x,z)}{q(z\mid x)}\Big]
#   = \underbrace{\mathbb E_{q}\big[\log p(x\mid z)\big]}_{\text{reconstruction}}
#   - \underbrace{\mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big)}_{\text{code penalty}} .
# $$
#
# The three lines are (29)–(30); the last formula is (31). A KL divergence is $\ge 0$, with equality only
# when its two arguments agree, so $\mathcal L(x)\le\log p(x)$, with equality exactly when the
# encoder *is* the posterior, $q(z\mid x) = p(z\mid x)$: eq. (32). (The sentence after (32) says the
# maximum is reached "when $p_\theta(x\mid z) = q_\phi(z\mid x)$"; it means
# $q_\phi(z\mid x) = p_\theta(z\mid x)$ — a slip.) Maximising $\mathcal L$ over the encoder pushes
# $q$ towards the posterior; maximising it over the decoder pushes $\log p_\theta(x)$ up. The
# *gap* $\log p(x) - \mathcal L(x)$ is the KL to the posterior, and we will watch it during
# training in 2.7.
#
# ## 2.2 A model you can integrate (eqs. (33)–(34), (39)–(40), (47)–(48))
#
# The tutorial's example, with noise variance $\gamma$ and $w = (1, 2)$:
#
# $$z\sim\mathcal N(0, 1),\qquad x\mid z\sim\mathcal N(wz,\ \gamma I).$$
#
# (The tutorial prints the noise covariance in (47) as
# $\begin{bmatrix}0&\gamma\\\gamma&0\end{bmatrix}$ and in (39), with $\gamma = 1$, as
# $\begin{bmatrix}0&1\\1&0\end{bmatrix}$; the determinant $-\gamma^2$ is negative: not
# a covariance. Everything it derives from it uses $\gamma I$, so this is a slip.)
#
# **By hand.** Up to constants, $\log p(z) + \log p(x\mid z) = -\frac{z^2}2 - \frac{\|x - wz\|^2}{2\gamma}$.
# As a function of $z$ this is a quadratic: the coefficient of $z^2$ is
# $-\frac12\big(1 + \frac{\|w\|^2}\gamma\big) = -\frac{5+\gamma}{2\gamma}$ and that of $z$ is
# $\frac{w^\top x}{\gamma}$. Completing the square,
#
# $$p(z\mid x) = \mathcal N\Big(\frac{x_1 + 2x_2}{5+\gamma},\ \frac{\gamma}{5+\gamma}\Big),$$
#
# and what is left over is a quadratic form in $x$ alone — the log-marginal $\log p(x)$. Its
# precision matrix is $\frac1\gamma\big(I - \frac{ww^\top}{5+\gamma}\big)$, the inverse of
# $ww^\top + \gamma I$. So $x\sim\mathcal N(0, ww^\top + \gamma I)$; at $\gamma = 1$ these are
# eqs. (34) and (40). Sympy does the same steps:

# %%
x = sp.Matrix([x1, x2])
w = sp.Matrix([1, 2])
# log p(z) + log p(x | z), up to constants
log_joint = -(z**2) / 2 - ((x - w * z).T * (x - w * z))[0] / (2 * g)
# complete the square in z: variance and mean of the posterior
post_var = sp.simplify(-1 / sp.diff(log_joint, z, 2))
post_mean = sp.solve(sp.diff(log_joint, z), z)[0]
# what is left is free of z: a quadratic form in x, whose inverse precision is Cov(x)
leftover = sp.expand(log_joint + (z - post_mean) ** 2 / (2 * post_var))
assert sp.simplify(sp.diff(leftover, z)) == 0
cov_x = sp.simplify((-sp.hessian(leftover, (x1, x2))).inv())
post = rf"\mathcal N\Big({sp.latex(post_mean)},\ {sp.latex(post_var)}\Big)"
display(Math(r"p(z\mid x) = " + post))
show(r"\operatorname{Cov}(x)", cov_x)

# %% tags=["remove-cell"]
# the same by integration (derivations/vae.py): the posterior, E[x x^T], and log p(x) = log N(0, C)
assert (
    sp.simplify(post_mean - V.posterior()[0]) == 0 and sp.simplify(post_var - V.posterior()[1]) == 0
)
assert sp.simplify(cov_x - V.true_covariance()) == sp.zeros(2, 2)
assert sp.simplify(V.log_mvn_pdf(cov_x) - V.log_marginal()) == 0
assert V.posterior_is_normalised()
assert V.elbo_identity_residual() == 0  # (29)-(31) for every Gaussian q = N(m, v), by integration

# %% [markdown]
# `derivations/vae.py` derives the same three objects by integration (the normalisation included)
# and confirms the identity of 2.1 for every Gaussian $q = \mathcal N(m, v)$ in this model (the
# residual below is simplified to zero as an expression in $x, m, v, \gamma$):

# %%
show(
    r"\log p(x) - \mathrm{KL}\big(\mathcal N(m, v)\,\|\,p(z\mid x)\big) - \mathcal L_{(31)}",
    V.elbo_identity_residual(),
)

# %% [markdown]
# ## 2.3 Where the gene–gene covariance lives (the remark after (34))
#
# Given $z$, the two coordinates of $x$ are independent (the noise covariance is diagonal), yet
# $\operatorname{Cov}(x_1, x_2) = 2$. The tutorial's remark: the dependence is carried by the
# decoder mean $\mu(z) = wz$. The law of total covariance says this for *every* decoder whose
# coordinates are independent given $z$:
#
# $$\operatorname{Cov}(x) = \operatorname{Cov}\big(\mathbb E[x\mid z]\big) + \mathbb E\big[\operatorname{Cov}(x\mid z)\big]
# = \operatorname{Cov}\big(\mu(z)\big) + \mathbb E\big[\operatorname{diag}\sigma^2(z)\big],$$
#
# and the second term is diagonal. So **every off-diagonal covariance comes from $\mu(z)$**; for a
# linear decoder $\mu(z) = bz$ it is $bb^\top$, and $\operatorname{Cov}(x) = bb^\top + \sigma^2 I$.
# In scVI $\mu(z)$ is the negative-binomial mean of each gene, and the same law puts all
# gene–gene covariance into it. We check this by simulation ($b = (1, 2)$, $\sigma^2 = 1$):

# %%
# NBVAL_IGNORE_OUTPUT
b_true, s2 = np.array([1.0, 2.0]), 1.0
n_sim = 200_000
zs = rng.standard_normal(n_sim)
xs = zs[:, None] * b_true + np.sqrt(s2) * rng.standard_normal((n_sim, 2))
emp_cov = np.cov(xs.T)
emp_cond = np.cov((xs - zs[:, None] * b_true).T)  # Cov(x | z): the noise alone
formula = np.outer(b_true, b_true) + s2 * np.eye(2)
table = pd.DataFrame(
    {
        "Var x1": [emp_cov[0, 0], formula[0, 0], emp_cond[0, 0]],
        "Var x2": [emp_cov[1, 1], formula[1, 1], emp_cond[1, 1]],
        "Cov(x1, x2)": [emp_cov[0, 1], formula[0, 1], emp_cond[0, 1]],
    },
    index=[
        "simulated $\\operatorname{Cov} x$",
        "$bb^\\top + \\sigma^2 I$",
        "simulated $\\operatorname{Cov}(x\\mid z)$",
    ],
)
table.columns = [
    "$\\operatorname{Var} x_1$",
    "$\\operatorname{Var} x_2$",
    "$\\operatorname{Cov}(x_1, x_2)$",
]
md(table.round(3))
# each entry within 5 standard errors of the formula (Var of a sample covariance ~ (s_ii s_jj + s_ij^2)/n)
se = np.sqrt((np.outer(np.diag(formula), np.diag(formula)) + formula**2) / n_sim)
assert np.all(np.abs(emp_cov - formula) < 5 * se)
assert np.all(np.abs(emp_cond - s2 * np.eye(2)) < 5 * np.sqrt((s2**2 + s2**2 * np.eye(2)) / n_sim))

# %% [markdown]
# The figure shows the mechanism: given $z$ (colour), a point scatters isotropically around
# $\mu(z) = bz$; the correlation comes from $z$ moving $\mu(z)$ along the line.

# %%
fig, ax = plt.subplots(figsize=(5.6, 4.6))
k = 3000
sc = ax.scatter(xs[:k, 0], xs[:k, 1], c=zs[:k], cmap="coolwarm", s=4, vmin=-2.5, vmax=2.5)
tt = np.linspace(-3, 3, 2)
ax.plot(tt * b_true[0], tt * b_true[1], "k-", lw=1.2, label=r"$\mu(z) = bz$")
fig.colorbar(sc, ax=ax, label="latent $z$")
ax.set_xlabel("$x_1$")
ax.set_ylabel("$x_2$")
ax.set_title(r"$x = bz + \varepsilon$, $\varepsilon\sim N(0, I)$")
ax.legend(loc="upper left")
ax.set_aspect("equal")
plt.show()

# %% [markdown]
# ## 2.4 The ELBO in closed form: an autoencoder with two penalties (eqs. (41)–(44), (49)–(52))
#
# The tutorial's VAE for this example has a linear encoder and decoder with **fixed** variances:
#
# $$q(z\mid x) = \mathcal N(\mu,\ \sigma_q^2),\quad \mu = a\cdot x,\quad \sigma_q^2 = \tfrac{\gamma}{5+\gamma};
# \qquad p(x\mid z) = \mathcal N(bz,\ \gamma I).$$
#
# The ELBO (31) has two parts. The code penalty is the KL between Gaussians,
# $\mathrm{KL}\big(\mathcal N(\mu, \sigma_q^2)\,\|\,\mathcal N(0,1)\big) = \frac12\big(\mu^2 + \sigma_q^2 - 1 - \log\sigma_q^2\big)$.
# The reconstruction is $-\log(2\pi\gamma) - \mathbb E_q\|x - bz\|^2/(2\gamma)$, and its
# expectation is one line. Write $z = \mu + \sigma_q\varepsilon$, $\varepsilon\sim\mathcal N(0,1)$:
#
# $$
# \begin{aligned}
# \|x - bz\|^2 &= \|x - b\mu\|^2 - 2\sigma_q\varepsilon\, b^\top(x - b\mu) + \sigma_q^2\varepsilon^2\|b\|^2,\\
# \mathbb E_q\|x - bz\|^2 &= \|x - b\mu\|^2 + \sigma_q^2\|b\|^2,
# \end{aligned}
# $$
#
# because $\mathbb E\varepsilon = 0$ and $\mathbb E\varepsilon^2 = 1$. Collecting the terms that
# depend on $(a, b)$, with $\sigma_q^2/(2\gamma) = 1/(2(5+\gamma))$:
#
# $$-\mathcal L(x) = \text{const} + \frac{(a\cdot x)^2}{2} + \frac{\|b\|^2}{2(5+\gamma)} + \frac{\|x - b\,(a\cdot x)\|^2}{2\gamma},$$
#
# the summand of the loss (52) (and of (44) at $\gamma = 1$). In sympy:

# %%
mu, eps = sp.symbols("mu epsilon", real=True)
sq = sp.Symbol("sigma_q", positive=True)
b = sp.Matrix([b1, b2])
r = x - b * (mu + sq * eps)
poly = sp.Poly(sp.expand((r.T * r)[0]), eps)
moment = {0: 1, 1: 0, 2: 1}  # E[eps^k] for eps ~ N(0, 1)
expected_sq = sum(c * moment[k] for (k,), c in poly.terms())
by_hand = ((x - b * mu).T * (x - b * mu))[0] + sq**2 * (b.T * b)[0]
assert sp.expand(expected_sq - by_hand) == 0
# -ELBO: KL and reconstruction, constants dropped
loss_52 = mu**2 / 2 + by_hand / (2 * g)
loss_52 = loss_52.subs({sq: sp.sqrt(g / (5 + g)), mu: a1 * x1 + a2 * x2})
show(r"\mathbb E_q\|x - bz\|^2", sp.factor_terms(by_hand))

# %% tags=["remove-cell"]
# the same as the loss derived by integration in derivations/vae.py, and its printed constant (50)
assert sp.simplify(sp.expand(loss_52 - V.loss_tutorial_summand())) == 0
printed_const = -sp.log(2 * sp.pi * sp.sqrt(g * (5 + g))) + 5 / (2 * (5 + g))
assert sp.simplify(sp.expand_log(V.elbo_constant() - printed_const, force=True)) == 0

# %% [markdown]
# **What the formula says.** Multiply by $2\gamma$ to put it in chapter 1's units (squared error):
#
# $$2\gamma\,(-\mathcal L) = \text{const} + \underbrace{\|x - b\,(a\cdot x)\|^2}_{\text{chapter 1's loss}}
# + \underbrace{\gamma\,(a\cdot x)^2}_{\text{penalty on the code}} + \underbrace{\sigma_q^2\,\|b\|^2}_{\text{ridge on } b}.$$
#
# Chapter 1's penalised autoencoder (16) added $\lambda(\|a\|^2 + \|b\|^2)$ with a $\lambda$ chosen
# by hand. The VAE adds two penalties, and chooses both:
#
# * the KL penalises the **code** $a\cdot x$, not the encoder weights, with weight $\gamma$: the
#   noisier the data, the more the code is pulled towards the prior;
# * the noise in $z$ puts a **ridge on the decoder** with $\lambda_b = \sigma_q^2$: a decoder that
#   amplifies the code also amplifies the code's uncertainty, and pays for it in reconstruction
#   error. Nobody tunes it; it is the encoder's posterior variance.
#
# The tutorial, after (44), says the VAE loss has "one more term" than the autoencoder loss; it has
# two — the code penalty and the ridge on $b$ — a slip (an imprecision). The weights (in chapter 1's units)
# for the three noise levels we train on below:

# %%
gammas = [sp.Rational(1, 2), sp.Integer(1), sp.Integer(4)]
penalties = pd.DataFrame(
    {
        "code penalty": [float(gv) for gv in gammas],
        "ridge on $b$": [str(gv / (5 + gv)) for gv in gammas],
        "ridge (decimal)": [float(gv / (5 + gv)) for gv in gammas],
    },
    index=pd.Index([float(gv) for gv in gammas], name="$\\gamma$"),
)
md(penalties.round(4))

# %% [markdown]
# Averaging the summand over $x\sim\mathcal N(0, C)$, $C = ww^\top + \gamma I$, replaces $xx^\top$ by
# $C$ and gives the population objective that (53)–(54) differentiate:
#
# $$L(a, b) = \tfrac12 a^\top C a + \frac{\|b\|^2}{2(5+\gamma)} + \frac{\|b\|^2\,a^\top C a - 2\,b^\top C a + \operatorname{tr} C}{2\gamma}.$$
#
# (The printed (41)–(54) are all compared with the derivation in their ledger entries: they hold as
# printed, the constant $-\log(2\pi\sqrt{\gamma(5+\gamma)}) + \frac{5}{2(5+\gamma)}$ of (50)–(51)
# included.)

# %%
A, B = V.A, V.B
C = V.true_covariance()
s = (B.T * B)[0]
L = (
    (A.T * C * A)[0] / 2
    + s / (2 * (5 + g))
    + (s * (A.T * C * A)[0] - 2 * (B.T * C * A)[0] + C.trace()) / (2 * g)
)
assert sp.simplify(sp.expand(V.population_loss() - L)) == 0  # = E_x of the summand (52)

# %% [markdown]
# ## 2.5 Solving the stationary conditions (54) — all of them
#
# The tutorial: *"I can not solve the above equation with explicit solution since it will evolve a
# five order equation"*, and it checks that $a^* = \frac{(1, 2)}{5+\gamma}$, $b^* = (1, 2)$
# satisfies (54). The system can be solved completely in two steps (so that sentence is a wrong
# statement; nothing computed from it breaks).
#
# **Step 1: the encoder.** For fixed $b$, $L$ is a convex quadratic in $a$ with gradient
# $\nabla_a L = \frac1\gamma\,C\big((\gamma + \|b\|^2)\,a - b\big)$. $C$ is invertible
# ($\det C = \gamma(5+\gamma)$), so every stationary point has
#
# $$a = \frac{b}{\gamma + \|b\|^2}.$$
#
# **Step 2: the decoder.** Put Step 1 back into $L$ (with $s = \|b\|^2$,
# $a^\top Ca = \frac{b^\top Cb}{(\gamma+s)^2}$ and $b^\top Ca = \frac{b^\top Cb}{\gamma + s}$) to
# get the *profile* loss
#
# $$P(b) = \min_a L(a, b) = \frac{s}{2(5+\gamma)} - \frac{b^\top C b}{2\gamma(\gamma + s)} + \frac{\operatorname{tr}C}{2\gamma}.$$
#
# At fixed length $s$, only $b^\top Cb$ varies, and it is stationary exactly when $b$ is an
# eigenvector of $C = ww^\top + \gamma I$, whose eigenpairs are $(5+\gamma,\ u_1 = w/\sqrt5)$ and
# $(\gamma,\ u_2 = (2,-1)/\sqrt5)$. Along an eigenvector with eigenvalue $\lambda$,
# $P = \frac{s}{2(5+\gamma)} - \frac{\lambda s}{2\gamma(\gamma+s)} + \text{const}$, and
# $dP/ds = \frac{1}{2(5+\gamma)} - \frac{\lambda}{2(\gamma+s)^2} = 0$ gives
# $(\gamma + s)^2 = \lambda(5+\gamma)$:
#
# * signal direction, $\lambda = 5+\gamma$: $s = 5$, $b = \pm(1, 2)$, $a = \pm\frac{(1,2)}{5+\gamma}$ — the tutorial's optimum;
# * noise direction, $\lambda = \gamma$: $s = \sqrt{\gamma(5+\gamma)} - \gamma > 0$ — two more stationary points the tutorial does not mention;
# * $b = 0$, $a = 0$.
#
# Sympy confirms Step 1 and the profile:

# %%
grad_a = sp.Matrix([sp.diff(L, p) for p in (a1, a2)])
# Step 1: grad_a L = C ((g + s) a - b) / g
assert (grad_a - C * ((g + s) * A - B) / g).applyfunc(sp.cancel) == sp.zeros(2, 1)
# Step 2: the profile P(b) = L(b / (g + s), b)
profile = L.subs({a1: b1 / (g + s), a2: b2 / (g + s)}, simultaneous=True)
P_by_hand = s / (2 * (5 + g)) - (B.T * C * B)[0] / (2 * g * (g + s)) + C.trace() / (2 * g)
assert sp.cancel(sp.together(profile - P_by_hand)) == 0
# along an eigenvector with eigenvalue lambda, P is a function of s = |b|^2 alone
lam_, s_ = sp.symbols("lambda s", positive=True)
radial = s_ / (2 * (5 + g)) - lam_ * s_ / (2 * g * (g + s_))
roots = sp.solve(sp.diff(radial, s_), s_)
show(r"s = \|b\|^2", roots[0])
# the five points (derivations/vae.py), with beta_n^2 = sqrt(g (5 + g)) - g
points = V.stationary_points()
beta_n = sp.Symbol(r"\beta_n", positive=True)
for p in points:
    a_, b_ = (M.T.subs(sp.sqrt(sp.sqrt(g * (5 + g)) - g), beta_n) for M in (p["a"], p["b"]))
    show(r"\text{" + p["name"] + r"}:\quad a = " + sp.latex(a_) + r",\quad b", b_)

# %% tags=["remove-cell"]
assert roots == [sp.sqrt(lam_ * (5 + g)) - g]
# the five points solve (54), to 40 digits at two values of gamma; the symbolic proof of the two
# steps is in derivations/vae.py, and sympy.solve on the raw system finds exactly these five
assert V.gradient_a_factorised_residual() == sp.zeros(2, 1)
assert V.gradient_b_reduced_residual() == sp.zeros(2, 1)
grad = V.stationary_conditions()
for p in points:
    for gv in (sp.Integer(1), sp.Rational(7, 3)):
        sub = {k: val.subs(g, gv) for k, val in V.point_subs(p).items()}
        assert all(abs(sp.N(e.subs(g, gv).subs(sub), 40)) < 1e-30 for e in grad)

# %% [markdown]
# ## 2.6 Which are minima?
#
# The profile makes it visible. $P$ only depends on $b$ through $s$ and $b^\top Cb$, and at fixed
# $s$ a larger $b^\top C b$ lowers $P$: turning $b$ towards the top eigenvector $u_1$ always helps.
#
# * At the **noise points** ($b\parallel u_2$, the *smallest* eigenvalue): minima or saddles?
#   Exercise 2 asks you to decide (the table below gives the answer to check against).
# * At the **origin** $P$ decreases in every direction: growing $b$ along $u_1$ or $u_2$ lowers it.
# * At the **signal points** the Hessian of $L$ in the eigenbasis of $C$
#   ($a = \alpha_1u_1 + \alpha_2u_2$, $b = \beta_1u_1 + \beta_2u_2$) splits into two $2\times2$
#   blocks; both have positive determinant and trace for every $\gamma > 0$ (below): a
#   strict local minimum. $L$ is bounded below and grows without bound as $\|a\|$ or $\|b\|\to\infty$,
#   so its global minimum is a stationary point — the one with the smallest value.

# %%
block_names = (r"(\alpha_1, \beta_1)\text{ along } u_1", r"(\alpha_2, \beta_2)\text{ along } u_2")
for name, blk in zip(block_names, V.signal_hessian_blocks(), strict=True):
    display(
        Math(
            r"\text{block }"
            + name
            + r":\quad\det = "
            + sp.latex(sp.factor(blk.det()))
            + r",\quad \operatorname{tr} = "
            + sp.latex(sp.factor(blk.trace()))
        )
    )
    assert sp.factor(blk.det()).is_positive and sp.factor(blk.trace()).is_positive
kinds = V.classify_stationary_points(sp.Integer(1))
classes = pd.DataFrame(
    {
        "$b$ at $\\gamma = 1$": [
            "(" + ", ".join(f"{float(e.subs(g, 1)):+.3f}" for e in p["b"]) + ")" for p in points
        ],
        "Hessian of $L$": [kinds[p["name"]][0] for p in points],
        "$L$": [float(kinds[p["name"]][1]) for p in points],
    },
    index=[p["name"] for p in points],
)
md(classes.round(4))
assert kinds["signal+"][0] == kinds["signal-"][0] == "minimum"
assert kinds["origin"][0] == "saddle (index 2)" and kinds["noise+"][0] == "saddle (index 1)"
assert min(sp.N(v) for _, v in kinds.values()) == sp.N(kinds["signal+"][1])

# %% [markdown]
# (The index is the number of negative Hessian eigenvalues of $L$ in $(a, b)$, computed at 50
# digits.) The figure draws the profile $P(b)$ for $\gamma = 1$: two minima at $\pm(1,2)$, two
# saddles on the noise direction $(2,-1)$, and at the origin a maximum of the profile (a saddle
# of $L$, where $a$ can still move).

# %%
gv = 1.0
C1 = np.array([[1 + gv, 2.0], [2.0, 4 + gv]])
grid = np.linspace(-2.6, 2.6, 161)
B1, B2 = np.meshgrid(grid, grid)


def profile_np(u1, u2):
    """P(b) of Step 2, vectorised over a grid of decoder weights (b1, b2)."""
    ss = u1**2 + u2**2
    bCb = C1[0, 0] * u1**2 + 2 * C1[0, 1] * u1 * u2 + C1[1, 1] * u2**2
    return ss / (2 * (5 + gv)) - bCb / (2 * gv * (gv + ss)) + np.trace(C1) / (2 * gv)


prof = profile_np(B1, B2)
bb = np.array([0.7, -1.1])  # spot check against the loss written directly, at a = b / (g + |b|^2)
assert np.isclose(profile_np(*bb), T.loss_fixed_numpy(np.r_[bb / (gv + bb @ bb), bb], C1, gv))
fig, ax = plt.subplots(figsize=(5.8, 4.8))
cs = ax.contour(B1, B2, prof, levels=np.quantile(prof, np.linspace(0.01, 0.9, 25)), cmap="viridis")
fig.colorbar(cs, ax=ax, label=r"$P(b) = \min_a L(a, b)$")
style = {"origin": ("kx", "origin"), "signal": ("r*", "minima"), "noise": ("bs", "saddles")}
for p in points:
    mk, _ = style[p["name"].rstrip("+-")]
    ax.plot(*[float(e.subs(g, gv)) for e in p["b"]], mk, ms=11)
handles = [
    Line2D([], [], ls="", marker=mk[1], color=mk[0], label=lab) for mk, lab in style.values()
]
ax.legend(handles=handles, loc="lower right", fontsize=8)
ax.set_xlabel("$b_1$")
ax.set_ylabel("$b_2$")
ax.set_title(r"profile loss, $\gamma = 1$")
ax.set_aspect("equal")
plt.show()

# %% [markdown]
# ## 2.7 The bound is tight at the optimum; training closes the gap
#
# At $(a^*, b^*)$ the encoder mean $\frac{x_1 + 2x_2}{5+\gamma}$ and the fixed variance
# $\frac{\gamma}{5+\gamma}$ are those of the posterior of 2.2: $q$ *is* the posterior, the KL of
# 2.1 vanishes, and the ELBO equals $\log p(x)$ for every $x$.

# %%
show(r"\mathrm{KL}\big(q_{\phi^*}\,\|\,p(z\mid x)\big)", V.kl_at_optimum())
show(r"\log p(x) - \mathcal L(a^*, b^*)", V.elbo_gap_at_optimum())
a_star = V.W / (5 + g)
var_mu = sp.simplify((a_star.T * C * a_star)[0])
show(r"\operatorname{Var}\mu(x, \phi^*)", var_mu)

# %% tags=["remove-cell"]
assert V.kl_at_optimum() == 0 and V.elbo_gap_at_optimum() == 0
cov_mu_z = (a_star.T * V.W)[0]  # Cov(mu, z) = a*' E[x z] = a*' w
assert sp.simplify(var_mu - 5 / (5 + g)) == 0 and sp.simplify(cov_mu_z - var_mu) == 0
assert sp.simplify((1 - var_mu) - g / (5 + g)) == 0  # Var(eps_z)
assert (
    sp.limit((g / (5 + g)) / g, g, 0) == sp.Rational(1, 5) and sp.limit(g / (5 + g), g, sp.oo) == 1
)

# %% [markdown]
# So $z = \mu + \varepsilon_z$ with $\operatorname{Var}\mu = \frac5{5+\gamma}$ and
# $\varepsilon_z\sim\mathcal N(0, \frac{\gamma}{5+\gamma})$ independent of $\mu$, as the tutorial
# says. Its "the impact of noise on the hidden variable is proportional with the noise level" is an
# slip (an imprecision): $\frac{\gamma}{5+\gamma}\approx\gamma/5$ only for small $\gamma$, and it saturates at
# the prior variance 1.
#
# **Training.** `scvi_edu.toys.vae.LinearGaussianVAE` implements the model in float64; `fit`
# maximises the reparameterised ELBO (38) ($L = 16$ draws of $\varepsilon$ per point) on the full
# batch with Adam, a linearly decaying learning rate and averaging of the last quarter of the
# iterates. Training sees $N = 500$ samples, so it optimises the *sample* objective: the same
# closed form with the second-moment matrix $S = \frac1N\sum_n x_nx_n^\top$ in place of $C$, whose
# optimum is $O(1/\sqrt N)$ away from $(a^*, b^*)$. Its spread is measured by a parametric bootstrap
# (1000 data sets). The trained weights must be within a quarter of that spread of the sample
# optimum, and within four spreads of the population optimum.

# %%
# NBVAL_IGNORE_OUTPUT
N = 500
rows, runs = [], {}
for gv in (0.5, 1.0, 4.0):
    x_data = T.sample_data(N, gv, seed=11)
    res = T.fit(T.LinearGaussianVAE(gv), x_data, steps=250, lr=0.05, n_samples=16, seed=0)
    sample, pop = T.sample_optimum_fixed(x_data, gv), T.population_optimum(gv)
    sd = T.optimum_sampling_std(N, gv, n_boot=1000, seed=0)
    assert np.abs(res["a"] - sample["a"]).max() < 0.25 * sd["a"].min()
    assert np.abs(res["b"] - sample["b"]).max() < 0.25 * sd["b"].min()
    assert np.all(np.abs(res["a"] - pop["a"]) < 4 * sd["a"])
    assert np.all(np.abs(res["b"] - pop["b"]) < 4 * sd["b"])
    runs[gv] = (res, sd)
    gap = f"{res['loglik'] - res['elbo']:.1e}"
    rows.append([gv, *np.round([*res["a"], *sample["a"], *pop["a"], sd["a"][0]], 4), gap])
cols = [
    "$\\gamma$",
    "$a_1$",
    "$a_2$",
    "$a_1$ (S)",
    "$a_2$ (S)",
    "$a_1^*$",
    "$a_2^*$",
    "sd($a_1$)",
    "gap",
]
md(pd.DataFrame(rows, columns=cols).set_index("$\\gamma$"))

# %% [markdown]
# Columns: the trained weights $a_1, a_2$; the sample optimum (S); the population optimum
# $a^* = (1, 2)/(5+\gamma)$; the bootstrap standard deviation of the sample optimum's $a_1$. The last
# column is the gap $\log p(x) - \mathcal L$ averaged over the data at the trained
# parameters: about $10^{-4}$ nats or less. It is not exactly 0: the encoder variance is fixed at the *population* posterior
# variance $\frac{\gamma}{5+\gamma}$, while the trained decoder's posterior variance is
# $\frac{\gamma}{\gamma + \|b\|^2}$ with $\|b\|^2$ a little off 5.
#
# **Learned variances.** Make $\log\sigma_q^2$ and a shared $\log\sigma_x^2$ parameters too. The
# encoder family $\mathcal N(a\cdot x, \sigma_q^2)$ contains the exact posterior of *every*
# linear decoder, so maximising the ELBO maximises the likelihood of
# $x\sim\mathcal N(0, bb^\top + \sigma_x^2 I)$: probabilistic PCA. Its maximiser is
# $\sigma_x^2 = \lambda_2(S)\to\gamma$, $b = \sqrt{\lambda_1-\lambda_2}\,u_1\to\pm(1,2)$,
# $\sigma_q^2 = \lambda_2/\lambda_1\to\frac{\gamma}{5+\gamma}$ (the posterior variance) and
# $a = b/\lambda_1$, and there the bound is tight: the gap closes. (One variance per coordinate
# would not be identifiable here: 4 parameters for the 3 entries of $C$.)

# %%
# NBVAL_IGNORE_OUTPUT
gv = 1.0
x_data = T.sample_data(N, gv, seed=12)
res_l = T.fit(T.LinearGaussianVAE(learn_variances=True), x_data, steps=250, lr=0.05, n_samples=16)
opt_l = T.sample_optimum_learned(x_data)
# log-likelihood of the sample optimum: x ~ N(0, b b^T + var_x I) (probabilistic PCA)
cov_l = np.outer(opt_l["b"], opt_l["b"]) + opt_l["var_x"] * np.eye(2)
quad = np.einsum("ni,ij,nj->n", x_data, np.linalg.inv(cov_l), x_data).mean()
loglik_opt = -0.5 * (np.linalg.slogdet(2 * np.pi * cov_l)[1] + quad)
assert abs(loglik_opt - opt_l["elbo"]) < 1e-6  # the bound is tight at the optimum
sd_l = T.optimum_sampling_std(N, gv, learn_variances=True, n_boot=1000, seed=0)
learned = pd.DataFrame(
    {
        "trained": [res_l["var_x"], res_l["var_q"], res_l["elbo"], res_l["loglik"]],
        "sample optimum": [opt_l["var_x"], opt_l["var_q"], opt_l["elbo"], loglik_opt],
        "population": [gv, gv / (5 + gv), np.nan, np.nan],
    },
    index=[
        "decoder variance $\\sigma_x^2$",
        "encoder variance $\\sigma_q^2$",
        "mean ELBO",
        "mean log-likelihood",
    ],
)
md(learned.round(4))
assert abs(res_l["var_x"] - opt_l["var_x"]) < 0.25 * sd_l["var_x"]
assert abs(res_l["var_x"] - gv) < 4 * sd_l["var_x"]
assert abs(res_l["var_q"] - opt_l["var_q"]) < 0.25 * sd_l["var_q"]
assert abs(res_l["var_q"] - gv / (5 + gv)) < 4 * sd_l["var_q"]
assert abs(res_l["elbo"] - opt_l["elbo"]) < 1e-3 and 0 <= res_l["loglik"] - res_l["elbo"] < 1e-3

# %% [markdown]
# The figure shows the encoder weights against the posterior-mean weights $\frac{(1,2)}{5+\gamma}$
# (left) and, during training, the gap $\log p(x) - \mathcal L$ — the mean KL from the encoder to
# the posterior of the current decoder (right, log scale). The ELBO itself is not plotted: after a
# few dozen steps its curve is flat at this scale, and the gap is what tells a good encoder from a
# bad one. The gap falls by a factor of more than 300 in the first hundred steps. Then the three
# fixed-variance curves level off at a few times $10^{-5}$: that floor is structural, not noise —
# the encoder variance is fixed at the population value $\frac{\gamma}{5+\gamma}$, not at the
# trained decoder's posterior variance (see the table above). Only the learned-variance curve,
# whose encoder can match the posterior exactly, keeps falling.

# %%
gs = np.linspace(0.05, 5, 200)
fig, axes = plt.subplots(1, 2, figsize=(10.5, 4))
axes[0].plot(gs, 1 / (5 + gs), "k-", label=r"$1/(5+\gamma)$")
axes[0].plot(gs, 2 / (5 + gs), "k--", label=r"$2/(5+\gamma)$")
for gv_, (res, sd) in runs.items():
    axes[0].errorbar([gv_, gv_], res["a"], yerr=4 * sd["a"], fmt="o", color="C1", capsize=3)
axes[0].plot([], [], "o", color="C1", label=r"trained $a_1, a_2$ ($\pm 4$ sd)")
axes[0].set_xlabel(r"noise variance $\gamma$")
axes[0].set_ylabel("encoder weight")
axes[0].legend(fontsize=8)
steps = np.arange(len(res_l["elbo_trace"])) * 10
curves = [(res, rf"fixed variances, $\gamma$ = {gv_}") for gv_, (res, _) in runs.items()]
for res, lab in [*curves, (res_l, r"learned variances, $\gamma$ = 1")]:
    gap = res["loglik_trace"] - res["elbo_trace"]
    axes[1].semilogy(steps, gap, marker="o", markevery=[0], label=lab)  # o: the start
axes[1].set_xlabel("Adam step")
axes[1].set_ylabel(r"gap $\log p(x) - \mathcal{L}$ (nats, mean)")
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% tags=["remove-cell"]
for res_, _ in [*runs.values(), (res_l, None)]:
    gap = res_["loglik_trace"] - res_["elbo_trace"]
    assert np.all(gap >= -1e-12) and gap[10] < gap[0] / 300  # > 300x in the first 100 steps
    assert gap[10:].max() < 1e-3 and res_["loglik"] - res_["elbo"] < 3e-4  # floor; final gap
floors = [(r["loglik_trace"] - r["elbo_trace"])[-5:].min() for r, _ in runs.values()]
gap_l = res_l["loglik_trace"] - res_l["elbo_trace"]
assert all(1e-6 < fl < 1e-4 for fl in floors)  # fixed variances: a floor of order 1e-5
assert gap_l[-1] < min(floors) / 10  # learned variances: keeps falling below it

# %% [markdown]
# ## 2.8 The two gradient estimators (eqs. (35)–(36))
#
# Training needs the gradient of $\mathbb E_q f(z)$, $f(z) = \log p(x\mid z)$, with respect to the
# encoder parameters, here $a$ (with $\mu = a\cdot x$, $\sigma^2$ fixed). The tutorial names two
# problems with the plain Monte Carlo estimate (35), $\frac1L\sum_l f(z_l)$ with $z_l\sim q$.
#
# **Differentiating (35) gives 0.** Once drawn, the $z_l$ are numbers; (35) does not contain $a$ at
# all, so its derivative is 0 — not an estimate of the gradient. That is the tutorial's second
# problem, and it is why an estimator of the gradient has to be *constructed*. There are two
# constructions.
#
# * **Score function** (the log-derivative trick). Differentiate the integral, not the samples:
#   $\nabla_a\int f(z)\,q_a(z)\,dz = \int f(z)\,\nabla_a q_a(z)\,dz = \mathbb E_q\big[f(z)\,\nabla_a\log q_a(z)\big]$, so
#   $\;\hat g_{\rm SF} = \frac1L\sum_l f(z_l)\,\frac{z_l-\mu}{\sigma^2}\,x$. It needs only values of
#   $f$, not its derivative.
# * **Reparameterisation** (36). Write $z = \mu + \sigma\varepsilon$, so the expectation is over
#   $\varepsilon$, which does not depend on $a$, and differentiate inside:
#   $\;\hat g_{\rm RP} = \frac1L\sum_l \nabla_a f(\mu + \sigma\varepsilon_l) = \frac1L\sum_l f'(z_l)\,x$.
#
# The tutorial's first problem, that (35) "has very high variance", is a wrong statement: as an
# estimate of the *value*, (35) and (36) are the same random variable ($\mu + \sigma\varepsilon$ has
# law $q$). What differs is the variance of the two *gradient* estimators. In Torch, at $x = (1, 2)$,
# $a = (0.1, 0.1)$, $b = (0.5, 1)$, $\gamma = 1$, $\sigma^2 = 1/6$, with the same 20 000 draws for
# all three:

# %%
# NBVAL_IGNORE_OUTPUT
x_pt = torch.tensor([1.0, 2.0], dtype=torch.float64)
b_pt = torch.tensor([0.5, 1.0], dtype=torch.float64)
a_pt = torch.tensor([0.1, 0.1], dtype=torch.float64, requires_grad=True)
sd_q = (1 / 6) ** 0.5


def f(zz):  # log p(x | z), decoder N(b z, I)
    return torch.distributions.Normal(zz[:, None] * b_pt, 1.0).log_prob(x_pt).sum(-1)


eps_pt = torch.randn(20_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
q = torch.distributions.Normal(x_pt @ a_pt, sd_q)
# what q.sample() returns: numbers, with no path back to a
z_fixed = (x_pt @ a_pt + sd_q * eps_pt).detach()
# eq. (35): est_35.grad_fn is None, so its gradient with respect to a is zero
est_35 = f(z_fixed).mean()
assert est_35.grad_fn is None  # no graph: backward() through it gives no gradient for a
# reparameterised (36): z = mu + sigma eps keeps the path to a
(g_rp,) = torch.autograd.grad(f(x_pt @ a_pt + sd_q * eps_pt).mean(), a_pt)
# score function: surrogate f(z) log q(z), f(z) held fixed
(g_sf,) = torch.autograd.grad((f(z_fixed).detach() * q.log_prob(z_fixed)).mean(), a_pt)
estimators = pd.DataFrame(
    [g_rp.tolist(), g_sf.tolist(), [17 / 8, 17 / 4]],
    columns=["$\\partial/\\partial a_1$", "$\\partial/\\partial a_2$"],
    index=["reparameterised (36)", "score function", "exact (sympy, below)"],
)
md(estimators.round(3))
display(
    Markdown(
        f"differentiate (35) through the sampled $z$: `grad_fn` is `{est_35.grad_fn}`, no gradient"
    )
)

# %% [markdown]
# The two constructions land near the exact gradient, the score function visibly less close with
# the same draws. Both are unbiased, and sympy gives their exact means and single-sample variances
# (by Gaussian integration over $z\sim q$):

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
show(r"\nabla_a \mathbb E_q \log p(x\mid z)", exact_grad.T)
show(r"\operatorname{Var}\hat g_{\rm RP}^{(L=1)}", moments["reparam"][1].T)
show(
    r"\operatorname{Var}\hat g_{\rm SF}^{(L=1)}",
    moments["score"][1].T.applyfunc(lambda e: sp.N(e, 6)),
)
assert moments["score"][0] == exact_grad and moments["reparam"][0] == exact_grad
var_sf = np.array([float(sp.N(e)) for e in moments["score"][1]])
var_rp = np.array([float(e) for e in moments["reparam"][1]])
ratio = var_sf / var_rp
display(Math(rf"\text{{variance ratio SF / RP: }} {ratio[0]:.0f},\ {ratio[1]:.0f}"))

# %% tags=["remove-cell"]
exact = np.array([float(e) for e in exact_grad])
assert np.allclose(exact, [17 / 8, 17 / 4])  # the row of the table above
assert est_35.grad_fn is None and not est_35.requires_grad
assert np.all(np.abs(g_rp.numpy() - exact) < 5 * np.sqrt(var_rp / 20_000))
assert np.all(np.abs(g_sf.numpy() - exact) < 5 * np.sqrt(var_sf / 20_000))
assert np.all(ratio > 300)

# %% [markdown]
# The figure repeats each estimator 4000 times for each $L$ and compares the variance of the
# $a_1$-component with the exact single-sample variance divided by $L$.

# %%
# NBVAL_IGNORE_OUTPUT
Ls = [1, 2, 4, 8, 16, 32, 64]
emp = {"score": [], "reparam": []}
for L_ in Ls:
    est = T.gradient_estimates(x_pt, a_pt.detach(), b_pt, 1.0, 1 / 6, L_, 4000, seed=L_)
    for name in emp:
        mean, var = est[name][:, 0].mean(), est[name][:, 0].var()
        exact_var = (var_sf if name == "score" else var_rp)[0] / L_
        assert abs(mean - float(exact_grad[0])) < 5 * np.sqrt(exact_var / 4000)  # unbiased
        assert abs(var / exact_var - 1) < 0.15  # variance = single-sample variance / L
        emp[name].append(var)
fig, ax = plt.subplots(figsize=(5.8, 4.2))
for name, col, lab in (("score", "C3", "score function"), ("reparam", "C0", "reparameterised")):
    v1 = (var_sf if name == "score" else var_rp)[0]
    ax.loglog(Ls, emp[name], "o", color=col, label=f"{lab} (Torch, 4000 repetitions)")
    ax.loglog(Ls, v1 / np.array(Ls), "-", color=col, label=f"{lab}: exact / $L$ (sympy)")
ax.set_xlabel("samples per estimate $L$")
ax.set_ylabel(r"variance of the $\partial/\partial a_1$ estimate")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Here the score-function estimator needs several hundred times more samples for the same
# precision, and its variance even depends on the additive constant $-\log(2\pi\gamma)$ in $f$ (a
# baseline would remove that part); the pathwise estimator does not see constants at all. This —
# not the variance of the value estimate — is why $L = 1$ suffices with the reparameterisation
# trick, and why scVI (chapter 4) uses it.
#
# ## 2.9 What the ledger says about (29)–(54)
#
# Every equation (29)–(54) and every claim of the prose around them has an entry in
# `derivations/ledger_vae.py` whose `check()` computes the verdict (run by `tests/test_ledger.py`).
# Apart from the noise covariance of (39)/(47) and the slip in (48) (slips with an obvious
# reading), every printed formula (29)–(54) holds; what needs correcting is in the prose. The entries that are not `ok`:

# %%
not_ok = pd.DataFrame(
    [(e.label, e.topic, e.tier, e.verdict) for e in ENTRIES if e.verdict != "ok"],
    columns=["entry", "topic", "tier", "verdict"],
)
md(not_ok.set_index("entry"))
n_ok = sum(e.verdict == "ok" for e in ENTRIES)
display(Math(rf"\text{{{n_ok} of {len(ENTRIES)} entries are ok}}"))

# %% [markdown]
# ## Key takeaways
#
# 1. For any model and any encoder, $\log p(x) = \mathcal L(x) + \mathrm{KL}(q\,\|\,p(z\mid x))$:
#    the ELBO is a lower bound whose gap is the encoder's distance to the true posterior.
# 2. With a Gaussian decoder, $\mathbb E_q\|x - bz\|^2 = \|x - b\mu\|^2 + \sigma_q^2\|b\|^2$: the
#    VAE is an autoencoder with a penalty on the code and a ridge on the decoder whose weight is
#    the encoder's variance — the $\lambda$ of chapter 1, chosen by the model.
# 3. A decoder whose coordinates are independent given $z$ still models covariance: all of it is
#    $\operatorname{Cov}\mu(z)$ (here $bb^\top$). In scVI the negative-binomial mean carries the
#    gene–gene structure.
# 4. The stationary conditions (54) solve in closed form: two minima $b = \pm(1,2)$, two saddles
#    along the noise direction, and a saddle at the origin; at the minima the bound is tight.
# 5. Differentiating the Monte Carlo estimate (35) gives 0; the score-function and reparameterised
#    estimators are two separate constructions, and the second has hundreds of times less variance here.
#
# ## Exercises
#
# **Exercise 1 (the β-VAE).** Weight the KL of the ELBO by $\beta > 0$:
# $\mathcal L_\beta = \mathbb E_q\log p(x\mid z) - \beta\,\mathrm{KL}(q\,\|\,p(z))$, with the fixed
# variances of 2.4. Derive the minimiser of the population loss, $a(\beta)$ and $b(\beta)$ (take
# the branch with $a_1 > 0$). Which terms of $L(a, b)$ does $\beta$ multiply? For $\gamma = 1$,
# $\beta = 4$ (`EXERCISE_CH2_BETA`), what is $a_1$? Beyond which $\beta$ does the code collapse
# to $a = b = 0$?
#
# **Exercise 2 (the noise points are saddles).** Prove that the two stationary points along the
# noise direction are saddles. Use the profile $P(b)$ of 2.5: rotate $b$ at fixed length from
# the noise point, $b(t) = \beta_n(\cos t\,u_2 + \sin t\,u_1)$ with $\beta_n^2 = \sqrt{\gamma(5+\gamma)} - \gamma$,
# and compute $\frac{d^2}{dt^2}P(b(t))$ at $t = 0$ for $\gamma = 1$ (`EXERCISE_CH2_SADDLE`). Why
# does a negative value, together with Step 1, prove that these points are saddles of $L$?
#
# Replace `None` by your answers and run the cell: a wrong answer raises an `AssertionError` with
# a hint. The solutions are at the end of the chapter.

# %%
answer_1 = None  # exercise 1: a1 at gamma = 1, beta = 4
answer_2 = None  # exercise 2: d^2 P / dt^2 at t = 0, gamma = 1
if answer_1 is not None:
    check_beta_vae(answer_1)
if answer_2 is not None:
    check_noise_saddle_curvature(answer_2)

# %% [markdown]
# ## Solutions
#
# <details><summary>Solution to exercise 1</summary>
#
# $\beta$ multiplies the KL, i.e. only the code penalty $\frac12 a^\top Ca$; the ridge
# $\frac{\|b\|^2}{2(5+\gamma)}$ comes from the reconstruction term and keeps its weight:
#
# $$L_\beta(a, b) = \tfrac\beta2 a^\top C a + \frac{\|b\|^2}{2(5+\gamma)} + \frac{\|b\|^2\,a^\top C a - 2\,b^\top C a + \operatorname{tr} C}{2\gamma}.$$
#
# Step 1 becomes $\nabla_a L_\beta = \frac1\gamma C\big((\beta\gamma + s)a - b\big) = 0$, so
# $a = b/(\beta\gamma + s)$. Substituting, the profile is
# $\frac{s}{2(5+\gamma)} - \frac{b^\top Cb}{2\gamma(\beta\gamma + s)} + \text{const}$, minimised
# along the top eigenvector $u_1$ ($\lambda = 5+\gamma$); its derivative in $s$ vanishes when
# $(\beta\gamma + s)^2 = \beta(5+\gamma)^2$, i.e.
#
# $$s = (5+\gamma)\sqrt\beta - \beta\gamma,\qquad b = \sqrt{s}\,\frac{(1,2)}{\sqrt5},\qquad a = \frac{b}{(5+\gamma)\sqrt\beta}.$$
#
# At $\beta = 1$ this is $(a^*, b^*)$. For $\gamma = 1$, $\beta = 4$: $s = 12 - 4 = 8$ and
# $a_1 = \sqrt{8/5}/12 \approx 0.1054$ (smaller than $1/6$: a heavier KL shrinks the code). The
# solution needs $s > 0$, i.e. $\beta < \big(\frac{5+\gamma}{\gamma}\big)^2$ ($= 36$ at
# $\gamma = 1$); beyond it the minimum is $a = b = 0$: the code carries no information
# ("posterior collapse"), just as chapter 1's penalised autoencoder collapses to 0 once its
# $\lambda$ is large enough.
#
# </details>
#
# <details><summary>Solution to exercise 2</summary>
#
# Along the rotation $\|b(t)\|^2 = \beta_n^2$ is fixed, so only
# $b^\top Cb = \beta_n^2\big(\gamma\cos^2t + (5+\gamma)\sin^2t\big) = \beta_n^2(\gamma + 5\sin^2 t)$
# varies, and
#
# $$P(b(t)) = \text{const} - \frac{\beta_n^2(\gamma + 5\sin^2t)}{2\gamma(\gamma + \beta_n^2)},\qquad
# \frac{d^2P}{dt^2}\Big|_{t=0} = -\frac{5\beta_n^2}{\gamma(\gamma + \beta_n^2)} .$$
#
# At $\gamma = 1$, $\beta_n^2 = \sqrt6 - 1$ and the curvature is $-5(1 - 1/\sqrt6)\approx -2.9588 < 0$.
# Since $P(b) = \min_a L(a, b)$, the path $\big(a(t), b(t)\big)$ with $a(t) = b(t)/(\gamma + \beta_n^2)$
# (Step 1) has $L = P$, so $L$ decreases along it from the noise point. In the other directions it
# increases: $L$ is strictly convex in $a$ (Hessian $\frac{\gamma+s}{\gamma}C$), and along the
# length of $b$ the radial function of 2.5 has $\frac{d^2P}{ds^2} = \frac{\lambda}{(\gamma+s)^3} > 0$.
# A stationary point with both a descent and an ascent direction is a saddle — index 1, as the
# Hessian table in 2.6 says.
#
# </details>

# %% tags=["remove-cell"]
# the solutions above, computed and passed to the checks (the checks are tested in
# tests/test_exercises_chapter2.py)
g1, beta4 = EXERCISE_CH2_BETA["gamma"], EXERCISE_CH2_BETA["beta"]
s_beta = (5 + g1) * np.sqrt(beta4) - beta4 * g1
with contextlib.redirect_stdout(io.StringIO()):  # a check cell prints nothing
    check_beta_vae(np.sqrt(s_beta / 5) / ((5 + g1) * np.sqrt(beta4)))
gs_ = EXERCISE_CH2_SADDLE["gamma"]
bn2 = np.sqrt(gs_ * (5 + gs_)) - gs_
with contextlib.redirect_stdout(io.StringIO()):
    check_noise_saddle_curvature(-5 * bn2 / (gs_ * (gs_ + bn2)))
