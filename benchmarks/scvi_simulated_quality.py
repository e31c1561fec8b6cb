"""Latent quality of SCVI on the default simulation (the model trained by tests/conftest.py).

Prints the 15-NN type accuracy on validation cells, ARI of KMeans(5), the 50-NN batch-mixing
entropy (bits; 1 = perfect for two batches) of the latent and of PCA on log-normalized counts,
the 15-NN batch classifier accuracy, and the training time (wall and CPU, one thread).

    python benchmarks/scvi_simulated_quality.py
"""

import time
import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from scvi_edu.model import SCVI
from scvi_edu.simulate import simulate

warnings.filterwarnings("ignore")
torch.set_num_threads(1)


def knn_accuracy(latent, labels, train_idx, test_idx, k=15):
    clf = KNeighborsClassifier(n_neighbors=k).fit(latent[train_idx], labels[train_idx])
    return float((clf.predict(latent[test_idx]) == labels[test_idx]).mean())


def batch_entropy(latent, batches, k=50):
    idx = NearestNeighbors(n_neighbors=k + 1).fit(latent).kneighbors(latent, return_distance=False)
    p = batches[idx[:, 1:]].mean(axis=1)
    h = -(p * np.log2(np.clip(p, 1e-12, 1)) + (1 - p) * np.log2(np.clip(1 - p, 1e-12, 1)))
    return float(h.mean())


def main(max_epochs: int = 20, lr: float = 5e-3) -> None:
    adata = simulate(seed=0)
    model = SCVI(adata, batch_key="batch", seed=0)
    wall, cpu = time.perf_counter(), time.process_time()
    model.train(max_epochs=max_epochs, lr=lr, batch_size=128, seed=0, progress_bar=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    z = model.get_latent_representation()
    types = adata.obs["cell_type"].cat.codes.to_numpy()
    batches = adata.obs["batch"].cat.codes.to_numpy()
    tr, va = model.train_indices, model.validation_indices
    x = np.asarray(adata.X, dtype=np.float64)
    pca = PCA(10, random_state=0).fit_transform(np.log1p(x / x.sum(1, keepdims=True) * 1e4))
    ceiling = knn_accuracy(adata.obsm["z_true"], types, tr, va)
    print(f"training: {max_epochs} epochs, wall {wall:.1f} s, CPU {cpu:.1f} s (1 thread)")
    print(f"validation ELBO per cell: {model.history['validation_elbo'].iloc[0]:.1f} -> "
          f"{model.history['validation_elbo'].iloc[-1]:.1f}")  # fmt: skip
    print(f"15-NN type accuracy (validation cells): latent {knn_accuracy(z, types, tr, va):.3f}, "
          f"PCA {knn_accuracy(pca, types, tr, va):.3f}, true z {ceiling:.3f}")  # fmt: skip
    for name, emb in (("latent", z), ("PCA", pca)):
        km = KMeans(5, n_init=10, random_state=0).fit_predict(emb)
        print(f"{name}: ARI(KMeans 5) {adjusted_rand_score(types, km):.3f}, batch entropy "
              f"{batch_entropy(emb, batches):.3f} bits, 15-NN batch accuracy "
              f"{knn_accuracy(emb, batches, tr, va):.3f} (chance 0.5)")  # fmt: skip


if __name__ == "__main__":
    main()
