# %% [markdown]
# # Chapter 4: scVI built in view, and its lower bound (tutorial eqs. (60)–(70))
#
# Chapters 1–3 built the pieces: an autoencoder, the evidence lower bound of a VAE, and the
# zero-inflated negative binomial (ZINB) likelihood of counts. scVI puts them together. For cell
# $n$ with counts $x_n \in \mathbb N^G$ and batch $s_n$, a latent state $z_n$ and a library size
# $l_n$ generate the counts, and an encoder approximates their posterior. Training maximises the
# bound (eq. (60))
#
# $$
# \begin{aligned}
# \mathcal L(x_n, s_n) &= \mathbb E_{q}\log p(x_n\mid z_n, l_n, s_n)
# - D_{KL}\big(q(z_n, l_n\mid x_n, s_n)\,\|\,p(z_n, l_n\mid s_n)\big)\\
# &\le \log p(x_n\mid s_n).
# \end{aligned}
# $$
#
# This chapter shows the model that computes it: the real source of `scvi_edu.module.VAE` next
# to each equation, and a figure of its six networks drawn from an actual instance. It then
# derives the two KL terms by hand and assembles the bound (69) as it should be printed. The
# tutorial prints it with the KL terms *added*; we show why that cannot be a bound. A sympy
# assembly of the bound is checked against the module to 12 digits. The chapter ends with the
# objective that training actually minimises, including its KL warm-up.

# %%
import ast
import inspect
import random
import re
import sys
import textwrap
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, "..")  # derivations/ (the sympy side) is read from the checkout

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import sympy as sp
import torch
from IPython.display import Markdown, Math, display
from sympy.stats import E as Expect
from sympy.stats import Normal

import scvi_edu.train
from derivations import elbo as E
from derivations.ledger import by_label
from scvi_edu.exercises import EXERCISE_CH4, check_cell_elbo, check_warmup_optimum
from scvi_edu.module import VAE
from scvi_edu.nn import DecoderSCVI
from scvi_edu.train import kl_weight_schedule

torch.manual_seed(0)
rng = np.random.default_rng(0)
random.seed(0)
torch.set_num_threads(1)
# %matplotlib inline


def show_source(fn):
    """Display the source of ``fn`` without its docstring (the text around it explains it)."""
    src = textwrap.dedent(inspect.getsource(fn))
    first = ast.parse(src).body[0].body[0]
    lines = src.splitlines()
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        del lines[first.lineno - 1 : first.end_lineno]
    lines = [ln for ln in lines if not re.match(r"\s*# TASK \d+\.\d+ (begin|end)$", ln)]
    display(Markdown("```python\n" + "\n".join(lines) + "\n```"))


def tex(expr):
    """LaTeX of a sympy expression, with sympy's ``loggamma`` written as $\\log\\Gamma$."""
    return sp.latex(expr).replace(r"\operatorname{loggamma}", r"\log\Gamma")


def show_terms(lhs, expr, per_line=3):
    """Display ``lhs = expr`` with ``per_line`` terms of the sum a line (a narrow page)."""
    parts = [tex(t) for t in sp.Add.make_args(expr)]
    rows = [" + ".join(parts[k : k + per_line]) for k in range(0, len(parts), per_line)]
    body = lhs + " &= " + rows[0].replace("+ -", "- ")
    for r in rows[1:]:
        r = r.replace("+ -", "- ")
        body += r" \\ &\quad " + (r if r.startswith("-") else "+ " + r)
    display(Math(r"\begin{aligned}" + body + r"\end{aligned}"))


# %% [markdown]
# ## 4.1 The six networks (the tutorial's Fig. 2–3)
#
# scVI has two encoders and one decoder. Each encoder is one hidden layer followed by two linear
# heads:
#
# - NN1 and NN2 give the mean and standard deviation of $q(z\mid x, s)$;
# - NN3 and NN4 give those of $q(\log l\mid x, s)$;
# - the decoder's hidden layer feeds NN5 ($f_w$: the expected frequencies
#   $\rho = \mathrm{softmax}(f_w)$) and NN6 ($f_h$: the zero-inflation logits).
#
# The hidden layers are Linear → BatchNorm → ReLU → Dropout. The one-hot batch $s$ is
# concatenated to the decoder's input, and to the encoders' only with `encode_covariates=True`
# (off by default, as in scvi-tools). The figure is drawn from an actual `VAE` with a 200-gene input and
# scvi-tools' default widths; every size on it is read from the module.

# %%
torch.manual_seed(0)
arch = VAE(
    200,
    n_batch=2,
    use_observed_lib_size=False,
    library_log_means=np.array([7.0, 7.5]),
    library_log_vars=np.array([0.3, 0.4]),
)


def linear_of(module):
    """The first nn.Linear inside ``module`` (or the module itself)."""
    return next(m for m in module.modules() if isinstance(m, torch.nn.Linear))


layers = {
    "z hidden": linear_of(arch.z_encoder.encoder),
    "NN1": arch.z_encoder.mean_encoder,
    "NN2": arch.z_encoder.var_encoder,
    "l hidden": linear_of(arch.l_encoder.encoder),
    "NN3": arch.l_encoder.mean_encoder,
    "NN4": arch.l_encoder.var_encoder,
    "decoder hidden": linear_of(arch.decoder.px_decoder),
    "NN5": linear_of(arch.decoder.px_scale_decoder),
    "NN6": arch.decoder.px_dropout_decoder,
}
sizes = pd.DataFrame(
    [(k, v.in_features, v.out_features) for k, v in layers.items()],
    columns=["layer", "inputs", "outputs"],
).set_index("layer")
display(sizes)
G, B, d, H = arch.n_input, arch.n_batch, arch.n_latent, layers["NN1"].in_features
B_enc = B if arch.encode_covariates else 0  # the encoders see s only with encode_covariates
assert layers["z hidden"].in_features == G + B_enc and layers["decoder hidden"].in_features == d + B
assert layers["NN5"].out_features == layers["NN6"].out_features == G

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(11, 4.6))
ax.set_xlim(0, 11)
ax.set_ylim(0, 4.7)
ax.set_axis_off()
colour = {"in": "#dfe8f1", "hid": "#e8e8e8", "enc": "#cfe3c8", "dec": "#f6d9b8", "out": "#f3f0c8"}


def box(x, y, text, kind, w=1.45, h=0.62):
    ax.add_patch(plt.Rectangle((x - w / 2, y - h / 2), w, h, fc=colour[kind], ec="0.3"))
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5)


def arrow(p, q):
    ax.annotate("", xy=q, xytext=p, arrowprops=dict(arrowstyle="->", color="0.35", lw=1))


def lin(name):
    return f"{layers[name].in_features}→{layers[name].out_features}"


box(0.8, 2.3, f"$x$: {G} genes\n$\\log(1+x)$", "in", h=0.8)
box(0.8, 0.6, f"batch $s$\none-hot ({B})", "in")
box(2.6, 3.5, f"hidden\nLinear {lin('z hidden')}", "hid")
box(2.6, 1.3, f"hidden\nLinear {lin('l hidden')}", "hid")
box(4.4, 4.1, f"NN1 {lin('NN1')}\nmean of $z$", "enc")
box(4.4, 3.0, f"NN2 {lin('NN2')}\nsd of $z$", "enc")
box(4.4, 1.8, f"NN3 {lin('NN3')}\nmean of $\\log l$", "enc")
box(4.4, 0.7, f"NN4 {lin('NN4')}\nsd of $\\log l$", "enc")
box(6.1, 3.55, f"$z$ ({d})\n$=$NN1$+$NN2$\\,\\epsilon_z$", "out", w=1.3)
box(6.1, 1.25, "$\\log l$ (1)\n$=$NN3$+$NN4$\\,\\epsilon_l$", "out")
box(7.85, 3.55, f"hidden\nLinear {lin('decoder hidden')}", "hid", w=1.3)
box(9.4, 4.1, f"NN5 {lin('NN5')}\n$\\rho=$softmax", "dec")
box(9.4, 3.0, f"NN6 {lin('NN6')}\n$f_h$ (zero logits)", "dec")
box(9.4, 1.25, f"ZINB$(x\\mid l\\rho,\\theta,f_h)$\n$\\theta$: {G} parameters", "dec", w=1.9)
for y in (3.5, 1.3):
    arrow((1.55, 2.3), (1.85, y))
    if B_enc:
        arrow((1.55, 0.6), (1.85, y - 0.15))
for y0, ys in ((3.5, (4.1, 3.0)), (1.3, (1.8, 0.7))):
    for y in ys:
        arrow((3.35, y0), (3.65, y))
for y, y1 in ((4.1, 3.55), (3.0, 3.55), (1.8, 1.25), (0.7, 1.25)):
    arrow((5.15, y), (5.35, y1))
arrow((6.75, 3.55), (7.2, 3.55))  # z goes to the decoder
ax.plot([0.8, 0.8, 7.85], [0.29, 0.1, 0.1], color="0.35", lw=1)  # s goes to the decoder
arrow((7.85, 0.1), (7.85, 3.24))
for y in (4.1, 3.0):
    arrow((8.5, 3.55), (8.65, y))
arrow((9.4, 2.68), (9.4, 1.56))
ax.plot([10.125, 10.3, 10.3], [4.1, 4.1, 1.7], color="0.35", lw=1)  # rho goes to the ZINB
arrow((10.3, 1.7), (10.3, 1.56))
arrow((6.85, 1.25), (8.45, 1.25))
ax.text(3.5, 4.45, "encoder $q(z, l \\mid x, s)$", fontsize=10, ha="center")
ax.text(8.55, 4.45, "decoder $p(x \\mid z, l, s)$", fontsize=10, ha="center")
ax.set_title(f"scVI as built by scvi_edu.module.VAE (G = {G}, n_hidden = {H}, n_latent = {d})")
plt.show()

# %% [markdown]
# The standard deviations are $\sqrt{\mathrm{softplus}(\cdot) + 10^{-4}}$ of the NN2 and NN4
# outputs, so they are always positive. The inverse dispersion $\theta_g$ is a free parameter per
# gene, not a network output.
#
# ## 4.2 The encoder: eq. (61) and `VAE.inference`
#
# The reparameterisation trick writes each sample as a deterministic function of the networks and
# of standard normal noise (eq. (61)):
#
# $$
# \begin{aligned}
# z &= f_{NN1}(x, s) + f_{NN2}(x, s)\odot\epsilon_z, & \epsilon_z&\sim\mathcal N(0, I_d),\\
# \log l &= f_{NN3}(x, s) + f_{NN4}(x, s)\,\epsilon_l, & \epsilon_l&\sim\mathcal N(0, 1).
# \end{aligned}
# $$
#
# The tutorial writes $l = \exp(\dots)$; the module keeps $\log l$ and exponentiates only inside
# the decoder. With the *observed* library (scvi-tools' default) $\log l = \log\sum_g x_g$, and
# NN3, NN4 are not used. Here is the method, as it is in `scvi_edu/module.py`:

# %%
show_source(VAE.inference)

# %% [markdown]
# ## 4.3 The decoder: eqs. (55)–(56) and `VAE.generative`
#
# Given $z$ and $l$, the generative process (55) draws $w_g \sim \Gamma(\theta_g, \theta_g/\rho_g)$,
# then $y_g \sim \mathrm{Poisson}(l w_g)$, then keeps $y_g$ with probability $\sigma(f_h)$.
# Integrating $w$ out gives the negative binomial with mean $\mu_g = l\rho_g$ (eq. (56), chapter
# 3). So the decoder only has to output $\rho = \mathrm{softmax}(f_{NN5}(z, s))$ and the logits
# $f_{NN6}(z, s)$. The module's `px_dropout` is the logit of a *dropout*, which is $-f_h$ in the
# tutorial's notation:

# %%
show_source(VAE.generative)

# %% [markdown]
# `VAE.generative` calls the decoder, whose forward pass holds (55)–(56): the softmax that
# makes $\rho$ (`px_scale`) and the NB mean $\mu = l\rho$ (`px_rate`, with `library` the
# *log* library size):

# %%
show_source(DecoderSCVI.forward)

# %% [markdown]
# ## 4.4 The two KL terms, by hand
#
# **Gaussians (63)–(64).** For $p_i = \mathcal N(m_i, \sigma_i^2)$,
# $\log\frac{p_1(x)}{p_2(x)} = \log\frac{\sigma_2}{\sigma_1} - \frac{(x-m_1)^2}{2\sigma_1^2} +
# \frac{(x-m_2)^2}{2\sigma_2^2}$. Under $p_1$, $\mathbb E(x-m_1)^2 = \sigma_1^2$ and
# $\mathbb E(x-m_2)^2 = \sigma_1^2 + (m_1-m_2)^2$, so
#
# $$
# D_{KL}(p_1\,\|\,p_2) = \log\frac{\sigma_2}{\sigma_1} - \frac12
# + \frac{\sigma_1^2 + (m_1-m_2)^2}{2\sigma_2^2}.
# $$
#
# The tutorial's (63) writes the normalisation as $\frac{1}{2\pi\sigma^2}$, without the square
# root. That is a slip, because its result is right. For a diagonal $q(z)$ against
# $\mathcal N(0, I)$ the log-density ratio is a sum over coordinates, so the KL is the sum (64):
# $\sum_i\big[-\log\sigma_i - \frac12 + \frac{\sigma_i^2 + m_i^2}{2}\big]$.
# sympy takes the same expectation (change the symbols and re-run):

# %%
m1, m2 = sp.symbols("m_1 m_2", real=True)
s1, s2 = sp.symbols("sigma_1 sigma_2", positive=True)
X = Normal("X", m1, s1)  # X ~ p1
log_ratio = sp.log(s2 / s1) - (X - m1) ** 2 / (2 * s1**2) + (X - m2) ** 2 / (2 * s2**2)
kl = sp.expand_log(sp.simplify(Expect(sp.expand(log_ratio))), force=True)
by_hand = sp.log(s2) - sp.log(s1) - sp.Rational(1, 2) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2)
show_terms(r"D_{KL}(p_1\,\|\,p_2)", sp.expand(kl), per_line=4)
assert sp.simplify(kl - by_hand) == 0

# %% [markdown]
# **Log-normals (65)–(66).** With $y = e^x$ the log-normal densities are the Gaussian ones times
# the same Jacobian $1/y$, which cancels in the ratio. So the KL between $\log\mathcal N(\mu_1,
# \sigma_1^2)$ and $\log\mathcal N(\mu_2, \sigma_2^2)$ equals the Gaussian KL above (the ledger
# proves it by integration). That is why the module works with $\log l$ and a Gaussian
# $q(\log l)$. The tutorial's (65) calls the same parameter $\mu_i$ and then $m_i$, and (66) uses
# $m_{b_n}$ for the prior mean $\mu_{b_n}$: two slips.
#
# **Library prior (62).** The prior of $\log l$ in batch $b$ is $\mathcal N(\mu_b, \sigma_b^2)$
# with the mean and variance of the batch's observed log library sizes. The tutorial prints
# $\sigma_b^2 = (\sum_i(\log L_i - \mu_b))^2/n$, with the square outside the sum. Deviations from
# the mean sum to zero, so the printed variance is $0$ for every data set. The prior then
# collapses to a point and the KL (66) is infinite. The correction is
# $\sigma_b^2 = \frac1n\sum_i(\log L_i - \mu_b)^2$:

# %%
a = sp.symbols("a1:5", real=True)  # four log library sizes
mu_b, v_b = sp.Symbol("mu_b", real=True), sp.Symbol("v_b", positive=True)
loglik = sum(-sp.log(2 * sp.pi * v_b) / 2 - (ai - mu_b) ** 2 / (2 * v_b) for ai in a)
mu_hat = sp.solve(sp.diff(loglik, mu_b), mu_b)[0]  # the Gaussian likelihood equations
v_hat = sp.solve(sp.diff(loglik, v_b).subs(mu_b, mu_hat), v_b)[0]
printed_62 = sum(ai - mu_hat for ai in a) ** 2 / 4  # square outside the sum
display(Math(r"\hat\mu_b = " + sp.latex(mu_hat)))
dev = sp.simplify(v_hat - sum((ai - mu_hat) ** 2 for ai in a) / 4)
display(Math(r"\hat\sigma_b^2 - \frac14\sum_{i=1}^4 (a_i - \hat\mu_b)^2 = " + sp.latex(dev)))
display(Math(r"\text{printed (62)} = " + sp.latex(sp.simplify(printed_62))))
assert dev == 0
assert sp.simplify(printed_62) == 0 and E.library_prior_mle(4)[2] == 0

# %% [markdown]
# ## 4.5 The bound (69), corrected, and `VAE.loss`
#
# Put (61) into (60), estimate the expectation with $K$ samples (eq. (68)), and write the KLs in
# closed form. For cell $n$, with $\epsilon_z^{(k)}\sim\mathcal N(0, I_d)$ and
# $\epsilon_l^{(k)}\sim\mathcal N(0, 1)$:
#
# $$
# \begin{aligned}
# z^{(k)} &= f_{NN1} + f_{NN2}\odot\epsilon_z^{(k)}, \qquad
# \log l^{(k)} = f_{NN3} + f_{NN4}\,\epsilon_l^{(k)},\\
# \rho^{(k)} &= \mathrm{softmax}\,f_{NN5}(z^{(k)}, s_n),\qquad f_h^{(k)} = f_{NN6}(z^{(k)}, s_n),\\[4pt]
# \tilde{\mathcal L}_n &= \frac1K\sum_{k=1}^K\sum_{g=1}^G
#   \log\mathrm{ZINB}\big(x_{ng}\mid l^{(k)}\rho^{(k)}_g,\ \theta_g,\ f^{(k)}_{h,g}\big)\\
# &\quad - \sum_{i=1}^d\Big[-\log f_{NN2,i} - \frac12 + \frac{f_{NN2,i}^2 + f_{NN1,i}^2}{2}\Big]\\
# &\quad - \Big[\log\frac{\sigma_{b_n}}{f_{NN4}} - \frac12
#   + \frac{f_{NN4}^2 + (f_{NN3}-\mu_{b_n})^2}{2\sigma_{b_n}^2}\Big],
# \end{aligned}
# $$
#
# where, with $S(t) = \log(1+e^t)$ and the corrected (58),
#
# $$
# \begin{aligned}
# \log\mathrm{ZINB}(0\mid\mu,\theta,f_h) &= S\big(f_h + \theta\log\tfrac{\theta}{\theta+\mu}\big)
#   - S(f_h),\\
# \log\mathrm{ZINB}(x\mid\mu,\theta,f_h) &= -S(-f_h) + \theta\log\frac{\theta}{\theta+\mu}
#   + x\log\frac{\mu}{\theta+\mu}\\
# &\quad + \log\frac{\Gamma(x+\theta)}{\Gamma(x+1)\Gamma(\theta)}\qquad (x > 0).
# \end{aligned}
# $$
#
# The tutorial's (69) differs in three places:
#
# - it adds both KL brackets instead of subtracting them, which breaks the computation (§4.6);
# - its zero case $S(-f_h) + \theta\log\frac{\theta}{\theta+l f_w} - S(-f_h)$ forgets the
#   dropout;
# - its positive case has $x\log\frac{x}{\theta + l f_w}$ for $x\log\frac{l f_w}{\theta+l f_w}$.
#
# Here is the bound assembled with sympy for a cell with $G = 2$ genes, $d = 1$ and $K = 1$.
# Every symbol is on the page: the decoder is a two-gene softmax with logits $(w z + c, 0)$, and
# the noise $\epsilon_z$, $\epsilon_l$ enters through $z$ and $\log l$.

# %%
f1, f2, f3, f4, eps_z, eps_l, w, c = sp.symbols(
    r"f_{NN1} f_{NN2} f_{NN3} f_{NN4} \epsilon_z \epsilon_l w c", real=True
)
mu_b, sig_b, th1, th2, zi1, zi2, l, rho_1 = sp.symbols(
    r"\mu_b \sigma_b \theta_1 \theta_2 zi_1 zi_2 l \rho_1", positive=True
)
z = f1 + f2 * eps_z  # (61)
log_l = f3 + f4 * eps_l  # (61), in log space
rho_of_z = 1 / (1 + sp.exp(-(w * z + c)))  # softmax of (w z + c, 0) for gene 1
x_cell = [0, 3]
# the bound in terms of l and rho_1, to read ...
short = E.scvi_elbo(x_cell, [f1], [f2], [sp.log(l)], [[rho_1, 1 - rho_1]], [[zi1, zi2]],
                    [th1, th2], ql=(f3, f4), prior_l=(mu_b, sig_b))  # fmt: skip
# ... and with the noise substituted, as the module computes it
full = E.scvi_elbo(x_cell, [f1], [f2], [log_l], [[rho_of_z, 1 - rho_of_z]], [[zi1, zi2]],
                   [th1, th2], ql=(f3, f4), prior_l=(mu_b, sig_b))  # fmt: skip
display(Math(r"l = e^{" + sp.latex(log_l) + r"},\qquad \rho_1 = 1 - \rho_2 = "
             + sp.latex(rho_of_z.subs(z, sp.Symbol("z"))) + r",\qquad z = " + sp.latex(z)))  # fmt: skip
for g, xg in enumerate(x_cell):
    term = E.log_zinb(xg, l * [rho_1, 1 - rho_1][g], [th1, th2][g], [zi1, zi2][g])
    show_terms(rf"\log\mathrm{{ZINB}}(x_{g + 1} = {xg})", term, per_line=2)
display(Math(r"\mathrm{KL}_z = " + tex(short["kl_z"])))
display(Math(r"\mathrm{KL}_l = " + tex(short["kl_l"])))
back = short["elbo"].subs({rho_1: rho_of_z, l: sp.exp(log_l)})
assert sp.simplify(back - full["elbo"]) == 0  # same bound, noise explicit
assert sp.diff(full["elbo"], eps_z) != 0 and sp.diff(full["elbo"], eps_l) != 0
assert not full["kl_z"].has(eps_z) and not full["kl_l"].has(eps_l)

# %% [markdown]
# (The zero-inflation logits are written as the module's $\mathrm{zi} = -f_h$.) The check
# substitutes $l$ and $\rho_1$ back and confirms that $\epsilon_z$ and $\epsilon_l$ enter the
# bound only through the reconstruction term. The loss of the module is the negative of this
# bound, averaged over cells:

# %%
show_source(VAE.loss)

# %% [markdown]
# ### The symbolic bound equals `VAE.loss`
#
# Take a tiny VAE (5 genes, 2 batches, 4 hidden units, 2 latent dimensions, latent library) in
# float64 and evaluation mode. `E.bound_from_vae` rebuilds its decoder symbolically as the Fig. 3
# network from its weights and reuses the module's own noise samples ($K = 2$). The symbolic
# bound is then evaluated with mpmath at 30 digits:

# %%
# NBVAL_IGNORE_OUTPUT
torch.manual_seed(0)
vae = VAE(
    5,
    n_batch=2,
    n_hidden=4,
    n_latent=2,
    use_observed_lib_size=False,
    library_log_means=np.array([3.0, 3.5]),
    library_log_vars=np.array([0.3, 0.5]),
)
vae = vae.double().eval()
x = torch.tensor(rng.poisson(3, (3, 5)), dtype=torch.float64)
x[0, 1] = 0
batch = torch.tensor([0, 1, 1])
with torch.no_grad():
    inf = vae.inference(x, batch, n_samples=2)
    gen = vae.generative(inf["z"], inf["library"], batch)
    loss = vae.loss(x, inf, gen, batch)
rows, rel = [], []
for n in range(3):
    sym = E.bound_from_vae(vae, x, batch, inf, n)
    s_val, m_val = E.evaluate(sym["elbo"]), float(loss.elbo[n])
    rel.append(abs(s_val - m_val) / abs(m_val))
    rows.append((n, f"{s_val:.8f}", f"{m_val:.8f}", f"{rel[-1]:.0e}"))
columns = ["cell", "sympy bound", "VAE.loss elbo", "relative difference"]
display(pd.DataFrame(rows, columns=columns).set_index("cell"))
assert max(rel) < 1e-12

# %% [markdown]
# The two agree to at least 12 significant digits for every cell (the table shows the
# relative differences). The module computes the corrected (69), with both KL terms subtracted.
#
# ## 4.6 Why (69) with the KL added cannot be a bound
#
# A lower bound must lie below $\log p(x)$ for every $q$. We take a toy scVI small enough that
# $\log p(x)$ is a two-dimensional integral (one latent dimension, three genes, latent library;
# `E.ToySCVI`, by Gauss–Hermite quadrature), move the mean of $q(z)$, and compare both
# expressions with $\log p(x)$:

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
corrected = np.array([toy.elbo(x_toy, (m, 0.3), ql) for m in means])
printed = np.array([toy.elbo(x_toy, (m, 0.3), ql, printed=True) for m in means])
fig, ax = plt.subplots(figsize=(7, 3.6))
ax.axhline(log_px, color="k", label=r"$\log p(x)$ (quadrature)")
ax.plot(means, corrected, label=r"corrected: $E_q\log p - \mathrm{KL}$")
ax.plot(means, printed, "--", label=r"printed (69): $E_q\log p + \mathrm{KL}$")
ax.set_xlabel(r"mean of $q(z)$ (sd 0.3)")
ax.set_ylabel("value (nats)")
ax.set_ylim(log_px - 25, log_px + 10)
ax.legend(fontsize=8)
ax.set_title(f"Toy scVI, x = {x_toy}")
plt.show()
n_above = int((printed > log_px).sum())
table = pd.DataFrame(
    {"log p(x)": [log_px], "max corrected": [corrected.max()], "max printed": [printed.max()]},
    index=["nats"],
).round(3)
display(table)
print(f"the printed expression is above log p(x) at {n_above} of {len(means)} means of q(z)")
assert corrected.max() <= log_px < printed.max() and n_above > 0

# %% [markdown]
# On the plotted range the printed curve has a peak and turns down again: $\log\rho_g$ is
# linear in $z$ once the softmax saturates, so the reconstruction term falls about linearly in
# $|m|$. It still has no maximum over $q$. Its KL term grows like $m^2/2$, faster than the
# reconstruction term falls, and like $-\log s$ as the sd $s$ of $q(z)$ shrinks, while the
# reconstruction term tends to the finite $\log p(x\mid z=m)$. So shrinking $s$ raises the
# printed expression by $\log 10 \approx 2.303$ nats per decade without limit, and training
# on it would collapse $q(z)$ to a point. (Chapter 6's second exercise works this out for a
# one-dimensional Gaussian.)

# %%
# NBVAL_IGNORE_OUTPUT
m_peak = means[printed.argmax()]
sds = [0.3, 1e-1, 1e-2, 1e-3, 1e-4]
rows = {
    "printed (69)": [toy.elbo(x_toy, (0.0, s), ql, printed=True) for s in sds],
    "corrected": [toy.elbo(x_toy, (0.0, s), ql) for s in sds],
}
far = {m: toy.elbo(x_toy, (m, 0.3), ql, printed=True) for m in (-10.0, 20.0)}
print(f"the printed curve peaks at m = {m_peak:.1f} on the plotted range")
display(pd.DataFrame(rows, index=[f"s = {s:g}" for s in sds]).T.round(3))
print(
    "printed (69) far from the prior: " + ", ".join(f"m = {m:g}: {v:.2f}" for m, v in far.items())
)
steps = np.diff(rows["printed (69)"][1:])
assert 2.5 < m_peak < 3 and printed[-1] < printed.max()
assert np.allclose(steps, np.log(10), atol=1e-2) and rows["printed (69)"][-1] > log_px
assert all(v > log_px for v in far.values())

# %% [markdown]
# ## 4.7 The softmax of Fig. 3
#
# Fig. 3 (and the text after (59)) defines the expected frequencies as
# $\rho_g = o_g / \sum_j e^{o_j}$. They must be positive and sum to one over genes, which only the
# softmax $e^{o_g}/\sum_j e^{o_j}$ guarantees; NN5 in the figure above is followed by a softmax.

# %%
o = np.array([1.0, -2.0, 0.5, 0.0])
printed_rho = o / np.exp(o).sum()
softmax_rho = np.exp(o) / np.exp(o).sum()
fig, ax = plt.subplots(figsize=(6, 3))
idx = np.arange(len(o))
ax.bar(idx - 0.2, printed_rho, 0.4, label=r"printed $o_g/\sum_j e^{o_j}$")
ax.bar(idx + 0.2, softmax_rho, 0.4, label=r"softmax $e^{o_g}/\sum_j e^{o_j}$")
ax.axhline(0, color="k", lw=0.8)
ax.set_xticks(idx, [f"gene {i + 1}" for i in idx])
ax.set_ylabel(r"$\rho_g$")
ax.legend(fontsize=8)
ax.set_title(r"Expected frequencies for $o = (1, -2, 0.5, 0)$")
plt.show()
print(f"printed: sum {printed_rho.sum():.4f}, min {printed_rho.min():.4f}")
print(f"softmax: sum {softmax_rho.sum():.4f}, min {softmax_rho.min():.4f}")
assert printed_rho.min() < 0 and abs(softmax_rho.sum() - 1) < 1e-15

# %% [markdown]
# ## 4.8 The objective that training minimises (eq. (70))
#
# scVI maximises the average bound $\frac1N\sum_n\tilde{\mathcal L}_n$ by stochastic gradients on
# minibatches. The minibatch average is an unbiased estimate of it (ledger (70)). What the
# optimiser actually minimises, in `VAE.loss` above, is
#
# $$
# \text{loss} = \frac{1}{|B|}\sum_{n\in B}\Big(\text{reconstruction}_n + w\,\mathrm{KL}_{z,n}
# + \mathrm{KL}_{l,n}\Big),\qquad w = \min\!\Big(1, \frac{\text{step}}{\text{warm-up steps}}\Big).
# $$
#
# **Why a warm-up.** At the start the decoder knows nothing, so the cheapest way to lower the
# full loss is to set $q(z\mid x) = p(z)$. That makes $\mathrm{KL}_z = 0$, but the latent then
# carries no information, and the decoder may learn to ignore it ("posterior collapse"). With a
# small weight $w$ on $\mathrm{KL}_z$, the encoder first stores information in $z$ (with $w = 0$
# it is an autoencoder). As $w$ rises to 1 the prior is switched on. Once $w = 1$ the loss is the
# negative bound again, so the final epochs optimise the true ELBO (exercise 1 computes the
# effect of $w$ on a toy). Only $\mathrm{KL}_z$ is weighted; the library KL keeps weight 1, as in
# scvi-tools.

# %%
frac = scvi_edu.train.TrainConfig(max_epochs=1).kl_warmup_fraction  # SCVI.train's default
n_steps = 400
n_warm = int(frac * n_steps)
steps = np.arange(n_steps + 1)
weights = np.array([kl_weight_schedule(int(t), n_warm) for t in steps])
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.plot(steps, weights)
ax.axvline(n_warm, color="0.6", ls=":", lw=1)
ax.set_xlabel("training step")
ax.set_ylabel(r"KL weight $w$")
ax.set_title(f"Warm-up over the first {frac:.0%} of {n_steps} steps")
plt.show()
print(f"default kl_warmup_fraction = {frac}; w reaches 1 at step {int(np.argmax(weights >= 1))}")
assert weights[0] == 0 and weights[-1] == 1 and np.all(np.diff(weights) >= 0)

# %% [markdown]
# **Observed or latent library?** The tutorial (and the 2018 paper) learn $q(l\mid x, s)$ with the
# prior (62). scvi-tools and `scvi_edu` default to the *observed* library
# $\log l_n = \log\sum_g x_{ng}$ (`use_observed_lib_size=True`); then NN3, NN4 and
# $\mathrm{KL}_l$ are absent. Once, the tutorial calls the library encoder "NN4, NN5"; it is
# NN3, NN4 (a slip).
#
# ## 4.9 The ledger for (60)–(70)
#
# Each entry's check recomputes its verdict (tier as in chapter 6):

# %%
labels = ["(60)", "(61)", "(62)", "(63)", "(64)", "(65)", "(66)", "(67)", "(68)", "(69)", "(70)",
          "text before (61): library encoder networks", "Fig. 3 softmax (text after (59))"]  # fmt: skip
rows = ["| entry | topic | verdict | tier |", "|---|---|---|---|"]  # a markdown table: math renders
for label in labels:
    entry = by_label(label)
    assert entry.check() == entry.verdict
    rows.append(f"| {label} | {entry.topic} | {entry.verdict} | {entry.tier or '-'} |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Exercises
#
# **Exercise 1 (what the warm-up does).** Take $z\sim\mathcal N(0, 1)$,
# $x\mid z\sim\mathcal N(z, 1)$, one observation $x$, $q(z) = \mathcal N(m, s^2)$ and a warm-up
# weight $w$. The objective is $J(m, s) = \mathbb E_q[-\log p(x\mid z)] + w\,\mathrm{KL}(q\,\|\,p)$.
# Minimise it by hand over $m$ and $s$. For $x = 1.5$ and $w = 0.25$ (`EXERCISE_CH4`), check
# $(m^*, s^{*2})$ with `check_warmup_optimum(m_star, s2_star)`. What happens as $w\to 0$, and
# at $w = 1$?

# %%
print("x = {x}, w = {w}".format(**EXERCISE_CH4))
m_star, s2_star = None, None  # your answer
if m_star is not None:
    check_warmup_optimum(m_star, s2_star)

# %% [markdown]
# **Exercise 2 (the bound of one cell, from the module's parts).** With `vae`, `x`, `batch`,
# `inf` and `gen` from §4.5, compute the bound of cell 0 yourself. Average
# `scvi_edu.distributions.log_zinb_positive(x, px_rate, px_r, px_dropout)`, summed over genes,
# over the $K = 2$ samples. Then subtract the two Gaussian KLs, from the closed form of §4.4 with
# `qz_loc`, `qz_scale`, `ql_loc`, `ql_scale` and the prior `vae.library_log_means[b]`,
# `vae.library_log_vars[b]`. Check it with
# `check_cell_elbo(answer, vae, x, batch, inf, gen, n=0)`.

# %%
answer_2 = None  # your answer: a float
if answer_2 is not None:
    check_cell_elbo(answer_2, vae, x, batch, inf, gen, n=0)

# %% tags=["remove-cell"]
# the solutions below pass their checks
xw, ww = EXERCISE_CH4["x"], EXERCISE_CH4["w"]
check_warmup_optimum(xw / (1 + ww), ww / (1 + ww))
from scvi_edu.distributions import log_zinb_positive  # noqa: E402

log_px_cells = log_zinb_positive(x, gen["px_rate"], gen["px_r"], gen["px_dropout"]).sum(-1)
rec0 = float(log_px_cells[:, 0].mean())
m_, s_ = inf["qz_loc"][0], inf["qz_scale"][0]
kl_z0 = float((-torch.log(s_) - 0.5 + (s_**2 + m_**2) / 2).sum())
b0 = int(batch[0])
pm, ps = vae.library_log_means[b0], vae.library_log_vars[b0].sqrt()
lm, ls = inf["ql_loc"][0], inf["ql_scale"][0]
kl_l0 = float((torch.log(ps / ls) - 0.5 + (ls**2 + (lm - pm) ** 2) / (2 * ps**2)).sum())
check_cell_elbo(rec0 - kl_z0 - kl_l0, vae, x, batch, inf, gen, n=0)

# %% [markdown]
# ## Key takeaways
#
# - scVI is two Gaussian encoders (NN1–NN2 for $z$, NN3–NN4 for $\log l$) and one decoder (NN5
#   for the frequencies $\rho$ through a softmax, NN6 for the zero-inflation logits). The noise
#   $\epsilon_z$, $\epsilon_l$ enters only through $z$ and $\log l$ (eq. (61)).
# - The bound is the Monte Carlo average of the ZINB log-likelihood *minus* two closed-form KLs.
#   The printed (69) adds them, and the result rises above $\log p(x)$, so it cannot be a bound.
# - The KL between log-normals equals the KL between the Gaussians of their logs. The library
#   prior's variance is the mean of the *squared* deviations; the printed (62) is identically 0.
# - Training minimises $\mathrm{mean}(\text{reconstruction} + w\,\mathrm{KL}_z + \mathrm{KL}_l)$.
#   The weight $w$ rises from 0 to 1, so the encoder learns to use $z$ before the prior pulls it
#   in, and the last epochs optimise the true bound.
#
# ## Solutions
#
# <details><summary>Solution to exercise 1</summary>
#
# Up to constants, $J = \frac{(x-m)^2 + s^2}{2} + w\Big(\frac{m^2 + s^2 - 1}{2} - \log s\Big)$.
# Setting the derivatives to zero:
#
# $$
# \partial_m J = -(x - m) + w m = 0 \Rightarrow m^* = \frac{x}{1+w},\qquad
# \partial_s J = s + w s - \frac{w}{s} = 0 \Rightarrow s^{*2} = \frac{w}{1+w}.
# $$
#
# For $x = 1.5$ and $w = 0.25$: $m^* = 1.2$ and $s^{*2} = 0.2$. At $w = 1$ this is the exact
# posterior $\mathcal N(x/2, 1/2)$. As $w\to 0$, $s^*\to 0$ and $m^*\to x$: the encoder becomes
# a deterministic autoencoder that copies the data into $z$. Warm-up starts there and moves to
# the posterior as $w\to 1$.
#
# ```python
# check_warmup_optimum(1.5 / 1.25, 0.25 / 1.25)
# ```
#
# </details>
#
# <details><summary>Solution to exercise 2</summary>
#
# ```python
# from scvi_edu.distributions import log_zinb_positive
#
# log_px = log_zinb_positive(x, gen["px_rate"], gen["px_r"], gen["px_dropout"]).sum(-1)
# rec = float(log_px[:, 0].mean())  # average over the K = 2 samples
# m, s = inf["qz_loc"][0], inf["qz_scale"][0]
# kl_z = float((-torch.log(s) - 0.5 + (s**2 + m**2) / 2).sum())  # (64)
# b = int(batch[0])
# pm, ps = vae.library_log_means[b], vae.library_log_vars[b].sqrt()
# lm, ls = inf["ql_loc"][0], inf["ql_scale"][0]
# kl_l = float((torch.log(ps / ls) - 0.5 + (ls**2 + (lm - pm) ** 2) / (2 * ps**2)).sum())  # (66)
# check_cell_elbo(rec - kl_z - kl_l, vae, x, batch, inf, gen, n=0)
# ```
#
# Adding the KLs instead, as the printed (69) does, is refused by the check.
#
# </details>
