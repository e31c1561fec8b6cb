"""The small shared pieces: ``seeded``, ``evaluating``, ``minibatch_indices``,
``VAE.library_prior`` and ``TrainConfig``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scvi_edu.context import evaluating, seeded
from scvi_edu.data import CountData, minibatch_indices
from scvi_edu.model import SCVI
from scvi_edu.module import VAE
from scvi_edu.train import TrainConfig, train


def test_seeded_fixes_the_draws_and_leaves_the_caller_rng_alone():
    torch.manual_seed(11)
    state = torch.get_rng_state()
    with seeded(5) as s:
        a = torch.randn(4)
    assert s == 5 and torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(99)
    with seeded(5):
        b = torch.randn(4)
    torch.manual_seed(5)
    assert torch.equal(a, b) and torch.equal(a, torch.randn(4))  # = manual_seed(5) then draw
    torch.manual_seed(3)
    with seeded(None) as s1:
        c = torch.randn(4)
    torch.manual_seed(3)
    with seeded(None) as s2:
        d = torch.randn(4)
    assert s1 == s2 and torch.equal(c, d), "seed=None: reproducible after torch.manual_seed"


def test_evaluating_restores_the_previous_mode():
    m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    for mode in (True, False):
        m.train(mode)
        with evaluating(m):
            assert not m.training and not torch.is_grad_enabled()
        assert m.training == mode and torch.is_grad_enabled()
    m.train()
    with pytest.raises(RuntimeError), evaluating(m):
        raise RuntimeError("boom")
    assert m.training


def test_minibatch_indices_cover_every_cell_once():
    chunks = list(minibatch_indices(10, 4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(chunks), np.arange(10))
    shuffled = np.concatenate(
        list(minibatch_indices(np.arange(10), 3, True, np.random.default_rng(0)))
    )
    assert sorted(shuffled) == list(range(10)) and list(shuffled) != list(range(10))
    # a last chunk of one cell is dropped only when asked
    assert [len(c) for c in minibatch_indices(9, 4, drop_singleton=True)] == [4, 4]
    assert [len(c) for c in minibatch_indices(9, 4)] == [4, 4, 1]
    with pytest.raises(ValueError, match="batch_size"):
        list(minibatch_indices(5, 0))


def test_library_prior_is_eq_62_per_batch(small_adata):
    """loc, scale = mean and standard deviation (squared deviations) of log totals per batch."""
    model = SCVI(small_adata, batch_key="batch", use_observed_lib_size=False, n_hidden=8)
    log_total = np.log(np.asarray(small_adata.X.sum(axis=1)).reshape(-1))
    codes = small_adata.obs["batch"].cat.codes.to_numpy().astype(np.int64)
    loc, scale = model.module.library_prior(torch.as_tensor(codes))
    assert loc.shape == scale.shape == (small_adata.n_obs, 1)
    for b in np.unique(codes):
        ref = log_total[codes == b]
        np.testing.assert_allclose(loc[codes == b, 0], ref.mean(), rtol=1e-6)
        np.testing.assert_allclose(scale[codes == b, 0], ref.std(ddof=0), rtol=1e-5)
    with pytest.raises(ValueError, match="observed"):
        VAE(5).library_prior(torch.zeros(3, dtype=torch.long))


def test_train_config_or_keywords(small_adata):
    data = CountData(small_adata, batch_key="batch")
    options = dict(max_epochs=2, batch_size=64, seed=0, progress_bar=False)
    histories = []
    for use_config in (True, False):
        torch.manual_seed(0)
        vae = VAE(data.n_genes, n_batch=data.n_batch, n_hidden=8, n_latent=2)
        if use_config:
            histories.append(train(vae, data, TrainConfig(**options)))
        else:
            histories.append(train(vae, data, **options))
    np.testing.assert_array_equal(histories[0].to_numpy(), histories[1].to_numpy())
    with pytest.raises(ValueError, match="not both"):
        train(vae, data, TrainConfig(**options), lr=1.0)
    with pytest.raises(ValueError, match="max_epochs"):
        TrainConfig(max_epochs=0)
    with pytest.raises(ValueError, match="train_indices"):
        train(vae, data, TrainConfig(**options), train_indices=[0, 10**6])
