"""Real counts for the chapters, from files that ship with a dependency (no download).

``pbmc68k_counts()`` recovers the integer UMI counts of scanpy's ``pbmc68k_reduced`` (700
peripheral blood mononuclear cells x 765 genes, 10 annotated cell types), which scanpy stores
only log-normalised. Its ``raw.X`` holds

    y_ng = round(log1p(1e4 * x_ng / n_n), 3)

with ``n_n = obs['n_counts']`` the cell's total over *all* genes of the original experiment
(the 765 genes are a subset, so ``sum_g x_ng`` is only 11-28% of ``n_n``). Inverting,
``x_ng = expm1(y_ng) * n_n / 1e4``: the 3-decimal rounding of y moves this by at most
``(x_ng + n_n / 1e4) * expm1(5e-4)``, which is below 0.082 for every entry of scanpy 1.x's file
(measured: max |x - round(x)| = 0.0815, median 0). The counts are accepted when every entry is
within ``tol = 0.15`` of an integer (a margin of ~2x; real non-integer data would have
deviations up to 0.5) and then rounded.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["pbmc68k_counts", "counts_from_log1p_cp10k"]

INTEGER_TOLERANCE = 0.15


def _load_pbmc68k_reduced() -> ad.AnnData:
    """scanpy's bundled file (a function of its own so that tests can substitute it)."""
    import scanpy as sc

    return sc.datasets.pbmc68k_reduced()


def counts_from_log1p_cp10k(
    log_values, n_counts, target_sum: float = 1e4, tol: float = INTEGER_TOLERANCE
) -> np.ndarray:
    """Integer counts from ``log1p(target_sum * x / n_counts)`` (cells x genes), in float64.

    Raises ``ValueError`` (naming the largest deviation and where it is) if some value is more
    than ``tol`` away from an integer, or if the inputs are not finite and non-negative.
    """
    y = log_values.toarray() if sp.issparse(log_values) else np.asarray(log_values)
    y = y.astype(np.float64)
    n = np.asarray(n_counts, dtype=np.float64).reshape(-1)
    if y.ndim != 2 or y.shape[0] != n.shape[0]:
        raise ValueError(
            f"log_values must be cells x genes with one n_counts per cell, got {y.shape} "
            f"and {n.shape}"
        )
    if not (np.isfinite(y).all() and np.isfinite(n).all()) or (y < 0).any() or (n <= 0).any():
        raise ValueError("log_values must be finite and >= 0, n_counts finite and > 0")
    x = np.expm1(y) * n[:, None] / target_sum
    rounded = np.round(x)
    deviation = np.abs(x - rounded)
    worst = np.unravel_index(np.argmax(deviation), deviation.shape)
    if deviation[worst] > tol:
        raise ValueError(
            f"the recovered counts are not integers: max deviation {deviation[worst]:.3f} > "
            f"tolerance {tol} (cell {worst[0]}, gene {worst[1]}, value {x[worst]:.3f}); the "
            "file is not log1p of counts normalised to target_sum with these n_counts"
        )
    return rounded


def pbmc68k_counts() -> ad.AnnData:
    """700 PBMCs x 765 genes of raw UMI counts with 10 named cell types (scanpy's file).

    Returns a new AnnData (scanpy's cached object is not modified) with

    * ``X``: the integer counts (float32, dense), recovered from ``raw.X`` as in the module
      docstring (``ValueError`` if they are not integers within ``INTEGER_TOLERANCE``);
    * ``obs['cell_type']``: the annotation ``bulk_labels`` (categorical);
      ``obs['n_counts']``: the cell's total over all genes of the original data (more than
      ``X.sum(1)``: the file keeps 765 of them);
    * ``var_names``: the gene symbols.
    """
    source = _load_pbmc68k_reduced()
    raw = source.raw if source.raw is not None else source
    counts = counts_from_log1p_cp10k(raw.X, source.obs["n_counts"].to_numpy())
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(source.obs["bulk_labels"].astype(str)),
            "n_counts": source.obs["n_counts"].to_numpy(dtype=np.float64),
        },
        index=source.obs_names.copy(),
    )
    var = pd.DataFrame(index=pd.Index(raw.var_names.astype(str), name=None))
    return ad.AnnData(X=counts.astype(np.float32), obs=obs, var=var)
