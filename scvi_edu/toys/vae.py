"""The linear Gaussian VAE of chapter 2 (tutorial eqs. (39)-(54)), in Torch, float64.

Data (eq. (47), with the noise covariance read as ``gamma * I``: ledger entry (47))::

    z ~ N(0, 1),    x = (1, 2) z + eps,    eps ~ N(0, gamma I)

Model::

    q(z | x) = N(a . x, var_q)            encoder, phi = a (and var_q when learned)
    p(z) = N(0, 1),  p(x | z) = N(b z, var_x I)   decoder, theta = b (and var_x when learned)

Two variants:

* ``learn_variances=False`` (the tutorial's (50)): var_q = gamma/(5 + gamma), var_x = gamma are
  fixed at their true values. Population optimum: a* = (1, 2)/(5 + gamma), b* = (1, 2) (up to a
  joint sign), see ``derivations.vae``. Sample optimum in closed form: ``sample_optimum_fixed``.
* ``learn_variances=True``: one encoder log-variance and one decoder log-variance (shared by the
  two coordinates) are parameters too. The encoder family then contains the exact posterior of
  every decoder, so max ELBO = max log-likelihood of N(0, b b^T + var_x I): probabilistic PCA.
  Optimum (``sample_optimum_learned``): var_x = smallest eigenvalue of the second-moment matrix
  S (-> gamma), b = top eigenvector * sqrt(lambda1 - lambda2) (-> +-(1, 2)), a = b / lambda1,
  var_q = lambda2 / lambda1 (-> gamma/(5 + gamma), the posterior variance), and the ELBO equals
  the log-likelihood: the bound is tight. (With one variance *per coordinate* the model would
  not be identifiable from 2-d data with 1 latent: 4 parameters for 3 covariance entries.)

Variances are stored as log-variances (unconstrained; the optimum is interior, and exp is
harmless at this scale). The KL and the Gaussian log-density come from ``scvi_edu.distributions``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from scvi_edu.distributions import kl_normal, log_normal

W_TRUE = (1.0, 2.0)  # the true decoder direction of eq. (47)


# --------------------------------------------------------------------------------------------
# Data and closed-form optima
# --------------------------------------------------------------------------------------------
def _check_gamma(gamma: float) -> float:
    gamma = float(gamma)
    if not math.isfinite(gamma) or gamma <= 0:
        raise ValueError(f"gamma (the noise variance) must be a positive number, got {gamma}")
    return gamma


def sample_data(n: int, gamma: float, seed: int = 0) -> torch.Tensor:
    """n samples of x~ from eq. (47) (noise N(0, gamma I)), float64, shape (n, 2)."""
    gamma = _check_gamma(gamma)
    if n < 2:
        raise ValueError(f"need at least 2 samples, got n = {n}")
    gen = torch.Generator().manual_seed(seed)
    zz = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    noise = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return zz * torch.tensor(W_TRUE, dtype=torch.float64) + math.sqrt(gamma) * noise


def second_moments(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """S = (1/N) sum_n x_n x_n^T (uncentred: the model has mean 0), shape (2, 2)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (N, 2), got {x.shape}")
    return x.T @ x / x.shape[0]


def _top_eig(s: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(lambda1, lambda2, u1) of a symmetric 2x2 matrix, u1 signed so that u1 . (1, 2) > 0."""
    lam, vec = np.linalg.eigh(s)
    u1 = vec[:, 1] * np.sign(vec[:, 1] @ np.array(W_TRUE))
    return float(lam[1]), float(lam[0]), u1


def population_optimum(gamma: float) -> dict[str, np.ndarray | float]:
    """The optimum of the population objective: a* = (1,2)/(5+g), b* = (1,2) (eq. (54) and text)."""
    gamma = _check_gamma(gamma)
    w = np.array(W_TRUE)
    return {"a": w / (5 + gamma), "b": w.copy(), "var_q": gamma / (5 + gamma), "var_x": gamma}


def sample_optimum_fixed(x: torch.Tensor | np.ndarray, gamma: float) -> dict[str, np.ndarray]:
    """Minimiser of the *sample* loss (52) with the fixed variances, in closed form.

    Same reduction as for the population (derivations.vae.stationary_points) with S in place of
    Cov(x): a = b/(g + |b|^2), b = beta u1 with (g + beta^2)^2 = lambda1 (5 + g), u1 the top
    eigenvector of S. (Requires beta^2 > 0, i.e. lambda1 (5 + g) > g^2, else the optimum is 0.)
    """
    gamma = _check_gamma(gamma)
    lam1, _, u1 = _top_eig(second_moments(x))
    c = math.sqrt(lam1 * (5 + gamma))
    beta2 = c - gamma
    if beta2 <= 0:
        return {"a": np.zeros(2), "b": np.zeros(2)}
    b = math.sqrt(beta2) * u1
    return {"a": b / c, "b": b}


def sample_optimum_learned(x: torch.Tensor | np.ndarray) -> dict[str, np.ndarray | float]:
    """Maximiser of the sample ELBO with learned variances (probabilistic PCA), in closed form.

    Returns a, b, var_q, var_x and the maximal mean ELBO, which equals the maximal mean
    log-likelihood  -log(2 pi) - log(det S)/2 - 1  (the model covariance b b^T + var_x I equals S).
    """
    s = second_moments(x)
    lam1, lam2, u1 = _top_eig(s)
    b = math.sqrt(lam1 - lam2) * u1
    elbo = -math.log(2 * math.pi) - 0.5 * math.log(np.linalg.det(s)) - 1.0
    return {"a": b / lam1, "b": b, "var_q": lam2 / lam1, "var_x": lam2, "elbo": elbo}


def loss_fixed_numpy(params: np.ndarray, s: np.ndarray, gamma: float) -> float:
    """The sample loss (52) from the second moments S, for scipy (params = a1, a2, b1, b2)."""
    a, b = params[:2], params[2:]
    q = a @ s @ a
    bb = b @ b
    return 0.5 * q + bb / (2 * (5 + gamma)) + (bb * q - 2 * b @ s @ a + np.trace(s)) / (2 * gamma)


def optimum_sampling_std(
    n: int, gamma: float, learn_variances: bool = False, n_boot: int = 2000, seed: int = 0
) -> dict[str, np.ndarray | float]:
    """Standard deviation of the sample optimum over data sets of size n (parametric bootstrap).

    Draws n_boot data sets of size n from eq. (47) (so n S ~ Wishart(n, Cov(x))) and computes
    the closed-form sample optimum of each: the O(1/sqrt(n)) spread of the sample optimum
    around the population one.
    """
    gamma = _check_gamma(gamma)
    cov = np.outer(W_TRUE, W_TRUE) + gamma * np.eye(2)
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((n_boot, n, 2)) @ np.linalg.cholesky(cov).T
    draws = np.einsum("bni,bnj->bij", xs, xs) / n  # n S ~ Wishart(n, Cov(x))
    lam, vec = np.linalg.eigh(draws)  # batched, eigenvalues ascending
    lam1, lam2 = lam[:, 1], lam[:, 0]
    u1 = vec[:, :, 1] * np.sign(vec[:, :, 1] @ np.array(W_TRUE))[:, None]
    if learn_variances:
        b = np.sqrt(lam1 - lam2)[:, None] * u1
        vals = {"a": b / lam1[:, None], "b": b, "var_q": lam2 / lam1, "var_x": lam2}
    else:
        c = np.sqrt(lam1 * (5 + gamma))
        b = np.sqrt(np.maximum(c - gamma, 0.0))[:, None] * u1
        vals = {"a": b / c[:, None], "b": b}
    return {k: np.std(val, axis=0) for k, val in vals.items()}


# --------------------------------------------------------------------------------------------
# The Torch model
# --------------------------------------------------------------------------------------------
class LinearGaussianVAE(nn.Module):
    """Linear Gaussian VAE: q(z|x) = N(a.x, var_q), p(x|z) = N(b z, var_x I), p(z) = N(0, 1).

    Parameters
    ----------
    gamma
        True noise variance; fixes var_q = gamma/(5+gamma) and var_x = gamma (eq. (50)) when
        ``learn_variances`` is False. Ignored otherwise.
    learn_variances
        Learn log var_q and log var_x (one shared decoder variance) as parameters.
    init
        Initial (a1, a2, b1, b2); default (0.1, 0.1, 0.5, 0.5).
    """

    def __init__(
        self,
        gamma: float | None = None,
        learn_variances: bool = False,
        init: tuple[float, float, float, float] = (0.1, 0.1, 0.5, 0.5),
    ) -> None:
        super().__init__()
        kw = {"dtype": torch.float64}
        self.learn_variances = learn_variances
        self.a = nn.Parameter(torch.tensor(init[:2], **kw))
        self.b = nn.Parameter(torch.tensor(init[2:], **kw))
        if learn_variances:
            self.log_var_q = nn.Parameter(torch.zeros((), **kw))
            self.log_var_x = nn.Parameter(torch.zeros((), **kw))
        else:
            if gamma is None:
                raise ValueError("fixed variances need gamma (var_q = g/(5+g), var_x = g)")
            gamma = _check_gamma(gamma)
            self.register_buffer("log_var_q", torch.tensor(math.log(gamma / (5 + gamma)), **kw))
            self.register_buffer("log_var_x", torch.tensor(math.log(gamma), **kw))

    @property
    def var_q(self) -> torch.Tensor:
        return self.log_var_q.exp()

    @property
    def var_x(self) -> torch.Tensor:
        return self.log_var_x.exp()

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of q(z | x): mean a . x, std sqrt(var_q) (broadcast to the mean's shape)."""
        if x.ndim != 2 or x.shape[-1] != 2:
            raise ValueError(f"x must have shape (N, 2), got {tuple(x.shape)}")
        mean = x @ self.a
        return mean, self.var_q.sqrt().expand_as(mean)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) summed over the two coordinates; z of shape (..., N)."""
        return log_normal(x, z.unsqueeze(-1) * self.b, self.var_x.sqrt()).sum(-1)

    def kl(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || N(0, 1)), closed form."""
        return kl_normal(mean, std, torch.zeros_like(mean), torch.ones_like(std))

    def elbo(
        self, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-sample ELBO estimate (38): closed-form KL + reparameterised reconstruction (36)."""
        mean, std = self.encode(x)
        eps = torch.randn((n_samples, *mean.shape), generator=generator, dtype=mean.dtype)
        zz = mean + std * eps  # the reparameterisation trick: gradients flow to a and var_q
        return self.log_likelihood(x, zz).mean(0) - self.kl(mean, std)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample log p(x) = log N(x | 0, b b^T + var_x I) (eq. (48) with the model's b, var_x).

        The exact log-likelihood that the ELBO bounds: log p(x) - ELBO = KL(q || p(z | x)) >= 0.
        """
        if x.ndim != 2 or x.shape[-1] != 2:
            raise ValueError(f"x must have shape (N, 2), got {tuple(x.shape)}")
        cov = torch.outer(self.b, self.b) + self.var_x * torch.eye(2, dtype=self.b.dtype)
        mvn = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=cov.dtype), cov)
        return mvn.log_prob(x)

    def elbo_exact(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample ELBO with the expectation done in closed form (eqs. (43)/(51))."""
        mean, std = self.encode(x)
        resid = ((x - mean.unsqueeze(-1) * self.b) ** 2).sum(-1) + std**2 * (self.b**2).sum()
        rec = -torch.log(2 * math.pi * self.var_x) - resid / (2 * self.var_x)
        return rec - self.kl(mean, std)


def fit(
    model: LinearGaussianVAE,
    x: torch.Tensor,
    steps: int = 3000,
    lr: float = 0.05,
    n_samples: int = 1,
    seed: int = 0,
    average_last: float = 0.25,
) -> dict[str, np.ndarray]:
    """Train by Adam on the full batch with the reparameterised ELBO; seeded.

    The learning rate decays linearly to 0 (so the Monte Carlo noise of the gradient averages
    out), and the returned parameters are the average over the last ``average_last`` fraction of
    the steps (Polyak averaging). Returns the final parameters (also written into ``model``), their
    mean ELBO and log-likelihood (``elbo``, ``loglik``) and,
    every 10 steps, the exact mean ELBO (``elbo_trace``) and the exact mean log-likelihood of the
    current model (``loglik_trace``): their difference is the mean KL(q || p(z | x)), the gap.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 - t / steps)
    names = [n for n, _ in model.named_parameters()]
    start_avg = int(steps * (1 - average_last))
    avg = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    n_avg = 0
    trace, ll_trace = [], []
    for t in range(steps):
        opt.zero_grad()
        loss = -model.elbo(x, n_samples, generator=gen).mean()
        loss.backward()
        opt.step()
        sched.step()
        if t >= start_avg:
            with torch.no_grad():
                for n, p in model.named_parameters():
                    avg[n] += p
            n_avg += 1
        if t % 10 == 0:
            with torch.no_grad():
                trace.append(model.elbo_exact(x).mean().item())
                ll_trace.append(model.log_marginal(x).mean().item())
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(avg[n] / n_avg)
    out = {n: getattr(model, n).detach().numpy().copy() for n in names}
    out["var_q"] = float(model.var_q.detach())
    out["var_x"] = float(model.var_x.detach())
    out["elbo_trace"] = np.asarray(trace)
    out["loglik_trace"] = np.asarray(ll_trace)
    with torch.no_grad():
        out["elbo"] = model.elbo_exact(x).mean().item()
        out["loglik"] = model.log_marginal(x).mean().item()
    return out


# --------------------------------------------------------------------------------------------
# Gradient estimators (eqs. (35)-(36))
# --------------------------------------------------------------------------------------------
def gradient_estimates(
    x: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    gamma: float,
    var_q: float,
    n_samples: int,
    n_rep: int,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """n_rep independent estimates of d/da E_q[log p(x | z)] for one data point x (shape (2,)).

    ``score``: the score-function (REINFORCE) estimator, mean over n_samples of
    f(z) d/da log q(z | x) with z ~ q drawn *without* a gradient path (what (35) gives);
    ``reparam``: the pathwise estimator, gradient of the mean over n_samples of
    f(a.x + sqrt(var_q) eps) (eq. (36)). f = log p(x | z) with decoder N(b z, gamma I).
    Both are computed with autograd. Returns arrays of shape (n_rep, 2).
    """
    gamma = _check_gamma(gamma)
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(x, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    std = math.sqrt(var_q)
    sd_x = torch.tensor(math.sqrt(gamma), dtype=torch.float64)

    def f(zz: torch.Tensor) -> torch.Tensor:
        return log_normal(x, zz.unsqueeze(-1) * b, sd_x).sum(-1)

    eps = torch.randn(n_rep, n_samples, generator=gen, dtype=torch.float64)
    out = {}
    # pathwise: one copy of a per repetition, so autograd returns per-repetition gradients
    a_rep = torch.as_tensor(a, dtype=torch.float64).expand(n_rep, 2).clone().requires_grad_(True)
    mu = (a_rep @ x).unsqueeze(-1)
    f(mu + std * eps).mean(-1).sum().backward()
    out["reparam"] = a_rep.grad.numpy().copy()
    # score function: z sampled, no gradient through it; surrogate f(z) log q(z | a)
    a_rep = torch.as_tensor(a, dtype=torch.float64).expand(n_rep, 2).clone().requires_grad_(True)
    mu = (a_rep @ x).unsqueeze(-1)
    zz = (mu + std * eps).detach()
    log_q = log_normal(zz, mu, torch.tensor(std, dtype=torch.float64))
    (f(zz).detach() * log_q).mean(-1).sum().backward()
    out["score"] = a_rep.grad.numpy().copy()
    return out


# --------------------------------------------------------------------------------------------
# Exercise
# --------------------------------------------------------------------------------------------
