"""pbmc68k_counts: integer counts recovered from scanpy's log-normalised file.

References are independent of the inversion: re-normalising the counts must give back scanpy's
stored log1p values up to their 3-decimal rounding; the cell annotation must be scanpy's.
"""

from __future__ import annotations

import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp

from scvi_edu import datasets


@pytest.fixture(scope="module")
def pbmc():
    return datasets.pbmc68k_counts()


@pytest.fixture(scope="module")
def scanpy_file():
    return sc.datasets.pbmc68k_reduced()


def test_shape_names_labels(pbmc, scanpy_file):
    assert pbmc.shape == (700, 765)
    assert list(pbmc.var_names) == list(scanpy_file.raw.var_names)
    assert list(pbmc.obs_names) == list(scanpy_file.obs_names)
    labels = pbmc.obs["cell_type"]
    assert labels.dtype == "category"
    assert len(labels.cat.categories) == 10
    assert (labels.astype(str).to_numpy() == scanpy_file.obs["bulk_labels"].astype(str)).all()
    assert (labels == "CD14+ Monocyte").sum() == 129
    assert (labels == "CD8+ Cytotoxic T").sum() == 54


def test_counts_are_nonnegative_integers(pbmc):
    x = pbmc.X
    assert not sp.issparse(x)
    assert np.isfinite(x).all() and (x >= 0).all()
    assert np.array_equal(x, np.round(x))
    # every cell has counts (the file was filtered): at least a few hundred UMIs
    assert x.sum(axis=1).min() >= 100
    assert x.max() > 100  # not proportions or logs


def test_renormalising_gives_back_scanpys_values(pbmc, scanpy_file):
    """log1p(1e4 x / n_counts) must equal scanpy's raw.X up to its 3-decimal rounding."""
    stored = scanpy_file.raw.X.toarray().astype(np.float64)
    n = scanpy_file.obs["n_counts"].to_numpy(dtype=np.float64)
    again = np.log1p(1e4 * pbmc.X.astype(np.float64) / n[:, None])
    # rounding to 3 decimals moves by <= 5e-4; float32 storage adds < 1e-6 at values <= 7
    assert np.abs(again - stored).max() <= 5e-4 + 1e-6


def test_totals_are_a_fraction_of_n_counts(pbmc):
    """The 765 genes are a subset of the experiment's: sum_g x_ng < n_counts, 10-30% of it."""
    total = pbmc.X.sum(axis=1).astype(np.float64)
    n = pbmc.obs["n_counts"].to_numpy()
    ratio = total / n
    assert (total < n).all()
    assert 0.10 < ratio.min() and ratio.max() < 0.30


def test_scanpy_object_not_modified(scanpy_file):
    before = scanpy_file.raw.X.copy()
    datasets.pbmc68k_counts()
    fresh = sc.datasets.pbmc68k_reduced()
    assert (fresh.raw.X != before).nnz == 0
    assert "cell_type" not in fresh.obs.columns


def test_non_integer_file_raises(monkeypatch, scanpy_file):
    """A file whose values are not log1p of integer counts is refused, naming the deviation."""
    bad = scanpy_file.copy()
    raw = bad.raw.to_adata()
    y = raw.X.toarray().astype(np.float64)
    n = bad.obs["n_counts"].to_numpy(dtype=np.float64)
    # one entry becomes count + 0.4 (outside tolerance 0.15)
    i, j = np.argwhere(y > 0)[0]
    x_ij = np.round(np.expm1(y[i, j]) * n[i] / 1e4)
    y[i, j] = np.log1p((x_ij + 0.4) * 1e4 / n[i])
    raw.X = sp.csr_matrix(y.astype(np.float32))
    bad.raw = raw
    monkeypatch.setattr(datasets, "_load_pbmc68k_reduced", lambda: bad)
    with pytest.raises(ValueError, match=r"max deviation 0\.4"):
        datasets.pbmc68k_counts()


def test_within_tolerance_is_accepted():
    x = np.array([[3.0, 0.0, 120.0], [1.0, 7.0, 0.0]])
    n = np.array([1000.0, 500.0])
    y = np.log1p(1e4 * x / n[:, None]) + np.array([[0.02, 0.0, 0.0], [0.0, -0.01, 0.0]])
    got = datasets.counts_from_log1p_cp10k(y, n)
    assert np.array_equal(got, x)


@pytest.mark.parametrize(
    "y, n, message",
    [
        (np.array([[-1.0, 0.0]]), np.array([10.0]), "finite and >= 0"),
        (np.array([[1.0, np.nan]]), np.array([10.0]), "finite"),
        (np.array([[1.0, 0.0]]), np.array([0.0]), "n_counts finite and > 0"),
        (np.ones((2, 2)), np.array([10.0]), "one n_counts per cell"),
    ],
)
def test_bad_inputs(y, n, message):
    with pytest.raises(ValueError, match=message):
        datasets.counts_from_log1p_cp10k(y, n)
