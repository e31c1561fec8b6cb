"""scvi_edu.data: validation (problem and place named), encoding, prior (62), splits, batches."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from scvi_edu.data import CountData, library_size_prior, split_indices

SPARSE = [np.asarray, sp.csr_matrix, sp.csc_matrix, sp.coo_matrix]


def toy_adata(x: np.ndarray, batch=None) -> ad.AnnData:
    if sp.issparse(x) and x.format == "coo":
        x = x.tocsr()  # AnnData does not store COO
    obs = pd.DataFrame(index=[f"c{i}" for i in range(x.shape[0])])
    if batch is not None:
        obs["batch"] = batch
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(x.shape[1])]))


def assert_adata_equal(a: ad.AnnData, b: ad.AnnData) -> None:
    """Values AND dtypes of X, layers, obs, var, obsm, uns keys."""
    for xa, xb in [(a.X, b.X), *[(a.layers[k], b.layers[k]) for k in b.layers]]:
        assert type(xa) is type(xb) and xa.dtype == xb.dtype
        if sp.issparse(xa):
            assert (xa != xb).nnz == 0
            assert xa.has_canonical_format == xb.has_canonical_format
        else:
            np.testing.assert_array_equal(xa, xb)
    assert list(a.layers.keys()) == list(b.layers.keys())
    pd.testing.assert_frame_equal(a.obs, b.obs, check_dtype=True, check_categorical=True)
    pd.testing.assert_frame_equal(a.var, b.var, check_dtype=True)
    assert list(a.obsm.keys()) == list(b.obsm.keys())
    assert list(a.uns.keys()) == list(b.uns.keys())


# ------------------------------------------------------------------------- validation
@pytest.mark.parametrize("fmt", SPARSE)
def test_non_integer_named_with_count_and_first_place(fmt):
    x = np.ones((20, 8))
    x[12, 5] = 0.5
    x[15, 2] = 2.25
    with pytest.raises(ValueError, match=r"non-negative integers.*2 non-integer values, first at "
                       r"cell 'c12' \(row 12\), gene 'g5'"):  # fmt: skip
        CountData(toy_adata(fmt(x)))
    with pytest.raises(ValueError, match=r"1 non-integer value, first at row 12, column 5"):
        x[15, 2] = 2
        CountData(fmt(x))


@pytest.mark.parametrize("fmt", SPARSE)
@pytest.mark.parametrize(
    "value, match",
    [
        (-1.0, r"1 negative value, first at cell 'c3' \(row 3\), gene 'g4'"),
        (np.nan, r"1 NaN value, first at cell 'c3'"),
        (np.inf, r"1 infinite value, first at cell 'c3'"),
    ],
)
def test_bad_values(fmt, value, match):
    x = np.ones((10, 6))
    x[3, 4] = value
    with pytest.raises(ValueError, match=match):
        CountData(toy_adata(fmt(x)))


@pytest.mark.parametrize("fmt", SPARSE)
def test_zero_total_cells(fmt):
    x = np.ones((10, 6))
    x[[4, 7]] = 0
    with pytest.raises(ValueError, match=r"2 cells have zero total counts, first cell 'c4'"):
        CountData(toy_adata(fmt(x)))


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((0, 5)), "empty input: 0 cells x 5 genes"),
        (np.zeros((5, 0)), "empty input: 5 cells x 0 genes"),
        (np.ones(5), "2-d"),
        (np.array([["a", "b"]]), "numeric"),
        (np.ones((3, 2), dtype=bool), "numeric"),
    ],
)
def test_empty_or_malformed(x, match):
    with pytest.raises(ValueError, match=match):
        CountData(x)


def test_unsupported_container():
    with pytest.raises(ValueError, match="unsupported count matrix type"):
        CountData({"x": 1})


def test_missing_column_layer_and_shape_mismatch(small_adata):
    with pytest.raises(ValueError, match=r"batch_key 'donor' is not a column of adata.obs"):
        CountData(small_adata, batch_key="donor")
    with pytest.raises(ValueError, match=r"labels_key 'kind' is not a column"):
        CountData(small_adata, labels_key="kind")
    with pytest.raises(ValueError, match=r"layer 'counts' not found in adata.layers"):
        CountData(small_adata, layer="counts")
    with pytest.raises(ValueError, match=r"shape mismatch: batch has 3 values for 150 cells"):
        CountData(np.asarray(small_adata.X), batch=[0, 1, 0])
    with pytest.raises(ValueError, match="need an AnnData"):
        CountData(np.asarray(small_adata.X), batch_key="batch")


def test_missing_batch_values_named(small_adata):
    a = small_adata
    a.obs["donor"] = a.obs["batch"].astype(object)
    a.obs.loc[a.obs_names[7], "donor"] = None
    with pytest.raises(ValueError, match=r"batch column 'donor' has 1 missing value, first at cell "
                       r"'cell_7'"):  # fmt: skip
        CountData(a, batch_key="donor")


def test_unknown_category_and_genes_at_query_time(small_adata):
    train = CountData(small_adata, batch_key="batch", labels_key="cell_type")
    query = small_adata.copy()
    query.obs["batch"] = query.obs["batch"].astype(str)
    query.obs.loc["cell_3", "batch"] = "batch_9"
    msg = r"batch column 'batch' category 'batch_9' at cell 'cell_3'.*not seen in training; "
    with pytest.raises(ValueError, match=msg + r"known categories: \['batch_0', 'batch_1'\]"):
        CountData(query, batch_key="batch", batch_categories=train.batch_categories)
    fewer = small_adata[:, 1:].copy()
    with pytest.raises(ValueError, match="shape mismatch: the data has 39 genes, the model was "):
        CountData(fewer, var_names=small_adata.var_names)
    renamed = small_adata.copy()
    renamed.var_names = ["x" + v if i == 2 else v for i, v in enumerate(renamed.var_names)]
    with pytest.raises(
        ValueError, match=r"gene names differ.*column 2, 'xgene_2' here vs 'gene_2'"
    ):
        CountData(renamed, var_names=small_adata.var_names)
    with pytest.raises(ValueError, match="the data has none"):
        CountData(small_adata, batch_categories=train.batch_categories)


# ------------------------------------------------------------------------- encoding
def test_encoding_follows_categorical_order_or_sorted_values():
    x = np.ones((6, 3))
    cat = pd.Categorical(["b", "a", "b", "c", "a", "b"], categories=["c", "b", "a", "unused"])
    d = CountData(toy_adata(x, cat), batch_key="batch")
    assert d.batch_categories == ["c", "b", "a"]  # unused category dropped
    np.testing.assert_array_equal(d.batch_codes, [1, 2, 1, 0, 2, 1])
    d = CountData(x, batch=["b", "a", "b", "c", "a", "b"])
    assert d.batch_categories == ["a", "b", "c"]
    np.testing.assert_array_equal(d.batch_codes, [1, 0, 1, 2, 0, 1])
    # a query is encoded with the training categories, whatever its own order
    q = CountData(x[:2], batch=pd.Categorical(["a", "c"], categories=["a", "c"]),
                  batch_categories=["c", "b", "a"])  # fmt: skip
    np.testing.assert_array_equal(q.batch_codes, [2, 0])
    d = CountData(x, batch=[3, 1, 3, 1, 1, 3])
    assert d.batch_categories == [1, 3] and d.n_batch == 2
    d = CountData(x)
    assert d.batch_categories is None and d.n_batch == 1 and d.n_labels == 0
    assert np.all(d.batch_codes == 0)


# ------------------------------------------------------------------------- not modified
def test_adata_never_modified(small_adata):
    a = small_adata
    a.obs["donor"] = np.where(a.obs["batch"] == "batch_0", "d0", "d1")  # object dtype, not cat
    a.layers["counts"] = sp.csr_matrix(a.X, dtype=np.float64)
    a.X = np.asarray(a.X, dtype=np.float32)
    before = a.copy()
    d = CountData(a, batch_key="donor", labels_key="cell_type", layer="counts")
    d2 = CountData(a, batch_key="batch")
    for data in (d, d2):
        for mb in data.minibatches(batch_size=32, shuffle=True, rng=np.random.default_rng(0)):
            mb["x"].mul_(0)  # even writing into a minibatch must not reach the caller
        _ = data.library_log_means
    assert a.obs["donor"].dtype == object
    assert_adata_equal(a, before)


# ------------------------------------------------------------------------- sparse == dense
@pytest.mark.parametrize("fmt", SPARSE[1:])
def test_sparse_equals_dense(small_adata, fmt):
    x = np.asarray(small_adata.X)
    dense = CountData(x, batch=small_adata.obs["batch"])
    sparse = CountData(fmt(x.astype(np.float64)), batch=small_adata.obs["batch"])
    assert sp.isspmatrix_csr(sparse.X) and sparse.X.dtype == np.float32
    idx = np.random.default_rng(0).permutation(len(x))[:50]
    for key in ("x", "batch_index", "labels"):
        assert torch.equal(dense.tensors(idx)[key], sparse.tensors(idx)[key])
    np.testing.assert_allclose(sparse.library_log_means, dense.library_log_means, rtol=1e-12)
    np.testing.assert_allclose(sparse.library_log_vars, dense.library_log_vars, rtol=1e-10)


def test_sparse_with_duplicates_is_summed_and_left_alone():
    rows, cols, vals = [0, 0, 1, 2], [1, 1, 0, 2], [1.0, 2.0, 4.0, 1.0]
    m = sp.csr_matrix((vals, (rows, cols)), shape=(3, 3))
    m = sp.csr_matrix((np.array(vals), np.array(cols), np.array([0, 2, 3, 4])), shape=(3, 3))
    assert not m.has_canonical_format
    data_before = m.data.copy()
    d = CountData(m)
    np.testing.assert_array_equal(
        d.tensors([0, 1, 2])["x"].numpy(), [[0, 3, 0], [4, 0, 0], [0, 0, 1]]
    )
    np.testing.assert_array_equal(m.data, data_before)


# ------------------------------------------------------------------------- prior (62)
def test_library_prior_matches_pandas(small_adata):
    """eq. (62) corrected, computed independently with pandas (population variance)."""
    d = CountData(small_adata, batch_key="batch")
    log_total = np.log(np.asarray(small_adata.X, dtype=np.float64).sum(axis=1))
    frame = pd.DataFrame({"l": log_total, "b": small_adata.obs["batch"].to_numpy()})
    groups = frame.groupby("b")["l"]
    np.testing.assert_allclose(d.library_log_means, groups.mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(d.library_log_vars, groups.var(ddof=0).to_numpy(), rtol=1e-10)
    assert np.all(d.library_log_vars > 0.01)
    # the tutorial's printed (62) squares the SUM of the deviations: identically 0
    for b, m in zip(["batch_0", "batch_1"], d.library_log_means, strict=True):
        dev = frame.loc[frame["b"] == b, "l"] - m
        assert abs(dev.sum()) ** 2 < 1e-20


def test_library_prior_without_batch_and_empty_batch():
    x = np.array([[1, 2], [3, 4], [10, 0]], dtype=float)
    means, variances = library_size_prior(x, np.zeros(3, dtype=np.int64), 1)
    np.testing.assert_allclose(means, [np.mean(np.log([3, 7, 10]))])
    np.testing.assert_allclose(variances, [np.var(np.log([3, 7, 10]))])
    with pytest.raises(ValueError, match="have no cells"):
        library_size_prior(x, np.zeros(3, dtype=np.int64), 2)


# ------------------------------------------------------------------------- splits, minibatches
def test_split_indices():
    tr, va = split_indices(101, 0.9, seed=0)
    assert len(tr) == 91 and len(va) == 10
    assert len(np.intersect1d(tr, va)) == 0 and len(np.union1d(tr, va)) == 101
    tr2, va2 = split_indices(101, 0.9, seed=0)
    np.testing.assert_array_equal(tr, tr2)
    assert not np.array_equal(va, split_indices(101, 0.9, seed=1)[1])
    assert len(split_indices(10, 1.0, seed=0)[1]) == 0
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="train_size"):
            split_indices(10, bad)
    with pytest.raises(ValueError, match="BatchNorm needs at least 2"):
        split_indices(3, 0.2)


def test_minibatches_cover_each_cell_once_and_drop_singleton(small_adata):
    d = CountData(small_adata, batch_key="batch")
    x = np.asarray(small_adata.X)
    seen = []
    for mb in d.minibatches(batch_size=64, shuffle=True, rng=np.random.default_rng(0)):
        np.testing.assert_array_equal(mb["x"].numpy(), x[mb["index"].numpy()])
        np.testing.assert_array_equal(mb["batch_index"].numpy(), d.batch_codes[mb["index"].numpy()])
        assert mb["x"].dtype == torch.float32 and mb["batch_index"].dtype == torch.int64
        seen.append(mb["index"].numpy())
    assert sorted(np.concatenate(seen).tolist()) == list(range(150))
    sizes = [
        len(mb["x"]) for mb in d.minibatches(np.arange(129), batch_size=64, drop_singleton=True)
    ]
    assert sizes == [64, 64]
    sizes = [len(mb["x"]) for mb in d.minibatches(np.arange(129), batch_size=64)]
    assert sizes == [64, 64, 1]
    with pytest.raises(ValueError, match="batch_size"):
        next(d.minibatches(batch_size=0))


def test_integer_and_readonly_input_accepted():
    x = np.arange(1, 13, dtype=np.int64).reshape(4, 3)
    x.setflags(write=False)
    d = CountData(x)
    assert d.X.dtype == np.float32
    np.testing.assert_array_equal(d.tensors([3])["x"].numpy(), [[10, 11, 12]])
