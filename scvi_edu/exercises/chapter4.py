"""Chapter 4 exercise checks (raise ``AssertionError`` with a hint if wrong).

``check_warmup_optimum``: the KL warm-up on a Gaussian toy. With z ~ N(0, 1), x | z ~ N(z, 1),
q(z) = N(m, s^2) and warm-up weight w, the training objective of one observation x is

    J(m, s) = E_q[-log p(x | z)] + w KL(q || p)
            = const + ((x - m)^2 + s^2) / 2 + w ((m^2 + s^2 - 1) / 2 - log s),

minimised at m* = x / (1 + w), s*^2 = w / (1 + w). At w = 1 this is the exact posterior
N(x/2, 1/2); as w -> 0 the encoder's variance goes to 0 and its mean to x (an autoencoder).

``check_cell_elbo``: the bound (69), corrected, of one cell assembled from the outputs of
``VAE.inference`` and ``VAE.generative``: (1/K) sum_k log p(x | z^(k), l^(k)) - KL_z - KL_l,
compared with ``VAE.loss(...).elbo``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["EXERCISE_CH4", "check_cell_elbo", "check_warmup_optimum"]

# one observation x and a warm-up weight w: the numbers of exercise 1
EXERCISE_CH4 = {"x": 1.5, "w": 0.25}


def check_warmup_optimum(m_star: float, s2_star: float) -> None:
    """Check the minimiser (m*, s*^2) of the warmed-up objective for ``EXERCISE_CH4``."""
    x, w = EXERCISE_CH4["x"], EXERCISE_CH4["w"]
    m_star, s2_star = float(m_star), float(s2_star)
    if not (math.isfinite(m_star) and math.isfinite(s2_star) and s2_star > 0):
        raise AssertionError(f"need a finite mean and a positive variance, got {m_star}, {s2_star}")
    if math.isclose(m_star, x / 2, rel_tol=1e-6) and math.isclose(s2_star, 0.5, rel_tol=1e-6):
        raise AssertionError("that is the posterior (w = 1); keep the weight w on the KL")
    if math.isclose(s2_star, w, rel_tol=1e-6):
        raise AssertionError("s*^2 = w is not it: set dJ/ds = s - w/s + w s to 0")
    assert math.isclose(m_star, x / (1 + w), rel_tol=1e-6), (
        f"m* = {m_star:.4g} is off: set dJ/dm = -(x - m) + w m to 0"
    )
    assert math.isclose(s2_star, w / (1 + w), rel_tol=1e-6), (
        f"s*^2 = {s2_star:.4g} is off: set dJ/ds = s + w s - w / s to 0"
    )


def check_cell_elbo(
    answer: float,
    vae,
    x: torch.Tensor,
    batch_index: torch.Tensor,
    inference_outputs: dict,
    generative_outputs: dict,
    n: int = 0,
) -> None:
    """Check the bound of cell ``n`` against ``vae.loss(...)`` on the same outputs (rel. 1e-9)."""
    answer = float(answer)
    with torch.no_grad():
        out = vae.loss(x, inference_outputs, generative_outputs, batch_index)
    rec, kl_z, kl_l = (float(t[n]) for t in (out.reconstruction_loss, out.kl_z, out.kl_l))
    expected = float(out.elbo[n])

    def close(a, b):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)

    if close(answer, -rec + kl_z + kl_l):
        raise AssertionError("you added the KL terms, as the printed (69) does: subtract them")
    if close(answer, -rec - kl_z) and kl_l != 0:
        raise AssertionError("the KL of the library, (66), is missing")
    if close(answer, -expected):
        raise AssertionError("that is the loss (the negative bound): flip the sign")
    assert close(answer, expected), (
        f"{answer:.6g} is not the bound of cell {n} ({expected:.6g} expected): average "
        "log p(x | z, l) over the K samples, then subtract KL_z and KL_l"
    )
