"""Two context managers used by training and by every query: ``seeded`` and ``evaluating``.

``seeded(seed)`` runs a block with Torch's random number generator seeded by ``seed`` inside a
fork of the caller's generator: the block's draws (initial weights, dropout, the
reparameterisation noise, count samples) are fixed by ``seed`` whatever the caller's RNG state,
and the caller's state is the same afterwards. ``seed=None`` draws the seed from the caller's
global generator (one draw, the only change to the caller's state), so ``torch.manual_seed``
beforehand also makes the block reproducible.

``evaluating(module)`` puts a module in eval mode (no dropout, BatchNorm's running statistics)
without gradients, and restores the previous mode afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["seeded", "evaluating", "draw_seed"]


def draw_seed() -> int:
    """A seed drawn from Torch's global generator (``torch.manual_seed`` makes it reproducible)."""
    return int(torch.randint(0, 2**62, (1,)).item())


@contextmanager
def seeded(seed: int | None, device: str | torch.device | None = None) -> Iterator[int]:
    """Fork Torch's RNG, seed it; yield the seed.

    ``torch.manual_seed`` seeds the CPU generator and every CUDA device's, so the fork covers
    every visible CUDA device too (``device``, the device computed on, is then covered as well).
    """
    seed = draw_seed() if seed is None else int(seed)
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        yield seed


@contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Eval mode and no gradients inside the block; the previous mode is restored after it."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)
