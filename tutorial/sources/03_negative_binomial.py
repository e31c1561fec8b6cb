# %% [markdown]
# # Chapter 3 — From Gamma-Poisson to the zero-inflated negative binomial (tutorial eqs. (55)–(59))
#
# A single-cell RNA-seq experiment hands us a matrix of **counts**: how many molecules of gene
# $g$ were captured in cell $n$. Chapters 1 and 2 modelled real-valued data with Gaussian noise;
# for counts the natural first guess is a Poisson. This chapter shows why real counts need
# something wider (the negative binomial, NB), derives it from the generative process of scVI
# (eq. (55)) by integrating out one latent variable, and then adds zero inflation (the ZINB of
# eqs. (58)–(59)). Along the way it corrects the tutorial's formulas where they would give wrong
# numbers.
#
# **Notation.** $\mu = l\rho$ is the NB mean (library size $l$ times the gene's expected frequency
# $\rho$), $\theta$ the inverse dispersion (`theta` in `scvi_edu` and scvi-tools). The tutorial's
# (55) keeps a count with probability $\sigma(f_h)$; the code uses the opposite logit:
#
# | tutorial | code (`scvi_edu`, scvi-tools) | meaning |
# |---|---|---|
# | $\sigma(f_h)$ | `1 - sigmoid(zi_logits)` | probability of keeping the count |
# | $\mathrm{zi} = -f_h$ | `zi_logits` (`px_dropout` in the model's outputs) | logit of a technical zero |
# | $\pi = \sigma(\mathrm{zi})$ | `torch.sigmoid(zi_logits)` | probability of a technical zero |
# | $\theta$ | `theta` (the module stores $\log\theta$ as `px_r`) | inverse dispersion (NB *size*) |
# | $\rho$ | `px_scale` | expected frequency of the gene, $f_w(z_n, s_n)$ (sums to 1 over genes) |
# | $l$ | `exp(library)` | library size; the model's `library` is $\log l$ |
# | $\mu = l\rho$ | `mu` (`px_rate`) | NB mean |

# %%
import contextlib
import io
import math
import random
import re
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
from scipy import optimize, special, stats

from derivations import negative_binomial as NB
from derivations.ledger import by_label
from derivations.ledger_scvi import DEMOS
from scvi_edu.datasets import pbmc68k_counts
from scvi_edu.display import markdown_table
from scvi_edu.distributions import log_nb_positive, log_zinb_positive
from scvi_edu.exercises import check_theta_fit
from scvi_edu.fast_likelihood import zinb_log_likelihood

md = markdown_table  # a DataFrame as a Markdown table: $...$ in labels renders


torch.manual_seed(0)
rng = np.random.default_rng(0)
random.seed(0)
torch.set_num_threads(1)
# %matplotlib inline

# %% [markdown]
# ## 3.1 Why not Poisson? Real counts are over-dispersed
#
# A Poisson count has variance equal to its mean. Take the blood cells of
# `scvi_edu.datasets.pbmc68k_counts()` (integer UMI counts; the table gives their size) and
# compare, gene by gene, the sample variance with the sample mean:

# %%
pbmc = pbmc68k_counts()
counts = np.asarray(pbmc.X, dtype=np.float64)
gene_mean, gene_var = counts.mean(0), counts.var(0)
expressed = gene_mean > 0
ratio_vm = gene_var[expressed] / gene_mean[expressed]
summary = pd.DataFrame(
    {
        "pbmc68k_counts()": [
            counts.shape[0],
            pbmc.obs["cell_type"].nunique(),
            counts.shape[1],
            int(expressed.sum()),
            int((ratio_vm > 1).sum()),
            f"{np.median(ratio_vm):.2f}",
            f"{np.max(ratio_vm):.1f}",
        ]
    },
    index=[
        "cells",
        "cell types",
        "genes",
        "genes with a count",
        "genes with variance > mean",
        "median variance / mean",
        "largest variance / mean",
    ],
)
md(summary)  # one column: a narrow table

# %% [markdown]
# Almost every gene varies more than a Poisson allows, and the excess grows with the mean. The
# negative binomial derived below has variance $\mu + \mu^2/\theta$: a parabola in $\mu$, which
# is what the figure shows (the lines are not fitted to these points; they only show the shape).
# Part of the excess comes from mixing cell types (the table counts them) and from different sequencing depths; the
# model of scVI explains those with $z_n$ and $l_n$, and keeps the NB for what is left.

# %%
m_grid = np.logspace(-3, 1.6, 100)
fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(gene_mean[expressed], gene_var[expressed], ".", ms=3, color="gray", label="gene")
ax.loglog(m_grid, m_grid, "k-", lw=1.5, label=r"Poisson: $\mathrm{Var} = \mu$")
for th, ls in ((1.0, "--"), (0.2, ":")):
    ax.loglog(
        m_grid,
        m_grid + m_grid**2 / th,
        "C0" + ls,
        lw=1.5,
        label=rf"NB: $\mu + \mu^2/\theta$, $\theta = {th:g}$",
    )
ax.set_xlabel(r"sample mean of a gene, $\hat\mu$")
ax.set_ylabel(r"sample variance of the gene")
ax.set_title(f"pbmc68k_counts(): {counts.shape[1]} genes, {counts.shape[0]} cells")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 3.2 The generative process (eq. (55))
#
# For cell $n$ and gene $g$, scVI assumes
#
# $$
# \begin{aligned}
# z_n &\sim \mathcal N(0, I), & l_n &\sim \log\mathcal N(l_\mu, l_{\sigma^2}),
#   & \rho_n &= f_w(z_n, s_n),\\
# w_{ng} &\sim \mathrm{Gamma}\big(\theta_g, \tfrac{\theta_g}{\rho_{ng}}\big),
#   & y_{ng} &\sim \mathrm{Poisson}(l_n w_{ng}), & &\\
# h_{ng} &\sim \mathrm{Bernoulli}\big(\sigma(f_h^g(z_n, s_n))\big),
#   & x_{ng} &= \begin{cases} y_{ng} & h_{ng} = 1\\ 0 & h_{ng} = 0 .\end{cases} & &
# \end{aligned}
# $$
#
# Read it as a story about one gene in one cell: the cell's state $z_n$ fixes an expected
# frequency $\rho$; the actual expression level $w$ fluctuates around it (a Gamma with mean
# $\rho$ and variance $\rho^2/\theta$); sequencing samples $y \sim \mathrm{Poisson}(l w)$
# molecules; and with probability $\pi = \sigma(-f_h)$ the count is lost ($x = 0$). We follow the
# story with numpy for fixed $l = 3$, $\rho = 2$ ($\mu = 6$), $\theta = 1.7$, $f_h = 0.8$:

# %%
# NBVAL_IGNORE_OUTPUT
l_, rho_, theta_, f_h_ = 3.0, 2.0, 1.7, 0.8  # mu = l * rho = 6
mu_ = l_ * rho_
pi_ = 1 / (1 + math.exp(f_h_))  # P(technical zero) = sigmoid(zi) with zi = -f_h
n_draws = 200_000
w_draws = rng.gamma(shape=theta_, scale=rho_ / theta_, size=n_draws)  # rate theta/rho
y_draws = rng.poisson(l_ * w_draws)
h_draws = rng.random(n_draws) >= pi_  # h = 1: keep
x_draws = np.where(h_draws, y_draws, 0)
draws = pd.DataFrame(
    {
        "mean": [w_draws.mean(), y_draws.mean(), x_draws.mean()],
        "variance": [w_draws.var(), y_draws.var(), x_draws.var()],
        "fraction of zeros": [0.0, np.mean(y_draws == 0), np.mean(x_draws == 0)],
    },
    index=["$w$ (Gamma)", "$y$ (Poisson of $l\\,w$)", "$x$ (after dropout)"],
)
md(draws.round(3))
# what the text below claims: E w = rho, E y = l rho = 6, and Var y far above E y
se_y = math.sqrt(y_draws.var() / n_draws)
assert abs(w_draws.mean() - rho_) < 4 * math.sqrt(w_draws.var() / n_draws)
assert abs(y_draws.mean() - mu_) < 4 * se_y
assert y_draws.var() > 3 * y_draws.mean()

# %% [markdown]
# The Gamma step alone makes $y$ over-dispersed: its variance is far above its mean of about 6.
# Sections 3.3–3.5 derive every number in this table.
#
# ## 3.3 The Gamma–Poisson mixture is a negative binomial (eq. (56))
#
# Integrate $w$ out. Write $\beta = \theta/\rho$ for the Gamma rate. Collecting the powers of $w$
# and the exponentials,
#
# $$
# \begin{aligned}
# P(y = k) &= \int_0^\infty \frac{(lw)^k e^{-lw}}{k!}\,
#   \frac{\beta^\theta}{\Gamma(\theta)} w^{\theta-1} e^{-\beta w}\,dw \\
# &= \frac{l^k \beta^\theta}{k!\,\Gamma(\theta)}
#   \int_0^\infty w^{k+\theta-1} e^{-(\beta + l) w}\,dw .
# \end{aligned}
# $$
#
# The integrand is the **kernel of a Gamma density** with shape $k+\theta$ and rate $\beta + l$,
# so the integral is that density's normaliser, $\Gamma(k+\theta)/(\beta+l)^{k+\theta}$. Hence
#
# $$
# P(y = k) = \frac{\Gamma(k+\theta)}{k!\,\Gamma(\theta)}\,
#   \frac{\beta^\theta\, l^k}{(\beta + l)^{k+\theta}}
# = \frac{\Gamma(k+\theta)}{k!\,\Gamma(\theta)}
#   \Big(\frac{\theta}{\theta + l\rho}\Big)^{\theta} \Big(\frac{l\rho}{\theta + l\rho}\Big)^{k},
# $$
#
# multiplying numerator and denominator by $\rho^{k+\theta}$ in the last step. This is
# $\mathrm{NB}(k \mid \mu = l\rho, \theta)$, as the tutorial's (56) says (its derivation does the
# same with the substitution $u = (\beta + l)w$). sympy confirms the two steps; change the
# integrand and re-run:

# %%
w, beta = sp.symbols("w beta", positive=True)
k = sp.Symbol("k", integer=True, nonnegative=True)
l, rho, theta, mu = NB.l, NB.rho, NB.theta, NB.mu

kernel = sp.integrate(w ** (k + theta - 1) * sp.exp(-beta * w), (w, 0, sp.oo), conds="none")
display(Math(r"\int_0^\infty w^{k+\theta-1}e^{-\beta w}\,dw = " + sp.latex(sp.powsimp(kernel))))

p_k = (
    l**k
    * (theta / rho) ** theta
    / (sp.factorial(k) * sp.gamma(theta))
    * kernel.subs(beta, theta / rho + l)
)
nb_k = NB.nb_pmf(
    k, l * rho, theta
)  # Gamma(k+theta)/(k! Gamma(theta)) (theta/(theta+mu))^theta (mu/(theta+mu))^k
ratio = sp.simplify(sp.powsimp(sp.expand_power_base(p_k / nb_k, force=True), force=True))
display(Math(r"\frac{P(y=k)}{\mathrm{NB}(k\mid l\rho,\theta)} = " + sp.latex(ratio)))
assert ratio == 1

# %% [markdown]
# The same pmf in the (size, prob) parameterisation of eq. (57) is
# $\frac{\Gamma(x+n)}{\Gamma(n)\,x!}(1-p)^n p^x$ with $n = \theta$ and $p = \mu/(\theta+\mu)$.
# Two **slips** in the tutorial here: it prints $\Gamma(x)!$ for $x!$ ($\Gamma(0)$ is a pole, so
# the printed function is undefined at $x = 0$), and it gives $p \in (0, 1]$ where this
# convention needs $p \in [0, 1)$ ($p$ is the probability of a *success*, $x$ counts successes
# before the $n$-th failure; at $p = 1$ the pmf is $0$ everywhere). scipy's `nbinom(n, p)` uses the
# other convention, so its `p` is our $1 - p$. The numerical check: the Torch log-pmf that
# `scvi_edu` trains with, against scipy, in float64.

# %%
# NBVAL_IGNORE_OUTPUT
ks = np.arange(0, 200)
rows = []
for mu_num, th_num in [(0.05, 0.1), (6.0, 1.7), (6.0, 1e4), (500.0, 0.5), (500.0, 50.0)]:
    ref = stats.nbinom.logpmf(ks, th_num, th_num / (th_num + mu_num))
    args = [
        torch.tensor(v, dtype=torch.float64)
        for v in (ks, np.full(ks.shape, mu_num), np.full(ks.shape, th_num))
    ]
    ours = log_nb_positive(*args).numpy()
    rows.append(
        {
            "mu": mu_num,
            "theta": th_num,
            "max |log-pmf difference|, k < 200": np.max(np.abs(ours - ref)),
        }
    )
nb_check = pd.DataFrame(rows)
assert (nb_check.iloc[:, 2] < 1e-9).all()
nb_check.set_index(["mu", "theta"]).map(lambda v: f"{v:.1e}")

# %% [markdown]
# ### Mean and variance (law of total expectation and variance)
#
# Conditionally on $w$, $y$ is Poisson with mean and variance $lw$, and $w$ has mean $\rho$ and
# variance $\rho^2/\theta$. So
#
# $$
# \begin{aligned}
# \mathbb E y &= \mathbb E[\mathbb E(y\mid w)] = l\rho = \mu,\\
# \mathrm{Var}\,y &= \mathbb E[\mathrm{Var}(y\mid w)] + \mathrm{Var}[\mathbb E(y\mid w)]
# = l\rho + l^2\frac{\rho^2}{\theta} = \mu + \frac{\mu^2}{\theta}.
# \end{aligned}
# $$
#
# The first term is Poisson (sampling) noise, the second the biological fluctuation of $w$.
# The tutorial's phrase "zero inflated **binomial**" (before eq. (56)) is a slip: a binomial has
# variance *below* its mean. sympy integrates the Gamma moments:

# %%
gamma_pdf = (theta / rho) ** theta / sp.gamma(theta) * w ** (theta - 1) * sp.exp(-theta / rho * w)
E_w = sp.simplify(sp.integrate(w * gamma_pdf, (w, 0, sp.oo)))
Var_w = sp.simplify(sp.integrate(w**2 * gamma_pdf, (w, 0, sp.oo)) - E_w**2)
E_y = l * E_w
Var_y = sp.expand((l * E_w + l**2 * Var_w).subs(rho, mu / l))
display(
    Math(
        r"\mathbb E w = "
        + sp.latex(E_w)
        + r",\quad \mathrm{Var}\,w = "
        + sp.latex(Var_w)
        + r",\quad \mathrm{Var}\,y = "
        + sp.latex(Var_y)
    )
)
assert sp.simplify(Var_y - (mu + mu**2 / theta)) == 0
# and the simulated y of section 3.2 (mu = 6, theta = 1.7): 6 + 36 / 1.7 = 27.2
assert abs(y_draws.mean() - mu_) < 0.05 and abs(y_draws.var() / (mu_ + mu_**2 / theta_) - 1) < 0.02

# %% [markdown]
# ## 3.4 The Poisson limit $\theta \to \infty$
#
# When $\theta \to \infty$ the Gamma collapses onto $\rho$ and $y$ should become
# $\mathrm{Poisson}(\mu)$. For the whole pmf, write $\varepsilon = 1/\theta$ and
# $\Gamma(k+\theta)/\Gamma(\theta) = \prod_{j=0}^{k-1}(\theta + j) = \theta^k \prod_j (1 + j\varepsilon)$:
#
# $$
# \begin{aligned}
# \frac{\mathrm{NB}(k\mid\mu,\theta)}{\mathrm{Poisson}(k\mid\mu)}
# &= \frac{\Gamma(k+\theta)}{\Gamma(\theta)\,(\theta+\mu)^k}\Big(1 + \frac{\mu}{\theta}\Big)^{-\theta} e^{\mu}\\
# &= \prod_{j=0}^{k-1}(1 + j\varepsilon)\;(1 + \mu\varepsilon)^{-k}\;(1+\mu\varepsilon)^{-1/\varepsilon}\;e^{\mu}.
# \end{aligned}
# $$
#
# Each factor tends to 1 except $(1+\mu\varepsilon)^{-1/\varepsilon} \to e^{-\mu}$, which cancels
# $e^\mu$. Expanding the logarithm to first order in $\varepsilon$
# ($\log(1+u) = u - u^2/2 + \dots$, $\sum_{j<k} j = k(k-1)/2$) gives how fast:
#
# $$
# \log\frac{\mathrm{NB}(k)}{\mathrm{Poisson}(k)} = \frac{(k-\mu)^2 - k}{2\theta} + O(\theta^{-2}).
# $$
#
# The NB puts more mass than the Poisson far from the mean and less near it, and the
# difference shrinks like $1/\theta$. sympy, with the same three pieces:

# %%
eps, j = sp.symbols("varepsilon j", positive=True)  # eps = 1 / theta
log_gamma_ratio = sp.summation(sp.series(sp.log(1 + j * eps), eps, 0, 3).removeO(), (j, 0, k - 1))
log_ratio = log_gamma_ratio - k * sp.log(1 + mu * eps) - sp.log(1 + mu * eps) / eps + mu
first_order = sp.series(log_ratio, eps, 0, 2).removeO()
display(
    Math(
        r"\log\frac{\mathrm{NB}(k)}{\mathrm{Poisson}(k)} = "
        + sp.latex(sp.factor(first_order.subs(eps, 1 / theta)))
        + r" + O(\theta^{-2})"
    )
)
assert sp.simplify(first_order - eps * ((k - mu) ** 2 - k) / 2) == 0

# %% [markdown]
# The total variation distance $\frac12\sum_k|\mathrm{NB}(k) - \mathrm{Poisson}(k)|$ therefore
# falls like $c/\theta$ with $c = \frac14\,\mathbb E\,|(K-\mu)^2 - K|$, $K \sim \mathrm{Poisson}(\mu)$.
# For $\mu = 5$:

# %%
mu_p = 5.0
kk = np.arange(0, 400)
pois = stats.poisson.pmf(kk, mu_p)
c_pred = 0.25 * np.sum(pois * np.abs((kk - mu_p) ** 2 - kk))
theta_list = [1.0, 10.0, 100.0, 1000.0]
tv = [0.5 * np.abs(stats.nbinom.pmf(kk, t, t / (t + mu_p)) - pois).sum() for t in theta_list]
limit_table = pd.DataFrame(
    {
        "$\\mathrm{TV}(\\mathrm{NB}, \\mathrm{Poisson})$": tv,
        "$\\theta\\cdot\\mathrm{TV}$": np.array(theta_list) * tv,
    },
    index=pd.Index(theta_list, name="$\\theta$"),
)
assert abs(limit_table.iloc[-1, 1] / c_pred - 1) < 0.01
display(
    Math(
        rf"\text{{predicted }}\theta\cdot\mathrm{{TV}}\text{{ for large }}\theta:\ c = {c_pred:.3f}"
    )
)
md(limit_table.round(4))

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
kp = np.arange(0, 21)
axes[0].bar(kp, stats.poisson.pmf(kp, mu_p), color="lightgray", label=r"Poisson($\mu = 5$)")
for t, c in ((0.5, "C3"), (3.0, "C1"), (30.0, "C0")):
    axes[0].plot(
        kp,
        stats.nbinom.pmf(kp, t, t / (t + mu_p)),
        "-",
        color=c,
        lw=1.5,
        label=rf"NB, $\theta = {t:g}$",
    )
axes[0].set_xlabel("count $k$")
axes[0].set_ylabel("probability")
axes[0].legend(fontsize=8)
th_grid = np.logspace(-1, 3, 40)
tv_grid = [0.5 * np.abs(stats.nbinom.pmf(kk, t, t / (t + mu_p)) - pois).sum() for t in th_grid]
axes[1].loglog(
    th_grid, tv_grid, "C0-", label=r"$\frac{1}{2}\sum_k |\mathrm{NB}(k) - \mathrm{Poisson}(k)|$"
)
axes[1].loglog(th_grid, c_pred / th_grid, "k--", lw=1, label=r"first order: $c/\theta$")
axes[1].set_xlabel(r"inverse dispersion $\theta$")
axes[1].set_ylabel(r"total variation distance, $\mu = 5$")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3.5 Zero inflation (eqs. (58)–(59))
#
# Under (55), $x = 0$ happens when the count is dropped ($h = 0$) **or** when it is kept and the
# NB draw is itself $0$. With $\pi = P(h = 0) = \sigma(\mathrm{zi})$, $\mathrm{zi} = -f_h$:
#
# $$P(x=0) = \pi + (1-\pi)\Big(\frac{\theta}{\theta+\mu}\Big)^{\theta},
# \qquad P(x=k>0) = (1-\pi)\,\mathrm{NB}(k\mid\mu,\theta).$$
#
# The tutorial's (58) starts from the right total-probability sum
# $P(X=0\mid h=0)P(h=0) + P(X=0\mid h=1)P(h=1)$ and then substitutes $P(Y=0)$ for the $h=0$
# branch and $1$ for the $h=1$ branch: the **weights are swapped**. Its next line puts the bracket
# of the outer softplus in the wrong place, and its positive case has $k\log\frac{k}{\theta+l\rho}$
# where $k\log\frac{l\rho}{\theta+l\rho}$ belongs. These break computation: used as printed, they
# give wrong probabilities (see the ledger in 3.7). The correct, numerically stable form uses
# $\log\pi = -S(-\mathrm{zi})$ and $\log(1-\pi) = -S(\mathrm{zi})$, with $S(t) = \log(1+e^t)$:
#
# $$
# \begin{aligned}
# \log P(x = 0) &= S\Big(-\mathrm{zi} + \theta\log\tfrac{\theta}{\theta+\mu}\Big) - S(-\mathrm{zi}),\\
# \log P(x = k > 0) &= -S(\mathrm{zi}) + \log \mathrm{NB}(k\mid\mu,\theta).
# \end{aligned}
# $$
#
# The zero case: $\pi + (1-\pi)q = \frac{e^{\mathrm{zi}} + q}{1 + e^{\mathrm{zi}}}
# = \frac{1 + e^{-\mathrm{zi}}q}{1 + e^{-\mathrm{zi}}}$ with $q = \mathrm{NB}(0)$; take the log and
# write $e^{-\mathrm{zi}} q = e^{-\mathrm{zi} + \log q}$. sympy agrees:

# %%
zi, a = sp.Symbol("zi", real=True), sp.Symbol("a", negative=True)  # a = log q = log NB(0)
S = lambda t: sp.log(1 + sp.exp(t))  # noqa: E731  softplus
pi = 1 / (1 + sp.exp(-zi))
zero_gap = sp.simplify(sp.exp(S(-zi + a) - S(-zi)) - (pi + (1 - pi) * sp.exp(a)))
positive_gap = sp.simplify(sp.exp(-S(zi)) - (1 - pi))
display(
    Math(
        r"e^{S(-\mathrm{zi}+a)-S(-\mathrm{zi})} - \big(\pi + (1-\pi)e^{a}\big) = "
        + sp.latex(zero_gap)
        + r",\qquad e^{-S(\mathrm{zi})} - (1-\pi) = "
        + sp.latex(positive_gap)
    )
)
assert zero_gap == 0 and positive_gap == 0

# %% [markdown]
# ### Agreement with `scvi_edu.distributions`
#
# `log_zinb_positive` (and `log_nb_positive`) in float64 against the sympy formulas evaluated by
# mpmath at 40 digits, at 60 random points over wide ranges ($\mu$ from $10^{-3}$ to $10^4$,
# $\theta$ from $10^{-2}$ to $10^4$, zi from $-20$ to $20$, half of the counts 0):

# %%
# NBVAL_IGNORE_OUTPUT
pts = [
    (
        int(rng.integers(0, 2)) * int(rng.integers(1, 500)),
        10 ** rng.uniform(-3, 4),
        10 ** rng.uniform(-2, 4),
        rng.uniform(-20, 20),
    )
    for _ in range(60)
]
xs, ms, ts, zs = sp.symbols("x m t z", positive=True)
sym_pos = sp.lambdify((xs, ms, ts, zs), NB.zinb_log_pmf_stable(xs, ms, ts, zs), "mpmath")
sym_zero = sp.lambdify((ms, ts, zs), NB.zinb_log_pmf_stable(0, ms, ts, zs), "mpmath")
sym_nb = sp.lambdify((xs, ms, ts), sp.log(NB.nb_pmf(xs, ms, ts)), "mpmath")
errs_zinb, errs_nb = [], []
for x_, m_, t_, z_ in pts:
    ref = float(sym_zero(m_, t_, z_) if x_ == 0 else sym_pos(x_, m_, t_, z_))
    args = [torch.tensor([v], dtype=torch.float64) for v in (x_, m_, t_, z_)]
    errs_zinb.append(abs(float(log_zinb_positive(*args)) - ref) / max(1.0, abs(ref)))
    ref_nb = float(sym_nb(x_, m_, t_))
    errs_nb.append(abs(float(log_nb_positive(*args[:3])) - ref_nb) / max(1.0, abs(ref_nb)))
agreement = pd.DataFrame(
    {"largest relative error": [max(errs_zinb), max(errs_nb)]},
    index=["log_zinb_positive", "log_nb_positive"],
)
assert (agreement.iloc[:, 0] < 1e-10).all()
agreement.map(lambda v: f"{v:.1e}")

# %% [markdown]
# ### The simulated counts follow the corrected ZINB
#
# Back to the draws of §3.2: a chi-square goodness-of-fit test compares the counts $x$ with the
# ZINB of the corrected weights ($\mathrm{zi} = -f_h$) and with the tutorial's swapped weights
# (equivalent to $\mathrm{zi} = +f_h$).


# %%
def zinb_pmf(j_, zi_):
    args = [torch.tensor([v], dtype=torch.float64) for v in (j_, mu_, theta_, zi_)]
    return math.exp(float(log_zinb_positive(*args)))


def chi2_test(samples, zi_):
    probs = []
    while not probs or n_draws * zinb_pmf(len(probs), zi_) >= 5:
        probs.append(zinb_pmf(len(probs), zi_))
    K = len(probs)
    observed = [np.sum(samples == j_) for j_ in range(K)] + [np.sum(samples >= K)]
    expected = [n_draws * q for q in probs] + [n_draws * (1 - sum(probs))]
    return stats.chisquare(observed, expected)


# NBVAL_IGNORE_OUTPUT
res_c, res_s = chi2_test(x_draws, -f_h_), chi2_test(x_draws, f_h_)
assert res_c.pvalue > 1e-3 and res_s.pvalue < 1e-10
chi2_table = pd.DataFrame(
    {
        "$P(x = 0)$, model": [f"{zinb_pmf(0, -f_h_):.3f}", f"{zinb_pmf(0, f_h_):.3f}"],
        "$P(x = 0)$, simulated": [f"{np.mean(x_draws == 0):.3f}"] * 2,
        "$\\chi^2$": [f"{res_c.statistic:.1f}", f"{res_s.statistic:.0f}"],
        "p-value": [
            f"{res_c.pvalue:.2f}",
            f"{res_s.pvalue:.0e}" if res_s.pvalue > 0 else "$< 10^{-300}$",
        ],
    },
    index=["$\\mathrm{zi} = -f_h$ (corrected)", "$\\mathrm{zi} = +f_h$ (58)"],
)
md(chi2_table)

# %% [markdown]
# The corrected pmf fits the simulation (a p-value far from 0); the swapped weights are rejected
# outright: they put $P(x = 0) = 0.71$ where the simulation has $0.36$.

# %%
kb = np.arange(0, 26)
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.bar(
    kb,
    [np.mean(x_draws == j_) for j_ in kb],
    color="lightgray",
    label="simulated (55), 200 000 draws",
)
ax.plot(
    kb,
    [zinb_pmf(j_, -f_h_) for j_ in kb],
    "k-",
    lw=1.5,
    label=r"ZINB, $\mathrm{zi} = -f_h$ (corrected)",
)
ax.plot(
    kb,
    [zinb_pmf(j_, f_h_) for j_ in kb],
    "C3--",
    lw=1.5,
    label=r"weights of (58): $\mathrm{zi} = +f_h$",
)
ax.set_xlabel("count $x$")
ax.set_ylabel("probability")
ax.set_title(r"$\mu = 6$, $\theta = 1.7$, $f_h = 0.8$")
ax.legend()
plt.show()

# %% [markdown]
# ### The mean and variance of the ZINB
#
# Write $x = H\,y$ with $H \sim \mathrm{Bernoulli}(1-\pi)$ independent of $y \sim \mathrm{NB}(\mu,
# \theta)$. Since $H^2 = H$, $\mathbb E x^r = (1-\pi)\,\mathbb E y^r$ for every $r \ge 1$:
#
# $$
# \begin{aligned}
# \mathbb E x &= (1-\pi)\mu,\\
# \mathrm{Var}\,x &= (1-\pi)\Big(\mu + \frac{\mu^2}{\theta} + \mu^2\Big) - (1-\pi)^2\mu^2
# = (1-\pi)\,\mu\Big(1 + \frac{\mu}{\theta} + \pi\mu\Big).
# \end{aligned}
# $$
#
# Zero inflation lowers the mean and adds the over-dispersion $\pi\mu$ to the NB's $\mu/\theta$.
# sympy, from $\mathbb E y^2 = \mathrm{Var}\,y + \mu^2$:

# %%
# NBVAL_IGNORE_OUTPUT
pi_sym = sp.Symbol("pi", positive=True)
E_x = (1 - pi_sym) * mu
E_x2 = (1 - pi_sym) * (Var_y + mu**2)
Var_x = sp.factor(sp.simplify(E_x2 - E_x**2))
Var_x_factor = sp.expand(
    sp.simplify(Var_x / ((1 - pi_sym) * mu))
)  # the bracket 1 + mu/theta + pi mu
display(
    Math(
        r"\mathbb E x = "
        + sp.latex(E_x)
        + r",\qquad \mathrm{Var}\,x = (1 - \pi)\,\mu\,\Big("
        + sp.latex(Var_x_factor)
        + r"\Big)"
    )
)
assert sp.simplify(Var_x - (1 - pi_sym) * mu * (1 + mu / theta + pi_sym * mu)) == 0
zinb_moments = {
    "mean": float(E_x.subs({mu: mu_, pi_sym: pi_})),
    "variance": float(Var_x.subs({mu: mu_, theta: theta_, pi_sym: pi_})),
}
pd.DataFrame(
    {
        "formula": zinb_moments,
        "simulated x (section 3.2)": {"mean": x_draws.mean(), "variance": x_draws.var()},
    }
).round(2)

# %% tags=["remove-cell"]
assert abs(x_draws.mean() / zinb_moments["mean"] - 1) < 0.01
assert abs(x_draws.var() / zinb_moments["variance"] - 1) < 0.02

# %% [markdown]
# ### How $\theta$ and the dropout logit shape the zero mass
#
# $P(x=0) = \pi + (1-\pi)\,(\theta/(\theta+\mu))^\theta$. Even without zero inflation
# ($\pi \to 0$) a small $\theta$ gives many zeros: $(\theta/(\theta+\mu))^\theta \to 1$ as
# $\theta \to 0$, and $\to e^{-\mu}$ (the Poisson value, §3.4) as $\theta \to \infty$. So a zero
# can be explained either by dropout or by over-dispersion, which is why the two compete in
# training (exercise 1 makes this precise).

# %%
thetas = np.logspace(-2, 3, 200)
fig, ax = plt.subplots(figsize=(7, 3.5))
for zi_, c in ((-6.0, "C0"), (-2.0, "C1"), (0.0, "C2"), (2.0, "C3")):
    pi_z = 1 / (1 + np.exp(-zi_))
    ax.semilogx(
        thetas,
        pi_z + (1 - pi_z) * (thetas / (thetas + 5.0)) ** thetas,
        color=c,
        label=rf"$\mathrm{{zi}} = {zi_:g}$ ($\pi = {pi_z:.2g}$)",
    )
ax.axhline(math.exp(-5.0), color="k", lw=0.8, ls=":", label=r"Poisson: $e^{-\mu}$")
ax.set_xlabel(r"inverse dispersion $\theta$")
ax.set_ylabel(r"$P(x = 0)$ at $\mu = 5$")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 3.6 The gradient that training follows
#
# The model trains with `zinb_log_likelihood`, the same log-likelihood summed over genes with its
# gradient written out by hand (cheaper than autograd through the formula above, which a
# training step would otherwise spend much of its time on). One of its derivatives explains what zero inflation learns. With $q = \mathrm{NB}(0)$
# and $\partial_{\mathrm{zi}}\pi = \pi(1-\pi)$,
#
# $$
# \frac{\partial}{\partial\,\mathrm{zi}} \log\big(\pi + (1-\pi)\,q\big)
# = \frac{\pi(1-\pi)(1-q)}{\pi + (1-\pi)q} = p_0 - \pi,
# \qquad p_0 = \frac{\pi}{\pi + (1-\pi)\,q},
# $$
#
# and $\partial_{\mathrm{zi}} \log\big((1-\pi)\,\mathrm{NB}(x)\big) = -\pi$ for $x > 0$. Here
# $p_0$ is Bayes' rule: the posterior probability that an observed zero is a technical one.
# Since $p_0 \ge \pi$, every zero pushes the dropout logit up and every positive count pushes it
# down; the logit stops where the two balance.

# %%
zi_s, q_s = sp.symbols("zi q", real=True)
pi_s = 1 / (1 + sp.exp(-zi_s))
grad_zero = sp.diff(sp.log(pi_s + (1 - pi_s) * q_s), zi_s)
p0_s = pi_s / (pi_s + (1 - pi_s) * q_s)
display(
    Math(
        r"\partial_{\mathrm{zi}}\log p(0) - (p_0 - \pi) = "
        + sp.latex(sp.simplify(grad_zero - (p0_s - pi_s)))
        + r",\qquad \partial_{\mathrm{zi}}\log(1-\pi) + \pi = "
        + sp.latex(sp.simplify(sp.diff(sp.log(1 - pi_s), zi_s) + pi_s))
    )
)
assert sp.simplify(grad_zero - (p0_s - pi_s)) == 0

# %% [markdown]
# The closed-form gradient of `zinb_log_likelihood` against autograd through `log_zinb_positive`,
# for eight genes of one cell (float64):

# %%
# NBVAL_IGNORE_OUTPUT
gen = torch.Generator().manual_seed(0)
x_t = torch.tensor([[0.0, 0.0, 3.0, 0.0, 7.0, 1.0, 0.0, 40.0]], dtype=torch.float64)
mu_t = (torch.rand(1, 8, generator=gen, dtype=torch.float64) * 10).requires_grad_()
theta_t = (torch.rand(1, 8, generator=gen, dtype=torch.float64) * 5 + 0.1).requires_grad_()
zi_t = torch.randn(1, 8, generator=gen, dtype=torch.float64).requires_grad_()
hand = torch.autograd.grad(
    zinb_log_likelihood(x_t, mu_t, theta_t, zi_t).sum(), [mu_t, theta_t, zi_t]
)
auto = torch.autograd.grad(log_zinb_positive(x_t, mu_t, theta_t, zi_t).sum(), [mu_t, theta_t, zi_t])
pi_t = torch.sigmoid(zi_t)
q_t = (theta_t / (theta_t + mu_t)) ** theta_t
p0_t = pi_t / (pi_t + (1 - pi_t) * q_t)
expected = torch.where(x_t == 0, p0_t - pi_t, -pi_t)
grads = pd.DataFrame(
    {
        "max $\\lvert$closed form $-$ autograd$\\rvert$": [
            float((h - a_).abs().max()) for h, a_ in zip(hand, auto, strict=True)
        ],
    },
    index=[
        "$\\partial/\\partial\\mu$",
        "$\\partial/\\partial\\theta$",
        "$\\partial/\\partial\\,\\mathrm{zi}$",
    ],
)
col2 = "max $\\lvert$closed form $- (p_0 - \\pi$ or $-\\pi)\\rvert$"
grads.loc["$\\partial/\\partial\\,\\mathrm{zi}$", col2] = float((hand[2] - expected).abs().max())
assert (grads.fillna(0) < 1e-10).all().all()
md(grads.map(lambda v: "" if np.isnan(v) else f"{v:.1e}"))

# %% [markdown]
# ## 3.7 What the ledger says about (55)–(59)
#
# Every equation of the tutorial has an entry in the ledger (`derivations/ledger_scvi.py`), whose
# `check()` *computes* the verdict with sympy or numerics; the test suite
# (`tests/test_ledger.py`) re-runs every check, so a verdict cannot drift from the mathematics.
# `slip`: a typo with an obvious reading; `wrong`: no reading repairs it. The ledger also ranks
# each entry by its consequence (its tier); the three `wrong` entries here **break
# computation**: the log-normal density printed after (55) integrates to $\sqrt{l_{\sigma^2}}$, not 1
# (nothing later restores the factor), and (58) and (59), as the demonstrations under the table
# show with numbers.

# %%
labels = [
    "(55)",
    "text after (55): log-normal pdf",
    "text before (56): zero-inflated binomial",
    "(56)",
    "(57)",
    "text after (57): range of p",
    "(58)",
    "(59)",
]
ledger_rows = []
for label in labels:
    entry = by_label(label)
    ledger_rows.append(
        {
            "equation": label,
            "topic": entry.topic,
            "tier": entry.tier or "",
            "verdict": entry.verdict,
        }
    )
md(pd.DataFrame(ledger_rows).set_index("equation"))
breaking = ["text after (55): log-normal pdf", "(58)", "(59)"]
assert [lb for lb in labels if by_label(lb).tier == "breaks computation"] == breaking


def as_math(text):  # the ledger's demonstrations name mu, theta, f_h in plain text
    for name, tex in (("mu", r"$\mu$"), ("theta", r"$\theta$"), ("f_h", "$f_h$")):
        text = re.sub(rf"\b{name} =", lambda _, t=tex: f"{t} =", text)
    return text


demo_rows = [f"| {label} | {as_math(DEMOS[label]())} |" for label in ("(58)", "(59)")]
display(Markdown("\n".join(["| used as printed | what it gives |", "|---|---|", *demo_rows])))

# %% [markdown]
# ## Key takeaways
#
# 1. Integrating a Gamma-distributed expression level out of a Poisson count gives the negative
#    binomial: the integrand is a Gamma kernel with rate $\theta/\rho + l$, and its normaliser is
#    the NB pmf (56) with mean $\mu = l\rho$.
# 2. $\mathrm{Var} = \mu + \mu^2/\theta$: Poisson sampling noise plus biological fluctuation. Real
#    UMI counts (`pbmc68k_counts()`) sit far above the Poisson line, and the NB tends to the
#    Poisson like $1/\theta$ as $\theta \to \infty$.
# 3. Zero inflation is a two-component mixture: $P(0) = \pi + (1-\pi)\mathrm{NB}(0)$,
#    $P(k) = (1-\pi)\mathrm{NB}(k)$, with mean $(1-\pi)\mu$ and variance
#    $(1-\pi)\mu(1 + \mu/\theta + \pi\mu)$. The tutorial's (58)–(59) swap the weights and misprint
#    the positive case; used as printed they give wrong probabilities.
# 4. Code and tutorial use opposite logits: `zi_logits` $= -f_h$, $\pi = \sigma(\mathrm{zi})$ is
#    the probability of a technical zero. In training, each zero pushes zi up by $p_0 - \pi$ and
#    each positive count pulls it down by $\pi$.

# %% [markdown]
# ## Exercises
#
# **Exercise 1 (derivation): can an NB imitate a ZINB?** Find the inverse dispersion $\theta'$ of
# the NB whose mean *and* variance equal those of $\mathrm{ZINB}(\mu, \theta, \pi)$, as a sympy
# expression in `theta` and `pi` (the symbols `NB.theta` and `sp.Symbol("pi", positive=True)`).
# Then compare the two zero probabilities at $\mu = 5$, $\theta = 2$, $\pi = 0.3$: which model
# puts more mass at 0? Check $\theta'$ with `NB.check_matched_theta(answer)`.
#
# **Exercise 2 (experiment): fit $\theta$ to a real gene.** Take the counts of the gene *LYZ* in
# `pbmc68k_counts()` and model them as independent draws of one $\mathrm{NB}(\mu, \theta)$
# (ignoring cell types and library sizes). Estimate $\theta$
# (a) by the method of moments, solving $s^2 = \bar x + \bar x^2/\theta$ (with the variance
# $s^2$ of `np.var`, `ddof=0`), and (b) by maximum likelihood. Check both with
# `check_theta_fit(x, theta_mle, theta_mom)` (from `scvi_edu.exercises`). Which estimate better
# reproduces the observed fraction of zeros, and why do they differ?
#
# Write your answers in the cell below (they stay `None` until you do); the checks raise an
# `AssertionError` with a hint when an answer is wrong.

# %%
x_lyz = counts[:, list(pbmc.var_names).index("LYZ")]
theta_matched = None  # Exercise 1: a sympy expression in NB.theta and pi
theta_mle, theta_mom = None, None  # Exercise 2: two floats
if theta_matched is not None:
    NB.check_matched_theta(theta_matched)
if theta_mle is not None:
    check_theta_fit(x_lyz, theta_mle, theta_mom)

# %% [markdown]
# ## Solutions
#
# <details><summary>Solution to exercise 1</summary>
#
# Match the moments of §3.5: the NB must have mean $\mu' = (1-\pi)\mu$ and
# $\mu' + \mu'^2/\theta' = (1-\pi)\mu(1 + \mu/\theta + \pi\mu)$. Subtracting $\mu'$ and dividing by
# $\mu'^2 = (1-\pi)^2\mu^2$,
#
# $$\frac{1}{\theta'} = \frac{\mu/\theta + \pi\mu}{(1-\pi)\mu} = \frac{1 + \pi\theta}{(1-\pi)\theta},
# \qquad \theta' = \frac{(1-\pi)\,\theta}{1 + \pi\theta},$$
#
# independent of $\mu$. At $\theta = 2$, $\pi = 0.3$: $\theta' = 1.4/1.6 = 0.875$, $\mu' = 3.5$.
# The ZINB has $P(0) = 0.3 + 0.7\,(2/7)^2 = 0.357$, the matched NB
# $(0.875/4.375)^{0.875} = 0.2^{0.875} = 0.245$: with the same mean and variance, zero inflation
# puts more mass at 0. The first two moments cannot tell the two models apart, the zero mass can:
# the fraction of zeros per gene, observed against predicted, is the statistic to look at when
# asking whether data need zero inflation.
#
# ```python
# pi = sp.Symbol("pi", positive=True)
# NB.check_matched_theta((1 - pi) * NB.theta / (1 + pi * NB.theta))
# ```
# </details>
#
# <details><summary>Solution to exercise 2</summary>
#
# (a) The method of moments gives $\hat\theta_{\mathrm{MoM}} = \bar x^2/(s^2 - \bar x)$.
# (b) For i.i.d. NB draws the log-likelihood is
# $\sum_n \log\Gamma(x_n+\theta) - N\log\Gamma(\theta) + N\theta\log\frac{\theta}{\theta+\mu}
# + \sum_n x_n \log\frac{\mu}{\theta+\mu}$ (up to a constant). Its $\mu$-derivative vanishes at
# $\mu = \bar x$ for every $\theta$, so the MLE of $\mu$ is the sample mean, and $\theta$ solves
# the score equation
# $\sum_n \psi(x_n+\theta) - N\psi(\theta) + N\log\frac{\theta}{\theta+\bar x} = 0$
# ($\psi$ the digamma function), one-dimensional: a bracketing root finder does it.
#
# ```python
# m, n = x_lyz.mean(), len(x_lyz)
# theta_mom = m**2 / (x_lyz.var() - m)
# score = lambda t: special.digamma(x_lyz + t).sum() - n * special.digamma(t) + n * np.log(t / (t + m))
# theta_mle = optimize.brentq(score, 1e-4, 1e4)
# check_theta_fit(x_lyz, theta_mle, theta_mom)
# ```
#
# For LYZ the two estimates differ by a factor of about two. The method of
# moments is driven by the variance, which a few cells with very large counts dominate; the
# likelihood weighs every cell, and in particular the many zeros. The NB with the ML estimate
# reproduces the observed fraction of zeros closely, the moment estimate predicts far too few:
# LYZ is a monocyte marker, so its counts are a mixture of "on" and "off" cell types, which one
# NB can only mimic with a small $\theta$. Neither needs zero inflation here; scVI explains the
# mixture with $z_n$ instead.
# </details>

# %% tags=["remove-cell"]
# The solutions above, run through the checks (hidden in the book).
pi_ex = sp.Symbol("pi", positive=True)
with contextlib.redirect_stdout(io.StringIO()):  # a check cell prints nothing
    NB.check_matched_theta((1 - pi_ex) * NB.theta / (1 + pi_ex * NB.theta))
m_lyz, n_lyz = x_lyz.mean(), len(x_lyz)
sol_mom = m_lyz**2 / (x_lyz.var() - m_lyz)


def score(t):
    return (
        special.digamma(x_lyz + t).sum()
        - n_lyz * special.digamma(t)
        + n_lyz * np.log(t / (t + m_lyz))
    )


sol_mle = optimize.brentq(score, 1e-4, 1e4)
with contextlib.redirect_stdout(io.StringIO()):
    check_theta_fit(x_lyz, sol_mle, sol_mom)

# the numbers the solutions state, asserted (silently: printing them would give the answers away)
zinb_p0 = 0.3 + 0.7 * (2 / 7) ** 2
nb_p0 = (0.875 / (0.875 + 3.5)) ** 0.875
lyz = pd.DataFrame(
    {
        "theta": [sol_mom, sol_mle],
        "predicted fraction of zeros": [(t / (t + m_lyz)) ** t for t in (sol_mom, sol_mle)],
        "observed fraction of zeros": [np.mean(x_lyz == 0)] * 2,
    },
    index=["method of moments", "maximum likelihood"],
).round(3)
assert round(zinb_p0, 3) == 0.357 and round(nb_p0, 3) == 0.245 and zinb_p0 > nb_p0
assert 1.8 < lyz.loc["method of moments", "theta"] / lyz.loc["maximum likelihood", "theta"] < 2.5
obs0 = lyz["observed fraction of zeros"].iloc[0]
assert abs(lyz.loc["maximum likelihood", "predicted fraction of zeros"] - obs0) < 0.05
assert lyz.loc["method of moments", "predicted fraction of zeros"] < obs0 - 0.15
