"""Posterior queries of a trained scVI ``VAE``: normalized expression, imputation, posterior
predictive counts and the importance-sampled marginal likelihood.

Everything here works on a ``scvi_edu.module.VAE`` and arrays (``x``: cells x genes raw counts,
numpy, scipy.sparse or torch; ``batch_index``: one integer code per cell); ``scvi_edu.model.SCVI``
calls these functions with the arrays of its AnnData.

Memory. A query never holds more than one minibatch x genes x samples floats of decoder output
at a time (``batch_size`` cells, all genes, the requested posterior samples); the result is the
per-cell mean (cells x selected genes) unless samples are asked for. Restrict the genes with
``gene_indices`` (``gene_list`` in ``SCVI``) to shrink what is returned.

Randomness. ``seed`` fully determines a query's result, whatever the state of Torch's global
generator, which the query leaves untouched (it runs in ``scvi_edu.context.seeded(seed)``;
default: a seed drawn from Torch's global generator, so ``torch.manual_seed`` makes every query
reproducible). Posterior samples eps ~ N(0, I) are drawn cell by cell from one numpy generator
seeded by ``seed``, so they do not depend on ``batch_size``; counts are drawn with a
``torch.Generator`` seeded by it.

The three readings of ``library_size`` (a common point of confusion):

* ``1`` (default): rho_n = f_w(z_n, s_n), the expected *frequencies* (rows sum to 1), eq. (55);
* a float c (e.g. 1e4): c * rho_n, counts per c (CP10k-like), comparable across cells;
* ``"latent"``: mu_n = l_n rho_n, the expected count at the cell's own depth (eq. (56)), the
  *denoised* counts used for imputation. With the observed library (default) l_n is
  sum_g x_ng; with the learnt library it is sampled from q(l_n | x_n) (eq. (61)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from scvi_edu.context import evaluating, seeded
from scvi_edu.data import minibatch_indices
from scvi_edu.distributions import log_normal, sample_nb, sample_zinb

__all__ = [
    "normalized_expression",
    "expression_samples",
    "posterior_predictive_sample",
    "marginal_ll",
    "check_n_samples",
]

# Rows (samples x cells) decoded at once by ``marginal_ll``; bounds its memory to
# about _MAX_ROWS x n_genes floats.
_MAX_ROWS = 8192


# ------------------------------------------------------------------------------ helpers
def check_n_samples(n_samples, name: str = "n_samples") -> int:
    """Return ``n_samples`` as an int >= 1, or raise ``ValueError`` naming the problem."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= 1, got {n_samples!r}")
    if n_samples < 1:
        raise ValueError(f"{name} must be >= 1, got {n_samples}")
    return int(n_samples)


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return int(batch_size)


def _n_cells(x) -> int:
    return int(x.shape[0])


def _rows(x, idx: np.ndarray, dtype: torch.dtype, device) -> torch.Tensor:
    """Dense float tensor of the rows ``idx`` of x (numpy, scipy.sparse or torch)."""
    if isinstance(x, torch.Tensor):
        return x[torch.as_tensor(idx, device=x.device)].to(dtype=dtype, device=device)
    rows = x[idx]
    if hasattr(rows, "toarray"):
        rows = rows.toarray()
    return torch.as_tensor(np.asarray(rows), dtype=dtype, device=device)


def _query_batches(x, b_all, y_all, rows, batch_size, dtype, device):
    """Minibatches of the queried ``rows``: (positions in rows, counts, batch codes, labels).

    Only one minibatch of counts is densified at a time; codes are None where absent.
    """
    for mb in minibatch_indices(len(rows), batch_size):
        idx = rows[mb]
        bb = None if b_all is None else torch.as_tensor(b_all[idx], device=device)
        yb = None if y_all is None else torch.as_tensor(y_all[idx], device=device)
        yield mb, _rows(x, idx, dtype, device), bb, yb


def _codes(index, n: int, name: str) -> np.ndarray | None:
    if index is None:
        return None
    if isinstance(index, torch.Tensor):
        index = index.detach().cpu().numpy()
    index = np.asarray(index).reshape(-1)
    if index.shape[0] != n:
        raise ValueError(f"{name} must have one entry per cell ({n}), got {index.shape[0]}")
    return index.astype(np.int64)


def _module_dtype_device(module) -> tuple[torch.dtype, torch.device]:
    p = next(module.parameters())
    return p.dtype, p.device


def _check_library_size(library_size) -> float | str:
    if isinstance(library_size, str):
        if library_size != "latent":
            raise ValueError(
                f'library_size must be a positive number or "latent", got {library_size!r}'
            )
        return library_size
    if isinstance(library_size, bool) or not isinstance(library_size, (int, float, np.number)):
        raise ValueError(
            f'library_size must be a positive number or "latent", got {library_size!r}'
        )
    if not (np.isfinite(library_size) and library_size > 0):
        raise ValueError(f"library_size must be positive and finite, got {library_size}")
    return float(library_size)


def _transform_batches(module, transform_batch) -> list[int] | None:
    """None, or the list of batch codes to decode every cell in (checked against the model)."""
    if transform_batch is None:
        return None
    items = (
        list(transform_batch)
        if isinstance(transform_batch, (list, tuple, np.ndarray))
        else [transform_batch]
    )
    if not items:
        raise ValueError("transform_batch is an empty list")
    n_cat = max(1, module.n_batch)
    out = []
    for t in items:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < n_cat:
            raise ValueError(
                f"transform_batch {t!r} is not a known batch code (the model has {n_cat} "
                f"batch(es), codes 0..{n_cat - 1})"
            )
        out.append(int(t))
    return out


def _gene_indices(module, gene_indices) -> np.ndarray | slice:
    if gene_indices is None:
        return slice(None)
    gi = np.asarray(gene_indices, dtype=np.int64).reshape(-1)
    if gi.size == 0:
        raise ValueError("gene_list selects no genes")
    if gi.min() < 0 or gi.max() >= module.n_input:
        raise ValueError(f"gene indices must be in [0, {module.n_input - 1}]")
    return gi


def _generators(seed: int, device) -> tuple[np.random.Generator, torch.Generator]:
    """A numpy generator for eps (its stream does not depend on how draws are chunked, unlike
    Torch's vectorised ``randn``) and a Torch generator for the count samplers."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return np.random.default_rng(seed), g


def _normal(rng: np.random.Generator, shape: tuple, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(rng.standard_normal(shape), dtype=like.dtype, device=like.device)


def _posterior_draws(module, x, b, n_samples: int, rng: np.random.Generator) -> dict:
    """Encode a minibatch and draw ``n_samples`` (z, log l) from q(z, l | x), eq. (61).

    eps is drawn with shape (cells, samples, .) so that the stream of random numbers does not
    depend on how the cells are split into minibatches; returned as (samples, cells, .).
    """
    inf = module.inference(x, b)
    loc, scale = inf["qz_loc"], inf["qz_scale"]
    n = loc.shape[0]
    d = loc.shape[-1]
    # One draw per cell of (eps_z, eps_l), so that the stream is cell by cell for both.
    eps = _normal(rng, (n, n_samples, d + 1), loc).transpose(0, 1)
    z = loc + scale * eps[..., :d]
    if module.use_observed_lib_size:
        library = inf["library"].expand(n_samples, n, 1)
    else:
        library = inf["ql_loc"] + inf["ql_scale"] * eps[..., d:]
    return dict(inf, z=z, library=library)


# ------------------------------------------------------------------ normalized expression
def normalized_expression(
    module,
    x,
    batch_index=None,
    *,
    library_size: float | str = 1.0,
    n_samples: int = 1,
    transform_batch: int | Sequence[int] | None = None,
    gene_indices: Sequence[int] | None = None,
    labels=None,
    batch_size: int = 128,
    return_mean: bool = True,
    seed: int | None = None,
) -> np.ndarray:
    """Posterior mean of the decoded expression, E_q(z,l|x)[c * rho] or E_q[l * rho].

    For each cell n, draw ``n_samples`` z ~ q(z | x_n, s_n) (and log l ~ q(log l | x_n) for the
    learnt library), decode rho = f_w(z, s) (eq. (55)) and average. ``transform_batch``
    (a batch code or a list of them) decodes every cell *as if* it had been measured in that
    batch (s replaced by t in the decoder; the encoder still sees the true batch), averaging
    over the listed batches: the counterfactual, batch-corrected expression.

    Returns a numpy array (cells, genes), or (n_samples, cells, genes) with
    ``return_mean=False`` and ``n_samples > 1`` (as scvi-tools).
    """
    n_samples = check_n_samples(n_samples)
    targets = _transform_batches(module, transform_batch)
    n = _n_cells(x)
    decode_as = None if targets is None else [np.full(n, t) for t in targets]
    out = expression_samples(
        module,
        x,
        batch_index,
        rows=None,
        decode_as=decode_as,
        library_size=library_size,
        n_samples=n_samples,
        gene_indices=gene_indices,
        labels=labels,
        batch_size=batch_size,
        return_mean=return_mean,
        seed=seed,
    )
    return out[0] if out.ndim == 3 and n_samples == 1 else out


def expression_samples(
    module,
    x,
    batch_index=None,
    *,
    rows: np.ndarray | None = None,
    decode_as: list[np.ndarray] | None = None,
    library_size: float | str = 1.0,
    n_samples: int = 1,
    gene_indices: Sequence[int] | None = None,
    labels=None,
    batch_size: int = 128,
    return_mean: bool = True,
    seed: int | None = None,
) -> np.ndarray:
    """The engine of :func:`normalized_expression` (and of differential expression).

    ``rows``: the cells to query, in order, repeats allowed (default: all cells). ``decode_as``:
    a list of arrays of batch codes, one code per queried row; the decoded values are averaged
    over the list (default: each cell's own batch). Differential expression passes one code per
    row to decode paired draws of two groups in the same batch.
    """
    n_samples = check_n_samples(n_samples)
    batch_size = _check_batch_size(batch_size)
    library_size = _check_library_size(library_size)
    genes = _gene_indices(module, gene_indices)
    n = _n_cells(x)
    b_all = _codes(batch_index, n, "batch_index")
    y_all = _codes(labels, n, "labels")
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    if decode_as is not None:
        decode_as = [_codes(d, len(rows), "decode batch codes") for d in decode_as]
    dtype, device = _module_dtype_device(module)
    out = []
    with seeded(seed, device) as seed, evaluating(module):
        rng, _ = _generators(seed, device)
        for mb, xb, bb, yb in _query_batches(x, b_all, y_all, rows, batch_size, dtype, device):
            draws = _posterior_draws(module, xb, bb, n_samples, rng)
            decoders = (
                [bb]
                if decode_as is None
                else [torch.as_tensor(d[mb], device=device) for d in decode_as]
            )
            acc = None
            for bt in decoders:
                g = module.generative(draws["z"], draws["library"], bt, yb)
                value = g["px_rate"] if library_size == "latent" else g["px_scale"] * library_size
                value = value[..., genes]  # (samples, cells, genes)
                acc = value if acc is None else acc + value
            acc = acc / len(decoders)
            out.append((acc.mean(dim=0) if return_mean else acc).cpu().numpy())
    return np.concatenate(out, axis=-2)


# ------------------------------------------------------------ posterior predictive counts
def posterior_predictive_sample(
    module,
    x,
    batch_index=None,
    *,
    n_samples: int = 1,
    gene_indices: Sequence[int] | None = None,
    labels=None,
    batch_size: int = 128,
    seed: int | None = None,
) -> np.ndarray:
    """Draw counts x~ ~ p(x~ | x) = int p(x~ | z, l, s) q(z, l | x) dz dl.

    For each of ``n_samples`` draws of (z, l) from q, sample counts from the fitted likelihood
    (eq. (55)-(58)): Poisson(mu), NB(mu, theta) as the Gamma-Poisson mixture, or ZINB (an NB
    draw replaced by 0 with probability sigmoid(px_dropout)). Returns (cells, genes) for
    ``n_samples=1``, else (cells, genes, n_samples) as scvi-tools. ``seed`` fixes every draw.
    """
    n_samples = check_n_samples(n_samples)
    batch_size = _check_batch_size(batch_size)
    genes = _gene_indices(module, gene_indices)
    n = _n_cells(x)
    b_all = _codes(batch_index, n, "batch_index")
    y_all = _codes(labels, n, "labels")
    dtype, device = _module_dtype_device(module)
    out = []
    with seeded(seed, device) as seed, evaluating(module):
        rng, gen = _generators(seed, device)
        for _, xb, bb, yb in _query_batches(
            x, b_all, y_all, np.arange(n), batch_size, dtype, device
        ):
            draws = _posterior_draws(module, xb, bb, n_samples, rng)
            g = module.generative(draws["z"], draws["library"], bb, yb)
            mu = g["px_rate"][..., genes]
            if module.gene_likelihood == "poisson":
                counts = torch.poisson(mu, generator=gen)
            elif module.gene_likelihood == "nb":
                counts = sample_nb(mu, g["px_r"][..., genes], generator=gen)
            else:
                counts = sample_zinb(
                    mu, g["px_r"][..., genes], g["px_dropout"][..., genes], generator=gen
                )
            out.append(counts.permute(1, 2, 0).cpu().numpy())  # (cells, genes, samples)
    res = np.concatenate(out, axis=0)
    return res[..., 0] if n_samples == 1 else res


# ------------------------------------------------------------------- marginal likelihood
def marginal_ll(
    module,
    x,
    batch_index=None,
    *,
    n_mc_samples: int = 1000,
    labels=None,
    batch_size: int = 128,
    return_mean: bool = True,
    seed: int | None = None,
) -> np.ndarray | float:
    """Importance-sampled log p(x_n | s_n) per cell, with q(z, l | x) as the proposal.

        log p(x) ~ logsumexp_k [ log p(x | z_k, l_k) + log p(z_k) + log p(l_k)
                                 - log q(z_k | x) - log q(l_k | x) ] - log K,

    (z_k, l_k) ~ q, K = ``n_mc_samples``. By Jensen this is a lower bound in expectation that
    increases with K (the IWAE bound; K = 1 is the ELBO of eq. (60) estimated with one
    sample) and converges to log p(x) as K grows. The l densities are those of log l (the
    Jacobian 1/l of the log-normal is the same in p and q and cancels).

    With the observed library size (``use_observed_lib_size=True``) there is no l to integrate:
    the terms log p(l) - log q(l) drop and the result is log p(x_n | l_n = sum_g x_ng, s_n),
    the likelihood *given* the depth, not comparable with a model that learns l.

    Returns the mean over cells of log p(x_n) (a float; higher is better), as scvi-tools'
    ``get_marginal_ll``, or the per-cell values (numpy, float64) with ``return_mean=False``.
    """
    n_mc_samples = check_n_samples(n_mc_samples, "n_mc_samples")
    batch_size = _check_batch_size(batch_size)
    n = _n_cells(x)
    b_all = _codes(batch_index, n, "batch_index")
    y_all = _codes(labels, n, "labels")
    dtype, device = _module_dtype_device(module)
    result = []
    with seeded(seed, device) as seed, evaluating(module):
        rng, _ = _generators(seed, device)
        for idx, xb, bb, yb in _query_batches(
            x, b_all, y_all, np.arange(n), batch_size, dtype, device
        ):
            # All K samples are drawn up front (K x cells x latent: small); they are decoded
            # in chunks so that at most _MAX_ROWS x genes decoder outputs exist at once.
            draws = _posterior_draws(module, xb, bb, n_mc_samples, rng)
            z, library = draws["z"], draws["library"]
            log_w = []
            chunk = max(1, _MAX_ROWS // len(idx))
            for s in range(0, n_mc_samples, chunk):
                zs, ls = z[s : s + chunk], library[s : s + chunk]
                g = module.generative(zs, ls, bb, yb)
                lw = module.get_reconstruction_log_prob(xb, g)  # (chunk, cells)
                # TASK 5.2 begin
                zero, one = torch.zeros_like(zs), torch.ones_like(zs)
                lw = lw + log_normal(zs, zero, one).sum(-1)  # log p(z), p = N(0, I)
                lw = lw - log_normal(zs, draws["qz_loc"], draws["qz_scale"]).sum(-1)
                if not module.use_observed_lib_size:
                    prior_loc, prior_scale = module.library_prior(bb, len(idx))  # eq. (62)
                    lw = lw + log_normal(ls, prior_loc, prior_scale).sum(-1)
                    lw = lw - log_normal(ls, draws["ql_loc"], draws["ql_scale"]).sum(-1)
                # TASK 5.2 end
                log_w.append(lw.to(torch.float64))
            log_w = torch.cat(log_w, dim=0)  # (K, cells)
            # TASK 5.2 begin
            log_px = torch.logsumexp(log_w, dim=0) - math.log(n_mc_samples)
            # TASK 5.2 end
            result.append(log_px.cpu().numpy())
    out = np.concatenate(result)
    return float(out.mean()) if return_mean else out
