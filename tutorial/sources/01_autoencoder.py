# %% [markdown]
# # Chapter 1 — The autoencoder (tutorial eqs. (1)–(28))
#
# The tutorial opens with the smallest possible autoencoder: two-dimensional data lying on the line
# $x_2 = 2x_1$, a linear encoder $z = f(\mathbf x) = a_1x_1 + a_2x_2$ and a linear decoder
# $g(z) = (b_1z,\ b_2z)$. Everything about it can be solved by hand, which makes it the right place
# to see three things that matter for scVI later:
#
# 1. the optimum of an autoencoder is **not unique** (a whole manifold of parameters reconstructs
#    perfectly), and which point an optimizer reaches depends on the optimizer and its start;
# 2. a penalty on the parameters picks points out of that manifold ($\ell_2$: two points; $\ell_1$:
#    sparse ones), at the price of a biased reconstruction;
# 3. nothing in the loss says that the code $z$ should follow any particular distribution — the
#    motivation for the VAE of chapter 2.
#
# Every formula below is derived by sympy (`derivations/autoencoder.py`), every claim of the
# tutorial is checked in the equation ledger (`derivations/ledger_autoencoder.py`), and the Torch
# model (`scvi_edu/toys/autoencoder.py`) is trained to confirm the derivations numerically.

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

from derivations import autoencoder as A
from derivations.ledger import by_label
from scvi_edu.toys.autoencoder import LinearAutoencoder, fit

torch.manual_seed(0)
rng = np.random.default_rng(0)
random.seed(0)
torch.set_num_threads(1)
# %matplotlib inline

a1, a2, b1, b2 = A.PARAMS
gamma, lam = A.gamma, A.lam


def show(lhs, expr):
    display(Math(lhs + " = " + sp.latex(expr)))


# %% [markdown]
# ## 1. The data, eqs. (1)–(3)
#
# If $z\sim N(0,1)$ and $\mathbf x = (z, 2z)$, then $\mathbf x$ has mean 0 and covariance
# $\Sigma_{\mathbf x} = E[\mathbf x\mathbf x^\top] = \mathbf v\mathbf v^\top$ with
# $\mathbf v = (1, 2)$: a singular, "degenerate" normal distribution (eqs. (1)–(2)). sympy integrates
# $E[\mathbf x\mathbf x^\top]$ against the normal density:

# %%
Sigma = A.covariance_of_generator()
show(r"\Sigma_{\mathbf x}", Sigma)
print("det =", Sigma.det(), " rank =", Sigma.rank())
assert Sigma == sp.Matrix([[1, 2], [2, 4]]) and Sigma.det() == 0

# %% [markdown]
# The nine samples of eq. (3) lie exactly on the line. One number summarises them for everything
# that follows: $\gamma = \frac1N\sum_n x_{n,1}^2$. The tutorial later says "$\gamma\approx 1$"
# (it would be, for a large sample of $N(0,1)$), but for these nine points it is $77/180\approx0.43$.
# This matters: the tutorial's closed form (25) happens to be right *only* at $\gamma = 1$.

# %%
X = A.data()
Xnp = A.data_array()
g0 = A.gamma_of()
print("all rows on x2 = 2 x1:", all(X[n, 1] == 2 * X[n, 0] for n in range(X.rows)))
print("gamma =", g0, "=", f"{float(g0):.4f}")
assert g0 == sp.Rational(77, 180)

# %% [markdown]
# ## 2. The loss and its stationary points, eqs. (4)–(14)
#
# The loss (5) is the mean squared reconstruction error. For data on the line, with
# $s = a_1 + 2a_2$ (what the encoder does to a point of the line: $z = s\,x_1$), it collapses to
#
# $$L = \gamma\,\big[(1 - b_1 s)^2 + (2 - b_2 s)^2\big] = \gamma\,\lVert\mathbf v - s\,\mathbf
# b\rVert^2 .$$
#
# sympy proves this identity for symbolic samples and for the data (3):

# %%
L0 = A.loss()  # eq. (5) on the data (3), exact rationals
print("reduction exact for symbolic data:", A.loss_on_line_is_exact())
assert sp.expand(L0 - A.loss_on_line(g0, 0)) == 0
show(r"L", A.loss_on_line(gamma, 0))

# %% [markdown]
# The gradient (6) is `sp.diff` of (5); fixing $\mathbf b$ it becomes the linear system (7) in
# $\mathbf a$, fixing $\mathbf a$ the solution (10) for $\mathbf b$. Two typographic slips on the
# way (each checked in the ledger by comparing the printed formula with sympy's derivation):
#
# * **(7)**, second right-hand side: printed $\sum_n b_1x_{n,1}x_{n,2} + b_2x_{n,1}^2$; the
#   derivation gives $b_2x_{n,2}^2$ (which is what (8) then uses);
# * **(12)**: printed denominators $(a_1+a_2)^2$; the derivation gives $(a_1+2a_2)^2$ (as in (13)).

# %%
M, r = A.normal_equations_encoder()  # eq. (7)/(18) on the data (3), 1/N included
show(r"M", M)
show(r"r", r)
# row 2 of r, derived, against the printed b1 x1 x2 + b2 x1^2 (on the data (3), 1/N included)
pairs = ((0, 0), (0, 1), (1, 1))
S11, S12, S22 = (sum(X[n, i] * X[n, j] for n in range(X.rows)) / X.rows for i, j in pairs)
print("derived r2 - (b1 S12 + b2 S22) =", sp.expand(r[1] - (b1 * S12 + b2 * S22)))
print("derived r2 - (b1 S12 + b2 S11) =", sp.expand(r[1] - (b1 * S12 + b2 * S11)), " (printed (7))")
assert sp.expand(r[1] - (b1 * S12 + b2 * S22)) == 0
for label in ("(6)", "(7)", "(12)", "(14)"):  # verdicts recomputed by tests/test_ledger.py
    e = by_label(label)
    print(f"{label:5s} {e.verdict:5s} {e.correction}")

# %% [markdown]
# Solving $\nabla L = 0$ (in the reduced variables $(s, b_1, b_2)$, since
# $\partial L/\partial\mathbf a = (\partial L/\partial s)\,\mathbf v$) gives **two** families:
# the tutorial's (14), $b_1 s = 1,\ b_2 = 2b_1$, where $L = 0$; and $s = 0,\ b_1 = -2b_2$, which the
# tutorial excludes by assuming $s\neq 0$ — they are saddles (the Hessian has eigenvalues of both
# signs), the origin among them.

# %%
for fam in A.stationary_points_unpenalised():
    print(fam)
point = {a1: 0, a2: 0, b1: 0, b2: 0}
kind, eig = A.classify_point(L0, point)
print("origin:", kind, eig)
kind2, eig2 = A.classify_point(L0, {a1: sp.Rational(2, 5), a2: -sp.Rational(1, 5), b1: -2, b2: 1})
print("(a, b) = (2/5, -1/5, -2, 1):", kind2)
assert kind == kind2 == "saddle"

# %% [markdown]
# ### The solutions form a manifold, not a point
#
# The minimisers (14) are $\{(\mathbf a, \mathbf b): a_1 + 2a_2 \neq 0,\ \mathbf b = \mathbf
# v/(a_1+2a_2)\}$:
# the two constraints have a Jacobian of rank 2, so the set is a **2-dimensional manifold** in the
# 4-dimensional parameter space (two sheets, $s > 0$ and $s < 0$). At any of its points the Hessian
# has two zero eigenvalues (the flat directions along the manifold) and two positive ones. The
# tutorial's examples $(1, 0, 1, 2)$, $(0, 0.5, 1, 2)$, $(0, 0.25, 2, 4)$ all lie on it.

# %%
print("dimension of the solution set:", A.manifold_dimension())
for p in [(1, 0, 1, 2), (0, sp.Rational(1, 2), 1, 2), (0, sp.Rational(1, 4), 2, 4)]:
    kind, eig = A.classify_point(L0, dict(zip(A.PARAMS, p, strict=True)))
    print(p, "loss", L0.subs(dict(zip(A.PARAMS, p, strict=True))), kind, eig)
    assert kind == "degenerate minimum" and sum(e == 0 for e in eig) == 2
assert A.manifold_dimension() == 2

# %% [markdown]
# ### Torch: many starts, many answers
#
# We train 32 copies of the linear autoencoder from random starts with plain (full-batch) gradient
# descent. All of them reach zero loss, on the manifold (14), at different points. Which point is
# not random at all: the gradient with respect to $\mathbf a$ is always parallel to $\mathbf v$,
# so gradient descent never changes the component of $\mathbf a$ along $(2, -1)$ — the end point
# is fixed by the start. Adam rescales each coordinate and does move that component: a different
# algorithm, a different point ("which solution is arrived at depends on the algorithm", as the
# tutorial says).

# %%
x_t = torch.tensor(Xnp)
ae = LinearAutoencoder(32, init_scale=0.7, seed=0)
perp = torch.tensor([2.0, -1.0], dtype=torch.float64)
a_perp0 = ae.a.detach() @ perp
traj = torch.stack(fit(ae, x_t, optimizer="sgd", lr=0.04, n_steps=800, record_every=10))
P = ae.params().numpy()
s_end = P[:, 0] + 2 * P[:, 1]
err14 = max(np.abs(P[:, 2] * s_end - 1).max(), np.abs(P[:, 3] - 2 * P[:, 2]).max())
print("max loss < 1e-12:", ae.reconstruction_loss(x_t).max().item() < 1e-12)
print("max violation of (14) < 1e-8:", err14 < 1e-8)
print(f"end points: s = a1 + 2 a2 from {s_end.min():.2f} to {s_end.max():.2f}")
assert ae.reconstruction_loss(x_t).max().item() < 1e-12 and err14 < 1e-8 and np.ptp(s_end) > 1
assert torch.allclose(ae.a.detach() @ perp, a_perp0, atol=1e-12)  # SGD: a . (2, -1) conserved

adam = LinearAutoencoder(32, init_scale=0.7, seed=0)
fit(adam, x_t, optimizer="adam", lr=0.01, n_steps=300)
moved = (adam.a.detach() @ perp - a_perp0).abs().max().item()
print("Adam moves a . (2, -1):", moved > 1e-2)
assert moved > 1e-2


# %% [markdown]
# The figure shows the loss in two coordinates that matter, $s = a_1 + 2a_2$ and
# $\beta = (b_1 + 2b_2)/5$ (the decoder's component along $\mathbf v$); writing
# $\mathbf b = \beta\mathbf v + \mathbf b_\perp$, $L = \gamma[5(1-\beta s)^2 + s^2\lVert\mathbf
# b_\perp\rVert^2]$,
# and the contours are drawn at $\mathbf b_\perp = 0$. The minimisers project onto the hyperbola
# $\beta s = 1$; each gradient-descent run (a line from a start to a dot) stops wherever it meets it.


# %%
def s_beta(params):
    p = np.asarray(params)
    return p[..., 0] + 2 * p[..., 1], (p[..., 2] + 2 * p[..., 3]) / 5


S, B = np.meshgrid(np.linspace(-3.5, 3.5, 300), np.linspace(-1.6, 1.6, 300))
Lgrid = float(g0) * 5 * (1 - B * S) ** 2
fig, ax = plt.subplots(figsize=(6.5, 4.5))
ax.contourf(S, B, np.log10(Lgrid + 1e-3), levels=30, cmap="viridis")
for branch in (np.linspace(0.45, 3.5, 100), np.linspace(-3.5, -0.45, 100)):
    ax.plot(branch, 1 / branch, "w--", lw=1.5)
ts, tb = s_beta(traj.numpy())
for k in range(traj.shape[1]):
    ax.plot(ts[:, k], tb[:, k], color="orange", lw=0.8)
    ax.plot(ts[-1, k], tb[-1, k], "o", color="red", ms=3)
ax.set(
    xlabel=r"$s = a_1 + 2a_2$",
    ylabel=r"$\beta = (b_1 + 2b_2)/5$",
    xlim=(-3.5, 3.5),
    ylim=(-1.6, 1.6),
    title=r"unpenalised: 32 runs end at different points of $\beta s = 1$",
)
plt.show()

# %% [markdown]
# ### A remark on the VAE (text after (14))
#
# The tutorial says that asking $Z\sim N(0,1)$ would give $a_1 + 2a_2 = 1,\ b_1 = 1,\ b_2 = 2$.
# With $x_1\sim N(0,1)$, $z = s\,x_1\sim N(0, s^2)$, so $s^2 = 1$: $s = +1$ **or** $s = -1$, with
# $\mathbf b = \pm(1, 2)$. A standard normal is symmetric, so the sign is never identified (ledger
# verdict: wrong). The remaining freedom along $a_1 + 2a_2 = \pm1$ is harmless, as the tutorial
# says: $z = \pm x_1$ either way.

# %%
e = by_label("text after (14): VAE")
print(e.check(), "->", e.correction)
assert e.check() == "wrong"

# %% [markdown]
# ## 3. The $\ell_2$ penalty, eqs. (15)–(27)
#
# Adding $\lambda(a_1^2 + a_2^2 + b_1^2 + b_2^2)$ (eq. (16)) makes, for fixed $\mathbf b$, the system
# (18) strictly convex in $\mathbf a$: on the line it reads (19)
#
# $$\begin{bmatrix}\gamma\delta+\lambda & 2\gamma\delta\\ 2\gamma\delta &
# 4\gamma\delta+\lambda\end{bmatrix}
# \mathbf a = (b_1+2b_2)\gamma\begin{bmatrix}1\\2\end{bmatrix},\qquad \delta = b_1^2 + b_2^2,$$
#
# with determinant $\lambda(5\gamma\delta + \lambda) > 0$ for every $\lambda > 0$. The tutorial
# prints $\gamma\delta$ in row 2, column 1 (a slip: its (20) is the solution of the symmetric
# matrix above). sympy solves both halves, (20) and (23):

# %%
show(r"\mathbf a^*(\mathbf b)", A.encoder_given_decoder())
show(r"\mathbf b^*(\mathbf a)", A.decoder_given_encoder())
for label in ("(19)", "(20)", "(23)", "(24)"):  # verdicts recomputed by tests/test_ledger.py
    print(f"{label:5s} {by_label(label).verdict}")

# %% [markdown]
# Both halves are multiples of $\mathbf v$, so $\mathbf a = \alpha\mathbf v$, $\mathbf b =
# \beta\mathbf v$;
# the system (24) then has exactly three solutions, the origin and
#
# $$a_1 = b_1 = \pm\frac{\sqrt{5\gamma - \lambda}}{5\sqrt\gamma},\qquad a_2 = 2a_1,\quad b_2 = 2b_1,
# \qquad\text{real only for }\lambda < 5\gamma .$$
#
# **The tutorial's (25)–(26) are wrong**: they print $\sqrt{5\sqrt\gamma - \lambda}$ and the
# denominators $5\gamma$ (for $a_1$) and $5\sqrt\gamma$ (for $b_1$). At $\gamma = 1$ the two agree,
# which is why the check (27) ($\lambda = 0,\ \gamma = 1$) does not catch it; on the data (3)
# ($\gamma = 77/180$) the printed point is not even stationary.

# %%
sols = A.penalised_solutions()
for sol in sols:
    show(r"(a_1, a_2, b_1, b_2)", sp.Matrix([sol[p] for p in A.PARAMS]).T)

r_printed = sp.sqrt(5 * sp.sqrt(gamma) - lam)
printed25 = {
    a1: r_printed / (5 * gamma),
    a2: 2 * r_printed / (5 * gamma),
    b1: r_printed / (5 * sp.sqrt(gamma)),
    b2: 2 * r_printed / (5 * sp.sqrt(gamma)),
}
at = {gamma: g0, lam: sp.Rational(1, 10)}
grad_pen = A.gradient(A.loss_on_line(gamma, lam))
grad_printed = [float(e.subs(printed25).subs(at)) for e in grad_pen]
positive_sol = next(so for so in sols if so[a1].subs(at) > 0)
grad_correct = [sp.simplify(e.subs(positive_sol).subs(at)) for e in grad_pen]
print("gradient at the printed (25), data (3), lambda = 0.1:", np.round(grad_printed, 3))
print("gradient at the corrected (25):", grad_correct)
assert all(v == 0 for v in grad_correct) and max(map(abs, grad_printed)) > 0.1
for label in ("(25)", "(26)", "(27)"):
    e = by_label(label)
    print(f"{label:5s} {e.verdict}: {e.correction}")

# %% [markdown]
# The nature of the stationary points, from the Hessian: at the origin its eigenvalues are
# $2\lambda$ (twice) and $2\lambda\pm10\gamma$, so the origin is a **saddle** for $\lambda<5\gamma$
# (also at $\lambda = 0$: not a maximum) and the global **minimum** for $\lambda > 5\gamma$, where the
# other two points cease to exist. The two points $\pm(\alpha, 2\alpha, \alpha, 2\alpha)$ are strict
# minima (four positive eigenvalues): the penalty turns the 2-dimensional manifold into two points.

# %%
show(r"\operatorname{eig} \nabla^2 L(0)", A.origin_hessian_eigenvalues())
L_pen = A.loss_on_line(g0, sp.Rational(1, 10))
kind, eig = A.classify_point(L_pen, {p: v.subs(at) for p, v in positive_sol.items()})
print("corrected (25) on the data (3), lambda = 1/10:", kind, [f"{float(e):.4f}" for e in eig])
assert kind == "minimum"


# %% [markdown]
# In words (corrected text after (27)): the code is $z = 5a_1x_1 =
# \sqrt{(5\gamma-\lambda)/\gamma}\,x_1$
# and the reconstruction is $\tilde{\mathbf x} = 5a_1b_1\,\mathbf x = (1 -
# \tfrac{\lambda}{5\gamma})\,\mathbf x$:
# on the line, shrunk towards 0 by a factor that goes to 1 as $\lambda\to0$ for **every** $\gamma$
# (the
# printed gain $\frac{5\sqrt\gamma-\lambda}{5\gamma\sqrt\gamma}$ would be $1/\gamma = 2.34$ at
# $\lambda=0$).
#
# ### Torch: the penalised autoencoder lands on the closed form
#
# For two data scales ($\gamma = 77/180$ and $\gamma = 2.25\cdot77/180$, the data (3) multiplied by
# 1.5) and several $\lambda$ (one per replica, four random starts each), gradient descent reaches the
# corrected closed form to $10^{-6}$ (up to the sign symmetry $(\mathbf a, \mathbf b)\to(-\mathbf a,
# -\mathbf b)$),
# and the origin once $\lambda > 5\gamma$.


# %%
def positive(p):
    return np.where(p[:, 1:2] < 0, -p, p)


worst = 0.0
for c, lams in ((1.0, [0.2, 1.0, 3.0]), (1.5, [0.5, 2.0, 7.0])):
    g_c = float(g0) * c**2
    lam_r = np.repeat(lams, 4)
    model = LinearAutoencoder(len(lam_r), init_scale=0.7, seed=1)
    fit(model, torch.tensor(c * Xnp), lam=torch.tensor(lam_r), lr=0.04 / c**2, n_steps=1000)
    P = positive(model.params().numpy())
    for i, lv in enumerate(lam_r):
        worst = max(worst, np.abs(P[i] - A.penalised_minimiser_float(g_c, lv)).max())
    for lv in lams:
        ref = A.penalised_minimiser_float(g_c, lv)
        print(f"gamma = {g_c:.4f}, lambda = {lv}: a1 = b1 = {ref[0]:.4f}")
print("max |torch - closed form| < 1e-6:", worst < 1e-6)
assert worst < 1e-6

# %% [markdown]
# ## 4. Exercise: an $\ell_1$ penalty instead of $\ell_2$
#
# *"What will happen if we apply the $\ell_1$ penalty to the original objective, we left the
# exploration to you."* — Replace $\lambda\lVert\theta\rVert_2^2$ by
# $\lambda(|a_1| + |a_2| + |b_1| + |b_2|)$ and, for the data (3):
#
# 1. find the minimiser (with $a_2 > 0$) for $\lambda = 1/2$;
# 2. find the $\lambda^*$ above which the minimiser is $0$.
#
# Try it before reading on (hint: for a fixed $s = a_1 + 2a_2$, which $\mathbf a$ has the smallest
# $\ell_1$ norm?). Check your answer with `A.check_exercise_l1(params, threshold)`: it raises an
# `AssertionError` with a hint if the answer is wrong.
#
# ### Solution
#
# The loss is $\gamma\lVert\mathbf v - s\mathbf b\rVert^2 + \lambda(\lVert\mathbf a\rVert_1 +
# \lVert\mathbf b\rVert_1)$;
# by the symmetry $(\mathbf a, \mathbf b)\to(-\mathbf a, -\mathbf b)$ take $s > 0$.
#
# 1. **The encoder becomes sparse.** $\mathbf a$ enters the reconstruction only through $s$, so it
#    minimises $|a_1| + |a_2|$ on the line $a_1 + 2a_2 = s$: a convex piecewise-linear function of
#    $a_2$ with slopes $-3, -1, +3$, minimal at the kink $a_2 = s/2$, i.e. $\mathbf a = (0, s/2)$.
#    The encoder reads only $x_2$, the coordinate with the larger coefficient. (With $\ell_2$, the
#    encoder is $\propto(1, 2)$, dense.)
# 2. **Balance.** With the gains $\mathbf u = s\mathbf b$ (the reconstruction is $(u_1x_1, u_2x_1)$)
#    the penalty is $\lambda(s/2 + (u_1 + u_2)/s)$, smallest at $s = \sqrt{2t}$, $t = u_1 + u_2$,
#    where it equals $\lambda\sqrt{2t}$ (and $\lVert\mathbf a\rVert_1 = \lVert\mathbf b\rVert_1$).
# 3. **The reconstruction leaves the line.** For fixed $t$ the best gains are the projection of
#    $\mathbf v = (1,2)$ on $u_1 + u_2 = t$: $\mathbf u = \big(\tfrac{t-1}{2}, \tfrac{t+1}{2}\big)$.
#    Both gains shrink by the *same* amount $(3-t)/2$ (soft thresholding), so
#    $\tilde x_2/\tilde x_1 = (t+1)/(t-1) > 2$: unlike $\ell_2$, the reconstructions no longer lie on
#    $x_2 = 2x_1$.
# 4. **A 1-d problem.** What is left is $F(t)/\gamma = (3-t)^2/2 + \mu\sqrt{2t}$ with $\mu =
# \lambda/\gamma$;
#    $F'(t) = 0$ is the cubic $r^3 - 3r + \mu/\sqrt2 = 0$ in $r = \sqrt t$, whose largest root is
#    $r = 2\cos\big(\tfrac13\arccos(-\mu/(2\sqrt2))\big)$ (Viète).
# 5. **Collapse is a jump.** The $\ell_1$ penalty grows linearly away from 0 while the loss gain is
#    quadratic, so the origin is a strict *local* minimum for every $\lambda > 0$ (for $\ell_2$ it is
#    a
#    saddle until $\lambda = 5\gamma$). The global minimiser jumps to 0 when $F(t) = F(0) = 5\gamma$
#    at the stationary $t$: $t^* = 1 + \sqrt{2/3}$, $\mu^* = (2-\sqrt{2/3})\sqrt{2 +
#    2\sqrt{2/3}}\approx 2.256$,
#    i.e. $\lambda^* \approx 0.965$ for the data (3) — not a continuous shrinkage to 0 as with
#    $\ell_2$.

# %%
print("encoder for given s: a2 =", A.l1_encoder_for_given_s()[0])
print("scale for given gains: s =", A.l1_scale_for_given_gains()[0])
show(r"\mathbf u(t)", A.l1_gains_for_given_t().T)
show(r"F(t)/\gamma", A.l1_reduced_loss())
show(r"t(\mu)", A.l1_t_of_mu())
t_star, mu_star = A.l1_threshold()
show(r"(t^*, \mu^*)", sp.Tuple(t_star, mu_star))
lam_star = float(mu_star) * float(g0)
print(f"lambda* = mu* gamma = {lam_star:.4f}   (l2 collapses at 5 gamma = {5 * float(g0):.4f})")

# %% [markdown]
# **Numerical check**: proximal gradient descent (a gradient step on the reconstruction error, then
# soft thresholding of every parameter — the $\ell_1$ norm has no gradient at 0) from 8 random starts
# per $\lambda$. Runs that do not end in the origin's basin (a local minimum for $\ell_1$) reach the
# closed form to $10^{-5}$.

# %%
lams_l1 = np.repeat([0.1, 0.5, 0.9], 8)
l1 = LinearAutoencoder(len(lams_l1), init_scale=0.7, seed=2)
fit(l1, x_t, lam=torch.tensor(lams_l1), penalty="l1", optimizer="prox", lr=0.1, n_steps=1500)
P1 = positive(l1.params().numpy())
worst, n_zero = 0.0, 0
for i, lv in enumerate(lams_l1):
    if np.abs(P1[i]).max() == 0:
        n_zero += 1
    else:
        worst = max(worst, np.abs(P1[i] - A.l1_minimiser_float(float(g0), lv)).max())
print("max |prox - closed form| < 1e-5:", worst < 1e-5)
print(f"{n_zero} of {len(lams_l1)} runs ended in the origin (a local minimum)")
assert worst < 1e-5 and n_zero < len(lams_l1) // 2
ref = A.l1_minimiser_float(float(g0), 0.5)
print("lambda = 0.5: (a1, a2, b1, b2) =", np.round(ref, 4), f" b2/b1 = {ref[3] / ref[2]:.4f}")

# %% [markdown]
# The check cell: the answer below is the Torch result (not the closed form), the threshold the
# derived $\lambda^*$. Replace them with your own answer; a wrong one (here: the $\ell_2$ answer) is
# rejected with a hint.

# %%
answer = P1[np.flatnonzero(lams_l1 == 0.5)[0]]
A.check_exercise_l1(answer, lam_star)
print("check passed")
try:
    A.check_exercise_l1(A.penalised_minimiser_float(float(g0), 0.5), lam_star)
except AssertionError as err:
    print("the l2 answer is rejected:", err)

# %% [markdown]
# ### $\ell_1$ versus $\ell_2$ as $\lambda$ grows
#
# Left: the encoder weights. $\ell_2$ keeps $a_2 = 2a_1$ and shrinks continuously to 0 at $5\gamma$;
# $\ell_1$ sets $a_1 = 0$ for every $\lambda > 0$ and jumps to 0 at $\lambda^*$. Right: the slope of
# the
# reconstructed line $\tilde x_2/\tilde x_1$: always 2 for $\ell_2$, above 2 for $\ell_1$.
# Dots are the Torch $\ell_1$ runs (proximal gradient), lines the closed forms.

# %%
grid = np.linspace(0.0, 2.4, 241)
l2_path = np.array([A.penalised_minimiser_float(float(g0), v) for v in grid])
l1_path = np.array([A.l1_minimiser_float(float(g0), v) for v in grid])
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
ax1.plot(grid, l2_path[:, 0], "C0-", label=r"$\ell_2$: $a_1$")
ax1.plot(grid, l2_path[:, 1], "C0--", label=r"$\ell_2$: $a_2$")
on = grid <= lam_star  # draw the jump at lambda* as a jump, not as a steep line
ax1.plot(grid, l1_path[:, 0], "C3-", label=r"$\ell_1$: $a_1$")
ax1.plot(grid[on], l1_path[on, 1], "C3--", label=r"$\ell_1$: $a_2$")
ax1.plot(grid[~on], l1_path[~on, 1], "C3--")
ok = np.abs(P1).max(axis=1) > 0
ax1.plot(lams_l1[ok], P1[ok, 1], "o", color="C3", ms=4)
ax1.axvline(lam_star, color="C3", lw=0.8, ls=":")
ax1.axvline(5 * float(g0), color="C0", lw=0.8, ls=":")
ax1.set(xlabel=r"$\lambda$", ylabel="encoder weight", title="encoder: sparse and jumping (l1)")
ax1.legend()
with np.errstate(divide="ignore", invalid="ignore"):
    slope1 = np.where(l1_path[:, 2] > 0, l1_path[:, 3] / l1_path[:, 2], np.nan)
    slope2 = np.where(l2_path[:, 2] > 0, l2_path[:, 3] / l2_path[:, 2], np.nan)
ax2.plot(grid, slope2, "C0-", label=r"$\ell_2$")
ax2.plot(grid, slope1, "C3-", label=r"$\ell_1$")
ax2.plot(lams_l1[ok], P1[ok, 3] / P1[ok, 2], "o", color="C3", ms=4)
ax2.set(xlabel=r"$\lambda$", ylabel=r"$\tilde x_2 / \tilde x_1$", title="reconstruction slope")
ax2.legend()
plt.show()

# %% [markdown]
# ## 5. The general autoencoder, eq. (28), and the chapter's ledger
#
# Eq. (28) generalises (15) to neural networks $f(\cdot, \theta_f)$, $g(\cdot, \theta_g)$; read
# $f(x_n, \theta_f)$ for the printed $f(x, \theta_f)$ (a slip). Nothing in this loss constrains the
# distribution of $z$ — chapter 2's variational autoencoder adds exactly that.
#
# The ledger entries of this chapter whose verdict is not `ok` (each `check()` recomputes its verdict
# in `tests/test_ledger.py`):

# %%
from derivations.ledger_autoencoder import ENTRIES

for e in ENTRIES:
    if e.verdict != "ok":
        print(f"{e.label:30s} {e.verdict:5s} {e.correction}")
print(len(ENTRIES), "entries,", sum(e.number is not None for e in ENTRIES), "numbered equations")
