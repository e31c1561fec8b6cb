"""Training speed of scvi_edu against scvi-tools, on the same data, split, threads and recipe.

Never part of the test run. Usage (see benchmarks/README.md)::

    python benchmarks/train_speed.py                      # scvi_edu only (no scvi-tools here)
    /work/bench-venv/bin/python benchmarks/train_speed.py  # both, back to back, with the ratio

What is compared
----------------
* Data: ``scvi_edu.simulate`` (ZINB counts, 2 batches), 10,000 cells x 2,000 genes, dense
  float32, fixed seed. A seeded 90/10 split; *both* models get only the 9,000 training cells
  (no validation set inside either trainer, so neither spends time on it) and are evaluated on
  the *same* 1,000 held-out cells.
* Architecture (scvi-tools' SCVI defaults): n_hidden 128, n_latent 10, n_layers 1, dropout 0.1,
  ZINB, gene dispersion, observed library size, batch injected into the decoder only, encoder
  input log1p(x).
* Recipe: Adam(lr 1e-3, eps 0.01, weight_decay 1e-6), minibatches of 128, and the *same* KL
  warm-up on z for both: linear in the optimizer *steps*, from 0 to 1 over the first
  ``--warmup-fraction`` (default 1/4) of the run. scvi-tools' default (400 *epochs*) would keep
  its KL weight at a few percent over a short run, so its objective would not be the ELBO and
  the held-out ELBOs would not be comparable; we pass ``n_epochs_kl_warmup=None,
  n_steps_kl_warmup=<same number of steps>`` to its training plan instead.
* Threads: ``torch.set_num_threads(--threads)`` (default 1) for both runs, checked afterwards.
* Speed: cells/s = training cells x epochs / wall time of the training loop (first epoch start
  to last epoch end: data loading, forward, backward, optimizer; not model construction nor
  trainer setup, which are printed separately as "setup"). Per-epoch time is the median epoch.
  cells/CPU-s divides by the process CPU time of the same loop instead: with one thread it is
  what the wall time would be on an idle core, so it is the fairer number on a shared machine.
* Quality: held-out ELBO per cell, negative (higher is better), averaged over
  ``--elbo-repeats`` Monte Carlo draws of z. scvi-tools 1.x's ``get_elbo`` returns
  ``-compute_elbo`` = -(reconstruction + KL), i.e. already negative; the script checks the sign
  against its own ``-(reconstruction_loss + kl_local)`` computed from the module's LossOutput.

Both runs happen in one process back to back (``--order`` picks which goes first; the machine
may be shared, so repeat with ``--repeats`` and read the median ratio).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

try:
    import scvi_edu  # noqa: F401
except ImportError:  # running from a checkout with another interpreter (e.g. the bench venv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scvi_edu.simulate import simulate  # noqa: E402

ARCH = dict(
    n_hidden=128,
    n_latent=10,
    n_layers=1,
    dropout_rate=0.1,
    dispersion="gene",
    gene_likelihood="zinb",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-cells", type=int, default=10_000)
    p.add_argument("--n-genes", type=int, default=2_000)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for both runs")
    p.add_argument("--warmup-fraction", type=float, default=0.25, help="KL warm-up, of all steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--elbo-repeats", type=int, default=5, help="MC draws for the held-out ELBO")
    p.add_argument("--repeats", type=int, default=1, help="run the pair this many times")
    p.add_argument("--order", choices=["edu-first", "tools-first"], default="edu-first")
    p.add_argument("--only", choices=["both", "edu", "tools"], default="both")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------- data
def make_data(args: argparse.Namespace):
    """Simulated counts and the 90/10 split (same held-out cells for both libraries)."""
    adata = simulate(
        n_cells=args.n_cells, n_genes=args.n_genes, n_batches=2, n_types=5, seed=args.seed
    )
    adata.X = np.asarray(adata.X, dtype=np.float32)
    perm = np.random.default_rng(args.seed).permutation(adata.n_obs)
    n_train = int(np.ceil(0.9 * adata.n_obs))
    train_idx, test_idx = np.sort(perm[:n_train]), np.sort(perm[n_train:])
    adata.obs = adata.obs[["batch"]].copy()  # counts and batch only: the ground truth is not
    for slot in (adata.layers, adata.obsm, adata.varm, adata.uns):  # needed, copies are faster
        for key in list(slot.keys()):
            del slot[key]
    return adata[train_idx].copy(), adata[test_idx].copy()


def n_steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Minibatches per epoch (a last minibatch of one cell is dropped, as both trainers do)."""
    return n_train // batch_size + (n_train % batch_size > 1)


def warmup_steps(args: argparse.Namespace, n_train: int) -> int:
    return round(args.warmup_fraction * args.epochs * n_steps_per_epoch(n_train, args.batch_size))


# ------------------------------------------------------------------------------- scvi_edu
class _EpochClock:
    """Wraps the epoch iterator of ``scvi_edu.train`` and records when each epoch starts."""

    def __init__(self, iterable, **kwargs):
        self.iterable = iterable
        self.stamps: list[float] = []
        _EpochClock.last = self

    def __iter__(self):
        for item in self.iterable:
            self.stamps.append((time.perf_counter(), time.process_time()))
            yield item
        self.stamps.append((time.perf_counter(), time.process_time()))

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


def run_edu(adata_train, adata_test, args: argparse.Namespace) -> dict:
    import scvi_edu.train as edu_train
    from scvi_edu.model import SCVI

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    extra = {"seed": args.seed} if "seed" in inspect.signature(SCVI).parameters else {}
    model = SCVI(adata_train, batch_key="batch", use_observed_lib_size=True, **ARCH, **extra)
    t_init = time.perf_counter() - t0

    n_warm = warmup_steps(args, adata_train.n_obs)
    train_kwargs = dict(
        max_epochs=args.epochs,
        lr=1e-3,
        batch_size=args.batch_size,
        train_size=1.0,
        seed=args.seed,
        progress_bar=False,
        weight_decay=1e-6,
        eps=0.01,
        kl_warmup_fraction=args.warmup_fraction,
    )
    accepted = inspect.signature(model.train).parameters
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    dropped = [k for k in train_kwargs if k not in accepted and not has_var_kw]
    for key in dropped:  # its defaults are the same recipe; say which were not passed
        del train_kwargs[key]

    real_tqdm = edu_train.tqdm
    edu_train.tqdm = _EpochClock
    _EpochClock.last = None
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        model.train(**train_kwargs)
        t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
    finally:
        edu_train.tqdm = real_tqdm
    clock = _EpochClock.last
    if clock is not None and len(clock.stamps) == args.epochs + 1:
        wall, cpu = np.array(clock.stamps).T
        epochs, loop, loop_cpu = list(np.diff(wall)), wall[-1] - wall[0], cpu[-1] - cpu[0]
    else:  # the model did not go through scvi_edu.train.train: time the whole call
        epochs, loop, loop_cpu = [t_train / args.epochs] * args.epochs, t_train, c_train
    threads_after = torch.get_num_threads()

    elbos = []
    for r in range(args.elbo_repeats):
        torch.manual_seed(1000 + r)
        elbos.append(float(model.get_elbo(adata_test)))
    return dict(
        name="scvi_edu",
        version=getattr(sys.modules.get("scvi_edu"), "__version__", "0.1.0"),
        n_train=adata_train.n_obs,
        setup=t_init + (t_train - loop),
        loop=loop,
        loop_cpu=loop_cpu,
        epoch=statistics.median(epochs),
        elbo=float(np.mean(elbos)),
        elbo_sd=float(np.std(elbos)),
        threads=threads_after,
        warmup_steps=n_warm,
        note=f"not passed to SCVI.train: {dropped}" if dropped else "",
    )


# ------------------------------------------------------------------------------ scvi-tools
def scvi_tools_available() -> bool:
    try:
        import scvi  # noqa: F401
    except ImportError:
        return False
    return True


def run_tools(adata_train, adata_test, args: argparse.Namespace) -> dict:
    import scvi
    from lightning.pytorch.callbacks import Callback
    from scvi.model.base._log_likelihood import compute_elbo

    class EpochClock(Callback):
        def __init__(self):
            self.starts, self.ends = [], []

        def on_train_epoch_start(self, trainer, pl_module):
            self.starts.append((time.perf_counter(), time.process_time()))

        def on_train_epoch_end(self, trainer, pl_module):
            self.ends.append((time.perf_counter(), time.process_time()))

    torch.set_num_threads(args.threads)
    scvi.settings.seed = args.seed
    scvi.settings.verbosity = logging.ERROR
    scvi.settings.dl_num_workers = 0
    t0 = time.perf_counter()
    adata_train = adata_train.copy()
    scvi.model.SCVI.setup_anndata(adata_train, batch_key="batch")
    model = scvi.model.SCVI(
        adata_train, use_observed_lib_size=True, encode_covariates=False, **ARCH
    )
    t_init = time.perf_counter() - t0

    n_warm = warmup_steps(args, adata_train.n_obs)
    clock = EpochClock()
    plan_kwargs = dict(
        lr=1e-3, eps=0.01, weight_decay=1e-6, n_epochs_kl_warmup=None, n_steps_kl_warmup=n_warm
    )
    t0 = time.perf_counter()
    model.train(
        max_epochs=args.epochs,
        accelerator="cpu",
        devices=1,
        train_size=1.0,
        batch_size=args.batch_size,
        early_stopping=False,
        enable_progress_bar=False,
        plan_kwargs=plan_kwargs,
        callbacks=[clock],
    )
    t_train = time.perf_counter() - t0
    threads_after = torch.get_num_threads()
    loop = clock.ends[-1][0] - clock.starts[0][0]
    loop_cpu = clock.ends[-1][1] - clock.starts[0][1]
    epochs = [e[0] - s[0] for s, e in zip(clock.starts, clock.ends, strict=True)]

    elbos, own = [], []
    for r in range(args.elbo_repeats):
        torch.manual_seed(1000 + r)
        elbos.append(float(model.get_elbo(adata_test)))
        torch.manual_seed(1000 + r)
        with torch.inference_mode():
            dl = model._make_data_loader(adata=model._validate_anndata(adata_test))
            own.append(-float(compute_elbo(model.module, dl)))  # -(reconstruction + KL)
    if not np.allclose(elbos, own, rtol=1e-5):
        raise RuntimeError(f"scvi-tools get_elbo sign/definition changed: {elbos} vs {own}")
    optimizer = model.trainer.optimizers[0] if getattr(model, "trainer", None) else None
    fused = optimizer.defaults.get("fused") if optimizer is not None else None
    return dict(
        name="scvi-tools",
        version=scvi.__version__,
        n_train=adata_train.n_obs,
        setup=t_init + (t_train - loop),
        loop=loop,
        loop_cpu=loop_cpu,
        epoch=statistics.median(epochs),
        elbo=float(np.mean(elbos)),
        elbo_sd=float(np.std(elbos)),
        threads=threads_after,
        warmup_steps=n_warm,
        note=f"Adam fused={fused}" if fused is not None else "",
    )


# ------------------------------------------------------------------------------------ main
def quiet():
    """Silence Lightning / scvi-tools chatter (progress, tips, warnings)."""
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return contextlib.redirect_stderr(io.StringIO())


def print_table(results: list[dict], args: argparse.Namespace) -> None:
    head = (
        f"{'library':<11} {'version':<8} {'cells/s':>8} {'cells/CPU-s':>11} {'s/epoch':>8} "
        f"{'loop s':>7} {'CPU s':>7} {'setup s':>7} {'held-out ELBO/cell':>18} {'per gene':>9} "
        f"{'thr':>3}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        cells = r["n_train"] * args.epochs
        print(
            f"{r['name']:<11} {r['version']:<8} {cells / r['loop']:>8.0f} "
            f"{cells / r['loop_cpu']:>11.0f} {r['epoch']:>8.3f} {r['loop']:>7.1f} "
            f"{r['loop_cpu']:>7.1f} {r['setup']:>7.2f} {r['elbo']:>10.2f} ±{r['elbo_sd']:<5.2f} "
            f"{r['elbo'] / args.n_genes:>9.4f} {r['threads']:>3}"
            + (f"   ({r['note']})" if r["note"] else "")
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    # The first torch.optim.Adam of a process imports torch._dynamo (~2 s CPU): pay it here,
    # outside both timings (importing scvi-tools/Lightning pays it too).
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    have_tools = scvi_tools_available()
    if args.only == "tools" and not have_tools:
        raise SystemExit("scvi-tools is not importable in this interpreter")
    run_edu_too = args.only in ("both", "edu")
    run_tools_too = args.only in ("both", "tools") and have_tools

    t0 = time.perf_counter()
    adata_train, adata_test = make_data(args)
    print(
        f"data: {args.n_cells} cells x {args.n_genes} genes (scvi_edu.simulate, seed {args.seed}); "
        f"{adata_train.n_obs} training / {adata_test.n_obs} held-out cells; "
        f"built in {time.perf_counter() - t0:.1f} s"
    )
    n_warm = warmup_steps(args, adata_train.n_obs)
    n_total = args.epochs * n_steps_per_epoch(adata_train.n_obs, args.batch_size)
    print(
        f"recipe: {args.epochs} epochs, batch {args.batch_size}, Adam(1e-3, eps 0.01, wd 1e-6), "
        f"KL warm-up on z over {n_warm} steps "
        f"({args.warmup_fraction:g} of {n_total} steps), "
        f"torch {torch.__version__}, {args.threads} thread(s), "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    if not have_tools:
        print("scvi-tools is not importable here: timing scvi_edu only")

    runners = []
    if run_edu_too:
        runners.append(run_edu)
    if run_tools_too:
        runners.append(run_tools)
    if args.order == "tools-first":
        runners.reverse()

    ratios, gaps = [], []
    for rep in range(args.repeats):
        results = []
        for runner in runners:
            with quiet():
                results.append(runner(adata_train, adata_test, args))
        by_name = {r["name"]: r for r in results}
        if args.repeats > 1:
            print(f"\nrepeat {rep + 1}/{args.repeats} (load {os.getloadavg()[0]:.2f})")
        else:
            print()
        print_table(sorted(results, key=lambda r: r["name"] != "scvi_edu"), args)
        if "scvi_edu" in by_name and "scvi-tools" in by_name:
            edu, tools = by_name["scvi_edu"], by_name["scvi-tools"]
            ratio = tools["loop"] / edu["loop"]  # same cells x epochs on both sides
            ratio_cpu = tools["loop_cpu"] / edu["loop_cpu"]
            gap = (edu["elbo"] - tools["elbo"]) / abs(tools["elbo"])
            ratios.append((ratio, ratio_cpu))
            gaps.append(gap)
            print(
                f"ratio scvi_edu cells/s / scvi-tools cells/s = {ratio:.2f} (wall), "
                f"{ratio_cpu:.2f} (CPU time)   [median epoch: "
                f"{tools['epoch'] / edu['epoch']:.2f}; wall incl. setup: "
                f"{(tools['loop'] + tools['setup']) / (edu['loop'] + edu['setup']):.2f}]"
            )
            print(
                f"held-out ELBO relative difference (scvi_edu - scvi-tools) / |scvi-tools| = "
                f"{100 * gap:+.3f} %  (positive: scvi_edu better)"
            )
    if len(ratios) > 1:
        wall, cpu = zip(*ratios, strict=True)
        print(
            f"\nmedian over {len(ratios)} repeats: ratio {statistics.median(wall):.2f} wall "
            f"(min {min(wall):.2f}, max {max(wall):.2f}), {statistics.median(cpu):.2f} CPU time "
            f"(min {min(cpu):.2f}, max {max(cpu):.2f}); ELBO gap "
            f"{100 * statistics.median(gaps):+.3f} %"
        )


if __name__ == "__main__":
    main()
