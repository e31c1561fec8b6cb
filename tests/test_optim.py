"""``scvi_edu.optim.Adam`` against ``torch.optim.Adam``, and the start-up cost it avoids.

Reference: ``torch.optim.Adam`` with the same hyper-parameters, stepped on the same gradients.
Both paths of ``Adam.step`` are checked: the fused kernel and the written-out formulas.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from scvi_edu.optim import Adam

ROOT = Path(__file__).resolve().parents[1]


def _params(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (5,), (3, 4, 2), ()]
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in shapes]


@pytest.mark.parametrize("fused", [True, False], ids=["fused kernel", "formulas"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_parameters_as_torch_adam(fused, dtype):
    ours, ref = _params(dtype), _params(dtype)
    hyper = dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-2, weight_decay=1e-2)
    opt = Adam(ours, **hyper)
    opt.fused = fused
    ref_opt = torch.optim.Adam(ref, **hyper)
    gen = torch.Generator().manual_seed(1)
    for step in range(25):
        grads = [torch.randn(p.shape, generator=gen, dtype=dtype) for p in ours]
        if step == 3:
            grads[1] = None  # a parameter without a gradient this step is left alone
        for o, r, g in zip(opt.params, ref, grads, strict=True):
            o.grad = None if g is None else g.clone()
            r.grad = None if g is None else g.clone()
        opt.step()
        ref_opt.step()
        opt.zero_grad()
        ref_opt.zero_grad()
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)
    for o, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(o.detach(), r.detach(), **tol)
    moved = max(
        (o.detach() - p).abs().max().item() for o, p in zip(ours, _params(dtype), strict=True)
    )
    assert moved > 0.1, "the parameters did not move: the comparison would be vacuous"
    assert opt.fused == fused, "the fused kernel fell back to the formulas: it was not tested"


def test_bad_hyper_parameters_are_refused():
    p = _params(torch.float32)
    for kwargs, match in [
        (dict(lr=0.0), "lr"),
        (dict(betas=(0.9, 1.0)), "betas"),
        (dict(eps=-1.0), "eps"),
    ]:
        with pytest.raises(ValueError, match=match):
            Adam(p, **kwargs)
    with pytest.raises(ValueError, match="empty"):
        Adam([])


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, cwd=ROOT, check=True,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return out.stdout.strip()


def test_building_and_stepping_does_not_import_torch_dynamo():
    """torch.optim optimisers import torch._dynamo (~1.2 s CPU) the first time one is built."""
    out = _run(
        """
        import sys, torch
        from scvi_edu.optim import Adam
        p = torch.zeros(3, requires_grad=True)
        opt = Adam([p], lr=0.1)
        p.sum().backward(); opt.step(); opt.zero_grad()
        print("torch._dynamo" in sys.modules, float(p[0]))
        """
    )
    imported, value = out.split()
    assert imported == "False", "scvi_edu.optim.Adam imported torch._dynamo"
    assert float(value) == pytest.approx(-0.1)  # Adam's first step moves by lr
