"""Shared fixtures: simulated data and ONE scVI model trained per test session.

The trained model (2000 cells x 500 genes, 2 batches, 5 types; 20 epochs at lr 5e-3) is shared
by every test of ``test_model.py`` so the suite trains it once (about 10 s on one free core).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from scvi_edu.model import SCVI
from scvi_edu.simulate import simulate

SIM_SEED = 0
TRAIN = dict(max_epochs=20, lr=5e-3, batch_size=128, seed=0, progress_bar=False)


@pytest.fixture(scope="session")
def sim_adata():
    """The default simulation: 2000 cells x 500 genes, 2 batches, 5 types (read-only!)."""
    return simulate(seed=SIM_SEED)


@pytest.fixture
def small_adata():
    """A small simulation (fresh per test: tests may modify their copy)."""
    return simulate(n_cells=150, n_genes=40, n_batches=2, n_types=3, n_latent=4,
                    de_genes_per_type=5, seed=1)  # fmt: skip


@pytest.fixture(scope="session")
def trained_model(sim_adata):
    """SCVI trained once on ``sim_adata`` (seeded)."""
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SCVI(sim_adata, batch_key="batch", seed=0)
        model.train(**TRAIN)
    return model
