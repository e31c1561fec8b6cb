# %% [markdown]
# # Chapter 4 — The scVI lower bound (tutorial eqs. (60)–(70))
#
# scVI is a conditional variational autoencoder. For cell $n$ with counts $x_n$ and batch $s_n$ the
# tutorial writes the evidence lower bound (eq. (60))
#
# $$
# \mathcal L(\phi,\psi; x_n, s_n) = -D_{KL}\big(q_\phi(z_n, l_n\mid x_n, s_n)\,\|\,p(z_n, l_n\mid s_n)\big)
# + \mathbb E_{q_\phi}\log p_\psi(x_n\mid z_n, l_n, s_n) \;\le\; \log p_\psi(x_n\mid s_n),
# $$
#
# with a Gaussian $q(z\mid x, s)$ (networks NN1, NN2), a log-normal $q(l\mid x, s)$ (NN3, NN4),
# the prior $z\sim\mathcal N(0, I)$, $l\sim\log\mathcal N(\mu_{b_n}, \sigma^2_{b_n})$, and the ZINB
# likelihood of chapter 3. This chapter derives each piece with sympy (`derivations/elbo.py`),
# assembles the bound of one cell, and checks it against the loss of `scvi_edu.module.VAE`.
#
# Mistakes found on the way (each proved in the ledger, `derivations/ledger_scvi.py`): the
# library-prior variance (62) is identically zero as printed; (63) drops a square root; (65)–(67)
# use $m$ for $\mu$; (67) multiplies the two KL terms in the middle line; **(69) adds the KL terms
# instead of subtracting them**, and its zero case forgets the dropout; Fig. 3's "softmax" has no
# exponential in the numerator.

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

from derivations import elbo as E
from derivations.ledger import by_label
from derivations.ledger_scvi import DEMOS
from scvi_edu.module import VAE

torch.manual_seed(0)
rng = np.random.default_rng(0)
random.seed(0)
torch.set_num_threads(1)
# %matplotlib inline

# %% [markdown]
# ## 4.1 KL of two Gaussians (eq. (63)) and the diagonal case (eq. (64))
#
# $D_{KL}(\mathcal N(m_1,\sigma_1^2)\,\|\,\mathcal N(m_2,\sigma_2^2)) =
# \int p_1\log\frac{p_1}{p_2}\,dx$ with $p_i(x) = \frac{1}{\sqrt{2\pi\sigma_i^2}}e^{-(x-m_i)^2/(2\sigma_i^2)}$.
# The tutorial's (63) writes $\frac{1}{2\pi\sigma^2}$ (no square root) in front of the
# exponentials, a slip: its second line and its result use the right normalisation. sympy integrates:

# %%
kl = E.kl_normal_integral()
display(Math(r"D_{KL} = " + sp.latex(sp.expand(sp.expand_log(kl, force=True)))))
assert sp.simplify(kl - E.kl_closed(E.m1, E.s1, E.m2, E.s2)) == 0
loc, scale = [0.4, -0.9], [0.6, 1.4]
kl_torch = torch.distributions.kl_divergence(
    torch.distributions.Normal(
        torch.tensor(loc, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64)
    ),
    torch.distributions.Normal(torch.zeros(2, dtype=torch.float64), 1.0),
).sum()
assert abs(float(E.kl_diag_standard(loc, scale)) - float(kl_torch)) < 1e-12
print(f"(64) for loc = {loc}, scale = {scale}: {float(E.kl_diag_standard(loc, scale)):.6f}")

# %% [markdown]
# Because the density of a diagonal Gaussian is a product, $\log(q/p)$ is a **sum** over the
# coordinates, and so is the KL (eq. (64)). The same holds for $q(z)q(l)$ against $p(z)p(l)$: the
# middle line of (67) writes the *product* $D_{KL}(q_z\|p_z)\,D_{KL}(q_l\|p_l)$; its last line
# (correctly) adds them. A double integral settles it:

# %%
print(by_label("(67)").verdict, "-", by_label("(67)").how)
assert by_label("(67)").check() == "slip"

# %% [markdown]
# ## 4.2 KL of two log-normals (eqs. (65)–(66))
#
# With $y = e^x$, $dy = e^x dx$, the log-normal KL integrand becomes exactly the Gaussian one
# (sympy proves the two integrands equal), so the KL is invariant under the change of variables:
# $D_{KL}(\log\mathcal N(\mu_1,\sigma_1^2)\|\log\mathcal N(\mu_2,\sigma_2^2)) = D_{KL}(\mathcal N(\mu_1,\sigma_1^2)\|\mathcal N(\mu_2,\sigma_2^2))$.
# The tutorial names the parameters $\mu_i$ and then $m_i$ in the same statement (a slip), and (66)
# uses $m_{b_n}$ for the prior mean $\mu_{b_n}$ defined in (62). (The log-normal pdf given after
# (55) also misses its $1/\sigma$.) Since the KL does not care, `scvi_edu` works with the *log*
# library size and its Gaussian $q(\log l)$.

# %%
kl_ln = E.kl_lognormal_integral()
assert sp.simplify(kl_ln - kl) == 0
for label in ("(65)", "(66)"):
    entry = by_label(label)
    assert entry.check() == entry.verdict
    print(label, entry.verdict, "-", entry.correction)

# %% [markdown]
# ## 4.3 The library-size prior (eq. (62))
#
# The prior of the log library of a cell in batch $b$ is $\mathcal N(\mu_b, \sigma_b^2)$ with the
# maximum-likelihood mean and variance of the log library sizes of that batch. sympy solves the
# likelihood equations for four symbolic values $a_1, \dots, a_4$ — and evaluates the printed
# variance $\big(\sum_i (a_i - \mu_b)\big)^2/n$, with the square *outside* the sum:

# %%
mu_b, var_b, printed_var = E.library_prior_mle(4)
display(Math(r"\hat\mu_b = " + sp.latex(mu_b)))
display(Math(r"\hat\sigma_b^2 = " + sp.latex(sp.factor(var_b))))
display(
    Math(
        r"\text{printed (62)}: \frac{(\sum_i a_i - \hat\mu_b)^2}{n} \text{ read as } \frac{(\sum_i (a_i - \hat\mu_b))^2}{n} = "
        + sp.latex(printed_var)
    )
)
assert printed_var == 0
a = sp.symbols("a1:5", real=True)
assert sp.simplify(var_b - sum((ai - mu_b) ** 2 for ai in a) / 4) == 0
print(DEMOS["(62)"]())

# %% [markdown]
# The deviations from the mean always sum to zero, so the printed variance is $0$ for every data
# set, the prior is a point mass and the KL (66) is infinite. The correction is the mean of the
# *squared* deviations, $\sigma_b^2 = \frac1n\sum_i(\log L_i - \mu_b)^2$.
# (Whichever way one reads the ambiguous print — $(\sum_i \log L_i - \mu_b)^2/n$ is not a variance
# either: it is not even invariant to shifting all $\log L_i$.)
#
# ## 4.4 The bound of one cell, assembled (eqs. (60), (67)–(69))
#
# $$
# \tilde{\mathcal L} = \frac1K\sum_{k=1}^K\sum_{g=1}^G \log\mathrm{ZINB}\big(x_{ng}\mid l^{(k)}\rho_g^{(k)}, \theta_g, \mathrm{zi}_g^{(k)}\big)
# \;-\; D_{KL}\big(q(z)\,\|\,\mathcal N(0,I)\big) \;-\; D_{KL}\big(q(l)\,\|\,\log\mathcal N(\mu_b,\sigma_b^2)\big),
# $$
#
# $z^{(k)} = f_{NN1} + f_{NN2}\,\epsilon_z^{(k)}$, $\log l^{(k)} = f_{NN3} + f_{NN4}\,\epsilon_l^{(k)}$,
# $\rho^{(k)} = \mathrm{softmax}(o(z^{(k)}, s))$, $\mathrm{zi}^{(k)}$ the dropout logits. Here is the
# symbolic bound for a cell with two genes, one latent dimension and $K = 1$, as a function of the
# encoder outputs, the noise, $\theta$, $\rho$, the dropout logits and $x$:

# %%
f1, f2, f3, f4, e_z, e_l, mb, sb = sp.symbols(
    r"f_{NN1} f_{NN2} f_{NN3} f_{NN4} \epsilon_z \epsilon_l \mu_b \sigma_b", real=True
)
r1, t1, t2, zi1, zi2 = sp.symbols(r"\rho_1 \theta_1 \theta_2 zi_1 zi_2", positive=True)
bound = E.scvi_elbo(
    [0, 3],
    [f1],
    [f2],
    [f3 + f4 * e_l],
    [[r1, 1 - r1]],
    [[zi1, zi2]],
    [t1, t2],
    ql=(f3, f4),
    prior_l=(mb, sb),
)
display(Math(r"\tilde{\mathcal L} = " + sp.latex(bound["elbo"])))

# %% [markdown]
# ### Checked against `scvi_edu.module.VAE`
#
# A tiny VAE (5 genes, 2 batches, 4 hidden units, 2 latent dimensions, latent library) in float64
# and evaluation mode. Its decoder is rebuilt *symbolically* as the Fig. 3 network from its weights
# (`E.bound_from_vae`), the module's own noise samples are reused, and the symbolic bound is
# evaluated with mpmath at 30 digits:

# %%
torch.manual_seed(0)
vae = (
    VAE(
        5,
        n_batch=2,
        n_hidden=4,
        n_latent=2,
        use_observed_lib_size=False,
        library_log_means=np.array([3.0, 3.5]),
        library_log_vars=np.array([0.3, 0.5]),
    )
    .double()
    .eval()
)
x = torch.tensor(rng.poisson(3, (3, 5)), dtype=torch.float64)
x[0, 1] = 0
batch = torch.tensor([0, 1, 1])
with torch.no_grad():
    inf = vae.inference(x, batch, n_samples=2)
    gen = vae.generative(inf["z"], inf["library"], batch)
    loss = vae.loss(x, inf, gen, batch)
rel = []
for n in range(3):
    sym = E.bound_from_vae(vae, x, batch, inf, n)
    rel.append(abs(E.evaluate(sym["elbo"]) - float(loss.elbo[n])) / abs(float(loss.elbo[n])))
    assert abs(E.evaluate(sym["kl_l"]) - float(loss.kl_l[n])) < 1e-12 * max(1, float(loss.kl_l[n]))
assert max(rel) < 1e-12
print("symbolic bound = -(VAE reconstruction_loss + kl_z + kl_l) for every cell, to 1e-12")

# %% [markdown]
# ## 4.5 The sign of the KL in (69)
#
# (69) *adds* both KL terms to the reconstruction term. A lower bound must lie below
# $\log p(x)$ for **every** $q$; for a toy scVI small enough that $\log p(x)$ is a two-dimensional
# integral (one latent dimension, three genes, latent library; `E.ToySCVI`), we move the mean of
# $q(z)$ and compare:

# %%
toy = E.ToySCVI(
    a=[1.0, -0.5, 0.2],
    b=[0.0, 0.3, -0.2],
    c=[0.5, -1.0, 0.0],
    e=[-1.0, 0.0, -2.0],
    theta=[2.0, 5.0, 1.0],
)
x_toy = [0, 3, 10]
log_px = toy.log_marginal(x_toy)
means = np.linspace(-3, 3, 61)
ql = (toy.prior_loc, 0.1)
corrected = [toy.elbo(x_toy, (m, 0.3), ql) for m in means]
printed = [toy.elbo(x_toy, (m, 0.3), ql, printed=True) for m in means]
assert max(corrected) <= log_px
assert max(printed) > log_px
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.axhline(log_px, color="k", label=r"$\log p(x)$ (quadrature)")
ax.plot(means, corrected, label="corrected bound: reconstruction - KL")
ax.plot(means, printed, "--", label="printed (69): reconstruction + KL")
ax.set_xlabel(r"mean of $q(z)$ (scale 0.3)")
ax.set_ylim(log_px - 25, log_px + 10)
ax.legend(fontsize=8)
plt.show()
print(f"log p(x) = {log_px:.3f}; best corrected bound on this path = {max(corrected):.3f}")
print(DEMOS["(69)"]())

# %% [markdown]
# Maximising the printed expression rewards a $q$ that is as far from the prior as possible: the
# KL term grows without bound while the reconstruction term stays finite, so training would
# diverge. The zero case of (69), $[S(-f_h) + \theta\log\frac{\theta}{\theta+l f_w} - S(-f_h)]$,
# also reduces to $\log\mathrm{NB}(0)$: the dropout does not enter at all.
#
# ## 4.6 The softmax of Fig. 3
#
# Fig. 3 (and the text after (59)) defines the expected frequencies as
# $\rho_g = o_g / \sum_j e^{o_j}$. They must be positive and sum to one over the genes, which only
# the softmax $e^{o_g}/\sum_j e^{o_j}$ guarantees:

# %%
o = np.array([1.0, -2.0, 0.5, 0.0])
printed_rho = o / np.exp(o).sum()
softmax_rho = np.exp(o) / np.exp(o).sum()
assert printed_rho.min() < 0 and abs(softmax_rho.sum() - 1) < 1e-15
assert by_label("Fig. 3 softmax (text after (59))").check() == "wrong"
fig, ax = plt.subplots(figsize=(6, 3))
idx = np.arange(len(o))
ax.bar(idx - 0.2, printed_rho, 0.4, label=r"printed $o_g/\sum_j e^{o_j}$")
ax.bar(idx + 0.2, softmax_rho, 0.4, label=r"softmax $e^{o_g}/\sum_j e^{o_j}$")
ax.axhline(0, color="k", lw=0.8)
ax.set_xticks(idx, [f"gene {i + 1}" for i in idx])
ax.legend(fontsize=8)
plt.show()
print(DEMOS["Fig. 3 softmax (text after (59))"]())

# %% [markdown]
# ## 4.7 The training objective (eq. (70))
#
# scVI maximises the average bound $\frac1N\sum_n\tilde{\mathcal L}_n$ by stochastic gradients on
# minibatches; the minibatch average is an unbiased estimate of it (ledger (70)). `VAE.loss` returns
# its negative, `loss = mean(reconstruction_loss + kl_z + kl_l)`, which the optimiser minimises.
#
# **Observed or latent library?** The tutorial (and the 2018 paper) learn $q(l\mid x, s)$ with the
# prior (62). scvi-tools and `scvi_edu` default to the *observed* library, $\log l_n =
# \log\sum_g x_{ng}$, for which the KL term of $l$ is absent (`use_observed_lib_size=True`). The
# prior $p(l\mid s)$ (one log-normal per batch, from (62)) is not the posterior $q(l\mid x, s)$ (one
# per cell, from the encoder NN3/NN4 — the tutorial calls them NN4/NN5 once, a slip).
#
# ## 4.8 The ledger for (60)–(70)

# %%
for label in [
    "(60)",
    "(61)",
    "(62)",
    "(63)",
    "(64)",
    "(65)",
    "(66)",
    "(67)",
    "(68)",
    "(69)",
    "(70)",
    "text before (61): library encoder networks",
    "Fig. 3 softmax (text after (59))",
]:
    entry = by_label(label)
    assert entry.check() == entry.verdict
    print(f"{label:45s} {entry.verdict}")

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** Give $D_{KL}(\mathcal N(m, s^2)\,\|\,\mathcal N(0, 1))$ as a sympy expression in
# `m` and `s` (one term of (64)).
#
# **Exercise 2.** Four cells of one batch have log library sizes $7, 7.5, 8.5, 9$. Compute the
# prior variance $\sigma_b^2$ of the corrected (62) (a float).
#
# Replace the answers below with yours; the check raises `AssertionError` on a wrong answer.

# %%
m, s = sp.Symbol("m", real=True), sp.Symbol("s", positive=True)
answer_1 = -sp.log(s) - sp.Rational(1, 2) + (s**2 + m**2) / 2
E.check_exercise_1(answer_1)

v = np.array([7.0, 7.5, 8.5, 9.0])
answer_2 = float(((v - v.mean()) ** 2).mean())
E.check_exercise_2(answer_2)
print("both answers are right")
