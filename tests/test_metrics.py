"""Latent-space metrics: unit tests against hand-computed references, then the ground truth.

The ground-truth test trains one small scVI on simulated data with a batch effect (module-scoped
fixture shared with the other downstream tests, see ``tests/_downstream.py``) and checks that
its latent mixes the batches far better than a PCA of log counts of the same dimension while
the cell types stay recoverable.
"""

import numpy as np
import pytest
import torch
from _downstream import trained_sim_model  # tests/ is on sys.path
from scipy.stats import entropy
from sklearn.decomposition import PCA

from scvi_edu.metrics import (
    clustering_scores,
    entropy_batch_mixing,
    latent_metrics,
    silhouette_labels,
)


def _clusters(compositions, size=10, spread=1e-3, seed=0):
    """Tight, far-apart clusters of ``size`` points; cluster c has batch labels compositions[c]."""
    rng = np.random.default_rng(seed)
    points, batches = [], []
    for c, comp in enumerate(compositions):
        assert len(comp) == size
        centre = np.zeros(3)
        centre[c % 3] = 100.0 * (c + 1)
        points.append(centre + spread * rng.standard_normal((size, 3)))
        batches.extend(comp)
    return np.vstack(points), np.array(batches)


def test_entropy_matches_hand_computation():
    # Cluster A: 5 of batch 0, 5 of batch 1; cluster B: all batch 0; cluster C: 3 vs 7.
    comps = [[0] * 5 + [1] * 5, [0] * 10, [0] * 3 + [1] * 7]
    latent, batches = _clusters(comps)
    k = 9  # neighbours = the rest of the own cluster
    expected = []
    for comp in comps:
        comp = np.array(comp)
        for i in range(len(comp)):
            others = np.delete(comp, i)
            counts = np.bincount(others, minlength=2)
            expected.append(entropy(counts / counts.sum()))  # scipy: natural log
    got = entropy_batch_mixing(latent, batches, n_neighbors=k)
    assert got == pytest.approx(np.mean(expected), abs=1e-12)


def test_entropy_extremes_and_pools():
    rng = np.random.default_rng(1)
    latent = rng.standard_normal((400, 2))
    # Batches independent of position: entropy close to log 2 (k = 50, binomial fluctuation).
    mixed = rng.integers(0, 2, 400)
    h = entropy_batch_mixing(latent, mixed, n_neighbors=50)
    assert np.log(2) - 0.05 < h <= np.log(2)
    # Batches = the half-plane: only cells near the boundary see the other batch.
    split = (latent[:, 0] > 0).astype(int)
    assert entropy_batch_mixing(latent, split, n_neighbors=50) < 0.35
    # The paper's random pools estimate the same mean.
    pooled = entropy_batch_mixing(latent, mixed, n_neighbors=50, n_pools=50, n_samples_per_pool=100)
    assert pooled == pytest.approx(h, abs=0.02)


def _silhouette_reference(x, labels):
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    s = []
    for i in range(len(x)):
        same = labels == labels[i]
        same[i] = False
        if not same.any():
            s.append(0.0)
            continue
        a = d[i, same].mean()
        b = min(d[i, labels == m].mean() for m in np.unique(labels) if m != labels[i])
        s.append((b - a) / max(a, b))
    return np.mean(s)


def test_silhouette_matches_definition():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1, 2], 20)
    x = rng.standard_normal((60, 4)) + 2.0 * labels[:, None]
    assert silhouette_labels(x, labels) == pytest.approx(
        _silhouette_reference(x, labels), abs=1e-10
    )


def test_clustering_scores():
    rng = np.random.default_rng(3)
    labels = np.repeat(["a", "b", "c"], 30)
    centres = {"a": [0, 0], "b": [10, 0], "c": [0, 10]}
    x = np.array([centres[label] for label in labels]) + rng.standard_normal((90, 2))
    perfect = clustering_scores(x, labels)
    assert perfect["ari"] == pytest.approx(1.0) and perfect["nmi"] == pytest.approx(1.0)
    # Labels unrelated to the structure: ARI about 0.
    shuffled = rng.permutation(labels)
    random = clustering_scores(x, shuffled)
    assert abs(random["ari"]) < 0.05 and random["nmi"] < 0.1
    all_metrics = latent_metrics(x, rng.integers(0, 2, 90), labels, n_neighbors=10)
    assert set(all_metrics) == {"entropy_batch_mixing", "silhouette", "ari", "nmi"}


def test_bad_input():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="one entry per cell"):
        entropy_batch_mixing(x, np.zeros(9), n_neighbors=3)
    with pytest.raises(ValueError, match="n_neighbors"):
        entropy_batch_mixing(x, np.zeros(10), n_neighbors=10)
    with pytest.raises(ValueError, match="2-d"):
        silhouette_labels(np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        clustering_scores(np.full((10, 2), np.nan), np.zeros(10))
    with pytest.raises(ValueError, match="at least 2"):
        silhouette_labels(x, np.zeros(10))


@pytest.mark.slow
def test_scvi_latent_mixes_batches_and_keeps_types():
    """scVI's latent (posterior means) vs PCA of log1p counts with as many components.

    Measured (k = 30; ``python benchmarks/downstream_quality.py``): entropy 0.670 (scVI) vs
    0.190 (PCA), max log 2 = 0.693; KMeans ARI 0.856 (scVI) vs 0.007 (PCA: its leading axes are
    the batch effect); NMI 0.813 vs 0.010; silhouette 0.379 vs 0.117.
    """
    s = trained_sim_model()
    module, x, b = s["module"], s["x"], s["batch"]
    types = s["adata"].obs["cell_type"].to_numpy()
    with torch.no_grad():
        module.eval()
        latent = module.inference(torch.as_tensor(x), torch.as_tensor(b))["qz_loc"].numpy()
    pca = PCA(latent.shape[1], random_state=0).fit_transform(np.log1p(x))
    scvi = latent_metrics(latent, b, types, n_neighbors=30)
    base = latent_metrics(pca, b, types, n_neighbors=30)
    assert scvi["entropy_batch_mixing"] > 0.8 * np.log(2)
    assert scvi["entropy_batch_mixing"] > base["entropy_batch_mixing"] + 0.4
    assert scvi["ari"] > 0.6 and scvi["ari"] > base["ari"] + 0.4
    assert scvi["nmi"] > 0.6
    assert scvi["silhouette"] > base["silhouette"]
