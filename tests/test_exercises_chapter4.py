"""Chapter 4 exercises: each check accepts the right answer and refuses wrong ones."""

import math

import numpy as np
import pytest
import torch
from _grading import failure  # tests/ is on sys.path
from scipy import optimize

from scvi_edu.distributions import log_zinb_positive
from scvi_edu.exercises import EXERCISE_CH4, check_cell_elbo, check_warmup_optimum
from scvi_edu.module import VAE


def _warmup_minimiser_numerically():
    """Minimise E_q[-log p(x|z)] + w KL(q || p) over (m, log s) with scipy; q = N(m, s^2)."""
    x, w = EXERCISE_CH4["x"], EXERCISE_CH4["w"]

    def objective(p):
        m, s = p[0], math.exp(p[1])
        nll = 0.5 * math.log(2 * math.pi) + ((x - m) ** 2 + s**2) / 2
        kl = (m**2 + s**2 - 1) / 2 - math.log(s)
        return nll + w * kl

    res = optimize.minimize(objective, [0.0, 0.0], method="BFGS", options={"gtol": 1e-10})
    return res.x[0], math.exp(2 * res.x[1])


def test_warmup_right_answer():
    m, s2 = _warmup_minimiser_numerically()
    problem = failure(check_warmup_optimum, m, s2)
    assert problem is None, problem


def test_warmup_wrong_answers():
    x, w = EXERCISE_CH4["x"], EXERCISE_CH4["w"]
    with pytest.raises(AssertionError, match="posterior"):
        check_warmup_optimum(x / 2, 0.5)  # ignores w
    with pytest.raises(AssertionError, match="s\\*\\^2 = w"):
        check_warmup_optimum(x / (1 + w), w)
    with pytest.raises(AssertionError, match="m\\*"):
        check_warmup_optimum(x, w / (1 + w))
    with pytest.raises(AssertionError, match="positive"):
        check_warmup_optimum(x / (1 + w), -0.2)


@pytest.fixture(scope="module")
def cell():
    torch.manual_seed(0)
    vae = VAE(
        6,
        n_batch=2,
        n_hidden=5,
        n_latent=2,
        use_observed_lib_size=False,
        library_log_means=np.array([2.0, 2.5]),
        library_log_vars=np.array([0.4, 0.2]),
    )
    vae = vae.double().eval()
    x = torch.tensor(np.random.default_rng(1).poisson(2.0, (4, 6)), dtype=torch.float64)
    batch = torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        inf = vae.inference(x, batch, n_samples=3)
        gen = vae.generative(inf["z"], inf["library"], batch)
    return vae, x, batch, inf, gen


def _elbo_independently(vae, x, batch, inf, gen, n):
    """log ZINB averaged over samples, minus the two KLs from torch.distributions."""
    log_px = log_zinb_positive(x, gen["px_rate"], gen["px_r"], gen["px_dropout"]).sum(-1)
    rec = float(log_px[:, n].mean())
    N = torch.distributions.Normal
    kl_z = torch.distributions.kl_divergence(
        N(inf["qz_loc"][n], inf["qz_scale"][n]), N(0.0, 1.0)
    ).sum()
    b = int(batch[n])
    prior = N(vae.library_log_means[b].double(), vae.library_log_vars[b].double().sqrt())
    kl_l = torch.distributions.kl_divergence(N(inf["ql_loc"][n], inf["ql_scale"][n]), prior).sum()
    return rec, float(kl_z), float(kl_l)


def test_cell_elbo_right_answer(cell):
    vae, x, batch, inf, gen = cell
    for n in range(4):
        rec, kl_z, kl_l = _elbo_independently(vae, x, batch, inf, gen, n)
        problem = failure(check_cell_elbo, rec - kl_z - kl_l, vae, x, batch, inf, gen, n=n)
        assert problem is None, problem


def test_cell_elbo_wrong_answers(cell):
    vae, x, batch, inf, gen = cell
    rec, kl_z, kl_l = _elbo_independently(vae, x, batch, inf, gen, 1)
    assert kl_z > 0 and kl_l > 0
    with pytest.raises(AssertionError, match="added the KL"):
        check_cell_elbo(rec + kl_z + kl_l, vae, x, batch, inf, gen, n=1)
    with pytest.raises(AssertionError, match="library"):
        check_cell_elbo(rec - kl_z, vae, x, batch, inf, gen, n=1)
    with pytest.raises(AssertionError, match="sign"):
        check_cell_elbo(-(rec - kl_z - kl_l), vae, x, batch, inf, gen, n=1)
    with pytest.raises(AssertionError, match="not the bound"):
        check_cell_elbo(rec - kl_z - kl_l, vae, x, batch, inf, gen, n=2)  # another cell's parts
