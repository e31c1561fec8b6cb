"""The neural networks of scVI: NN1-NN6 of the tutorial's Fig. 2, as in scvi-tools.

* ``FCLayers``: the building block of Fig. 3, ``Linear -> BatchNorm -> ReLU -> Dropout`` per
  layer, with the one-hot batch ``s_n`` concatenated to the input of *every* layer (scvi-tools'
  ``inject_covariates=True``; Fig. 3 shows it for its single hidden layer).
* ``Encoder``: NN1/NN2 (mean and standard deviation of q(z|x, s), eq. (61)) or, with
  ``n_output=1``, NN3/NN4 (those of the log-library q(l|x, s)).
* ``DecoderSCVI``: NN5 (``px_scale`` = rho = f_w(z, s), a softmax), the gene-cell dispersion
  and NN6 (``px_dropout`` = the zero-inflation logits).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .context import seeded

__all__ = ["FCLayers", "Encoder", "DecoderSCVI", "one_hot"]


def one_hot(index: torch.Tensor, n_cat: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-hot encoding ``s_n`` of a category index of shape (n_cells,) or (n_cells, 1)."""
    index = index.reshape(-1).long()
    return F.one_hot(index, n_cat).to(dtype)


class FCLayers(nn.Module):
    """Fully connected layers with a categorical covariate injected into each of them.

    Layer i computes ``Dropout(ReLU(BatchNorm(W_i [h_{i-1}, s] + b_i)))`` where ``s`` is the
    one-hot batch (Fig. 3 and the text after it: batch normalization after the linear map,
    before the non-linearity, then dropout). BatchNorm uses scvi-tools' ``momentum=0.01,
    eps=1e-3``. A covariate with ``n_cat <= 1`` carries no information and is not injected.

    Parameters
    ----------
    n_in, n_out
        Input and output widths.
    n_cat
        Number of categories of the injected covariate (0 or 1: none).
    n_layers, n_hidden
        Depth and width of the hidden layers.
    dropout_rate
        Dropout probability after every ReLU.
    inject_covariates
        Concatenate the covariate to every layer (True) or only to the first one.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        n_cat: int = 0,
        n_layers: int = 1,
        n_hidden: int = 128,
        dropout_rate: float = 0.1,
        inject_covariates: bool = True,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.n_cat = n_cat if n_cat > 1 else 0
        self.inject_covariates = inject_covariates
        widths = [n_in] + [n_hidden] * (n_layers - 1) + [n_out]
        self.fc_layers = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            d_cat = self.n_cat if (i == 0 or inject_covariates) else 0
            self.fc_layers.append(
                nn.Sequential(
                    nn.Linear(d_in + d_cat, d_out),
                    nn.BatchNorm1d(d_out, momentum=0.01, eps=1e-3),
                    nn.ReLU(),
                    nn.Dropout(p=dropout_rate),
                )
            )

    def forward(self, x: torch.Tensor, cat: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the layers to ``x`` of shape (..., n_in); ``cat`` holds category indices.

        Leading dimensions (e.g. Monte Carlo samples of z) are flattened for BatchNorm, which
        normalises each feature over all rows.
        """
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        s = None
        if self.n_cat > 0:
            if cat is None:
                raise ValueError(f"FCLayers expects a category index (n_cat={self.n_cat})")
            s = one_hot(cat, self.n_cat, x.dtype)
            if s.shape[0] != x.shape[0]:  # broadcast cells over leading sample dimensions
                s = s.repeat(x.shape[0] // s.shape[0], 1)
        if self.training and x.shape[0] < 2:
            raise ValueError(
                "BatchNorm needs at least 2 cells per minibatch in training mode; got 1 "
                "(drop a minibatch of one cell, or call .eval())"
            )
        for i, layer in enumerate(self.fc_layers):
            if s is not None and (i == 0 or self.inject_covariates):
                x = torch.cat([x, s], dim=-1)
            x = layer(x)
        return x.reshape(*lead, x.shape[-1])


VAR_ACTIVATIONS = {"softplus": F.softplus, "exp": torch.exp}  # the encoders' variance, by name


class Encoder(nn.Module):
    """Gaussian encoder: ``(loc, scale)`` of q(. | x, s) (NN1/NN2, or NN3/NN4; eq. (61)).

    ``loc = W_m h + b_m`` and ``scale = sqrt(var_activation(W_v h + b_v) + var_eps)`` with
    ``h`` the output of ``FCLayers``.

    Variance parameterisation: ``var_activation=None`` (the default) is softplus, a deliberate
    difference from scvi-tools, whose default is ``exp``. Softplus grows linearly, so a large
    pre-activation gives a large but finite variance with a gradient bounded by 1, while
    ``exp`` overflows float32 at 88.7 and turns the loss into inf/NaN (the most reported scVI
    failure). Pass ``var_activation="exp"`` (or ``torch.exp``; scvi-tools' name and default) for
    scvi-tools' encoder exactly; ``tests/test_scvi_tools_equivalence.py`` uses it. A name
    (``"softplus"``, ``"exp"``) is saved with a model; a function is not. ``var_eps = 1e-4`` bounds
    the standard deviation below by 0.01, so ``log(scale)`` in the KL (eq. (63)) and
    ``1/scale`` stay finite.
    """

    def __init__(
        self,
        n_input: int,
        n_output: int,
        n_cat: int = 0,
        n_layers: int = 1,
        n_hidden: int = 128,
        dropout_rate: float = 0.1,
        inject_covariates: bool = True,
        var_eps: float = 1e-4,
        var_activation: str | Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        super().__init__()
        self.var_eps = var_eps
        if var_activation is None or isinstance(var_activation, str):
            name = var_activation or "softplus"
            if name not in VAR_ACTIVATIONS:
                raise ValueError(
                    f"var_activation must be one of {sorted(VAR_ACTIVATIONS)} or a function, "
                    f"got {var_activation!r}"
                )
            var_activation = VAR_ACTIVATIONS[name]
        self.var_activation = var_activation
        self.encoder = FCLayers(
            n_input, n_hidden, n_cat, n_layers, n_hidden, dropout_rate, inject_covariates
        )
        self.mean_encoder = nn.Linear(n_hidden, n_output)
        self.var_encoder = nn.Linear(n_hidden, n_output)

    def forward(
        self, x: torch.Tensor, cat: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x, cat)
        loc = self.mean_encoder(h)
        scale = torch.sqrt(self.var_activation(self.var_encoder(h)) + self.var_eps)
        return loc, scale


class DecoderSCVI(nn.Module):
    """Decoder of scVI: NN5 (``px_scale``), the gene-cell dispersion and NN6 (``px_dropout``).

    ``px_scale = softmax(o) = exp(o_g) / sum_j exp(o_j)``: the expected frequencies rho_n,
    which are positive and sum to one over genes. (Fig. 3 prints ``o_g / sum_j exp(o_j)``,
    which is neither; ledger "Fig. 3".) ``px_rate = exp(library) * px_scale`` is the NB mean
    mu = l rho (eq. (56)); ``library`` is the *log* library size. ``px_r`` is the log of the
    inverse dispersion theta, used when ``dispersion="gene-cell"``. ``px_dropout`` are the
    zero-inflation logits, ``sigmoid(px_dropout) = P(technical zero)`` (= ``-f_h`` of (55)).
    """

    def __init__(
        self,
        n_input: int,
        n_output: int,
        n_cat: int = 0,
        n_layers: int = 1,
        n_hidden: int = 128,
        inject_covariates: bool = True,
    ):
        super().__init__()
        self.px_decoder = FCLayers(
            n_input, n_hidden, n_cat, n_layers, n_hidden, 0.0, inject_covariates
        )
        # o = W h + b; the softmax is in forward. (A Sequential: saved weights keep their key
        # px_scale_decoder.0.)
        self.px_scale_decoder = nn.Sequential(nn.Linear(n_hidden, n_output))
        self.px_r_decoder = nn.Linear(n_hidden, n_output)
        self.px_dropout_decoder = nn.Linear(n_hidden, n_output)

    def forward(
        self,
        dispersion: str,
        z: torch.Tensor,
        library: torch.Tensor,
        cat: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Return ``px_scale, px_r, px_rate, px_dropout`` (``px_r`` None unless gene-cell)."""
        h = self.px_decoder(z, cat)
        o = self.px_scale_decoder(h)
        # TASK 4.3 begin
        px_scale = torch.softmax(o, dim=-1)  # rho_g = exp(o_g) / sum_j exp(o_j)
        px_rate = torch.exp(library) * px_scale  # mu = l rho, eq. (56)
        # TASK 4.3 end
        px_dropout = self.px_dropout_decoder(h)
        px_r = self.px_r_decoder(h) if dispersion == "gene-cell" else None
        return px_scale, px_r, px_rate, px_dropout


def recompute_batchnorm_statistics(module: nn.Module, minibatches) -> int:
    """Replace the running statistics of every BatchNorm in ``module`` by those of the data.

    In eval mode BatchNorm normalises with running averages updated during training as
    ``r <- (1 - momentum) r + momentum * batch_stat``. With scvi-tools' ``momentum=0.01`` a
    short run of T steps keeps a weight ``0.99**T`` on the initial values (mean 0, variance 1):
    still 20 % after 160 steps. Every eval-mode query (latent, library, ELBO) then sees
    activations normalised with the wrong statistics. This resets the statistics and recomputes
    them as the plain average over ``minibatches`` (``momentum=None``: a cumulative average)
    with the weights fixed: only BatchNorm layers run in training mode, dropout stays off.

    ``minibatches`` yields the positional arguments of ``module(...)`` as a tuple (or a single
    tensor). Gradients are off, the forward passes' draws are fixed (``seeded(0)``: the same
    statistics every time, the caller's RNG untouched), and the module's training flags and
    momenta are restored. Returns the number of
    minibatches used.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    flags = {m: m.training for m in module.modules()}
    momenta = [m.momentum for m in norms]
    n_used = 0
    try:
        module.eval()
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: the plain mean over minibatches
            m.train()
        with torch.no_grad(), seeded(0):  # the decoder's BatchNorm sees a sampled z
            for args in minibatches:
                args = args if isinstance(args, tuple) else (args,)
                if args[0].shape[0] < 2:
                    continue  # training-mode BatchNorm cannot normalise a single cell
                module(*args)
                n_used += 1
        if n_used == 0:
            raise ValueError("recompute_batchnorm_statistics: no minibatch of at least 2 cells")
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        for m, flag in flags.items():
            m.training = flag
    return n_used
