"""Does a training step cost the same whatever state malloc is in? Fresh processes, compared.

Each run is a fresh process that reads the counts from ``--h5ad`` (a sparse file stays sparse,
so the process has held no large dense array), brings the allocator into one state, trains
``--epochs`` one-epoch calls of ``SCVI.train`` and reports, for the calls after the first, the
CPU ms and the minor page faults per training step:

* ``sparse``: nothing else (the state a user with sparse data is in);
* ``sparse+keep``: ``scvi_edu.allocator.keep_freed_memory()`` first (what the training loop
  calls);
* ``dense-before``: a dense copy of the counts made and freed first (a process that has held a
  dense array, as one that once trained on dense data).

States alternate, run after run (``--repeats``), so that the machine's changing load hits all
alike; the medians and the spread are printed. Never part of the test run.

    python benchmarks/allocator_state.py --h5ad counts.h5ad [--batch-key K]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATES = ("sparse", "sparse+keep", "dense-before")


def run_state(args: argparse.Namespace) -> dict:
    """In this fresh process: read, set the allocator state, train, measure."""
    warnings.filterwarnings("ignore")
    import anndata
    import numpy as np
    import scipy.sparse as sp
    import torch

    from scvi_edu.allocator import keep_freed_memory
    from scvi_edu.model import SCVI

    torch.set_num_threads(1)
    adata = anndata.read_h5ad(args.h5ad)
    if args.state == "sparse+keep":
        keep_freed_memory()
    elif args.state == "dense-before":
        dense = adata.X.toarray() if sp.issparse(adata.X) else np.array(adata.X)
        dense[:, 0] += 1  # written, then freed
        del dense
    model = SCVI(adata, batch_key=args.batch_key, seed=0)
    n_steps = -(-adata.n_obs // args.batch_size)
    cpu, faults = [], []
    for _ in range(args.epochs):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        c0 = time.process_time()
        model.train(max_epochs=1, batch_size=args.batch_size, train_size=1.0, seed=0,
                    progress_bar=False)  # fmt: skip
        cpu.append((time.process_time() - c0) / n_steps * 1e3)
        faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n_steps)
    return {"ms": statistics.median(cpu[1:]), "faults": statistics.median(faults[1:])}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--h5ad", required=True)
    p.add_argument("--batch-key")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=6, help="one-epoch train calls per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--state", choices=STATES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.state:
        print("RESULT " + json.dumps(run_state(args)))
        return
    results: dict[str, list[dict]] = {s: [] for s in STATES}
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for _ in range(args.repeats):
        for state in STATES:
            cmd = [sys.executable, __file__, "--h5ad", args.h5ad, "--state", state,
                   "--batch-size", str(args.batch_size), "--epochs", str(args.epochs)]  # fmt: skip
            if args.batch_key:
                cmd += ["--batch-key", args.batch_key]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
            results[state].append(json.loads(line[len("RESULT ") :]))
    print(
        f"{args.h5ad}: CPU ms and minor page faults per training step (median of one-epoch calls "
        f"2..{args.epochs}), {args.repeats} alternating fresh processes per state, 1 thread, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    ref = statistics.median(r["ms"] for r in results["dense-before"])
    print(f"{'state':14s} {'ms/step':>8s} {'runs (min-max)':>16s} {'faults/step':>12s}  "
          "/ dense-before")  # fmt: skip
    for state, runs in results.items():
        ms = [r["ms"] for r in runs]
        med = statistics.median(ms)
        flt = statistics.median(r["faults"] for r in runs)
        print(f"{state:14s} {med:8.1f} {min(ms):7.1f}-{max(ms):<8.1f} {flt:12.0f}  "
              f"{med / ref:12.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
