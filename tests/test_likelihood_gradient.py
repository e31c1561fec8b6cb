"""``likelihood_gradient``: the closed-form kernel and autograd through the readable formulas
train the same model, and the autograd path follows an edit of ``scvi_edu.distributions``.

Reference: the same ``SCVI`` trained from the same seed with ``likelihood_gradient="autograd"``
(``log_zinb_positive`` / ``log_nb_positive`` of eq. (56)/(58) differentiated by autograd).
The two gradients agree to float32 rounding (tests/test_likelihood.py checks them to 1e-9 in
float64), so after a few Adam steps every parameter must agree to ``ATOL``, while the steps
themselves move the parameters by more than 100 times ``ATOL``.
"""

from __future__ import annotations

import pytest
import torch

import scvi_edu.distributions
from scvi_edu.model import SCVI
from scvi_edu.module import VAE
from scvi_edu.simulate import simulate

ATOL = 1e-5  # float32 training, 6 Adam steps of lr 1e-3 (eps 0.01); measured <= 5e-7
TRAIN = dict(max_epochs=2, batch_size=64, seed=3, progress_bar=False)


@pytest.fixture(scope="module")
def adata():
    return simulate(n_cells=200, n_genes=60, n_batches=2, n_types=3, de_genes_per_type=10, seed=1)


def _trained(adata, gradient, **options):
    model = SCVI(adata, batch_key="batch", seed=0, likelihood_gradient=gradient, **options)
    model.train(**TRAIN)
    return model


def _max_difference(a: SCVI, b: SCVI) -> tuple[str, float]:
    """The largest difference between two models' parameters, and where."""
    sa, sb = dict(a.module.named_parameters()), dict(b.module.named_parameters())
    diffs = {k: (sa[k] - sb[k]).abs().max().item() for k in sa}
    key = max(diffs, key=diffs.get)
    return key, diffs[key]


@pytest.mark.parametrize(
    "options",
    [
        dict(gene_likelihood="zinb", dispersion="gene"),
        dict(gene_likelihood="nb", dispersion="gene-batch"),
        dict(gene_likelihood="zinb", dispersion="gene-cell"),
        dict(gene_likelihood="poisson"),
    ],
    ids=["zinb-gene", "nb-gene-batch", "zinb-gene-cell", "poisson"],
)
def test_closed_form_and_autograd_train_the_same_parameters(adata, options):
    untrained = SCVI(adata, batch_key="batch", seed=0, **options)
    fast = _trained(adata, "closed_form", **options)
    readable = _trained(adata, "autograd", **options)
    key, diff = _max_difference(fast, readable)
    assert diff <= ATOL, (
        f"after {TRAIN['max_epochs']} epochs, {key} differs by {diff:.3g} between the "
        f"closed-form gradient and autograd of the readable eq. (56)/(58) (tolerance {ATOL})"
    )
    _, moved = _max_difference(fast, untrained)
    assert moved > 100 * ATOL, "training did not move the parameters: the test is vacuous"
    h_fast, h_readable = fast.history, readable.history
    torch.testing.assert_close(
        torch.tensor(h_fast["train_elbo"].to_numpy()),
        torch.tensor(h_readable["train_elbo"].to_numpy()),
        rtol=1e-5,
        atol=0,
    )


def _swapped_zinb(x, mu, theta, zi_logits):
    """A student's mistake: the zero-case mixture weights of eq. (58) swapped."""
    return scvi_edu.distributions.log_zinb_positive(x, mu, theta, -zi_logits)


def test_autograd_follows_an_edit_of_the_distributions_module(adata, monkeypatch):
    """Assigning a new ``scvi_edu.distributions.log_zinb_positive`` (as a notebook would)
    changes what the autograd path trains, and leaves the closed-form path alone."""
    before = {g: _trained(adata, g) for g in ("closed_form", "autograd")}
    original = scvi_edu.distributions.log_zinb_positive
    calls = []

    def edited(x, mu, theta, zi_logits):
        calls.append(x.shape)
        return original(x, mu, theta, -zi_logits)

    monkeypatch.setattr(scvi_edu.distributions, "log_zinb_positive", edited)
    after = {g: _trained(adata, g) for g in ("closed_form", "autograd")}
    assert calls, "the autograd path did not call distributions.log_zinb_positive"
    _, same = _max_difference(before["closed_form"], after["closed_form"])
    assert same == 0.0, "the closed-form path must not depend on distributions.log_zinb_positive"
    key, changed = _max_difference(before["autograd"], after["autograd"])
    assert changed > 100 * ATOL, (
        f"an edited log_zinb_positive did not change autograd training ({key}: {changed:.3g})"
    )


def test_likelihood_gradient_is_saved_and_loaded(adata, tmp_path):
    model = SCVI(adata, batch_key="batch", seed=0, likelihood_gradient="autograd")
    assert model.module.likelihood_gradient == "autograd"
    model.save(tmp_path / "m")
    loaded = SCVI.load(tmp_path / "m", adata)
    assert loaded.module.likelihood_gradient == "autograd"
    default = SCVI(adata, batch_key="batch", seed=0)
    assert default.module.likelihood_gradient == "closed_form"


def test_unknown_likelihood_gradient_is_refused():
    with pytest.raises(ValueError, match="likelihood_gradient must be one of"):
        VAE(10, likelihood_gradient="finite_differences")
