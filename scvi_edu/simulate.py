"""Simulated counts from the scVI generative process (eq. (55)) with a known ground truth.

The process, for cell n in batch s_n and of type k_n:

    z_n     = c_{k_n} + within_type_sd * eps,  eps ~ N(0, I_d)   (cell types = clusters in z)
    eta_n   = a + A z_n + beta_{s_n}                              (logits of a linear decoder)
    rho_n   = softmax(eta_n)                                      (f_w(z_n, s_n), sums to 1)
    log l_n ~ N(m_{s_n}, library_log_sd**2)                       (per-batch library size)
    w_ng    ~ Gamma(theta_g, rate theta_g / rho_ng)
    y_ng    ~ Poisson(l_n w_ng)                                   (i.e. NB(l_n rho_ng, theta_g))
    x_ng    = 0 with probability pi_g = sigmoid(zi_logits_g), else y_ng   (technical zeros)

Deliberate differences from eq. (55): the prior of z is a mixture of Gaussians (one per type)
rather than N(0, I), so that types are clusters; the zero-inflation follows the corrected
convention of the package, ``sigmoid(zi_logits)`` = probability of a *technical zero* (ledger
(55), (58)); the dropout probability is a per-gene constant rather than a function f_h(z, s).

Planted differential expression. The K type centres c_k are orthogonal with norm
``type_separation``; the decoder is A = D C^+ + B (I - C C^+), so that A c_k = D[:, k] exactly:
the mean logits of type k are ``a + D[:, k] + beta_s``. D has ``de_genes_per_type`` non-zero
entries per type, on disjoint gene sets, so a gene in the set of type k is up or down in k by
``var['de_log2fc']`` (log2 units, in the logits) against *every* other type, and has the same
mean logit in all other types; all other genes have the same mean logit in every type. The
softmax subtracts a per-cell constant from all logits, so the fold change of rho differs from
the planted one by a small offset common to all genes: ``true_log_fold_change(kind="rho")``
gives that exact quantity (what scVI's differential expression estimates).

What the returned AnnData holds (all the truth a test needs):

========================  ====================================================================
``X``                     integer-valued counts (float32, dense or CSR)
``obs['batch']``          categorical ``batch_0, ...``
``obs['cell_type']``      categorical ``type_0, ...``
``obs['true_library']``   l_n (the generative library size; total counts ~ l_n (1 - pi))
``obsm['z_true']``        z_n, shape (n_cells, n_latent)
``layers['true_rho']``    rho_n = f_w(z_n, s_n) the counts were drawn from (rows sum to 1)
``layers['true_rate']``   mu_n = l_n rho_n, the NB mean before zero-inflation
``var['theta']``          NB inverse dispersion theta_g
``var['zi_logits']``      logit of the technical-zero probability (-inf without zero-inflation)
``var['dropout_prob']``   pi_g = sigmoid(zi_logits_g)
``var['base_logit']``     a_g
``var['is_de']``          planted DE gene (bool)
``var['de_type']``        the type it is DE in (``'none'`` otherwise)
``var['de_log2fc']``      planted log2 fold change of that type vs every other type (0 if none)
``varm['decoder']``       A, shape (n_genes, n_latent)
``varm['batch_shift']``   beta, shape (n_genes, n_batches), natural-log scale
``varm['type_shift']``    D, shape (n_genes, n_types), natural-log scale
``uns['library_log_means']``, ``uns['library_log_sd']``  the m_s and sd of log l_n
``uns['simulation']``     the arguments of the call
========================  ====================================================================

``true_rho(adata, transform_batch=...)`` recomputes rho for every cell as if it were in another
batch (the truth for batch-corrected expression); ``true_log_fold_change`` gives the truth of
differential expression between two types.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .context import seeded
from .distributions import sample_nb, sample_zinb

__all__ = ["simulate", "true_rho", "true_log_fold_change", "true_pairwise_log_fold_changes"]


def _softmax(eta: np.ndarray) -> np.ndarray:
    eta = eta - eta.max(axis=1, keepdims=True)
    e = np.exp(eta)
    return e / e.sum(axis=1, keepdims=True)


def simulate(
    n_cells: int = 2000,
    n_genes: int = 500,
    n_batches: int = 2,
    n_types: int = 5,
    n_latent: int = 10,
    de_genes_per_type: int = 30,
    de_log2fc: tuple[float, float] = (1.0, 3.0),
    type_separation: float = 2.0,
    within_type_sd: float = 0.5,
    decoder_sd: float = 0.1,
    batch_effect_sd: float = 0.3,
    library_log_means: list[float] | np.ndarray | None = None,
    library_log_sd: float = 0.3,
    theta_range: tuple[float, float] = (2.0, 20.0),
    dropout_range: tuple[float, float] = (0.0, 0.2),
    gene_likelihood: str = "zinb",
    sparse: bool = False,
    seed: int = 0,
) -> ad.AnnData:
    """Sample counts from the scVI generative process (eq. (55)) with planted types, batches and DE.

    Parameters
    ----------
    n_cells, n_genes, n_batches, n_types, n_latent
        Sizes. Types and batches are assigned independently (balanced), so a perfect batch
        correction is possible. Needs ``n_types <= n_latent``.
    de_genes_per_type
        Genes planted as differentially expressed in each type (disjoint sets).
    de_log2fc
        Range of the absolute planted log2 fold changes (uniform; sign random).
    type_separation, within_type_sd
        Norm of the (orthogonal) type centres in z and the spread of z around them.
    decoder_sd
        Scale of the decoder part that is orthogonal to the type centres (within-type structure).
    batch_effect_sd
        Standard deviation of the per-batch, per-gene logit shifts beta.
    library_log_means, library_log_sd
        Mean of log l per batch (default: log 1500 +- 0.35, spread over batches) and its sd.
    theta_range
        theta_g is log-uniform in this range.
    dropout_range
        pi_g (probability of a technical zero) is uniform in this range.
    gene_likelihood
        ``"zinb"`` or ``"nb"`` (no zero-inflation).
    sparse
        Store ``X`` as a CSR matrix.
    seed
        Everything is a deterministic function of it (the global Torch RNG is left untouched).

    Returns
    -------
    AnnData described in the module docstring.
    """
    for name, value in [
        ("n_cells", n_cells),
        ("n_genes", n_genes),
        ("n_batches", n_batches),
        ("n_types", n_types),
        ("n_latent", n_latent),
    ]:
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if n_types > n_latent:
        raise ValueError(
            f"n_types ({n_types}) must be <= n_latent ({n_latent}): types are planted as "
            "orthogonal centres in z"
        )
    if n_types * de_genes_per_type > n_genes:
        raise ValueError(
            f"n_types * de_genes_per_type = {n_types * de_genes_per_type} exceeds "
            f"n_genes = {n_genes}"
        )
    if gene_likelihood not in ("zinb", "nb"):
        raise ValueError(f"gene_likelihood must be 'zinb' or 'nb', got {gene_likelihood!r}")
    if not (0.0 <= dropout_range[0] <= dropout_range[1] < 1.0):
        raise ValueError(f"dropout_range must satisfy 0 <= lo <= hi < 1, got {dropout_range}")
    if not (0.0 < theta_range[0] <= theta_range[1]):
        raise ValueError(f"theta_range must satisfy 0 < lo <= hi, got {theta_range}")
    if library_log_means is None:
        library_log_means = np.log(1500.0) + np.linspace(-0.35, 0.35, n_batches) * (n_batches > 1)
    library_log_means = np.asarray(library_log_means, dtype=np.float64).reshape(-1)
    if library_log_means.shape != (n_batches,):
        raise ValueError(
            f"library_log_means has {library_log_means.size} entries, "
            f"expected n_batches = {n_batches}"
        )

    rng = np.random.default_rng(seed)
    n, g, d, k_types = n_cells, n_genes, n_latent, n_types

    # Cell types and batches: balanced, independent of each other.
    cell_type = rng.permutation(np.arange(n) % k_types)
    batch = rng.permutation(np.arange(n) % n_batches)

    # Orthogonal type centres c_k (columns of C); z around them.
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    centres = q[:, :k_types] * type_separation  # (d, K)
    z = centres[:, cell_type].T + within_type_sd * rng.standard_normal((n, d))

    # Planted DE: disjoint gene sets, one per type, with signed log2 fold changes.
    de_genes = rng.permutation(g)[: k_types * de_genes_per_type].reshape(k_types, de_genes_per_type)
    log2fc = rng.uniform(*de_log2fc, size=de_genes.shape) * rng.choice(
        [-1.0, 1.0], size=de_genes.shape
    )
    type_shift = np.zeros((g, k_types))  # D, natural-log units
    for k in range(k_types):
        type_shift[de_genes[k], k] = log2fc[k] * np.log(2.0)

    # Decoder A = D C^+ + B (I - C C^+): A c_k = D[:, k]; B only acts within types.
    c_pinv = np.linalg.pinv(centres)  # (K, d)
    b = decoder_sd * rng.standard_normal((g, d))
    decoder = type_shift @ c_pinv + b @ (np.eye(d) - centres @ c_pinv)
    base_logit = rng.standard_normal(g)
    batch_shift = batch_effect_sd * rng.standard_normal((g, n_batches))

    rho = _softmax(base_logit + z @ decoder.T + batch_shift[:, batch].T)
    log_library = library_log_means[batch] + library_log_sd * rng.standard_normal(n)
    library = np.exp(log_library)
    rate = library[:, None] * rho

    theta = np.exp(rng.uniform(np.log(theta_range[0]), np.log(theta_range[1]), size=g))
    if gene_likelihood == "zinb":
        dropout_prob = rng.uniform(*dropout_range, size=g)
    else:
        dropout_prob = np.zeros(g)
    with np.errstate(divide="ignore"):
        zi_logits = np.log(dropout_prob) - np.log1p(-dropout_prob)

    # Gamma-Poisson (and Bernoulli) draws in Torch, isolated from the caller's global RNG.
    torch_seed = int(rng.integers(0, 2**31 - 1))
    with seeded(torch_seed):
        gen = torch.Generator().manual_seed(torch_seed)
        mu_t = torch.as_tensor(rate, dtype=torch.float64)
        theta_t = torch.as_tensor(theta, dtype=torch.float64).expand_as(mu_t)
        if gene_likelihood == "zinb":
            zi_t = torch.as_tensor(zi_logits, dtype=torch.float64).expand_as(mu_t)
            counts = sample_zinb(mu_t, theta_t, zi_t, generator=gen)
        else:
            counts = sample_nb(mu_t, theta_t, generator=gen)
    x = counts.numpy().astype(np.float32)

    obs_names = [f"cell_{i}" for i in range(n)]
    var_names = [f"gene_{j}" for j in range(g)]
    batch_names = [f"batch_{b}" for b in range(n_batches)]
    type_names = [f"type_{k}" for k in range(k_types)]
    obs = pd.DataFrame(
        {
            "batch": pd.Categorical.from_codes(batch, categories=batch_names),
            "cell_type": pd.Categorical.from_codes(cell_type, categories=type_names),
            "true_library": library,
        },
        index=obs_names,
    )
    is_de = np.zeros(g, dtype=bool)
    de_type = np.array(["none"] * g, dtype=object)
    de_lfc = np.zeros(g)
    for k in range(k_types):
        is_de[de_genes[k]] = True
        de_type[de_genes[k]] = type_names[k]
        de_lfc[de_genes[k]] = log2fc[k]
    var = pd.DataFrame(
        {
            "base_logit": base_logit,
            "theta": theta,
            "zi_logits": zi_logits,
            "dropout_prob": dropout_prob,
            "is_de": is_de,
            "de_type": pd.Categorical(de_type, categories=["none", *type_names]),
            "de_log2fc": de_lfc,
        },
        index=var_names,
    )
    adata = ad.AnnData(
        X=sp.csr_matrix(x) if sparse else x,
        obs=obs,
        var=var,
        obsm={"z_true": z.astype(np.float32)},
        varm={"decoder": decoder, "batch_shift": batch_shift, "type_shift": type_shift},
        layers={"true_rho": rho.astype(np.float32), "true_rate": rate.astype(np.float32)},
    )
    adata.uns["library_log_means"] = library_log_means
    adata.uns["library_log_sd"] = float(library_log_sd)
    adata.uns["simulation"] = {
        "n_latent": n_latent,
        "de_genes_per_type": de_genes_per_type,
        "type_separation": type_separation,
        "within_type_sd": within_type_sd,
        "decoder_sd": decoder_sd,
        "batch_effect_sd": batch_effect_sd,
        "gene_likelihood": gene_likelihood,
        "seed": seed,
    }
    return adata


def true_rho(adata: ad.AnnData, transform_batch: str | None = None) -> np.ndarray:
    """The true rho = f_w(z, s) of every cell of a :func:`simulate` output, in float64.

    ``transform_batch=None`` uses each cell's own batch (equals ``layers['true_rho']``); a batch
    name computes every cell as if it had been sequenced in that batch (the truth for
    batch-corrected normalized expression).
    """
    batch_names = list(adata.obs["batch"].cat.categories)
    if transform_batch is None:
        codes = adata.obs["batch"].cat.codes.to_numpy()
    elif transform_batch in batch_names:
        codes = np.full(adata.n_obs, batch_names.index(transform_batch))
    else:
        raise ValueError(f"transform_batch {transform_batch!r} is not one of {batch_names}")
    z = np.asarray(adata.obsm["z_true"], dtype=np.float64)
    eta = (
        adata.var["base_logit"].to_numpy()
        + z @ np.asarray(adata.varm["decoder"]).T
        + np.asarray(adata.varm["batch_shift"])[:, codes].T
    )
    return _softmax(eta)


def true_log_fold_change(
    adata: ad.AnnData, group1: str, group2: str | None = None, kind: str = "rho"
) -> pd.Series:
    """True log2 fold change of every gene between cell types ``group1`` and ``group2``.

    ``group2=None`` compares with all other types. ``kind="planted"``: the difference of the
    type-mean logits, ``(D[:, group1] - D[:, group2]) / log 2`` (for the rest: minus the mean of
    the other types' D), zero for genes not planted in either. ``kind="rho"``: the quantity
    scVI's differential expression estimates, mean over cells of group1 of log2 rho minus the
    same over group2, with rho computed in each batch (``true_rho(transform_batch=b)``) and the
    difference averaged over batches; it differs from ``"planted"`` by an offset common to all
    genes (the softmax normaliser) plus the within-type noise of the sample.
    """
    types = list(adata.obs["cell_type"].cat.categories)
    for group in (group1, group2):
        if group is not None and group not in types:
            raise ValueError(f"cell type {group!r} is not one of {types}")
    if kind == "planted":
        shift = np.asarray(adata.varm["type_shift"])
        i1 = types.index(group1)
        if group2 is None:
            others = [i for i in range(len(types)) if i != i1]
            ref = shift[:, others].mean(axis=1)
        else:
            ref = shift[:, types.index(group2)]
        lfc = (shift[:, i1] - ref) / np.log(2.0)
    elif kind == "rho":
        cell_type = adata.obs["cell_type"].to_numpy()
        in1 = cell_type == group1
        in2 = ~in1 if group2 is None else cell_type == group2
        lfcs = []
        for b in adata.obs["batch"].cat.categories:
            log2_rho = np.log2(true_rho(adata, transform_batch=b))
            lfcs.append(log2_rho[in1].mean(axis=0) - log2_rho[in2].mean(axis=0))
        lfc = np.mean(lfcs, axis=0)
    else:
        raise ValueError(f"kind must be 'rho' or 'planted', got {kind!r}")
    return pd.Series(lfc, index=adata.var_names, name=f"log2fc_{group1}_vs_{group2 or 'rest'}")


def true_pairwise_log_fold_changes(
    adata: ad.AnnData, group1: str, group2: str, n_pairs: int = 20_000, seed: int = 1
) -> np.ndarray:
    """True log2 rho of a random cell of ``group1`` minus that of a random cell of ``group2``,
    both as if sequenced in the same random batch: shape (n_pairs, n_genes).

    This is the quantity whose distribution scVI's differential expression estimates (its
    Bayes factors and ``proba_de`` are probabilities over such pairs): the true probability
    that gene g changes by more than delta is ``(abs(lfc[:, g]) > delta).mean()``. Its mean
    over pairs tends to ``true_log_fold_change(kind="rho")``.
    """
    cell_type = adata.obs["cell_type"].to_numpy()
    for group in (group1, group2):
        if not (cell_type == group).any():
            raise ValueError(f"no cell of type {group!r}")
    rng = np.random.default_rng(seed)
    i1 = rng.choice(np.nonzero(cell_type == group1)[0], n_pairs)
    i2 = rng.choice(np.nonzero(cell_type == group2)[0], n_pairs)
    batch = rng.integers(0, len(adata.obs["batch"].cat.categories), n_pairs)
    log2_rho = np.stack(
        [np.log2(true_rho(adata, transform_batch=b)) for b in adata.obs["batch"].cat.categories]
    )
    return log2_rho[batch, i1] - log2_rho[batch, i2]
