"""Counts in, validated tensors out: the only door between user data and the model.

``CountData`` takes an AnnData (``X`` or a layer), a NumPy array or a SciPy sparse matrix, checks
that it holds raw counts, encodes the batch and label columns as integer codes (remembering the
categories, so that a query dataset is encoded the same way), computes the per-batch prior of the
log library size (eq. (62), corrected) and serves minibatches as tensors.

Rules:

* bad input raises ``ValueError`` naming the problem *and where it is* (cell and gene);
* the caller's AnnData is never modified (nothing here assigns to it; arrays are only read);
* minibatches are fancy-indexed slices of one tensor (dense) or of the CSR matrix (sparse,
  densified one minibatch at a time), never a Python loop over cells.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

__all__ = [
    "CountData",
    "check_indices",
    "minibatch_indices",
    "validate_counts",
    "encode_categories",
    "library_size_prior",
    "split_indices",
]

_CHUNK_ENTRIES = 2**22  # entries of a dense matrix checked at a time (bounded temporaries)


def _where(i: int, j: int | None, obs_names: Sequence | None, var_names: Sequence | None) -> str:
    cell = f"cell {obs_names[i]!r} (row {i})" if obs_names is not None else f"row {i}"
    if j is None:
        return cell
    gene = f"gene {var_names[j]!r} (column {j})" if var_names is not None else f"column {j}"
    return f"{cell}, {gene}"


def _value_checks() -> list[tuple[str, Any, str]]:
    """(name, predicate on a float array -> bool mask of bad entries, advice)."""
    return [
        ("NaN", np.isnan, "the matrix holds missing values; raw counts never do"),
        ("infinite", np.isinf, "the matrix holds infinite values; raw counts never do"),
        (
            "negative",
            lambda v: v < 0,
            "counts must be non-negative integers (scaled or centred data? pass raw counts)",
        ),
        (
            "non-integer",
            lambda v: np.isfinite(v) & (v != np.round(v)),
            "counts must be non-negative integers: this looks like normalized or log-transformed "
            "data; scVI models raw counts (e.g. pass layer='counts' or adata.raw)",
        ),
    ]


def validate_counts(
    X: np.ndarray | sp.spmatrix,
    obs_names: Sequence | None = None,
    var_names: Sequence | None = None,
) -> None:
    """Raise ValueError unless ``X`` (cells x genes) holds finite, non-negative integer counts
    with at least one count per cell. The message says how many entries are bad and where the
    first one is (row-major order)."""
    if X.ndim != 2:
        raise ValueError(f"counts must be a 2-d cells x genes matrix, got shape {X.shape}")
    n_cells, n_genes = X.shape
    if n_cells == 0 or n_genes == 0:
        raise ValueError(f"empty input: {n_cells} cells x {n_genes} genes")
    if X.dtype == bool or not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise ValueError(f"counts must be a real numeric matrix, got dtype {X.dtype}")
    integer = np.issubdtype(X.dtype, np.integer)
    for name, bad, advice in _value_checks():
        if integer and name != "negative":
            continue
        count, first = 0, None
        if sp.issparse(X):
            data = X.data
            mask = bad(data)
            count = int(mask.sum())
            if count:
                k = int(np.flatnonzero(mask)[0])
                row = int(np.searchsorted(X.indptr, k, side="right") - 1)
                first = (row, int(X.indices[k]))
        else:
            step = max(1, _CHUNK_ENTRIES // n_genes)
            for start in range(0, n_cells, step):
                mask = bad(np.asarray(X[start : start + step]))
                c = int(mask.sum())
                if c and first is None:
                    r, col = np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape)
                    first = (start + int(r), int(col))
                count += c
        if count:
            raise ValueError(
                f"{advice}: {count} {name} value{'s' if count > 1 else ''}, first at "
                f"{_where(*first, obs_names, var_names)}"
            )
    totals = np.asarray(X.sum(axis=1)).reshape(-1)
    empty = np.flatnonzero(totals <= 0)
    if empty.size:
        raise ValueError(
            f"{empty.size} cell{'s have' if empty.size > 1 else ' has'} zero total counts, first "
            f"{_where(int(empty[0]), None, obs_names, var_names)}; log library size is -inf "
            "for them: remove them (e.g. scanpy.pp.filter_cells(adata, min_counts=1))"
        )


def encode_categories(
    values: Any,
    categories: Sequence | None = None,
    what: str = "batch",
    obs_names: Sequence | None = None,
) -> tuple[np.ndarray, list]:
    """Integer codes of a per-cell categorical covariate, and its categories.

    Without ``categories`` they are learned: the order of a pandas categorical (unused
    categories dropped), else the sorted distinct values. With ``categories`` (a trained
    model's), a value outside them raises ValueError.
    """
    series = pd.Series(values)
    missing = np.flatnonzero(series.isna().to_numpy())
    if missing.size:
        raise ValueError(
            f"{what} has {missing.size} missing value{'s' if missing.size > 1 else ''}, first at "
            f"{_where(int(missing[0]), None, obs_names, None)}"
        )
    if categories is None:
        if isinstance(series.dtype, pd.CategoricalDtype):
            present = set(series.unique())
            categories = [c for c in series.cat.categories.tolist() if c in present]
        else:
            categories = pd.Categorical(series).categories.tolist()  # Python scalars
    categories = list(categories)
    codes = pd.Categorical(series.astype(object), categories=categories).codes.astype(np.int64)
    unknown = np.flatnonzero(codes < 0)
    if unknown.size:
        first = int(unknown[0])
        raise ValueError(
            f"{what} category {series.iloc[first]!r} at {_where(first, None, obs_names, None)} "
            f"({unknown.size} cell{'s' if unknown.size > 1 else ''} in all) was not seen in "
            f"training; known categories: {categories}"
        )
    return codes, categories


def library_size_prior(
    X: np.ndarray | sp.spmatrix, batch_codes: np.ndarray, n_batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of log total counts per batch: the prior p(l | s) of eq. (62).

    mu_b = mean_{i in b} log(sum_g x_ig),  sigma_b^2 = mean_{i in b} (log(sum_g x_ig) - mu_b)^2.
    The tutorial's (62) squares the *sum* of the deviations, which is identically 0 (the
    deviations from the mean sum to zero); the sample variance squares each deviation (ledger
    (62)). Population variance (divide by n_b), as in scvi-tools. Returns float64 arrays of
    shape (n_batch,); a batch without cells raises ValueError.
    """
    # TASK 4.4 begin
    log_total = np.log(np.asarray(X.sum(axis=1), dtype=np.float64).reshape(-1))
    n_b = np.bincount(batch_codes, minlength=n_batch).astype(np.float64)
    if (n_b == 0).any():
        raise ValueError(f"batch code(s) {np.flatnonzero(n_b == 0).tolist()} have no cells")
    means = np.bincount(batch_codes, weights=log_total, minlength=n_batch) / n_b
    variances = (
        np.bincount(batch_codes, weights=(log_total - means[batch_codes]) ** 2, minlength=n_batch)
        / n_b
    )
    return means, variances
    # TASK 4.4 end


def split_indices(
    n_cells: int, train_size: float = 0.9, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Random train / validation cell indices: ceil(train_size * n) training cells (scvi-tools)."""
    if not 0.0 < train_size <= 1.0:
        raise ValueError(f"train_size must be in (0, 1], got {train_size}")
    n_train = int(np.ceil(train_size * n_cells))
    if n_train < 2:
        raise ValueError(
            f"{n_train} training cell(s): BatchNorm needs at least 2 cells (n_cells={n_cells}, "
            f"train_size={train_size})"
        )
    perm = np.random.default_rng(seed).permutation(n_cells)
    return np.sort(perm[:n_train]), np.sort(perm[n_train:])


def check_indices(indices, n_cells: int, name: str) -> np.ndarray:
    """Cell indices as int64: integers in [0, n_cells) without repeats (None: none), or a boolean
    mask with one entry per cell, turned into the indices of its True entries."""
    idx = np.asarray([] if indices is None else indices)
    if idx.dtype == bool:
        if idx.shape != (n_cells,):
            raise ValueError(
                f"{name}: a boolean mask needs one entry per cell ({n_cells}), got shape "
                f"{idx.shape}"
            )
        return np.flatnonzero(idx)
    idx = idx.reshape(-1)
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name} must be integer cell indices or a boolean mask, got {idx.dtype}")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_cells):
        raise ValueError(f"{name} must select cells among 0..{n_cells - 1}")
    if len(np.unique(idx)) != len(idx):
        raise ValueError(f"{name} selects some cells more than once")
    return idx


def minibatch_indices(
    indices: np.ndarray | int,
    batch_size: int,
    shuffle: bool = False,
    rng: np.random.Generator | None = None,
    drop_singleton: bool = False,
) -> Iterator[np.ndarray]:
    """Consecutive chunks of ``batch_size`` of ``indices`` (an int n: 0..n-1), shuffled by ``rng``.

    The one minibatch iterator of the package: training, evaluation and every posterior query
    cut their cells with it. ``drop_singleton`` drops a last chunk of a single cell (BatchNorm
    in training mode cannot normalise one cell; when shuffled, the dropped cell differs from
    epoch to epoch).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    indices = np.arange(indices) if np.isscalar(indices) else np.asarray(indices)
    if shuffle:
        indices = (rng if rng is not None else np.random.default_rng()).permutation(indices)
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        if drop_singleton and len(chunk) == 1 and len(indices) > 1:
            return
        yield chunk


class CountData:
    """Validated counts with encoded batch and label covariates.

    Parameters
    ----------
    data
        AnnData (counts in ``X`` or ``layers[layer]``), a NumPy array or a SciPy sparse matrix,
        cells x genes, raw counts.
    batch_key, labels_key
        Columns of ``adata.obs`` (AnnData input only).
    layer
        AnnData layer holding the counts (default ``X``).
    batch, labels
        Per-cell values, for array input (or to override the AnnData columns).
    batch_categories, label_categories
        Categories of a trained model: the query is encoded with them, and a value outside them
        raises ValueError.
    var_names
        Gene names of a trained model: the query must have the same genes in the same order.

    Attributes
    ----------
    X : np.ndarray | scipy.sparse.csr_matrix (float32)
    batch_codes, label_codes : np.ndarray (int64); zeros when there is no covariate
    batch_categories, label_categories : list | None
    n_cells, n_genes, n_batch, n_labels : int (n_batch = 1 when there is no batch covariate)
    library_log_means, library_log_vars : np.ndarray (float64, shape (n_batch,)), eq. (62)
    """

    def __init__(
        self,
        data: ad.AnnData | np.ndarray | sp.spmatrix,
        batch_key: str | None = None,
        labels_key: str | None = None,
        layer: str | None = None,
        *,
        batch: Sequence | np.ndarray | None = None,
        labels: Sequence | np.ndarray | None = None,
        batch_categories: Sequence | None = None,
        label_categories: Sequence | None = None,
        var_names: Sequence | None = None,
    ):
        self.batch_key, self.labels_key, self.layer = batch_key, labels_key, layer
        if isinstance(data, ad.AnnData):
            if layer is None:
                X = data.X
                if X is None:
                    raise ValueError(
                        "adata.X is None: pass the layer holding the counts (layer=...)"
                    )
            elif layer not in data.layers:
                raise ValueError(
                    f"layer {layer!r} not found in adata.layers "
                    f"(available: {list(data.layers.keys())})"
                )
            else:
                X = data.layers[layer]
            self.obs_names = data.obs_names
            self.var_names = data.var_names
            columns = list(data.obs.columns)
            for key, what in ((batch_key, "batch_key"), (labels_key, "labels_key")):
                if key is not None and key not in data.obs.columns:
                    raise ValueError(
                        f"{what} {key!r} is not a column of adata.obs (columns: {columns})"
                    )
            if batch is None and batch_key is not None:
                batch = data.obs[batch_key]
            if labels is None and labels_key is not None:
                labels = data.obs[labels_key]
        else:
            if batch_key is not None or labels_key is not None or layer is not None:
                raise ValueError(
                    "batch_key, labels_key and layer need an AnnData; with an array pass "
                    "batch=... and labels=... (one value per cell)"
                )
            X = data
            self.obs_names = None
            self.var_names = None
        self.X = self._as_matrix(X)
        if sp.issparse(self.X) and self.X.format != "csr":
            self.X = self.X.tocsr()  # a new object: validation locates rows via indptr
        validate_counts(self.X, self.obs_names, self.var_names)
        self.n_cells, self.n_genes = self.X.shape
        if sp.issparse(self.X):
            self.X = self._to_csr32(self.X)
        elif self.X.dtype != np.float32 or not self.X.flags.writeable:
            self.X = np.array(self.X, dtype=np.float32, order="C", copy=True)
        else:
            self.X = np.ascontiguousarray(self.X)
        if var_names is not None:
            self._check_genes(list(var_names))

        self.batch_codes, self.batch_categories = self._encode(batch, batch_categories, "batch")
        self.label_codes, self.label_categories = self._encode(labels, label_categories, "labels")
        self.n_batch = len(self.batch_categories) if self.batch_categories is not None else 1
        self.n_labels = len(self.label_categories) if self.label_categories is not None else 0
        self._X_tensor = None if sp.issparse(self.X) else torch.from_numpy(self.X)
        self._batch_tensor = torch.from_numpy(self.batch_codes)
        self._label_tensor = torch.from_numpy(self.label_codes)

    # -- construction helpers -------------------------------------------------------------
    @staticmethod
    def _as_matrix(X: Any) -> np.ndarray | sp.spmatrix:
        if sp.issparse(X):
            return X
        if isinstance(X, np.ndarray | np.matrix) or isinstance(X, list | tuple):
            return np.asarray(X)
        if hasattr(X, "__array__") and not hasattr(X, "compute"):
            return np.asarray(X)
        raise ValueError(
            f"unsupported count matrix type {type(X).__name__}: pass a NumPy array or a SciPy "
            "sparse matrix (load backed or lazy AnnData into memory first)"
        )

    @staticmethod
    def _to_csr32(X: sp.spmatrix) -> sp.csr_matrix:
        """float32 CSR in canonical form; ``X`` is already CSR, copied only if it must change."""
        if X.dtype != np.float32 or not X.has_canonical_format:
            X = sp.csr_matrix(X, dtype=np.float32, copy=True)  # never touch the caller's
            X.sum_duplicates()
        return X

    def _check_genes(self, expected: list) -> None:
        if self.n_genes != len(expected):
            raise ValueError(
                f"shape mismatch: the data has {self.n_genes} genes, the model was trained on "
                f"{len(expected)}"
            )
        if self.var_names is not None:
            ours = list(self.var_names)
            if ours != [str(v) for v in expected] and ours != expected:
                j = next(i for i, (a, b) in enumerate(zip(ours, expected, strict=True)) if a != b)
                raise ValueError(
                    f"gene names differ from the training data: first at column {j}, "
                    f"{ours[j]!r} here vs {expected[j]!r} in training "
                    "(same genes, same order needed)"
                )

    def _encode(
        self, values: Any, categories: Sequence | None, what: str
    ) -> tuple[np.ndarray, list | None]:
        if values is None:
            if categories is not None and len(categories) > 1:
                raise ValueError(
                    f"the model was trained with a {what} covariate ({list(categories)}); "
                    f"the data has none: pass the {what} column"
                )
            return np.zeros(self.n_cells, dtype=np.int64), (
                list(categories) if categories is not None else None
            )
        values = (
            values.to_numpy()
            if isinstance(values, pd.Series) and not isinstance(values.dtype, pd.CategoricalDtype)
            else values
        )
        if len(values) != self.n_cells:
            raise ValueError(
                f"shape mismatch: {what} has {len(values)} values for {self.n_cells} cells"
            )
        name = what
        key = self.batch_key if what == "batch" else self.labels_key
        if key is not None:
            name = f"{what} column {key!r}"
        return encode_categories(values, categories, name, self.obs_names)

    # -- derived quantities --------------------------------------------------------------------
    @property
    def library_log_means(self) -> np.ndarray:
        """Mean of log total counts per batch (eq. (62), mu_b)."""
        return library_size_prior(self.X, self.batch_codes, self.n_batch)[0]

    @property
    def library_log_vars(self) -> np.ndarray:
        """Variance of log total counts per batch (eq. (62) corrected, sigma_b^2)."""
        return library_size_prior(self.X, self.batch_codes, self.n_batch)[1]

    def __len__(self) -> int:
        return self.n_cells

    def __repr__(self) -> str:
        kind = "sparse" if sp.issparse(self.X) else "dense"
        return (
            f"CountData({self.n_cells} cells x {self.n_genes} genes, {kind}, "
            f"n_batch={self.n_batch}, n_labels={self.n_labels})"
        )

    # -- minibatches -----------------------------------------------------------------------
    def tensors(
        self, index: np.ndarray, device: str | torch.device = "cpu"
    ) -> dict[str, torch.Tensor]:
        """The minibatch of cells ``index``: x (float32, dense), batch_index, labels, index."""
        index = np.asarray(index, dtype=np.int64)
        idx = torch.from_numpy(index)
        if self._X_tensor is not None:
            x = self._X_tensor[idx]
        else:
            x = torch.from_numpy(self.X[index].toarray())
        return {
            "x": x.to(device),
            "batch_index": self._batch_tensor[idx].to(device),
            "labels": self._label_tensor[idx].to(device),
            "index": idx,
        }

    def minibatches(
        self,
        indices: np.ndarray | None = None,
        batch_size: int = 128,
        shuffle: bool = False,
        rng: np.random.Generator | None = None,
        drop_singleton: bool = False,
        device: str | torch.device = "cpu",
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Minibatches over ``indices`` (default: all cells), in order or shuffled by ``rng``.

        ``drop_singleton`` drops a last minibatch of a single cell (BatchNorm in training mode
        cannot normalise one cell; the dropped cell differs from epoch to epoch when shuffled).
        """
        indices = np.arange(self.n_cells) if indices is None else indices
        for chunk in minibatch_indices(indices, batch_size, shuffle, rng, drop_singleton):
            yield self.tensors(chunk, device)
