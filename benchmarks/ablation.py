"""Ablation of scVI's modelling choices on simulated counts with a known truth (not a test).

    python benchmarks/ablation.py                 # full length (a few minutes on one core)
    python benchmarks/ablation.py --quick         # chapter 5's sizes (unmasked counts)

One seeded simulation (``scvi_edu.simulate``: ZINB counts, NB inverse dispersions theta_g
log-uniform in [2, 20], technical-zero probabilities in [0, 0.2], two batches with different
depths and logit shifts, five cell types). Every row trains an ``SCVI`` the same way (same
initial seed, split, epochs, learning rate, KL warm-up) and changes one choice against the
base row (scvi-tools' defaults: ZINB likelihood, theta per gene, observed library size, batch
given to the decoder):

* the likelihood: ZINB (eq. (58)) vs NB (eq. (56)) vs Poisson;
* the dispersion: theta per gene vs per gene and cell (decoded from z);
* the library size: observed l = sum_g x_ng vs the tutorial's latent l ~ q(l | x) with the
  prior p(l | s) of eqs. (61)-(62);
* batch conditioning: the batch one-hot in the decoder vs no batch at all.

Each model is trained on a seeded 80% of the cells (``train_size=1.0``: no validation split
inside the training loop) and evaluated on the other 20%. Columns, on those held-out cells: the
importance-sampled marginal log-likelihood (``get_marginal_ll``, K samples, seeded, mean per
cell) and the ELBO per cell (``get_elbo``: one unseeded sample of (z, l) per cell, so it moves by
a few tenths between runs); on all cells: ARI and NMI of KMeans on the latent against the true
types, and the entropy of batch mixing (50 neighbours; max log 2 = 0.693).

With the observed library the marginal likelihood is log p(x | l = sum_g x_ng, s): it conditions
on the depth. The latent-library row integrates over l, log p(x | s), a different quantity that
is *not* comparable with the others (marked *).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from scvi_edu import SCVI, simulate
from scvi_edu.metrics import clustering_scores, entropy_batch_mixing

BASE = dict(gene_likelihood="zinb", dispersion="gene", use_observed_lib_size=True, n_hidden=64)
ROWS = [
    ("ZINB (base)", {}),
    ("NB", dict(gene_likelihood="nb")),
    ("Poisson", dict(gene_likelihood="poisson")),
    ("theta gene-cell", dict(dispersion="gene-cell")),
    ("latent library", dict(use_observed_lib_size=False)),
    ("no batch", dict(batch_key=None)),
]
FULL = dict(
    sim=dict(n_cells=1500, n_genes=200, n_batches=2, n_types=5, n_latent=5, de_genes_per_type=10),
    n_latent=5,
    max_epochs=100,
    n_mc_samples=300,
)
QUICK = dict(
    sim=dict(n_cells=600, n_genes=100, n_batches=2, n_types=4, n_latent=5, de_genes_per_type=8),
    n_latent=5,
    max_epochs=40,
    n_mc_samples=100,
)


def split(adata, fraction: float = 0.8, seed: int = 0):
    """A seeded split of the cells: (training AnnData, held-out AnnData)."""
    perm = np.random.default_rng(seed).permutation(adata.n_obs)
    cut = int(round(fraction * adata.n_obs))
    return adata[np.sort(perm[:cut])].copy(), adata[np.sort(perm[cut:])].copy()


def run_row(adata, options: dict, n_latent: int, max_epochs: int, n_mc_samples: int) -> dict:
    """Train one model (seeded) on 80% of the cells and measure it."""
    options = {**BASE, **options}
    batch_key = options.pop("batch_key", "batch")
    train_ad, held_out = split(adata)
    t0 = time.perf_counter()
    model = SCVI(train_ad, batch_key=batch_key, seed=0, n_latent=n_latent, **options)
    # train_size=1.0: the held-out cells are ours, never seen by the training loop
    model.train(max_epochs=max_epochs, lr=1e-2, seed=0, progress_bar=False, train_size=1.0)
    seconds = time.perf_counter() - t0
    z = model.get_latent_representation(adata)
    scores = clustering_scores(z, adata.obs["cell_type"].to_numpy())
    return dict(
        marginal_ll=model.get_marginal_ll(held_out, n_mc_samples=n_mc_samples, seed=0),
        elbo=model.get_elbo(held_out),
        ari=scores["ari"],
        nmi=scores["nmi"],
        entropy=entropy_batch_mixing(z, adata.obs["batch"].to_numpy()),
        seconds=seconds,
        observed=options["use_observed_lib_size"],
    )


def main(quick: bool = False) -> None:
    torch.set_num_threads(1)
    cfg = QUICK if quick else FULL
    adata = simulate(**cfg["sim"], seed=0)
    print(
        f"simulate({', '.join(f'{k}={v}' for k, v in cfg['sim'].items())}, seed=0); "
        f"n_latent={cfg['n_latent']}, n_hidden=64, {cfg['max_epochs']} epochs, lr 1e-2, "
        f"batch 128, train 80%; marginal LL with K={cfg['n_mc_samples']} on the held-out 20%"
    )
    print(
        f"{'model':18s} {'held-out log p(x)':>18s} {'held-out ELBO':>14s} {'ARI':>6s} "
        f"{'NMI':>6s} {'batch entropy':>14s} {'train s':>8s}"
    )
    for name, options in ROWS:
        r = run_row(adata, options, cfg["n_latent"], cfg["max_epochs"], cfg["n_mc_samples"])
        star = " " if r["observed"] else "*"
        print(
            f"{name:18s} {r['marginal_ll']:17.1f}{star} {r['elbo']:14.1f} {r['ari']:6.2f} "
            f"{r['nmi']:6.2f} {r['entropy']:14.2f} {r['seconds']:8.1f}"
        )
    print("* log p(x | s), integrated over the latent l; the other rows: log p(x | l = total, s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the chapter's small version")
    main(parser.parse_args().quick)
