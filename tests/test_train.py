"""The training loop (scvi_edu.train): what the history records, the split, the seeding."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from scvi_edu.data import CountData
from scvi_edu.model import SCVI
from scvi_edu.module import VAE
from scvi_edu.train import kl_weight_schedule, train


@pytest.fixture
def small_data(small_adata):
    return CountData(small_adata, batch_key="batch")


def _vae(data, seed=0):
    torch.manual_seed(seed)
    return VAE(data.n_genes, n_batch=data.n_batch, n_hidden=16, n_latent=2)


def test_history_kl_weight_is_the_weight_used_in_that_epoch(small_data):
    """One minibatch per epoch: the epoch's loss is rec + w * kl_z + kl_l for the weight w used.

    100 training cells in one minibatch, 4 epochs, warm-up over all 4 steps: the steps use
    w = 0, 1/4, 2/4, 3/4 (kl_weight_schedule(step, 4)), and the history must say so.
    """
    h = train(_vae(small_data), small_data, max_epochs=4, batch_size=200,
              kl_warmup_fraction=1.0, train_indices=np.arange(100),
              validation_indices=np.arange(100, 150), seed=0, progress_bar=False)  # fmt: skip
    expected = [kl_weight_schedule(step, 4) for step in range(4)]
    np.testing.assert_allclose(h["kl_weight"], expected)
    np.testing.assert_allclose(
        h["train_loss"],
        h["train_reconstruction_loss"] + h["kl_weight"] * h["train_kl_z"] + h["train_kl_l"],
        rtol=1e-5,
    )


def test_history_kl_weight_is_the_last_step_of_the_epoch(small_data):
    """Several steps per epoch: the recorded weight is the one of the epoch's last step."""
    # 100 cells, batch 40 -> 3 steps per epoch (40, 40, 20); warm-up over 0.5 * 4 * 3 = 6 steps
    h = train(_vae(small_data), small_data, max_epochs=4, batch_size=40,
              kl_warmup_fraction=0.5, train_indices=np.arange(100), seed=0,
              progress_bar=False)  # fmt: skip
    last_steps = [3 * (epoch + 1) - 1 for epoch in range(4)]
    np.testing.assert_allclose(h["kl_weight"], [min(1.0, s / 6) for s in last_steps])


def test_scvi_train_accepts_its_own_split(small_adata):
    """SCVI.train(train_indices=..., validation_indices=...) trains on exactly those cells."""
    model = SCVI(small_adata, batch_key="batch", n_hidden=16, n_latent=2, seed=0)
    train_idx, val_idx = np.arange(0, 150, 2), np.arange(1, 150, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.train(max_epochs=2, seed=0, progress_bar=False, train_indices=train_idx,
                    validation_indices=val_idx)  # fmt: skip
    np.testing.assert_array_equal(model.train_indices, train_idx)
    np.testing.assert_array_equal(model.validation_indices, val_idx)
    assert model.history["validation_elbo"].notna().all()
    with pytest.raises(ValueError, match="validation_indices"):
        model.train(max_epochs=1, progress_bar=False, validation_indices=val_idx)


def test_training_ends_with_batchnorm_statistics_of_the_training_cells(small_adata):
    """recompute_batchnorm=True: the z encoder's eval-mode BatchNorm mean is the average of the
    minibatch means of its input, W log1p(x) + b, over the training cells (numpy reference);
    False keeps the running average of momentum 0.01, far from it after a short run."""
    x_all = np.log1p(np.asarray(small_adata.X, dtype=np.float64))
    for recompute in (True, False):
        model = SCVI(small_adata, seed=0, n_hidden=16, n_latent=3)
        model.train(max_epochs=3, seed=0, progress_bar=False, recompute_batchnorm=recompute)
        linear, bn = model.module.z_encoder.encoder.fc_layers[0][:2]
        w = linear.weight.detach().numpy().astype(np.float64)
        h = x_all[model.train_indices] @ w.T + linear.bias.detach().numpy()
        ref = np.mean([h[k : k + 128].mean(axis=0) for k in range(0, len(h), 128)], axis=0)
        if recompute:
            np.testing.assert_allclose(bn.running_mean.numpy(), ref, rtol=1e-4, atol=1e-4)
        else:
            assert np.abs(bn.running_mean.numpy() - ref).max() > 0.1


def test_given_split_is_checked_and_a_boolean_mask_is_accepted(small_adata):
    """A boolean mask means its True cells (it was once read as the indices 0 and 1); float,
    repeated, out-of-range or overlapping indices raise ValueError naming the argument."""
    n = small_adata.n_obs
    mask = np.arange(n) % 4 != 0
    model = SCVI(small_adata, seed=0, n_hidden=8, n_latent=2)
    model.train(max_epochs=1, seed=0, progress_bar=False, train_indices=mask,
                validation_indices=~mask)  # fmt: skip
    np.testing.assert_array_equal(model.train_indices, np.flatnonzero(mask))
    np.testing.assert_array_equal(model.validation_indices, np.flatnonzero(~mask))
    bad = {
        "integer cell indices": dict(train_indices=[0.5, 1.7, 2.2]),
        "more than once": dict(train_indices=[0, 1, 1, 2]),
        "among 0": dict(train_indices=[0, 1, n]),
        "one entry per cell": dict(train_indices=mask[:-1]),
        "share cells": dict(train_indices=np.arange(10), validation_indices=[9, 10]),
    }
    for message, split in bad.items():
        with pytest.raises(ValueError, match=message):
            model.train(max_epochs=1, seed=0, progress_bar=False, **split)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (dict(batch_size=2.5), "batch_size must be an integer"),
        (dict(batch_size=1), "batch_size must be an integer >= 2"),
        (dict(seed=-1), "seed must be a non-negative integer"),
        (dict(seed=1.5), "seed must be a non-negative integer"),
    ],
)
def test_train_config_rejects_bad_settings_with_a_named_value_error(option, message):
    from scvi_edu.train import TrainConfig

    with pytest.raises(ValueError, match=message):
        TrainConfig(max_epochs=1, **option)
