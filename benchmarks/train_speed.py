"""Training speed of scvi_edu against scvi-tools, end to end, on any AnnData of raw counts.

Never part of the test run. Usage (see benchmarks/README.md)::

    python benchmarks/train_speed.py --h5ad PATH [--batch-key K]      # scvi_edu only
    python benchmarks/train_speed.py --h5ad PATH --tools-python VENV/bin/python   # and the ratio
    python benchmarks/train_speed.py --dataset pbmc68k --tools-python ...   # pbmc68k_counts, CSR
    python benchmarks/train_speed.py --dataset simulate --n-genes 1000 [--sparse] ...

What is compared
----------------
* Data: ``--h5ad PATH`` (counts in ``X``, dense or sparse, kept as stored), or
  ``scvi_edu.datasets.pbmc68k_counts()`` as CSR, or ``scvi_edu.simulate`` (2 batches;
  ``--sparse`` stores it as CSR). A seeded 90/10 split; *both* models get only the training
  cells (no validation set inside either trainer) and are evaluated on the *same* held-out
  cells. The split is written to two .h5ad files in a temporary folder.
* Each library trains in its own fresh process (``--worker``), which reads those files: the
  first ``train`` call, its imports and the allocator state of a process that has just read its
  data are part of what is timed, as a user or a notebook kernel would see them.
* Architecture (scvi-tools' SCVI defaults): n_hidden 128, n_latent 10, n_layers 1, dropout 0.1,
  ZINB, gene dispersion, observed library size, batch (``--batch-key``) injected into the
  decoder only, encoder input log1p(x).
* Recipe: ``--epochs`` (50), Adam(lr 1e-3, eps 0.01, weight_decay 1e-6), minibatches of 128,
  and the *same* KL warm-up on z for both: linear in the optimizer *steps*, from 0 to 1 over the
  first ``--warmup-fraction`` (default 1/4) of the run (scvi-tools gets ``n_epochs_kl_warmup=None,
  n_steps_kl_warmup=<same number of steps>``; its 400-epoch default would keep the KL weight at
  a few percent, and the held-out ELBOs would not be comparable).
* Threads: ``torch.set_num_threads(--threads)`` (default 1) in both workers, checked after.
* Speed, end to end: cells/s = training cells x epochs / time from building the model to the
  end of ``train`` (set-up, first call, every epoch), in wall time and in process CPU time (with
  one thread, the CPU time is what the wall time would be on an idle core: the number to read on
  a shared machine). The epoch loop alone and the median epoch are printed too.
* First call: in another fresh process per library, ``train(max_epochs=1)`` twice; the first
  call's extra cost over the second is printed ("first - later").
* Quality: held-out ELBO per cell, negative (higher is better), mean of ``--elbo-repeats`` Monte
  Carlo draws of z. scvi-tools 1.x's ``get_elbo`` returns ``-compute_elbo`` = -(reconstruction +
  KL); the worker checks it against its own ``-(reconstruction_loss + kl_local)``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import scvi_edu  # noqa: F401
except ImportError:  # running from a checkout with another interpreter (e.g. the bench venv)
    sys.path.insert(0, str(ROOT))

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
    p.add_argument("--h5ad", help="AnnData of raw counts in X (dense or sparse)")
    p.add_argument("--batch-key", help="obs column of the batch (default: none; 'batch' for "
                   "--dataset simulate)")  # fmt: skip
    p.add_argument("--dataset", choices=["simulate", "pbmc68k"], default="simulate",
                   help="without --h5ad: simulate or pbmc68k_counts(), as CSR")  # fmt: skip
    p.add_argument("--n-cells", type=int, default=2_000, help="--dataset simulate")
    p.add_argument("--n-genes", type=int, default=1_000, help="--dataset simulate")
    p.add_argument("--sparse", action="store_true", help="--dataset simulate: store X as CSR")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for both runs")
    p.add_argument("--warmup-fraction", type=float, default=0.25, help="KL warm-up, of all steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--elbo-repeats", type=int, default=5, help="MC draws for the held-out ELBO")
    p.add_argument("--repeats", type=int, default=1, help="run the pair this many times")
    p.add_argument("--order", choices=["edu-first", "tools-first"], default="edu-first")
    p.add_argument("--tools-python", help="an interpreter with scvi-tools (default: this one, if "
                   "it imports scvi)")  # fmt: skip
    p.add_argument("--no-first-call", action="store_true", help="skip the first-call probe")
    p.add_argument("--worker", choices=["edu", "tools"], help=argparse.SUPPRESS)
    p.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------- data
def make_data(args: argparse.Namespace, folder: Path) -> str:
    """Write the 90/10 split (train.h5ad, test.h5ad) to ``folder``; return a description."""
    import anndata as ad
    import scipy.sparse as sp

    if args.h5ad:
        adata = ad.read_h5ad(args.h5ad)
        what = f"{args.h5ad} ({'sparse' if sp.issparse(adata.X) else 'dense'} X)"
    elif args.dataset == "pbmc68k":
        from scvi_edu.datasets import pbmc68k_counts

        adata = pbmc68k_counts()
        adata.X = sp.csr_matrix(adata.X)
        what = "scvi_edu.datasets.pbmc68k_counts() as CSR"
    else:
        from scvi_edu.simulate import simulate

        adata = simulate(
            n_cells=args.n_cells, n_genes=args.n_genes, n_batches=2, n_types=5, seed=args.seed
        )
        adata.X = np.asarray(adata.X, dtype=np.float32)
        if args.sparse:
            adata.X = sp.csr_matrix(adata.X)
        what = f"scvi_edu.simulate (seed {args.seed}, {'CSR' if args.sparse else 'dense'})"
    keep = [args.batch_key] if args.batch_key else []
    adata = ad.AnnData(X=adata.X, obs=adata.obs[keep].copy(), var=adata.var[[]].copy())
    nnz = adata.X.nnz if sp.issparse(adata.X) else np.count_nonzero(adata.X)
    perm = np.random.default_rng(args.seed).permutation(adata.n_obs)
    n_train = int(np.ceil(0.9 * adata.n_obs))
    adata[np.sort(perm[:n_train])].copy().write_h5ad(folder / "train.h5ad")
    adata[np.sort(perm[n_train:])].copy().write_h5ad(folder / "test.h5ad")
    return (
        f"{what}: {adata.n_obs} cells x {adata.n_vars} genes, "
        f"{100 * (1 - nnz / (adata.n_obs * adata.n_vars)):.0f} % zeros, batch key "
        f"{args.batch_key!r}; {n_train} training / {adata.n_obs - n_train} held-out cells"
    )


def read_data(folder: str):
    import anndata as ad

    return ad.read_h5ad(Path(folder) / "train.h5ad"), ad.read_h5ad(Path(folder) / "test.h5ad")


def n_steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Minibatches per epoch (a last minibatch of one cell is dropped, as both trainers do)."""
    return n_train // batch_size + (n_train % batch_size > 1)


def warmup_steps(args: argparse.Namespace, n_train: int) -> int:
    return round(args.warmup_fraction * args.epochs * n_steps_per_epoch(n_train, args.batch_size))


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


# ------------------------------------------------------------------------------- scvi_edu
class _EpochClock:
    """Wraps the epoch iterator of ``scvi_edu.train`` and records when each epoch starts."""

    last = None

    def __init__(self, iterable, **kwargs):
        self.iterable = iterable
        self.stamps: list[tuple[float, float]] = []
        _EpochClock.last = self

    def __iter__(self):
        for item in self.iterable:
            self.stamps.append(_clock())
            yield item
        self.stamps.append(_clock())

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


def run_edu(adata_train, adata_test, args: argparse.Namespace) -> dict:
    import scvi_edu.train as edu_train
    from scvi_edu.model import SCVI

    torch.set_num_threads(args.threads)
    n_warm = warmup_steps(args, adata_train.n_obs)
    train_kwargs = dict(
        max_epochs=args.epochs, lr=1e-3, batch_size=args.batch_size, train_size=1.0,
        seed=args.seed, progress_bar=False, weight_decay=1e-6, eps=0.01,
        kl_warmup_fraction=args.warmup_fraction,
    )  # fmt: skip
    real_tqdm = getattr(edu_train, "tqdm", None)
    if real_tqdm is not None:
        edu_train.tqdm = _EpochClock
    _EpochClock.last = None
    try:
        t0, c0 = _clock()
        model = SCVI(adata_train, batch_key=args.batch_key, seed=args.seed, **ARCH)
        model.train(**train_kwargs)
        t1, c1 = _clock()
    finally:
        if real_tqdm is not None:
            edu_train.tqdm = real_tqdm
    clock = _EpochClock.last
    if clock is not None and len(clock.stamps) == args.epochs + 1:
        wall, cpu = np.array(clock.stamps).T
        epochs, loop, loop_cpu = list(np.diff(wall)), wall[-1] - wall[0], cpu[-1] - cpu[0]
    else:  # the epoch iterator could not be wrapped: the whole call
        epochs, loop, loop_cpu = [(t1 - t0) / args.epochs] * args.epochs, t1 - t0, c1 - c0
    threads_after = torch.get_num_threads()

    elbos = []
    for r in range(args.elbo_repeats):
        torch.manual_seed(1000 + r)
        elbos.append(float(model.get_elbo(adata_test)))
    return dict(
        name="scvi_edu",
        version=getattr(sys.modules.get("scvi_edu"), "__version__", "0.1.0"),
        n_train=adata_train.n_obs, total=t1 - t0, total_cpu=c1 - c0, loop=loop,
        loop_cpu=loop_cpu, epoch=statistics.median(epochs), elbo=float(np.mean(elbos)),
        elbo_sd=float(np.std(elbos)), threads=threads_after, warmup_steps=n_warm, note="",
    )  # fmt: skip


def probe_edu(adata_train, args: argparse.Namespace) -> list[tuple[float, float]]:
    """Two one-epoch ``train`` calls in this (fresh) process: (wall, CPU) of each."""
    from scvi_edu.model import SCVI

    torch.set_num_threads(args.threads)
    model = SCVI(adata_train, batch_key=args.batch_key, seed=args.seed, **ARCH)
    out = []
    for _ in range(2):
        t0, c0 = _clock()
        model.train(max_epochs=1, batch_size=args.batch_size, train_size=1.0, seed=args.seed,
                    progress_bar=False)  # fmt: skip
        t1, c1 = _clock()
        out.append((t1 - t0, c1 - c0))
    return out


# ------------------------------------------------------------------------------ scvi-tools
def _tools_model(adata_train, args):
    import scvi

    torch.set_num_threads(args.threads)
    scvi.settings.seed = args.seed
    scvi.settings.verbosity = logging.ERROR
    scvi.settings.dl_num_workers = 0
    adata_train = adata_train.copy()
    scvi.model.SCVI.setup_anndata(adata_train, batch_key=args.batch_key)
    return scvi.model.SCVI(adata_train, use_observed_lib_size=True, encode_covariates=False, **ARCH)


def run_tools(adata_train, adata_test, args: argparse.Namespace) -> dict:
    import scvi
    from lightning.pytorch.callbacks import Callback
    from scvi.model.base._log_likelihood import compute_elbo

    class EpochClock(Callback):
        def __init__(self):
            self.starts, self.ends = [], []

        def on_train_epoch_start(self, trainer, pl_module):
            self.starts.append(_clock())

        def on_train_epoch_end(self, trainer, pl_module):
            self.ends.append(_clock())

    n_warm = warmup_steps(args, adata_train.n_obs)
    clock = EpochClock()
    plan_kwargs = dict(
        lr=1e-3, eps=0.01, weight_decay=1e-6, n_epochs_kl_warmup=None, n_steps_kl_warmup=n_warm
    )
    t0, c0 = _clock()
    model = _tools_model(adata_train, args)
    model.train(
        max_epochs=args.epochs, accelerator="cpu", devices=1, train_size=1.0,
        batch_size=args.batch_size, early_stopping=False, enable_progress_bar=False,
        plan_kwargs=plan_kwargs, callbacks=[clock],
    )  # fmt: skip
    t1, c1 = _clock()
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
        name="scvi-tools", version=scvi.__version__, n_train=adata_train.n_obs, total=t1 - t0,
        total_cpu=c1 - c0, loop=loop, loop_cpu=loop_cpu, epoch=statistics.median(epochs),
        elbo=float(np.mean(elbos)), elbo_sd=float(np.std(elbos)), threads=threads_after,
        warmup_steps=n_warm, note=f"Adam fused={fused}" if fused is not None else "",
    )  # fmt: skip


def probe_tools(adata_train, args: argparse.Namespace) -> list[tuple[float, float]]:
    model = _tools_model(adata_train, args)
    out = []
    for _ in range(2):
        t0, c0 = _clock()
        model.train(max_epochs=1, accelerator="cpu", devices=1, train_size=1.0,
                    batch_size=args.batch_size, enable_progress_bar=False)  # fmt: skip
        t1, c1 = _clock()
        out.append((t1 - t0, c1 - c0))
    return out


# ------------------------------------------------------------------------------------ main
def quiet():
    """Silence Lightning / scvi-tools chatter (progress, tips, warnings)."""
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return contextlib.redirect_stderr(io.StringIO())


def worker(args: argparse.Namespace) -> None:
    """Runs in a fresh process: read the split, train one library, print one JSON line."""
    with quiet():
        adata_train, adata_test = read_data(args.data_dir)
        if args.probe:
            fn = probe_edu if args.worker == "edu" else probe_tools
            result = {"probe": fn(adata_train, args)}
        else:
            fn = run_edu if args.worker == "edu" else run_tools
            result = fn(adata_train, adata_test, args)
    print("RESULT " + json.dumps(result))


def spawn(python: str, which: str, argv: list[str], folder: str, probe: bool = False) -> dict:
    cmd = [python, str(Path(__file__).resolve()), *argv, "--worker", which, "--data-dir", folder]
    cmd += ["--probe"] if probe else []
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode or not lines:
        raise SystemExit(f"{which} worker failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def print_table(results: list[dict], args: argparse.Namespace, n_genes: int) -> None:
    head = (
        f"{'library':<11} {'version':<8} {'cells/s':>8} {'cells/CPU-s':>11} {'total s':>8} "
        f"{'CPU s':>7} {'loop s':>7} {'s/epoch':>8} {'held-out ELBO/cell':>18} {'per gene':>9} "
        f"{'thr':>3}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        cells = r["n_train"] * args.epochs
        print(
            f"{r['name']:<11} {r['version']:<8} {cells / r['total']:>8.0f} "
            f"{cells / r['total_cpu']:>11.0f} {r['total']:>8.2f} {r['total_cpu']:>7.2f} "
            f"{r['loop']:>7.2f} {r['epoch']:>8.3f} {r['elbo']:>10.2f} ±{r['elbo_sd']:<5.2f} "
            f"{r['elbo'] / n_genes:>9.4f} {r['threads']:>3}"
            + (f"   ({r['note']})" if r["note"] else "")
        )


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.dataset == "simulate" and not args.h5ad and args.batch_key is None:
        args.batch_key = "batch"
        argv += ["--batch-key", "batch"]
    if args.worker:
        return worker(args)
    tools_python = args.tools_python
    if tools_python is None:
        with contextlib.suppress(ImportError):
            import scvi  # noqa: F401

            tools_python = sys.executable
    if tools_python is None:
        print("scvi-tools: no --tools-python and not importable here: timing scvi_edu only")

    with tempfile.TemporaryDirectory() as folder:
        description = make_data(args, Path(folder))
        import anndata as ad

        n_genes = ad.read_h5ad(Path(folder) / "test.h5ad").n_vars
        n_train = ad.read_h5ad(Path(folder) / "train.h5ad").n_obs
        n_warm = warmup_steps(args, n_train)
        n_total = args.epochs * n_steps_per_epoch(n_train, args.batch_size)
        print(f"data: {description}")
        print(
            f"recipe: {args.epochs} epochs, batch {args.batch_size}, Adam(1e-3, eps 0.01, "
            f"wd 1e-6), KL warm-up on z over {n_warm} of {n_total} steps; torch "
            f"{torch.__version__}, {args.threads} thread(s), "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.2f}; each library in its own fresh process"
        )
        runners = [("edu", sys.executable)] + ([("tools", tools_python)] if tools_python else [])
        if args.order == "tools-first":
            runners.reverse()

        ratios, gaps = [], []
        for rep in range(args.repeats):
            results = {}
            for which, python in runners:
                r = spawn(python, which, argv, folder)
                results[r["name"]] = r
            print(f"\nrepeat {rep + 1}/{args.repeats} (load {os.getloadavg()[0]:.2f})")
            print_table(sorted(results.values(), key=lambda r: r["name"] != "scvi_edu"), args,
                        n_genes)  # fmt: skip
            if len(results) == 2:
                edu, tools = results["scvi_edu"], results["scvi-tools"]
                ratio, ratio_cpu = (
                    tools["total"] / edu["total"],
                    tools["total_cpu"] / edu["total_cpu"],
                )
                gap = (edu["elbo"] - tools["elbo"]) / abs(tools["elbo"])
                ratios.append((ratio, ratio_cpu))
                gaps.append(gap)
                print(
                    f"ratio scvi_edu cells/s / scvi-tools cells/s, end to end = {ratio:.2f} "
                    f"(wall), {ratio_cpu:.2f} (CPU time)   [epoch loop only, CPU: "
                    f"{tools['loop_cpu'] / edu['loop_cpu']:.2f}]"
                )
                print(
                    f"held-out ELBO relative difference (scvi_edu - scvi-tools) / |scvi-tools| = "
                    f"{100 * gap:+.3f} %  (positive: scvi_edu better)"
                )
        if len(ratios) > 1:
            wall, cpu = zip(*ratios, strict=True)
            print(
                f"\nmedian over {len(ratios)} repeats: ratio {statistics.median(wall):.2f} wall "
                f"(min {min(wall):.2f}, max {max(wall):.2f}), {statistics.median(cpu):.2f} CPU "
                f"time (min {min(cpu):.2f}, max {max(cpu):.2f}); ELBO gap "
                f"{100 * statistics.median(gaps):+.3f} %"
            )
        if not args.no_first_call:
            print("\nfirst call: train(max_epochs=1) twice in a fresh process (wall s, CPU s)")
            for which, python in runners:
                (w1, c1), (w2, c2) = spawn(python, which, argv, folder, probe=True)["probe"]
                name = "scvi_edu" if which == "edu" else "scvi-tools"
                print(
                    f"  {name:<11} first {w1:6.2f} {c1:6.2f}   later {w2:6.2f} {c2:6.2f}   "
                    f"first - later {w1 - w2:+6.2f} {c1 - c2:+6.2f}"
                )


if __name__ == "__main__":
    main()
