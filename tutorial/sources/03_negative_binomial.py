# %% [markdown]
# # Chapter 3 — From Gamma-Poisson to the zero-inflated negative binomial (tutorial eqs. (55)–(59))
#
# Section 3 of the tutorial writes down the generative model of scVI and integrates out the
# intermediate variables to get the likelihood of a count. For cell $n$ and gene $g$ (eq. (55)):
#
# $$
# z_n \sim \mathcal N(0, I),\quad l_n \sim \log\mathcal N(l_\mu, l_{\sigma^2}),\quad
# \rho_n = f_w(z_n, s_n),\quad
# w_{ng} \sim \mathrm{Gamma}\big(\theta_g, \tfrac{\theta_g}{\rho_{ng}}\big),\quad
# y_{ng} \sim \mathrm{Poisson}(l_n w_{ng}),
# $$
# $$
# h_{ng} \sim \mathrm{Bernoulli}\big(\sigma(f_h^g(z_n, s_n))\big),\qquad
# x_{ng} = y_{ng}\ \text{if}\ h_{ng} = 1,\ \text{else}\ 0 .
# $$
#
# So $\sigma(f_h)$ is the probability of **keeping** the count. scvi-tools (and `scvi_edu`) use
# the opposite logit, `zi_logits` $= -f_h$, with $\sigma(\text{zi}) = P(\text{technical zero})$.
# The tutorial's eq. (58) silently switches to that second convention — one of the mistakes this
# chapter proves and corrects. All derivations live in `derivations/negative_binomial.py`; the
# verdicts are in the equation ledger (`derivations/ledger_scvi.py`).

# %%
import math
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
from scipy import stats

from derivations import negative_binomial as NB
from derivations.ledger import by_label
from derivations.ledger_scvi import DEMOS
from scvi_edu.distributions import log_nb_positive, log_zinb_positive, zinb_log_likelihood

torch.manual_seed(0)
rng = np.random.default_rng(0)
random.seed(0)
torch.set_num_threads(1)
# %matplotlib inline

k, l, rho, theta, mu = NB.k, NB.l, NB.rho, NB.theta, NB.mu

# %% [markdown]
# ## 3.1 The generative process, step by step (eq. (55))
#
# We follow (55) literally with numpy for one gene: a Gamma draw $w$ with shape $\theta$ and rate
# $\theta/\rho$ (so $\mathbb E w = \rho$, $\mathrm{Var}\,w = \rho^2/\theta$), a Poisson count
# $y$ with rate $l w$, and a Bernoulli $h$ that keeps the count with probability $\sigma(f_h)$.
# The library size $l$ and the frequency $\rho$ are held fixed here (they are given by $z_n$).

# %%
l_, rho_, theta_, f_h_ = 3.0, 2.0, 1.7, 0.8  # mu = l * rho = 6
n_draws = 200_000
w_draws = rng.gamma(shape=theta_, scale=rho_ / theta_, size=n_draws)  # rate theta/rho
y_draws = rng.poisson(l_ * w_draws)
h_draws = rng.random(n_draws) < 1 / (1 + math.exp(-f_h_))  # h = 1: keep
x_draws = np.where(h_draws, y_draws, 0)

assert abs(w_draws.mean() - rho_) < 4 * math.sqrt(rho_**2 / theta_ / n_draws)
print(f"fraction of zeros in x: {np.mean(x_draws == 0):.2f}")

# %% [markdown]
# ## 3.2 The Gamma-Poisson mixture is a negative binomial (eq. (56))
#
# $P(y = k \mid l, \rho, \theta) = \int_0^\infty \mathrm{Poisson}(k \mid l w)\,
# \mathrm{Gamma}(w \mid \theta, \theta/\rho)\,dw$. sympy does the integral:

# %%
mixture = NB.gamma_poisson_mixture()
display(Math(sp.latex(mixture)))
nb = NB.nb_pmf(k, l * rho, theta)
display(Math(r"\text{NB}(k\mid \mu=l\rho,\theta) = " + sp.latex(nb)))
ratio = sp.simplify(sp.powsimp(sp.expand_power_base(mixture / nb, force=True), force=True))
assert ratio == 1
print("mixture / NB(mean l*rho, theta) =", ratio)

# %% [markdown]
# The same pmf in the (size, prob) parameterisation of eq. (57) is
# $\frac{\Gamma(x+n)}{\Gamma(n)\,x!}(1-p)^n p^x$ with $n = \theta$, $p = \mu/(\theta+\mu)$.
# The tutorial prints $\Gamma(x)!$ instead of $x!$ (a slip: $\Gamma(0)$ is a pole and the printed
# function does not sum to 1). Here $p$ is the probability of a *success* and $x$ counts successes
# before the $n$-th failure, so $p \in [0, 1)$ (the tutorial's $(0, 1]$ is R's range for its other
# convention; at $p = 1$ the printed pmf is $0$ everywhere). scipy's `nbinom(n, p)` uses the other
# convention, so its `p` is our $1-p$:

# %%
size, prob = NB.size_prob_from_mean(mu, theta)
display(Math(r"(n, p) = " + sp.latex((size, prob))))
back = NB.mean_from_size_prob(size, prob)
assert sp.simplify(back[0] - mu) == 0 and back[1] == theta

mu_num, th_num = 6.0, 1.7
ours = np.array([float(NB.nb_pmf(j, mu_num, th_num)) for j in range(30)])
scipy_ref = stats.nbinom.pmf(np.arange(30), th_num, th_num / (th_num + mu_num))
assert np.allclose(ours, scipy_ref, rtol=1e-12, atol=0)
print("NB(mu, theta) pmf equals scipy.stats.nbinom(n=theta, p=theta/(theta+mu)) to 1e-12")

# %% [markdown]
# ### Mean and variance, from the probability generating function
#
# $G(s) = \mathbb E s^X = \sum_k \frac{\Gamma(k+n)}{\Gamma(n)k!}(1-p)^n (ps)^k$ is summed by
# sympy; then $\mathbb E X = G'(1)$ and $\mathrm{Var}\,X = G''(1) + G'(1) - G'(1)^2$.

# %%
pgf = NB.nb_pgf()
display(Math(r"G(s) = " + sp.latex(pgf)))
m_np, v_np = NB.nb_moments_size_prob()
m_mu, v_mu = NB.nb_moments_mean_disp()
display(Math(r"\mathbb E X = " + sp.latex(m_np) + r",\quad \mathrm{Var}\,X = " + sp.latex(v_np)))
display(
    Math(
        r"\mathbb E X = "
        + sp.latex(m_mu)
        + r",\quad \mathrm{Var}\,X = "
        + sp.latex(sp.expand(v_mu))
    )
)
assert sp.simplify(v_mu - (mu + mu**2 / theta)) == 0
# a second route: the law of total variance through the Gamma-Poisson hierarchy
gm, gv = NB.gamma_poisson_moments()
assert sp.simplify(gm - l * rho) == 0 and sp.simplify(gv - (l * rho + (l * rho) ** 2 / theta)) == 0

# %% [markdown]
# The variance exceeds the mean by $\mu^2/\theta$: the NB is *over-dispersed*. This is also why
# the tutorial's phrase "zero inflated **binomial**" (before eq. (56)) is a slip: a binomial has
# variance $\le$ mean, so the non-zero part of $x$ is negative binomial, not binomial.
#
# ## 3.3 Zero inflation (eqs. (58)–(59))
#
# Under (55), $x = 0$ happens when the count is dropped ($h = 0$) **or** when it is kept and the
# NB draw is itself $0$:
#
# $$P(x=0) = P(h=0) + P(h=1)\,\mathrm{NB}(0) = \sigma(-f_h) + \sigma(f_h)\Big(\frac{\theta}{\theta+l\rho}\Big)^{\theta},
# \qquad P(x=k>0) = \sigma(f_h)\,\mathrm{NB}(k).$$
#
# The tutorial's (58) writes $P(X=0\mid h=0)P(h=0) + P(X=0\mid h=1)P(h=1)$ correctly and then
# substitutes $P(Y=0)$ for the $h=0$ branch and $1$ for the $h=1$ branch — the weights are swapped.
# Its next line then puts the bracket of the outer softplus in the wrong place, and the positive case
# has $k\log\frac{k}{\theta+l\rho}$ where $k\log\frac{l\rho}{\theta+l\rho}$ belongs. With
# $\mathrm{zi} = -f_h$ and $S(t) = \log(1+e^t)$ the correct, numerically stable form is
#
# $$\log P(x = 0) = S\Big(-\mathrm{zi} + \theta\log\tfrac{\theta}{\theta+\mu}\Big) - S(-\mathrm{zi}),\qquad
# \log P(x = k > 0) = -S(\mathrm{zi}) + \log \mathrm{NB}(k\mid\mu,\theta).$$
#
# sympy proves that the softplus form equals the mixture (differences simplify to 0):

# %%
zero_diff, positive_diff = NB.zinb_stable_equals_naive()
print("exp(stable) - mixture, x = 0:", zero_diff, "  x > 0:", positive_diff)
assert zero_diff == 0 and positive_diff == 0

# and at 200 random points over wide ranges, in 50-digit arithmetic
pts = [
    (
        int(rng.integers(0, 2)) * int(rng.integers(1, 500)),
        10 ** rng.uniform(-3, 4),
        10 ** rng.uniform(-2, 4),
        rng.uniform(-20, 20),
    )
    for _ in range(200)
]
worst = NB.zinb_stable_vs_naive_mp(pts, dps=50)
assert worst < 1e-40
print("largest relative difference at 200 random points (50 digits): below 1e-40")

# %% [markdown]
# ### Agreement with `scvi_edu.distributions`
#
# The Torch log-pmfs the model trains with are evaluated in float64 and compared with the sympy
# expressions evaluated by mpmath at 40 digits.

# %%
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
assert max(errs_zinb) < 1e-10 and max(errs_nb) < 1e-10
print("log_zinb_positive and log_nb_positive agree with the sympy pmfs to better than 1e-10")

# %% [markdown]
# ### The simulated counts follow the ZINB
#
# Back to the draws of §3.1: a chi-square goodness-of-fit test at significance level $0.001$
# accepts the ZINB with $\mathrm{zi} = -f_h$ and rejects the tutorial's swapped weights
# ($\mathrm{zi} = +f_h$).

# %%
mean_ = l_ * rho_


def zinb_pmf(j, zi):
    args = [torch.tensor([v], dtype=torch.float64) for v in (j, mean_, theta_, zi)]
    return math.exp(float(log_zinb_positive(*args)))


def chi2_pvalue(samples, zi):
    probs = []
    while not probs or n_draws * zinb_pmf(len(probs), zi) >= 5:
        probs.append(zinb_pmf(len(probs), zi))
    K = len(probs)
    observed = [np.sum(samples == j) for j in range(K)] + [np.sum(samples >= K)]
    expected = [n_draws * q for q in probs] + [n_draws * (1 - sum(probs))]
    return stats.chisquare(observed, expected).pvalue


p_correct, p_swapped = chi2_pvalue(x_draws, -f_h_), chi2_pvalue(x_draws, f_h_)
assert p_correct > 1e-3 and p_swapped < 1e-10
print("ZINB with zi = -f_h: accepted at 0.001;  tutorial's weights (zi = +f_h): rejected")

ks = np.arange(0, 31)
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.bar(ks, [np.mean(x_draws == j) for j in ks], color="lightgray", label="simulated (55)")
ax.plot(ks, [zinb_pmf(j, -f_h_) for j in ks], "o-", ms=4, label="ZINB, zi = -f_h (corrected)")
ax.plot(ks, [zinb_pmf(j, f_h_) for j in ks], "x--", ms=4, label="weights of (58) (zi = +f_h)")
ax.set_xlabel("count x")
ax.set_ylabel("probability")
ax.set_title(r"$\mu = 6$, $\theta = 1.7$, $f_h = 0.8$")
ax.legend()
plt.show()

# %% [markdown]
# ### How $\theta$ and the dropout logit shape the zero mass
#
# $P(x=0) = \pi + (1-\pi)\,(\theta/(\theta+\mu))^\theta$ with $\pi = \sigma(\mathrm{zi})$. Even
# without zero inflation ($\pi \to 0$) a small $\theta$ (strong over-dispersion) gives many zeros:
# $(\theta/(\theta+\mu))^\theta \to 1$ as $\theta \to 0$, and $\to e^{-\mu}$ (Poisson) as
# $\theta \to \infty$.

# %%
thetas = np.logspace(-2, 3, 200)
fig, ax = plt.subplots(figsize=(7, 3.5))
for zi in (-6.0, -2.0, 0.0, 2.0):
    pi = 1 / (1 + np.exp(-zi))
    p0 = pi + (1 - pi) * (thetas / (thetas + 5.0)) ** thetas
    ax.semilogx(thetas, p0, label=f"zi = {zi:g} (pi = {pi:.2f})")
ax.axhline(math.exp(-5.0), color="k", lw=0.8, ls=":", label="Poisson: exp(-mu)")
ax.set_xlabel(r"inverse dispersion $\theta$")
ax.set_ylabel(r"$P(x = 0)$, $\mu = 5$")
ax.legend(fontsize=8)
plt.show()

p0_limit = sp.limit((theta / (theta + 5)) ** theta, theta, sp.oo)
assert p0_limit == sp.exp(-5)
print("limit of NB(0) as theta -> oo:", p0_limit)

# %% [markdown]
# ### The gradient that training follows
#
# The model trains with `zinb_log_likelihood`, the same log-likelihood summed over genes with its
# gradient written out by hand (autograd through the formula above was two thirds of a training
# step). One of its derivatives explains what zero inflation learns. With
# $\pi = \sigma(\mathrm{zi})$ and $q = \mathrm{NB}(0) = (\theta/(\theta+\mu))^\theta$,
#
# $$\frac{\partial}{\partial\,\mathrm{zi}} \log\big(\pi + (1-\pi)\,q\big) = p_0 - \pi,
# \qquad p_0 = \frac{\pi}{\pi + (1-\pi)\,q},$$
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
assert sp.simplify(grad_zero - (p0_s - pi_s)) == 0
assert sp.simplify(sp.diff(sp.log(1 - pi_s), zi_s) + pi_s) == 0
print("sympy: d/dzi log p(0) = p0 - pi and d/dzi log p(x > 0) = -pi")

# the closed-form gradient of the training likelihood against autograd through the formula
gen = torch.Generator().manual_seed(0)
x_t = torch.tensor([[0.0, 0.0, 3.0, 0.0, 7.0, 1.0, 0.0, 40.0]], dtype=torch.float64)
mu_t = (torch.rand(1, 8, generator=gen, dtype=torch.float64) * 10).requires_grad_()
theta_t = (torch.rand(1, 8, generator=gen, dtype=torch.float64) * 5 + 0.1).requires_grad_()
zi_t = torch.randn(1, 8, generator=gen, dtype=torch.float64).requires_grad_()
hand = torch.autograd.grad(
    zinb_log_likelihood(x_t, mu_t, theta_t, zi_t).sum(), [mu_t, theta_t, zi_t]
)
auto = torch.autograd.grad(log_zinb_positive(x_t, mu_t, theta_t, zi_t).sum(), [mu_t, theta_t, zi_t])
worst = max(float((a - b).abs().max()) for a, b in zip(hand, auto, strict=True))
assert worst < 1e-10
pi_t = torch.sigmoid(zi_t)
q_t = (theta_t / (theta_t + mu_t)) ** theta_t
p0_t = pi_t / (pi_t + (1 - pi_t) * q_t)
expected = torch.where(x_t == 0, p0_t - pi_t, -pi_t)
assert torch.allclose(hand[2], expected, rtol=1e-10, atol=1e-12)
print(
    "closed-form gradient = autograd gradient (mu, theta, zi) to < 1e-10; d/dzi = p0 - pi at zeros, -pi elsewhere"
)

# %% [markdown]
# ## 3.4 What the ledger says about (55)–(59)
#
# Each verdict below is *computed* by the entry's `check()` (sympy or numerics), and the
# demonstrations show what goes wrong with the printed formulas.

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
for label in labels:
    entry = by_label(label)
    assert entry.check() == entry.verdict
    print(f"{label:45s} {entry.verdict}")
print()
print(DEMOS["(58)"]())
print(DEMOS["(59)"]())

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** Using the symbols `NB.mu` and `NB.theta`, give the variance-to-mean ratio
# (the Fano factor) of $\mathrm{NB}(\mu, \theta)$. It shows why the NB is over-dispersed.
#
# **Exercise 2.** Compute $P(X = 0)$ for a ZINB with $\mu = 5$, $\theta = 2$ and probability of a
# technical zero $\pi = 0.3$ (a float, to $10^{-6}$).
#
# Replace the answers below with yours; the check raises `AssertionError` on a wrong answer.

# %%
answer_1 = 1 + NB.mu / NB.theta
NB.check_exercise_1(answer_1)

answer_2 = 0.3 + 0.7 * (2 / (2 + 5)) ** 2
NB.check_exercise_2(answer_2)
print("both answers are right")
