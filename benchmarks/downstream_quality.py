"""Quality of the downstream analyses on simulated data with a known truth (not a test).

    python benchmarks/downstream_quality.py            # same settings as tests/_downstream.py

Prints, for one seeded simulation (1000 cells x 200 genes, 2 batches, 4 types, 10 planted DE
genes per type) and one seeded scVI (n_latent 5, 60 epochs at lr 1e-2):

* differential expression type_0 vs type_1 (vanilla and change, with and without batch
  correction): AUROC of the planted genes, size of the set at posterior expected FDR 0.05, its
  false proportion against the planted genes, and its true expected FDR against the
  random-pair hypothesis that the posterior probability is about;
* imputation of 10% held-out non-zero counts: median |error| of the denoised expected counts
  (``library_size="latent"``) vs the per-gene mean, against the held-out counts and the true
  NB means;
* latent metrics of scVI vs PCA of log1p counts with the same number of components;
* the importance-sampled marginal log-likelihood for K = 1, 10, 100, 1000 vs the ELBO.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from scvi_edu.data import CountData
from scvi_edu.differential import differential_expression
from scvi_edu.metrics import latent_metrics
from scvi_edu.module import VAE
from scvi_edu.posterior import marginal_ll, normalized_expression
from scvi_edu.simulate import simulate, true_pairwise_log_fold_changes
from scvi_edu.train import train

SIM = dict(n_cells=1000, n_genes=200, n_batches=2, n_types=4, n_latent=5, de_genes_per_type=10)
MODEL = dict(n_latent=5, n_hidden=64)
TRAIN = dict(max_epochs=60, lr=1e-2, batch_size=128, seed=0, progress_bar=False)


def fit(x, batch):
    data = CountData(x, batch=batch)
    torch.manual_seed(0)
    module = VAE(data.n_genes, n_batch=data.n_batch, **MODEL)
    t0 = time.perf_counter()
    train(module, data, **TRAIN)
    module.eval()
    return module, data, time.perf_counter() - t0


def de_report(module, adata, x, b):
    planted = adata.var["de_type"].isin(["type_0", "type_1"]).to_numpy()
    lfc = true_pairwise_log_fold_changes(adata, "type_0", "type_1")
    truth = {"change": (np.abs(lfc) > 0.25).mean(0), "vanilla": None}
    p1 = (lfc > 0).mean(0)
    truth["vanilla"] = np.maximum(p1, 1 - p1)
    print("differential expression type_0 vs type_1 (20 planted genes of 200), n_samples=5000")
    for mode in ("vanilla", "change"):
        for bc in (False, True):
            df = differential_expression(
                module, x, b, adata.obs["cell_type"], "type_0", "type_1", mode=mode,
                batch_correction=bc, n_samples=5000, seed=0, var_names=adata.var_names,
            ).loc[adata.var_names]  # fmt: skip
            score = df["proba_de"] if mode == "change" else df["bayes_factor"].abs()
            sel = df["is_de_fdr_0.05"].to_numpy()
            true_fdr = np.mean(1 - truth[mode][sel]) if sel.any() else float("nan")
            print(
                f"  {mode:7s} batch_correction={bc!s:5s}  AUROC {roc_auc_score(planted, score):.3f}"
                f"  selected {sel.sum():3d}  recall {(sel & planted).sum() / planted.sum():.2f}"
                f"  false (planted) {(sel & ~planted).sum() / max(sel.sum(), 1):.3f}"
                f"  true expected FDR {true_fdr:.3f}"
            )


def main():
    torch.set_num_threads(1)
    adata = simulate(**SIM, seed=0)
    x = np.asarray(adata.X, dtype=np.float32)
    module, data, secs = fit(x, adata.obs["batch"].to_numpy())
    b = data.batch_codes
    print(f"trained in {secs:.1f} s")
    de_report(module, adata, x, b)

    with torch.no_grad():
        latent = module.inference(torch.as_tensor(x), torch.as_tensor(b))["qz_loc"].numpy()
    pca = PCA(latent.shape[1], random_state=0).fit_transform(np.log1p(x))
    types = adata.obs["cell_type"].to_numpy()
    for name, rep in (("scVI", latent), ("PCA ", pca)):
        m = latent_metrics(rep, b, types, n_neighbors=30)
        print(f"latent {name}: " + "  ".join(f"{k} {v:.3f}" for k, v in m.items()))

    idx = np.arange(0, x.shape[0], 10)
    with torch.no_grad():
        elbo = np.mean(
            [
                module(torch.as_tensor(x[idx]), torch.as_tensor(b[idx])).elbo.mean().item()
                for _ in range(20)
            ]
        )
    lls = {
        k: marginal_ll(module, x[idx], b[idx], n_mc_samples=k, seed=k, return_mean=True)
        for k in (1, 10, 100, 1000)
    }
    print(
        f"ELBO {elbo:.2f}; marginal log-likelihood "
        + "  ".join(f"K={k}: {v:.2f}" for k, v in lls.items())
    )

    # Imputation (a second simulation; 10% of the non-zero counts held out).
    adata = simulate(**SIM, seed=1)
    x = np.asarray(adata.X, dtype=np.float32)
    rng = np.random.default_rng(0)
    nz = np.argwhere(x > 0)
    held = nz[rng.random(len(nz)) < 0.1]
    rows, cols = held[:, 0], held[:, 1]
    x_train = x.copy()
    x_train[rows, cols] = 0
    module, data, _ = fit(x_train, adata.obs["batch"].to_numpy())
    den = normalized_expression(
        module, x_train, data.batch_codes, library_size="latent", n_samples=25, seed=0
    )
    mask = np.zeros(x.shape, bool)
    mask[rows, cols] = True
    gene_mean = np.nanmean(np.where(mask, np.nan, x_train), axis=0)[cols]
    rate = np.asarray(adata.layers["true_rate"])[rows, cols]
    for name, target in (("held-out counts", x[rows, cols]), ("true NB means", rate)):
        e1 = np.median(np.abs(den[rows, cols] - target))
        e2 = np.median(np.abs(gene_mean - target))
        print(f"imputation vs {name}: median |error| scVI {e1:.3f}, per-gene mean {e2:.3f}")


if __name__ == "__main__":
    main()
