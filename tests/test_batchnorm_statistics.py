"""recompute_batchnorm_statistics: the running statistics become those of the data."""

import numpy as np
import pytest
import torch
from torch import nn

from scvi_edu.nn import FCLayers, recompute_batchnorm_statistics


def _trained_like_layers(seed=0):
    torch.manual_seed(seed)
    layers = FCLayers(6, 4, n_cat=0, n_layers=1, n_hidden=4, dropout_rate=0.3)
    with torch.no_grad():  # weights far from the initial running statistics (mean 0, var 1)
        layers.fc_layers[0][0].weight.mul_(5.0)
        layers.fc_layers[0][0].bias.add_(3.0)
    return layers


def test_running_statistics_are_the_average_over_minibatches():
    layers = _trained_like_layers()
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, 1.5, size=(90, 6)).astype(np.float32)
    chunks = [torch.as_tensor(x[i : i + 30]) for i in range(0, 90, 30)]
    layers.eval()
    n = recompute_batchnorm_statistics(layers, chunks)
    assert n == 3
    # independent reference in numpy: the linear map, then per-minibatch mean and unbiased var
    w = layers.fc_layers[0][0].weight.detach().numpy().astype(np.float64)
    b = layers.fc_layers[0][0].bias.detach().numpy().astype(np.float64)
    h = [c.numpy().astype(np.float64) @ w.T + b for c in chunks]
    mean = np.mean([hh.mean(0) for hh in h], axis=0)
    var = np.mean([hh.var(0, ddof=1) for hh in h], axis=0)
    bn = layers.fc_layers[0][1]
    np.testing.assert_allclose(bn.running_mean.numpy(), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), var, rtol=1e-5)
    # restored: momentum, eval mode of every submodule
    assert bn.momentum == 0.01
    assert not any(m.training for m in layers.modules())


def test_eval_output_then_matches_batch_statistics_and_dropout_is_off():
    layers = _trained_like_layers()
    x = torch.as_tensor(np.random.default_rng(2).gamma(2.0, 1.5, size=(64, 6)), dtype=torch.float32)
    layers.train()  # the flags must come back as they were
    recompute_batchnorm_statistics(layers, [x])  # one minibatch = all the data
    assert all(m.training for m in layers.modules())
    layers.eval()
    with torch.no_grad():
        out_eval = layers(x)
        # reference: normalise with the batch's own statistics (biased var as BatchNorm does)
        h = layers.fc_layers[0][0](x)
        bn = layers.fc_layers[0][1]
        ref = torch.relu(
            (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) * 64 / 63 + bn.eps) * bn.weight
            + bn.bias
        )
    torch.testing.assert_close(out_eval, ref, rtol=1e-4, atol=1e-4)


def test_global_rng_untouched_and_bad_input():
    layers = _trained_like_layers()
    x = torch.randn(10, 6)
    state = torch.get_rng_state()
    recompute_batchnorm_statistics(layers, [(x,)])
    assert torch.equal(state, torch.get_rng_state())
    with pytest.raises(ValueError, match="at least 2 cells"):
        recompute_batchnorm_statistics(layers, [x[:1]])
    assert recompute_batchnorm_statistics(nn.Linear(3, 2), [torch.randn(4, 3)]) == 0


def test_vae_latent_library_overshoot_is_removed():
    """On a VAE, eval-mode outputs after recomputing equal the train-mode BatchNorm outputs."""
    from scvi_edu.module import VAE

    torch.manual_seed(0)
    x = torch.poisson(torch.full((200, 30), 3.0))
    prior = dict(library_log_means=np.array([np.log(90.0)]), library_log_vars=np.array([0.1]))
    vae = VAE(30, n_hidden=16, n_latent=3, use_observed_lib_size=False, **prior)
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.5 * torch.randn_like(p))
    recompute_batchnorm_statistics(vae, [(x,)])
    vae.eval()
    with torch.no_grad():
        eval_loc = vae.inference(x, None)["ql_loc"]
        for m in vae.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.train()
                m.momentum = 0.0  # batch statistics, running ones untouched
        train_loc = vae.inference(x, None)["ql_loc"]
    # equal up to BatchNorm's biased (train) vs unbiased (running) variance, a factor 200/199
    torch.testing.assert_close(eval_loc, train_loc, rtol=2e-2, atol=2e-2)
