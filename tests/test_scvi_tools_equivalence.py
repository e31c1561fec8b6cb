"""The same model as scvi-tools: a ``scvi.module.VAE``'s weights in a ``scvi_edu`` ``VAE``.

For each variant (zinb / nb, gene / gene-batch dispersion, observed / latent library size) a
scvi-tools ``VAE`` is built, every parameter and BatchNorm statistic is set to random values
(so that a weight copied to the wrong place cannot go unnoticed), and its state dict is loaded
into a ``scvi_edu`` ``VAE`` of the same architecture through ``scvi_edu.interop``. Both in eval
mode (dropout off, BatchNorm on its running statistics) and given the same noise epsilon, they
must give the same

* ``inference``: q(z | x) (qz_loc, qz_scale), q(log l | x) (ql_loc, ql_scale) or the observed
  log library, eq. (61);
* ``generative``: px_scale, px_rate, px_r (theta), px_dropout, eqs. (55)-(58);
* ELBO terms per cell: reconstruction loss, KL z, KL l, and the minimised loss, eqs. (64)-(70).

Tolerance: float32 precision, ``rtol=1e-5`` (about 100 float32 ulps) and ``atol=1e-5``. The
two compute the likelihood with different formulas (scvi-tools' ``log_zinb_positive`` with its
``eps=1e-8``, scvi_edu's ``zinb_log_likelihood``) and the KL through
``torch.distributions`` versus ``scvi_edu.distributions.kl_normal``, so bitwise equality is not
expected.

scvi-tools is not a dependency of scvi-edu: the test is skipped when ``scvi`` is not importable,
unless ``SCVI_EDU_REQUIRE_SCVI_TOOLS=1`` (set by ``.ci/run``, which runs this file in a separate
virtual environment with scvi-tools 1.4.2) turns the missing import into a failure.
"""

from __future__ import annotations

import importlib.util
import itertools
import os

import numpy as np
import pytest
import torch

# The root conftest.py sets the notebooks' inline matplotlib backend, which a bare scvi-tools
# environment lacks (scvi imports matplotlib through torchmetrics).
if importlib.util.find_spec("matplotlib_inline") is None:
    os.environ["MPLBACKEND"] = "Agg"

if os.environ.get("SCVI_EDU_REQUIRE_SCVI_TOOLS") == "1":
    import scvi  # noqa: F401  (must be importable: CI's scvi-tools environment)
else:
    pytest.importorskip("scvi")

from scvi import REGISTRY_KEYS  # noqa: E402
from scvi.module import VAE as ToolsVAE  # noqa: E402

from scvi_edu.interop import from_scvi_tools_state_dict, to_scvi_tools_state_dict  # noqa: E402
from scvi_edu.module import VAE  # noqa: E402

RTOL = ATOL = 1e-5
N_CELLS, N_GENES, N_BATCH = 64, 30, 3
ARCH = dict(n_hidden=16, n_latent=4, n_layers=2, dropout_rate=0.1)  # 2 layers: deep injection
CASES = list(itertools.product(["zinb", "nb"], ["gene", "gene-batch"], [True, False]))


def mismatch(actual: torch.Tensor, expected: torch.Tensor, what: str) -> list[str]:
    """[] if the two agree to RTOL/ATOL, else one line naming the quantity and how far off."""
    if actual.shape == expected.shape and torch.allclose(actual, expected, rtol=RTOL, atol=ATOL):
        return []
    if actual.shape != expected.shape:
        return [f"{what}: shape {tuple(actual.shape)} vs {tuple(expected.shape)}"]
    return [f"{what}: largest difference {(actual - expected).abs().max().item():.3g}"]


def data(seed: int = 0):
    """Counts of N_CELLS cells in N_BATCH batches, every cell with a positive total."""
    gen = torch.Generator().manual_seed(seed)
    rate = torch.exp(1.0 + 1.5 * torch.randn(N_CELLS, N_GENES, generator=gen))  # many zeros
    x = torch.poisson(rate, generator=gen)
    x[:, 0] += 1  # no empty cell: the observed log library must be finite
    batch = torch.randint(0, N_BATCH, (N_CELLS, 1), generator=gen)
    log_lib = torch.log(x.sum(1)).numpy()
    b = batch[:, 0].numpy()
    means = np.array([log_lib[b == k].mean() for k in range(N_BATCH)], dtype=np.float32)
    variances = np.array([log_lib[b == k].var() for k in range(N_BATCH)], dtype=np.float32)
    return x, batch, means, variances


def randomize_(module: torch.nn.Module, seed: int) -> None:
    """Set every parameter and BatchNorm statistic to random values (variances positive)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in itertools.chain(module.named_parameters(), module.named_buffers()):
            if not tensor.is_floating_point() or name.startswith("library_log"):
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + noise.abs())
            else:
                tensor.copy_(0.3 * noise)


def make_pair(likelihood: str, dispersion: str, observed: bool, encode_covariates=False):
    """A randomised scvi-tools VAE and a scvi_edu VAE holding its weights, both in eval mode."""
    x, batch, means, variances = data()
    torch.manual_seed(0)
    tools = ToolsVAE(
        N_GENES,
        n_batch=N_BATCH,
        **ARCH,
        dispersion=dispersion,
        gene_likelihood=likelihood,
        use_observed_lib_size=observed,
        library_log_means=None if observed else means.reshape(1, -1),
        library_log_vars=None if observed else variances.reshape(1, -1),
        encode_covariates=encode_covariates,
    )
    randomize_(tools, seed=1)
    edu = VAE(
        N_GENES,
        n_batch=N_BATCH,
        **ARCH,
        dispersion=dispersion,
        gene_likelihood=likelihood,
        use_observed_lib_size=observed,
        library_log_means=None if observed else means,
        library_log_vars=None if observed else variances,
        encode_covariates=encode_covariates,
        var_activation=torch.exp,  # scvi-tools' encoder variance (scvi_edu's default: softplus)
    )
    edu.load_state_dict(from_scvi_tools_state_dict(tools.state_dict(), observed))  # strict
    return tools.eval(), edu.eval(), x, batch


def compare(tools, edu, x, batch, likelihood: str, observed: bool) -> list[str]:
    """The quantities on which the two modules disagree (an empty list: the same model)."""
    off = []
    with torch.no_grad():
        # inference, eq. (61): the same seed gives the same epsilon (both draw z, then log l)
        torch.manual_seed(7)
        t_inf = tools.inference(x, batch)
        torch.manual_seed(7)
        e_inf = edu.inference(x, batch)
        off += mismatch(e_inf["qz_loc"], t_inf["qz"].loc, "qz_loc")
        off += mismatch(e_inf["qz_scale"], t_inf["qz"].scale, "qz_scale")
        off += mismatch(e_inf["z"], t_inf["z"], "z (same seed)")
        off += mismatch(e_inf["library"], t_inf["library"], "library")
        if not observed:
            off += mismatch(e_inf["ql_loc"], t_inf["ql"].loc, "ql_loc")
            off += mismatch(e_inf["ql_scale"], t_inf["ql"].scale, "ql_scale")

        # generative, eqs. (55)-(58): one explicit epsilon, z = loc + scale * eps, fed to both
        gen = torch.Generator().manual_seed(11)
        z = e_inf["qz_loc"] + e_inf["qz_scale"] * torch.randn(e_inf["qz_loc"].shape, generator=gen)
        if observed:
            library = e_inf["library"]
        else:
            eps_l = torch.randn(e_inf["ql_loc"].shape, generator=gen)
            library = e_inf["ql_loc"] + e_inf["ql_scale"] * eps_l
        labels = torch.zeros_like(batch)
        t_gen = tools.generative(z, library, batch, y=labels)
        e_gen = edu.generative(z, library, batch)
        px = t_gen["px"]
        off += mismatch(e_gen["px_scale"], px.scale, "px_scale")
        off += mismatch(e_gen["px_rate"], px.mu, "px_rate")
        off += mismatch(e_gen["px_r"], px.theta.expand_as(px.mu), "px_r (theta)")
        if likelihood == "zinb":
            off += mismatch(e_gen["px_dropout"], px.zi_logits, "px_dropout")

        # ELBO terms, eqs. (64)-(70), with a KL warm-up weight
        tensors = {REGISTRY_KEYS.X_KEY: x, REGISTRY_KEYS.BATCH_KEY: batch}
        tensors[REGISTRY_KEYS.LABELS_KEY] = labels
        t_loss = tools.loss(tensors, t_inf, t_gen, kl_weight=0.5)
        e_loss = edu.loss(x, e_inf, e_gen, batch, kl_weight=0.5)
        off += mismatch(
            e_loss.reconstruction_loss,
            t_loss.reconstruction_loss["reconstruction_loss"],
            "reconstruction loss",
        )
        off += mismatch(e_loss.kl_z, t_loss.kl_local["kl_divergence_z"], "KL z")
        off += mismatch(e_loss.kl_l, t_loss.kl_local["kl_divergence_l"], "KL l")
        off += mismatch(e_loss.loss, t_loss.loss, "loss")
        if not torch.all(e_loss.kl_z > 0) or not (observed or torch.all(e_loss.kl_l > 0)):
            off.append("a KL term is not positive")
    return off


@pytest.mark.parametrize(("likelihood", "dispersion", "observed"), CASES)
def test_same_outputs_as_scvi_tools(likelihood, dispersion, observed):
    tools, edu, x, batch = make_pair(likelihood, dispersion, observed)
    assert compare(tools, edu, x, batch, likelihood, observed) == []


def test_same_outputs_with_the_batch_given_to_the_encoders():
    tools, edu, x, batch = make_pair("zinb", "gene-batch", False, encode_covariates=True)
    assert compare(tools, edu, x, batch, "zinb", False) == []


def test_a_wrong_copy_is_detected():
    """The comparison can fail: swapping two BatchNorm parameters changes the outputs."""
    tools, edu, x, batch = make_pair("zinb", "gene", True)
    state = edu.state_dict()
    key = "z_encoder.encoder.fc_layers.0.1."
    state[key + "weight"], state[key + "bias"] = state[key + "bias"], state[key + "weight"]
    edu.load_state_dict(state)
    off = compare(tools, edu, x, batch, "zinb", True)
    assert any(line.startswith("qz_loc:") for line in off), off


def test_default_encoder_variance_is_softplus_not_scvi_tools_exp():
    """scvi_edu's default encoder differs from scvi-tools' exactly by the variance activation."""
    tools, _, x, batch = make_pair("zinb", "gene", True)
    edu = VAE(N_GENES, n_batch=N_BATCH, **ARCH).eval()
    edu.load_state_dict(from_scvi_tools_state_dict(tools.state_dict(), True))
    with torch.no_grad():
        t_inf, e_inf = tools.inference(x, batch), edu.inference(x, batch)
        pre = torch.log(t_inf["qz"].scale ** 2 - 1e-4)  # scvi-tools: scale^2 = exp(pre) + 1e-4
        softplus_scale = torch.sqrt(torch.nn.functional.softplus(pre) + 1e-4)
    assert mismatch(e_inf["qz_loc"], t_inf["qz"].loc, "qz_loc") == []
    assert mismatch(e_inf["qz_scale"], softplus_scale, "qz_scale") == []
    assert mismatch(e_inf["qz_scale"], t_inf["qz"].scale, "qz_scale") != []  # exp differs


@pytest.mark.parametrize("observed", [True, False])
def test_state_dict_round_trip(observed):
    tools, edu, _, _ = make_pair("nb", "gene-batch", observed)
    back = to_scvi_tools_state_dict(edu.state_dict())
    reference = tools.state_dict()
    unused = {k for k in reference if k.startswith("l_encoder.")} if observed else set()
    assert back.keys() == reference.keys() - unused
    for key, value in back.items():
        assert torch.equal(value, reference[key]), key
    fresh = ToolsVAE(
        N_GENES,
        n_batch=N_BATCH,
        **ARCH,
        dispersion="gene-batch",
        gene_likelihood="nb",
        use_observed_lib_size=observed,
        library_log_means=np.zeros((1, N_BATCH), dtype=np.float32),
        library_log_vars=np.ones((1, N_BATCH), dtype=np.float32),
    )
    result = fresh.load_state_dict(back, strict=not observed)  # every key and shape
    # (BatchNorm fills in a missing num_batches_tracked itself)
    assert set(result.missing_keys) <= unused and not result.unexpected_keys
    assert bool(result.missing_keys) == observed
