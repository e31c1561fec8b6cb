"""``VAE``: the scVI model as a pure Torch module (tutorial section 3, eqs. (55)-(70)).

Read it top to bottom: ``inference`` is the encoder q(z, l | x, s) of eq. (61),
``generative`` the decoder of eq. (55)-(56), ``loss`` the corrected ELBO of eq. (69).

The ELBO of cell n, eq. (60)/(69) corrected (ledger (67), (69)):

    elbo_n = E_q[log p(x_n | z_n, l_n, s_n)]
             - KL(q(z_n | x_n) || N(0, I)) - KL(q(l_n | x_n) || p(l_n | s_n))
           = -(reconstruction_loss + kl_z + kl_l)

The tutorial's (69) *adds* both KL terms; they must be subtracted. It also writes (67) as a
product of the two KLs; the KL of a product of independent distributions is the *sum*.

Deliberate differences from the tutorial (each with its reason):

* Zero-inflation logits ``px_dropout`` follow scvi-tools: ``sigmoid(px_dropout)`` is the
  probability of a technical zero, i.e. ``px_dropout = -f_h`` of eq. (55) (ledger (55), (58)).
* By default the library size is *observed*, ``l_n = sum_g x_ng`` (scvi-tools since 2020,
  ``use_observed_lib_size=True``); the tutorial's latent log-normal library of eq. (61)-(62)
  is ``use_observed_lib_size=False`` with the per-batch prior ``library_log_means``,
  ``library_log_vars`` (eq. (62) with the corrected variance: the mean of the *squared*
  deviations, ledger (62)).
* ``library`` is the *log* library size everywhere (``log l_n``), so q(l) is a Gaussian on it
  and its KL is that of eq. (63)/(65).
* The encoder's variance is ``softplus(.) + 1e-4`` instead of scvi-tools' ``exp(.) + 1e-4``
  (``scvi_edu.nn.Encoder``: no overflow, hence no NaN); ``var_activation="exp"`` gives
  scvi-tools' encoder.
* Numerical guards (not in the tutorial): ``theta = exp(px_r)`` with ``px_r`` clamped to
  ``[log 1e-6, log 1e8]`` (the range where ``scvi_edu.distributions`` is tested stable; beyond
  1e8 the NB is a Poisson to float32 precision) and the log library clamped at
  ``LOG_LIBRARY_MAX = 30`` (l <= 1.1e13, a million times any real cell) before ``exp``. An
  unbounded ``exp`` overflows float32 above 88.7 and gives ``inf * 0 = NaN`` in the likelihood;
  this happened with a high learning rate (gene-cell dispersion, latent library) and in eval
  mode, where BatchNorm's running statistics lag behind the training minibatches.
* The decoder's ``px_scale`` is a true softmax ``exp(o_g) / sum_j exp(o_j)``; Fig. 3 drops the
  ``exp`` of the numerator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scvi_edu import distributions
from scvi_edu.distributions import kl_normal
from scvi_edu.fast_likelihood import zinb_log_likelihood
from scvi_edu.nn import DecoderSCVI, Encoder, one_hot

__all__ = ["VAE", "LossOutput"]

LOG_THETA_MIN, LOG_THETA_MAX = math.log(1e-6), math.log(1e8)
LOG_LIBRARY_MAX = 30.0
DISPERSIONS = ("gene", "gene-batch", "gene-label", "gene-cell")
LIKELIHOODS = ("zinb", "nb", "poisson")
LIKELIHOOD_GRADIENTS = ("closed_form", "autograd")


@dataclass
class LossOutput:
    """Loss of a minibatch.

    ``loss`` (scalar) = mean over cells of ``reconstruction_loss + kl_weight * kl_z + kl_l``
    (the minimised objective, eq. (70) with a KL warm-up weight); ``reconstruction_loss``,
    ``kl_z``, ``kl_l`` and ``elbo`` have shape (n_cells,).
    """

    loss: torch.Tensor
    reconstruction_loss: torch.Tensor
    kl_z: torch.Tensor
    kl_l: torch.Tensor
    elbo: torch.Tensor


class VAE(nn.Module):
    """Single-cell variational inference (scVI), eqs. (55)-(70).

    Parameters
    ----------
    n_input
        Number of genes G.
    n_batch, n_labels
        Number of batches (0 or 1: no batch correction) and of labels (for
        ``dispersion="gene-label"``).
    n_hidden, n_latent, n_layers, dropout_rate
        Width, latent dimension d, depth of the networks; dropout of the encoders.
    dispersion
        theta per ``"gene"``, ``"gene-batch"``, ``"gene-label"`` or ``"gene-cell"`` (the
        variants listed after eq. (69)).
    gene_likelihood
        ``"zinb"`` (eq. (58)), ``"nb"`` (eq. (56)) or ``"poisson"``.
    use_observed_lib_size
        Use ``log sum_g x_ng`` as the log library; otherwise learn q(l | x) (eq. (61)).
    library_log_means, library_log_vars
        Per-batch mean and variance of the log library sizes (eq. (62), corrected), shape
        (max(1, n_batch),). Required when ``use_observed_lib_size=False``.
    log_variational
        Encode ``log1p(x)`` instead of ``x`` (numerical stability).
    encode_covariates
        Give the batch to the encoders too (the tutorial's q(z | x, s)); the decoder always
        gets it.
    likelihood_gradient
        How the reconstruction term is differentiated. ``"closed_form"`` (default):
        ``scvi_edu.fast_likelihood.zinb_log_likelihood``, the ZINB/NB summed over genes with its
        gradient derived by hand (fast). ``"autograd"``: ``log_zinb_positive``,
        ``log_nb_positive`` or ``log_poisson`` of ``scvi_edu.distributions``, looked up there
        at every call and differentiated by autograd, so an edited formula is the one that
        trains. Both give the same values and gradients (tests/test_likelihood_gradient.py).
    var_activation
        The encoders' variance activation: ``None``/``"softplus"`` (the default) or ``"exp"``
        (scvi-tools' default; ``scvi_edu.nn.Encoder`` explains the choice), or a function.
    """

    def __init__(
        self,
        n_input: int,
        n_batch: int = 0,
        n_labels: int = 0,
        n_hidden: int = 128,
        n_latent: int = 10,
        n_layers: int = 1,
        dropout_rate: float = 0.1,
        dispersion: str = "gene",
        gene_likelihood: str = "zinb",
        use_observed_lib_size: bool = True,
        library_log_means: np.ndarray | torch.Tensor | None = None,
        library_log_vars: np.ndarray | torch.Tensor | None = None,
        log_variational: bool = True,
        encode_covariates: bool = False,
        likelihood_gradient: str = "closed_form",
        var_activation: str | Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        super().__init__()
        if likelihood_gradient not in LIKELIHOOD_GRADIENTS:
            raise ValueError(
                f"likelihood_gradient must be one of {LIKELIHOOD_GRADIENTS}, "
                f"got {likelihood_gradient!r}"
            )
        if dispersion not in DISPERSIONS:
            raise ValueError(f"dispersion must be one of {DISPERSIONS}, got {dispersion!r}")
        if gene_likelihood not in LIKELIHOODS:
            raise ValueError(
                f"gene_likelihood must be one of {LIKELIHOODS}, got {gene_likelihood!r}"
            )
        if n_input < 1 or n_latent < 1 or n_hidden < 1:
            raise ValueError("n_input, n_latent and n_hidden must be positive")
        if dispersion == "gene-batch" and n_batch < 1:
            raise ValueError('dispersion="gene-batch" needs n_batch >= 1')
        if dispersion == "gene-label" and n_labels < 1:
            raise ValueError('dispersion="gene-label" needs n_labels >= 1')
        self.n_input = n_input
        self.n_batch = n_batch
        self.n_labels = n_labels
        self.n_latent = n_latent
        self.dispersion = dispersion
        self.gene_likelihood = gene_likelihood
        self.use_observed_lib_size = use_observed_lib_size
        self.log_variational = log_variational
        self.encode_covariates = encode_covariates
        self.likelihood_gradient = likelihood_gradient
        # Check counts (finite, non-negative) on every call; the training loop turns this off,
        # since scvi_edu.data.CountData validated all counts once before training.
        self.validate_input = True

        # Prior of the log library, eq. (62): one (mean, variance) per batch.
        if not use_observed_lib_size:
            if library_log_means is None or library_log_vars is None:
                raise ValueError(
                    "use_observed_lib_size=False needs library_log_means and library_log_vars "
                    "(the per-batch prior of eq. (62))"
                )
            means = torch.as_tensor(np.asarray(library_log_means, dtype=np.float32)).reshape(-1)
            log_vars = torch.as_tensor(np.asarray(library_log_vars, dtype=np.float32)).reshape(-1)
            n_prior = max(1, n_batch)
            if means.numel() != n_prior or log_vars.numel() != n_prior:
                raise ValueError(
                    f"library_log_means/vars must have shape ({n_prior},) for n_batch={n_batch}, "
                    f"got {tuple(means.shape)} and {tuple(log_vars.shape)}"
                )
            if not (torch.isfinite(means).all() and torch.isfinite(log_vars).all()):
                raise ValueError("library_log_means/vars contain NaN or infinite values")
            if (log_vars <= 0).any():
                bad = torch.nonzero(log_vars <= 0).reshape(-1).tolist()
                raise ValueError(
                    f"library_log_vars must be > 0 (batches {bad}); a batch with a single cell "
                    "or a constant library size has variance 0 and an infinite KL (eq. (66))"
                )
            self.register_buffer("library_log_means", means)
            self.register_buffer("library_log_vars", log_vars)
        else:
            self.library_log_means = None
            self.library_log_vars = None

        # Inverse dispersion theta = exp(px_r) (variants listed after eq. (69)).
        if dispersion == "gene":
            self.px_r = nn.Parameter(torch.randn(n_input))
        elif dispersion == "gene-batch":
            self.px_r = nn.Parameter(torch.randn(n_input, n_batch))
        elif dispersion == "gene-label":
            self.px_r = nn.Parameter(torch.randn(n_input, n_labels))
        else:  # gene-cell: from the decoder
            self.px_r = None

        n_cat_encoder = n_batch if encode_covariates else 0
        # NN1 / NN2: q(z | x, s) = N(qz_loc, diag(qz_scale**2)), eq. (61).
        self.z_encoder = Encoder(
            n_input,
            n_latent,
            n_cat_encoder,
            n_layers,
            n_hidden,
            dropout_rate,
            var_activation=var_activation,
        )
        # NN3 / NN4: q(log l | x, s) = N(ql_loc, ql_scale**2), eq. (61) (latent library only).
        self.l_encoder = (
            None
            if use_observed_lib_size
            else Encoder(
                n_input, 1, n_cat_encoder, 1, n_hidden, dropout_rate, var_activation=var_activation
            )
        )
        # NN5 / NN6 (and gene-cell theta): p(x | z, l, s), eq. (55)-(58).
        self.decoder = DecoderSCVI(n_latent, n_input, n_batch, n_layers, n_hidden)

    # ----------------------------------------------------------------------------- helpers
    def _index(self, index: torch.Tensor | None, n_cells: int, n_cat: int, name: str):
        """Check a category index of shape (n_cells,) or (n_cells, 1); return (n_cells,)."""
        if index is None:
            if n_cat > 1:
                raise ValueError(f"{name} is required when there are {n_cat} categories")
            return torch.zeros(n_cells, dtype=torch.long, device=self.decoder_device)
        index = torch.as_tensor(index, device=self.decoder_device)
        if index.dim() == 2 and index.shape[1] == 1:
            index = index[:, 0]
        if index.dim() != 1 or index.shape[0] != n_cells:
            raise ValueError(
                f"{name} must have shape ({n_cells},) or ({n_cells}, 1), got {tuple(index.shape)}"
            )
        index = index.long()
        if index.numel() and (index.min() < 0 or index.max() >= max(1, n_cat)):
            raise ValueError(
                f"{name} has values outside [0, {max(1, n_cat) - 1}]: "
                f"min {int(index.min())}, max {int(index.max())}"
            )
        return index

    @property
    def decoder_device(self) -> torch.device:
        return self.decoder.px_r_decoder.weight.device

    @staticmethod
    def _check_counts(x: torch.Tensor) -> None:
        if x.dim() != 2:
            raise ValueError(f"x must be (n_cells, n_genes), got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or infinite values")
        if (x < 0).any():
            raise ValueError("x contains negative values: scVI needs raw counts")

    # --------------------------------------------------------------------------- inference
    def inference(
        self, x: torch.Tensor, batch_index: torch.Tensor | None, n_samples: int = 1
    ) -> dict[str, torch.Tensor | None]:
        """Encode: q(z | x) and q(log l | x), and one reparameterised sample of each, eq. (61).

        Returns ``z``, ``qz_loc``, ``qz_scale``, ``library`` (log library size),
        ``ql_loc``, ``ql_scale`` (None for the observed library). With ``n_samples > 1``,
        ``z`` is (n_samples, n_cells, n_latent) and ``library`` (n_samples, n_cells, 1).
        """
        if self.validate_input:
            self._check_counts(x)
        if x.shape[1] != self.n_input:
            raise ValueError(f"x has {x.shape[1]} genes, the model {self.n_input}")
        batch_index = self._index(batch_index, x.shape[0], self.n_batch, "batch_index")
        x_ = torch.log1p(x) if self.log_variational else x
        cat = batch_index if self.encode_covariates else None

        qz_loc, qz_scale = self.z_encoder(x_, cat)
        ql_loc = ql_scale = None
        if self.use_observed_lib_size:
            lib_size = x.sum(dim=1, keepdim=True)
            if (lib_size <= 0).any():
                raise ValueError(
                    f"{int((lib_size <= 0).sum())} cell(s) have zero total counts: the observed "
                    "library size is 0 and log(0) = -inf; remove empty cells"
                )
            library = torch.log(lib_size)
        else:
            ql_loc, ql_scale = self.l_encoder(x_, cat)

        shape = (n_samples,) if n_samples > 1 else ()
        # Reparameterisation trick, eq. (61): z = loc + scale * eps, eps ~ N(0, I).
        # TASK 4.2 begin
        z = qz_loc + qz_scale * torch.randn(shape + qz_loc.shape, dtype=x.dtype, device=x.device)
        # TASK 4.2 end
        if self.use_observed_lib_size:
            library = library.expand(shape + library.shape)
        else:
            eps_l = torch.randn(shape + ql_loc.shape, dtype=x.dtype, device=x.device)
            library = ql_loc + ql_scale * eps_l  # log l_n (eq. (61) without the exp)
        return dict(
            z=z, qz_loc=qz_loc, qz_scale=qz_scale, library=library, ql_loc=ql_loc, ql_scale=ql_scale
        )

    # -------------------------------------------------------------------------- generative
    def generative(
        self,
        z: torch.Tensor,
        library: torch.Tensor,
        batch_index: torch.Tensor | None,
        y: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Decode: the parameters of p(x | z, l, s), eq. (55)-(58).

        ``px_scale`` = rho = f_w(z, s) (softmax over genes), ``px_rate`` = mu = l * rho,
        ``px_r`` = theta (inverse dispersion, broadcast to ``px_rate``'s shape),
        ``px_dropout`` = zero-inflation logits (sigmoid = P(technical zero)).
        """
        n_cells = z.shape[-2]
        batch_index = self._index(batch_index, n_cells, self.n_batch, "batch_index")
        library = library.clamp(max=LOG_LIBRARY_MAX)  # exp overflows float32 above 88.7
        px_scale, px_r, px_rate, px_dropout = self.decoder(self.dispersion, z, library, batch_index)
        if self.dispersion == "gene":
            px_r = self.px_r
        elif self.dispersion == "gene-batch":
            px_r = F.linear(one_hot(batch_index, self.n_batch, z.dtype), self.px_r)
        elif self.dispersion == "gene-label":
            y = self._index(y, n_cells, self.n_labels, "y")
            px_r = F.linear(one_hot(y, self.n_labels, z.dtype), self.px_r)
        theta = torch.exp(px_r.clamp(LOG_THETA_MIN, LOG_THETA_MAX)).expand_as(px_rate)
        return dict(px_scale=px_scale, px_rate=px_rate, px_r=theta, px_dropout=px_dropout)

    # -------------------------------------------------------------------------------- loss
    def get_reconstruction_log_prob(
        self, x: torch.Tensor, generative_outputs: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """log p(x_n | z_n, l_n, s_n) summed over genes, shape (..., n_cells); eq. (58)/(59).

        With ``likelihood_gradient="autograd"``: ``distributions.log_zinb_positive`` (or
        ``log_nb_positive``, ``log_poisson``) looked up in the module at this call, summed over
        genes, differentiated by autograd. With ``"closed_form"`` (default): the ZINB or NB
        through ``zinb_log_likelihood`` (the same number, gradient in closed form; see
        scvi_edu/fast_likelihood.py); the Poisson has no separate kernel.
        """
        mu, theta = generative_outputs["px_rate"], generative_outputs["px_r"]
        zi_logits = generative_outputs["px_dropout"]
        if self.likelihood_gradient == "closed_form" and self.gene_likelihood != "poisson":
            return zinb_log_likelihood(
                x, mu, theta, zi_logits if self.gene_likelihood == "zinb" else None
            )
        if self.gene_likelihood == "zinb":
            log_px = distributions.log_zinb_positive(x, mu, theta, zi_logits)
        elif self.gene_likelihood == "nb":
            log_px = distributions.log_nb_positive(x, mu, theta)
        else:
            log_px = distributions.log_poisson(x, mu)
        return log_px.sum(dim=-1)

    def library_prior(
        self, batch_index: torch.Tensor | None, n_cells: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The prior p(log l_n | s_n) = N(loc, scale^2) of eq. (62), corrected, per cell.

        loc = library_log_means[s_n] and scale = sqrt(library_log_vars[s_n]): the per-batch mean
        and variance (the mean of the *squared* deviations) of the log library sizes. Returns two
        tensors of shape (n_cells, 1), in the dtype of the module's parameters. ``n_cells`` is
        needed only when ``batch_index`` is None (a single batch).
        """
        if self.use_observed_lib_size:
            raise ValueError("the observed library size (use_observed_lib_size=True) has no prior")
        if batch_index is None and n_cells is None:
            raise ValueError("library_prior needs batch_index or n_cells")
        n_cells = len(batch_index) if n_cells is None else n_cells
        b = self._index(batch_index, n_cells, self.n_batch, "batch_index")
        dtype = self.decoder.px_r_decoder.weight.dtype
        loc = self.library_log_means[b].unsqueeze(-1).to(dtype)
        scale = torch.sqrt(self.library_log_vars[b]).unsqueeze(-1).to(dtype)
        return loc, scale

    def loss(
        self,
        x: torch.Tensor,
        inference_outputs: dict[str, torch.Tensor | None],
        generative_outputs: dict[str, torch.Tensor],
        batch_index: torch.Tensor | None,
        kl_weight: float = 1.0,
    ) -> LossOutput:
        """The negative ELBO of eq. (60)/(69), corrected: the KL terms are *subtracted*.

        reconstruction_loss = -(1/K) sum_k log p(x | z^(k), l^(k))   (eq. (68), K = n_samples)
        kl_z = KL(N(qz_loc, qz_scale^2) || N(0, I))                  (eq. (64), closed form)
        kl_l = KL(N(ql_loc, ql_scale^2) || N(mu_b, sigma_b^2))       (eq. (65)-(66); 0 if observed)
        elbo = -(reconstruction_loss + kl_z + kl_l)
        loss = mean_n(reconstruction_loss + kl_weight * kl_z + kl_l)  (eq. (70), minimised)
        """
        n_cells = x.shape[0]
        log_px = self.get_reconstruction_log_prob(x, generative_outputs)
        reconstruction_loss = -log_px.reshape(-1, n_cells).mean(dim=0)

        qz_loc, qz_scale = inference_outputs["qz_loc"], inference_outputs["qz_scale"]
        zeros, ones = torch.zeros_like(qz_loc), torch.ones_like(qz_scale)
        kl_z = kl_normal(qz_loc, qz_scale, zeros, ones).sum(dim=-1)

        if self.use_observed_lib_size:
            kl_l = torch.zeros_like(kl_z)
        else:
            prior_loc, prior_scale = self.library_prior(batch_index, n_cells)
            ql_loc, ql_scale = inference_outputs["ql_loc"], inference_outputs["ql_scale"]
            kl_l = kl_normal(ql_loc, ql_scale, prior_loc, prior_scale).sum(dim=-1)

        # TASK 4.5 begin
        loss = torch.mean(reconstruction_loss + kl_weight * kl_z + kl_l)
        elbo = -(reconstruction_loss + kl_z + kl_l)
        return LossOutput(loss, reconstruction_loss, kl_z, kl_l, elbo)
        # TASK 4.5 end

    def forward(
        self,
        x: torch.Tensor,
        batch_index: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        kl_weight: float = 1.0,
    ) -> LossOutput:
        """inference -> generative -> loss, with one sample of (z, l)."""
        inference_outputs = self.inference(x, batch_index)
        generative_outputs = self.generative(
            inference_outputs["z"], inference_outputs["library"], batch_index, y
        )
        return self.loss(x, inference_outputs, generative_outputs, batch_index, kl_weight)
