"""Small scVI models trained once per test session on simulated data with a known truth.

Shared by ``test_posterior.py``, ``test_differential.py`` and ``test_metrics.py`` (cached, so a
pytest run trains each model once). Simulation: 1000 cells, 200 genes, 2 batches, 4 cell types
(10 planted DE genes per type), ZINB counts; model: n_latent 5, n_hidden 64, 60 epochs at
lr 1e-2, seeded. Each training takes about 10-15 s on one CPU thread.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from scvi_edu.data import CountData
from scvi_edu.module import VAE
from scvi_edu.simulate import simulate
from scvi_edu.train import train

SIM = dict(n_cells=1000, n_genes=200, n_batches=2, n_types=4, n_latent=5, de_genes_per_type=10)
MODEL = dict(n_latent=5, n_hidden=64)
TRAIN = dict(max_epochs=60, lr=1e-2, batch_size=128, seed=0, progress_bar=False)
MASK_FRACTION = 0.1


def _fit(x, batch) -> tuple[VAE, CountData]:
    data = CountData(x, batch=batch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = VAE(data.n_genes, n_batch=data.n_batch, **MODEL)
    train(module, data, **TRAIN)
    module.eval()
    return module, data


@lru_cache(maxsize=1)
def trained_sim_model() -> dict:
    """A model trained on ``simulate(**SIM, seed=0)``; returns module, adata, x, batch codes."""
    adata = simulate(**SIM, seed=0)
    x = np.asarray(adata.X, dtype=np.float32)
    module, data = _fit(x, adata.obs["batch"].to_numpy())
    assert list(data.batch_categories) == list(adata.obs["batch"].cat.categories)
    return dict(module=module, adata=adata, x=x, batch=data.batch_codes)


@lru_cache(maxsize=1)
def imputation_setup() -> dict:
    """Hold out ``MASK_FRACTION`` of the non-zero counts (set to 0), train on the rest.

    Returns module, adata (the complete simulation), ``x_train`` (masked counts), batch codes,
    ``rows``/``cols`` of the held-out entries and their original ``values``.
    """
    adata = simulate(**SIM, seed=1)
    x = np.asarray(adata.X, dtype=np.float32)
    rng = np.random.default_rng(0)
    nonzero = np.argwhere(x > 0)
    held = nonzero[rng.random(len(nonzero)) < MASK_FRACTION]
    x_train = x.copy()
    x_train[held[:, 0], held[:, 1]] = 0
    module, data = _fit(x_train, adata.obs["batch"].to_numpy())
    return dict(
        module=module,
        adata=adata,
        x_train=x_train,
        batch=data.batch_codes,
        rows=held[:, 0],
        cols=held[:, 1],
        values=x[held[:, 0], held[:, 1]],
    )
