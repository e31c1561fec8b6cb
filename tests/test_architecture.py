"""Architecture details a student's edit can silently change (found by mutation testing).

Each test pins one property against an independent statement of it: scvi-tools' defaults,
Fig. 3's layer structure, the shapes of eq. (68)'s Monte Carlo samples, the float32 gradient
floor of the log-pmfs.
"""

import pytest
import torch
from torch import nn

from scvi_edu.distributions import log_nb_positive
from scvi_edu.module import VAE
from scvi_edu.nn import DecoderSCVI, FCLayers


def test_defaults_are_scvi_tools_defaults():
    vae = VAE(50)
    linears = [m for m in vae.z_encoder.modules() if isinstance(m, nn.Linear)]
    assert linears[0].in_features == 50 and linears[0].out_features == 128, "n_hidden=128"
    assert vae.n_latent == 10 and vae.dispersion == "gene" and vae.gene_likelihood == "zinb"
    assert vae.use_observed_lib_size and vae.log_variational and not vae.encode_covariates
    encoder_dropouts = [m.p for m in vae.z_encoder.modules() if isinstance(m, nn.Dropout)]
    assert encoder_dropouts and all(p == 0.1 for p in encoder_dropouts), "dropout_rate=0.1"


def test_decoder_has_no_dropout_and_no_covariate_by_default():
    """scvi-tools' decoder uses dropout 0; Fig. 3 feeds it z (and s only when there are batches)."""
    dec = DecoderSCVI(n_input=7, n_output=20)
    assert all(m.p == 0.0 for m in dec.modules() if isinstance(m, nn.Dropout))
    first = [m for m in dec.modules() if isinstance(m, nn.Linear)][0]
    assert first.in_features == 7


def test_inference_draws_one_sample_by_default_and_a_sample_axis_otherwise():
    torch.manual_seed(0)
    vae = VAE(12, n_latent=3).eval()
    x = torch.poisson(torch.full((5, 12), 3.0)) + 1
    assert vae.inference(x, None)["z"].shape == (5, 3)
    for s in (2, 3):
        out = vae.inference(x, None, n_samples=s)
        assert out["z"].shape == (s, 5, 3), f"eq. (68): K={s} samples of z per cell"
        assert out["library"].shape == (s, 5, 1)


def test_covariate_injected_into_first_layer_only_when_not_everywhere():
    torch.manual_seed(0)
    fc = FCLayers(4, 6, n_cat=3, n_layers=3, n_hidden=5, inject_covariates=False).eval()
    in_features = [seq[0].in_features for seq in fc.fc_layers]
    assert in_features == [4 + 3, 5, 5]
    x = torch.randn(8, 4)
    a = fc(x, torch.zeros(8, dtype=torch.long))
    b = fc(x, torch.full((8,), 2, dtype=torch.long))
    assert not torch.allclose(a, b), "the batch must still reach the first layer"
    every = FCLayers(4, 6, n_cat=3, n_layers=3, n_hidden=5, inject_covariates=True)
    assert [seq[0].in_features for seq in every.fc_layers] == [7, 8, 8]


def test_library_prior_error_names_the_batches():
    with pytest.raises(ValueError, match=r"batches \[1\]"):
        VAE(5, n_batch=2, use_observed_lib_size=False, library_log_means=[1.0, 2.0],
            library_log_vars=[0.5, 0.0])  # fmt: skip


def test_float32_gradient_finite_for_tiny_positive_mean():
    """x log mu with mu ~ 1e-35 (a float32 normal number): d/dmu = x / mu must stay finite."""
    mu = torch.tensor([1e-35, 1e-30, 0.0], dtype=torch.float32, requires_grad=True)
    x = torch.tensor([1e6, 1e6, 1e6])
    theta = torch.tensor([2.0, 2.0, 2.0])
    log_nb_positive(x, mu, theta).sum().backward()
    assert torch.isfinite(mu.grad).all(), mu.grad
