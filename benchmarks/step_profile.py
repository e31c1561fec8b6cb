"""Where the time of one training step goes, and the fastest a step could be.

``train_speed.py`` measures the speed ratio to scvi-tools end to end; this script explains it.
On one minibatch of 128 cells x 2,000 genes (1 thread, same architecture as
``train_speed.py``) it times, interleaved in blocks so that a machine's changing load hits all
variants alike:

* ``scvi_edu``: the module as committed (``likelihood_gradient="closed_form"``:
  ``fast_likelihood.zinb_log_likelihood``, gradient in closed form);
* ``scvi_edu, autograd ZINB``: the same module with ``likelihood_gradient="autograd"``: the
  reconstruction term ``distributions.log_zinb_positive(...).sum(-1)`` differentiated by
  autograd;
* ``scvi_edu, no likelihood``: the likelihood replaced by ``sum(x * mu) + sum(zi_logits)``, a
  cheap function of both decoder heads, so that everything else still runs (encoder, decoder,
  softmax, KL, backward through all layers, Adam): the floor of a step at this architecture;
* ``scvi-tools VAE`` (when scvi-tools is importable): its module stepped by the same bare
  Adam loop, without Lightning or its data loader.

It prints CPU ms per step (median over blocks), minor page faults per step (a fault is a fresh
page from the kernel: temporaries that malloc did not keep), the split of a committed scvi_edu
step into phases, and scvi-tools' step divided by each variant: the last column of the floor
row is the speed-up a likelihood of zero cost would give.

The data are simulated in this process (which then has held dense arrays), or read with
``--h5ad PATH`` (kept sparse if stored sparse). Before the first step the script calls
``scvi_edu.allocator.keep_freed_memory()`` as the training loop does; ``--allocator as-is``
skips it, to see a step in the allocator state the process happens to be in.

    python benchmarks/step_profile.py
    python benchmarks/step_profile.py --h5ad counts.h5ad --allocator as-is
    SCVI_TOOLS_VENV/bin/python benchmarks/step_profile.py     # with scvi-tools (see README)
"""

from __future__ import annotations

import argparse
import functools
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

try:
    import scvi_edu  # noqa: F401
except ImportError:  # running from a checkout with another interpreter (e.g. the bench venv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scvi_edu.allocator import keep_freed_memory  # noqa: E402
from scvi_edu.data import CountData  # noqa: E402
from scvi_edu.module import VAE  # noqa: E402
from scvi_edu.optim import Adam  # noqa: E402
from scvi_edu.simulate import simulate  # noqa: E402


def _no_likelihood(module, x, gen):
    return (x * gen["px_rate"]).sum(dim=-1) + gen["px_dropout"].sum(dim=-1)


class EduStepper:
    def __init__(
        self,
        n_genes: int,
        n_batch: int,
        dispersion: str,
        reconstruction=None,
        seed: int = 0,
        likelihood_gradient: str = "closed_form",
    ):
        torch.manual_seed(seed)
        # scvi-tools' defaults: n_hidden 128, n_latent 10, 1 layer, zinb, observed library
        self.module = VAE(
            n_genes, n_batch=n_batch, dispersion=dispersion, likelihood_gradient=likelihood_gradient
        )
        self.module.train()
        self.module.validate_input = False  # as in scvi_edu.train
        if reconstruction is not None:  # an instance attribute shadows the method
            self.module.get_reconstruction_log_prob = functools.partial(reconstruction, self.module)
        # scvi_edu.train's optimiser: torch's fused Adam kernel, without torch.optim
        self.opt = Adam(self.module.parameters(), lr=1e-3, eps=0.01, weight_decay=1e-6)

    def step(self, mb, phases: dict | None = None):
        m, x, b = self.module, mb["x"], mb["batch_index"]
        t0 = time.perf_counter()
        inf = m.inference(x, b)
        t1 = time.perf_counter()
        gen = m.generative(inf["z"], inf["library"], b)
        t2 = time.perf_counter()
        loss = m.loss(x, inf, gen, b, kl_weight=0.5).loss
        t3 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        self.opt.step()
        t5 = time.perf_counter()
        if phases is not None:
            for key, a, c in [("inference (encoder)", t0, t1), ("generative (decoder)", t1, t2),
                              ("loss (likelihood, KL)", t2, t3), ("backward", t3, t4),
                              ("Adam", t4, t5)]:  # fmt: skip
                phases[key] = phases.get(key, 0.0) + c - a


class ToolsStepper:
    def __init__(self, n_genes: int, n_batch: int, dispersion: str, seed: int = 0):
        from scvi.module import VAE as ToolsVAE

        torch.manual_seed(seed)
        self.module = ToolsVAE(
            n_input=n_genes, n_batch=n_batch, n_hidden=128, n_latent=10, n_layers=1,
            dropout_rate=0.1, dispersion=dispersion, gene_likelihood="zinb",
            use_observed_lib_size=True,
        )  # fmt: skip
        self.module.train()
        self.opt = torch.optim.Adam(
            self.module.parameters(), lr=1e-3, eps=0.01, weight_decay=1e-6, fused=True
        )

    def step(self, mb, phases=None):
        x = mb["x"]
        tensors = {
            "X": x,
            "batch": mb["batch_index"].reshape(-1, 1).long(),
            "labels": torch.zeros(x.shape[0], 1, dtype=torch.long),
        }
        _, _, losses = self.module(tensors, loss_kwargs={"kl_weight": 0.5})
        self.opt.zero_grad(set_to_none=True)
        losses.loss.backward()
        self.opt.step()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-cells", type=int, default=2_000)
    p.add_argument("--n-genes", type=int, default=2_000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=30, help="steps per block and variant")
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dispersion", default="gene", choices=["gene", "gene-batch", "gene-cell"])
    p.add_argument("--h5ad", help="read the counts from this file instead of simulating them")
    p.add_argument("--batch-key", help="obs column of the batch (simulated data: 'batch')")
    p.add_argument("--allocator", choices=["keep", "as-is"], default="keep",
                   help="keep: call keep_freed_memory() first, as training does")  # fmt: skip
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.h5ad:
        import anndata

        adata = anndata.read_h5ad(args.h5ad)
        source = f"{args.h5ad} ({type(adata.X).__name__})"
    else:
        adata = simulate(n_cells=args.n_cells, n_genes=args.n_genes, n_batches=2, n_types=5, seed=0)
        args.batch_key = args.batch_key or "batch"
        source = "scvi_edu.simulate, dense, in this process"
    data = CountData(adata, batch_key=args.batch_key)
    n_genes, n_batch = data.n_genes, data.n_batch
    if args.allocator == "keep":
        keep_freed_memory()
    mbs = list(
        data.minibatches(
            batch_size=args.batch_size, shuffle=True, rng=np.random.default_rng(0),
            drop_singleton=True,
        )
    )  # fmt: skip
    mbs = [mb for mb in mbs if mb["x"].shape[0] == args.batch_size]

    variants = {
        "scvi_edu": EduStepper(n_genes, n_batch, args.dispersion),
        "scvi_edu, autograd ZINB": EduStepper(
            n_genes, n_batch, args.dispersion, likelihood_gradient="autograd"
        ),
        "scvi_edu, no likelihood": EduStepper(n_genes, n_batch, args.dispersion, _no_likelihood),
    }
    try:
        variants["scvi-tools VAE"] = ToolsStepper(n_genes, n_batch, args.dispersion)
    except ImportError:
        pass
    for stepper in variants.values():  # warm-up: first calls allocate and initialise
        for mb in mbs[:5]:
            stepper.step(mb)

    per_step = {name: [] for name in variants}
    faults = {name: [] for name in variants}
    for block in range(args.blocks):
        for name, stepper in variants.items():
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            c0 = time.process_time()
            for i in range(args.steps):
                stepper.step(mbs[(block * args.steps + i) % len(mbs)])
            per_step[name].append((time.process_time() - c0) / args.steps * 1e3)
            faults[name].append(
                (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / args.steps
            )
    phases: dict[str, float] = {}
    for i in range(args.steps):
        variants["scvi_edu"].step(mbs[i % len(mbs)], phases)

    print(
        f"one step: {args.batch_size} cells x {n_genes} genes ({source}), dispersion "
        f"{args.dispersion!r}, {args.threads} thread(s), allocator {args.allocator!r}, "
        f"CPU ms per step, median of {args.blocks} interleaved blocks of {args.steps} steps\n"
    )
    tools = statistics.median(per_step["scvi-tools VAE"]) if "scvi-tools VAE" in per_step else None
    print(
        f"{'variant':28s} {'ms/step':>8s} {'blocks (min-max)':>18s} {'faults/step':>12s}  "
        "scvi-tools / variant"
    )
    for name, values in per_step.items():
        med = statistics.median(values)
        ratio = f"{tools / med:.2f}" if tools else "-"
        flt = statistics.median(faults[name])
        print(
            f"{name:28s} {med:8.1f} {min(values):8.1f}-{max(values):<8.1f} {flt:12.0f}  "
            f"{ratio:>10s}"
        )
    print("\nscvi_edu step by phase (wall ms, mean of the last block):")
    for key, value in phases.items():
        print(f"  {key:24s} {value / args.steps * 1e3:6.1f}")


if __name__ == "__main__":
    main()
