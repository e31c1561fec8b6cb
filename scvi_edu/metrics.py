"""Quality metrics of a latent space: batch mixing, cell-type separation, clustering agreement.

These are the benchmarks of the scVI paper (Lopez et al. 2018, Fig. 3): a good latent space
*mixes* the batches (a cell's neighbours come from every batch in proportion) while it keeps
the cell types *apart* (silhouette, and a clustering of the latent agrees with the known labels).
They are not part of the tutorial's mathematics (eqs. (1)-(70) stop at the objective (70)); they
are how one checks that maximizing (70) gave a useful representation.

All functions take a latent matrix ``(n_cells, n_dims)`` (numpy or torch) and one label per cell.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score
from sklearn.neighbors import NearestNeighbors

__all__ = [
    "entropy_batch_mixing",
    "silhouette_labels",
    "clustering_scores",
    "latent_metrics",
]


def _as_2d(latent) -> np.ndarray:
    if hasattr(latent, "detach"):
        latent = latent.detach().cpu().numpy()
    latent = np.asarray(latent, dtype=np.float64)
    if latent.ndim != 2:
        raise ValueError(f"latent must be a 2-d array (cells x dims), got shape {latent.shape}")
    if not np.all(np.isfinite(latent)):
        raise ValueError("latent contains NaN or infinite values")
    return latent


def _as_labels(labels, n: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have one entry per cell ({n}), got shape {labels.shape}")
    return labels


def entropy_batch_mixing(
    latent,
    batches,
    n_neighbors: int = 50,
    n_pools: int | None = None,
    n_samples_per_pool: int = 100,
    seed: int = 0,
) -> float:
    """Mean entropy of the batch composition of each cell's k-nearest-neighbour set.

    For every cell, take its ``n_neighbors`` nearest neighbours in the latent space (Euclidean,
    the cell itself excluded), let ``p_b`` be the fraction of them from batch ``b``, and compute
    ``H = -sum_b p_b log p_b`` (natural log). The score is the mean of ``H`` over cells: 0 when
    every neighbourhood is a single batch, ``log(n_batches)`` at most (perfect mixing of equally
    sized batches). This is the scVI paper's "entropy of batch mixing".

    The paper averages over ``n_pools`` random pools of ``n_samples_per_pool`` cells (to save
    time on large data); with ``n_pools=None`` (default) every cell is used and the result is
    deterministic.
    """
    latent = _as_2d(latent)
    n = latent.shape[0]
    batches = _as_labels(batches, n, "batches")
    if n_neighbors < 1 or n_neighbors >= n:
        raise ValueError(
            f"n_neighbors must be in [1, n_cells - 1] = [1, {n - 1}], got {n_neighbors}"
        )
    _, codes = np.unique(batches, return_inverse=True)
    n_batches = codes.max() + 1
    # n_neighbors + 1 because the nearest point to a cell is the cell itself (distance 0).
    nn = NearestNeighbors(n_neighbors=n_neighbors + 1).fit(latent)
    idx = nn.kneighbors(latent, return_distance=False)
    # Drop the cell itself wherever it appears (ties may move it from column 0).
    self_mask = idx == np.arange(n)[:, None]
    keep = ~self_mask
    # Rows where the cell was not among its own neighbours (duplicates): drop the last column.
    no_self = ~self_mask.any(axis=1)
    keep[no_self, -1] = False
    neighbours = idx[keep].reshape(n, n_neighbors)
    counts = np.zeros((n, n_batches))
    np.add.at(counts, (np.repeat(np.arange(n), n_neighbors), codes[neighbours].ravel()), 1.0)
    p = counts / n_neighbors
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    if n_pools is None:
        return float(h.mean())
    rng = np.random.default_rng(seed)
    pools = [h[rng.choice(n, size=n_samples_per_pool, replace=True)].mean() for _ in range(n_pools)]
    return float(np.mean(pools))


def silhouette_labels(latent, labels, seed: int = 0, sample_size: int | None = None) -> float:
    """Mean silhouette width of the cell types in the latent space, in [-1, 1].

    For cell i, a(i) is its mean distance to the other cells of its type, b(i) the smallest mean
    distance to the cells of another type, s(i) = (b - a) / max(a, b); the score is the mean of
    s(i) (``sklearn.metrics.silhouette_score``, Euclidean). Higher means types are better
    separated. (scib rescales it to (s + 1) / 2; we do not.)
    """
    latent = _as_2d(latent)
    labels = _as_labels(labels, latent.shape[0], "labels")
    if len(np.unique(labels)) < 2:
        raise ValueError("silhouette needs at least 2 distinct labels")
    return float(silhouette_score(latent, labels, sample_size=sample_size, random_state=seed))


def clustering_scores(
    latent, labels, n_clusters: int | None = None, seed: int = 0
) -> dict[str, float]:
    """ARI and NMI between a KMeans clustering of the latent and the known labels.

    KMeans (``n_init=10``, seeded) with ``n_clusters`` = the number of distinct labels unless
    given. ARI is 1 for identical partitions and about 0 for a random one; NMI is in [0, 1].
    """
    latent = _as_2d(latent)
    labels = _as_labels(labels, latent.shape[0], "labels")
    if n_clusters is None:
        n_clusters = len(np.unique(labels))
    if n_clusters < 1 or n_clusters > latent.shape[0]:
        raise ValueError(f"n_clusters must be in [1, n_cells], got {n_clusters}")
    clusters = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(latent)
    return {
        "ari": float(adjusted_rand_score(labels, clusters)),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
    }


def latent_metrics(latent, batches, labels, n_neighbors: int = 50, seed: int = 0) -> dict:
    """All of the above in one dict: entropy (batch mixing), silhouette, ARI, NMI."""
    out = {"entropy_batch_mixing": entropy_batch_mixing(latent, batches, n_neighbors=n_neighbors)}
    out["silhouette"] = silhouette_labels(latent, labels, seed=seed)
    out.update(clustering_scores(latent, labels, seed=seed))
    return out
