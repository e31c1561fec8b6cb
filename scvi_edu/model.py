"""``SCVI``: the user-facing model on an AnnData of raw counts (scvi-tools-like names).

It only orchestrates: ``CountData`` validates and encodes the AnnData,
``VAE`` holds the mathematics (eqs. (55)-(70)), ``train`` optimises eq. (70). There is no
likelihood here.

    >>> model = SCVI(adata, batch_key="batch")          # raw counts in adata.X (or layer=...)
    >>> model.train(max_epochs=100, seed=0)
    >>> z = model.get_latent_representation()           # (cells, n_latent), mean of q(z | x)
    >>> rho = model.get_normalized_expression()         # DataFrame, rows sum to 1
    >>> model.get_elbo()                                # mean ELBO per cell (negative)
    >>> de = model.differential_expression(groupby="cell_type", group1="type_0")

Posterior queries and differential expression are computed by ``scvi_edu.posterior`` and
``scvi_edu.differential``; the methods here only map names (batches, genes, groups) to codes.

Differences from scvi-tools worth knowing: ``get_elbo`` returns the ELBO itself (a negative
number, higher is better), whereas scvi-tools returns its negative; the KL warm-up reaches full
weight within the run (see ``scvi_edu.train``); ``seed`` arguments make the initialisation
(``SCVI(..., seed=)``) and the training (``train(seed=)``) reproducible without touching the
global Torch RNG.
"""

from __future__ import annotations

import os
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch

from . import differential, posterior
from .context import draw_seed, evaluating, seeded
from .data import CountData, check_indices, split_indices
from .module import VAE
from .train import TrainConfig
from .train import train as _train

__all__ = ["SCVI"]

_FROM_DATA = ("n_input", "n_batch", "n_labels", "library_log_means", "library_log_vars")
_FILE = "model.pt"


def _plain(value: Any) -> Any:
    """NumPy scalars/arrays -> Python objects, so that ``torch.load(weights_only=True)`` works."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


def default_max_epochs(n_cells: int) -> int:
    """scvi-tools' default: min(round(20000 / n_cells * 400), 400) epochs (~20k-cell passes)."""
    return int(min(round(20000 / n_cells * 400), 400))


class SCVI:
    """scVI on an AnnData of raw counts.

    Parameters
    ----------
    adata
        Cells x genes raw counts (``X`` or ``layers[layer]``, dense or sparse). Never modified.
    batch_key, labels_key
        Columns of ``adata.obs`` with the batch (corrected for) and the labels (only used by
        ``dispersion="gene-label"``).
    layer
        Layer holding the counts.
    seed
        Seeds the initial weights (inside a forked RNG).
    **model_options
        Passed to ``VAE`` (``n_hidden``, ``n_latent``, ``n_layers``, ``dropout_rate``,
        ``dispersion``, ``gene_likelihood``, ``use_observed_lib_size``,
        ``likelihood_gradient``, ...) and saved with the model. With
        ``use_observed_lib_size=False`` the prior of the log library is the per-batch mean and
        variance of eq. (62) (corrected), computed from ``adata``.
    """

    def __init__(
        self,
        adata: ad.AnnData,
        batch_key: str | None = None,
        labels_key: str | None = None,
        layer: str | None = None,
        seed: int | None = None,
        **model_options: Any,
    ):
        if not isinstance(adata, ad.AnnData):
            raise ValueError(
                f"SCVI needs an AnnData, got {type(adata).__name__}; for arrays use "
                "scvi_edu.data.CountData with scvi_edu.module.VAE and scvi_edu.train.train"
            )
        given = [k for k in _FROM_DATA if k in model_options]
        if given:
            raise ValueError(f"{given} are computed from the data; do not pass them")
        self.adata = adata
        self.batch_key, self.labels_key, self.layer = batch_key, labels_key, layer
        self._data = CountData(adata, batch_key=batch_key, labels_key=labels_key, layer=layer)
        self.batch_categories = self._data.batch_categories
        self.label_categories = self._data.label_categories
        self.var_names = list(adata.var_names)
        self.model_options = dict(model_options)
        module_kwargs = dict(
            n_input=self._data.n_genes,
            n_batch=self._data.n_batch,
            n_labels=self._data.n_labels,
            **model_options,
        )
        if not model_options.get("use_observed_lib_size", True):
            means, variances = self._data.library_log_means, self._data.library_log_vars
            if (variances <= 0).any():
                names = self.batch_categories or ["(all cells)"]
                bad = [names[i] for i in np.flatnonzero(variances <= 0)]
                raise ValueError(
                    f"batch(es) {bad} have zero variance of log library size (a single cell or "
                    "identical totals): the prior of eq. (62) is degenerate; use the observed "
                    "library (use_observed_lib_size=True) or merge the batch"
                )
            module_kwargs["library_log_means"] = means.tolist()
            module_kwargs["library_log_vars"] = variances.tolist()
        self._module_kwargs = module_kwargs
        self.module = self._build_module(module_kwargs, seed)
        self.is_trained = False
        self.history: pd.DataFrame | None = None
        self.train_indices: np.ndarray | None = None
        self.validation_indices: np.ndarray | None = None

    @staticmethod
    def _build_module(kwargs: dict, seed: int | None) -> VAE:
        if seed is None:
            return VAE(**kwargs)
        with seeded(seed):
            return VAE(**kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def __repr__(self) -> str:
        m = self.module
        library = "observed" if m.use_observed_lib_size else "latent (prior eq. (62))"
        status = f"trained for {len(self.history)} epochs" if self.is_trained else "not trained"
        return (
            f"SCVI({self._data.n_cells} cells x {self._data.n_genes} genes, "
            f"n_batch={self._data.n_batch}, n_labels={self._data.n_labels}, "
            f"n_latent={m.n_latent}, gene_likelihood={m.gene_likelihood!r}, "
            f"dispersion={m.dispersion!r}, library={library}; {status})"
        )

    # -- data ------------------------------------------------------------------------------
    def _validate(self, adata: ad.AnnData | None) -> CountData:
        """The training data, or ``adata`` encoded with the training categories and genes."""
        if adata is None:
            return self._data
        return CountData(
            adata,
            batch_key=self.batch_key,
            labels_key=self.labels_key,
            layer=self.layer,
            batch_categories=self.batch_categories,
            label_categories=self.label_categories,
            var_names=self.var_names,
        )

    # -- training --------------------------------------------------------------------------
    def train(
        self,
        max_epochs: int | None = None,
        lr: float = 1e-3,
        batch_size: int = 128,
        early_stopping: bool = False,
        seed: int | None = None,
        progress_bar: bool = True,
        train_size: float = 0.9,
        device: str | torch.device = "cpu",
        train_indices: Any = None,
        validation_indices: Any = None,
        **train_kwargs: Any,
    ) -> None:
        """Train with ``scvi_edu.train.train`` (Adam, KL warm-up, validation ELBO).

        ``max_epochs=None`` uses scvi-tools' default ``min(round(20000 / n_cells * 400), 400)``.
        Other keywords (``weight_decay``, ``kl_warmup_fraction``, ``n_epochs_kl_warmup``,
        ``patience``, ...) are fields of ``scvi_edu.train.TrainConfig``. The split is
        ``train_indices`` (and ``validation_indices``), or a random ``train_size`` fraction
        seeded by ``seed``; it is kept in ``self.train_indices``, ``self.validation_indices``.
        The history is in ``self.history``; calling ``train`` again continues from the current
        weights with a fresh optimiser and replaces the history.
        """
        if max_epochs is None:
            max_epochs = default_max_epochs(self._data.n_cells)
        config = TrainConfig(
            max_epochs,
            lr=lr,
            batch_size=batch_size,
            early_stopping=early_stopping,
            seed=draw_seed() if seed is None else seed,  # one seed for the split and the run
            progress_bar=progress_bar,
            train_size=train_size,
            device=device,
            **train_kwargs,
        )
        if train_indices is None:
            if validation_indices is not None:
                raise ValueError("validation_indices needs train_indices (the training cells) too")
            train_indices, validation_indices = split_indices(
                self._data.n_cells, train_size, config.seed
            )
        train_indices = check_indices(train_indices, self._data.n_cells, "train_indices")
        validation_indices = check_indices(
            validation_indices, self._data.n_cells, "validation_indices"
        )
        self.history = _train(
            self.module,
            self._data,
            config,
            train_indices=train_indices,
            validation_indices=validation_indices,
        )
        self.train_indices, self.validation_indices = train_indices, validation_indices
        self.is_trained = True

    # -- queries ---------------------------------------------------------------------------
    def get_latent_representation(
        self, adata: ad.AnnData | None = None, give_mean: bool = True, batch_size: int = 1024
    ) -> np.ndarray:
        """Latent z of every cell: the mean of q(z | x, s) (``give_mean``) or one sample of it
        (eq. (61)). Returns an array (n_cells, n_latent)."""
        data = self._validate(adata)
        out = []
        with evaluating(self.module):
            for mb in data.minibatches(batch_size=batch_size, device=self.device):
                inf = self.module.inference(mb["x"], mb["batch_index"])
                out.append((inf["qz_loc"] if give_mean else inf["z"]).cpu().numpy())
        return np.concatenate(out)

    def _cells(self, adata: ad.AnnData | None, indices) -> tuple[CountData, Any, np.ndarray]:
        """Validated data, its count matrix restricted to ``indices`` and those indices."""
        data = self._validate(adata)
        if indices is None:
            return data, data.X, np.arange(data.n_cells)
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0 or idx.min() < -data.n_cells or idx.max() >= data.n_cells:
            raise ValueError(f"indices must select cells among 0..{data.n_cells - 1}")
        idx = idx % data.n_cells
        return data, data.X[idx], idx

    def _labels(self, data: CountData, idx: np.ndarray) -> np.ndarray | None:
        return data.label_codes[idx] if data.n_labels else None

    def _batch_codes(self, transform_batch: Any) -> int | list[int] | None:
        """Batch category name(s) -> code(s) of the model; unknown names raise ValueError."""
        if transform_batch is None:
            return None
        names = self.batch_categories or []
        items = transform_batch if isinstance(transform_batch, list | tuple) else [transform_batch]
        unknown = [t for t in items if t not in names]
        if unknown:
            raise ValueError(f"transform_batch {unknown} not among the batches {names}")
        codes = [names.index(t) for t in items]
        return codes if isinstance(transform_batch, list | tuple) else codes[0]

    def _gene_indices(self, gene_list: Any) -> np.ndarray | None:
        if gene_list is None:
            return None
        if isinstance(gene_list, str):
            gene_list = [gene_list]
        position = {g: j for j, g in enumerate(self.var_names)}
        unknown = [g for g in gene_list if g not in position]
        if unknown:
            raise ValueError(f"gene_list: {len(unknown)} unknown gene(s), first {unknown[0]!r}")
        return np.array([position[g] for g in gene_list], dtype=np.int64)

    def get_normalized_expression(
        self,
        adata: ad.AnnData | None = None,
        indices: Any = None,
        transform_batch: Any = None,
        gene_list: list | None = None,
        library_size: float | str = 1.0,
        n_samples: int = 1,
        batch_size: int = 128,
        return_mean: bool = True,
        return_numpy: bool = False,
        seed: int | None = None,
    ) -> pd.DataFrame | np.ndarray:
        """Decoded expression averaged over ``n_samples`` draws of z ~ q(z | x, s)
        (``scvi_edu.posterior.normalized_expression``).

        ``library_size=1``: rho = f_w(z, s) (rows sum to 1, eq. (55)); a number c: c * rho
        (e.g. 1e4: CP10k-like); ``"latent"``: mu = l * rho, the expected counts at the cell's
        own depth. ``transform_batch``: a batch name (or a list, averaged) in which every cell
        is decoded (batch-corrected expression). ``gene_list``: gene names to return.
        Returns a DataFrame cells x genes, or an array ((n_samples,) cells x genes without
        ``return_mean``).
        """
        data, x, idx = self._cells(adata, indices)
        genes = self._gene_indices(gene_list)
        values = posterior.normalized_expression(
            self.module,
            x,
            data.batch_codes[idx],
            library_size=library_size,
            n_samples=n_samples,
            transform_batch=self._batch_codes(transform_batch),
            gene_indices=genes,
            labels=self._labels(data, idx),
            batch_size=batch_size,
            return_mean=return_mean,
            seed=seed,
        )
        if return_numpy or not return_mean:
            return values
        index = data.obs_names[idx] if data.obs_names is not None else None
        columns = self.var_names if genes is None else [self.var_names[j] for j in genes]
        return pd.DataFrame(values, index=index, columns=columns)

    def posterior_predictive_sample(
        self,
        adata: ad.AnnData | None = None,
        indices: Any = None,
        n_samples: int = 1,
        gene_list: list | None = None,
        batch_size: int = 128,
        seed: int | None = None,
    ) -> np.ndarray:
        """Counts drawn from p(x~ | x) (``scvi_edu.posterior.posterior_predictive_sample``):
        (cells, genes), or (cells, genes, n_samples) for ``n_samples > 1``."""
        data, x, idx = self._cells(adata, indices)
        return posterior.posterior_predictive_sample(
            self.module,
            x,
            data.batch_codes[idx],
            n_samples=n_samples,
            gene_indices=self._gene_indices(gene_list),
            labels=self._labels(data, idx),
            batch_size=batch_size,
            seed=seed,
        )

    def get_marginal_ll(
        self,
        adata: ad.AnnData | None = None,
        indices: Any = None,
        n_mc_samples: int = 1000,
        batch_size: int = 128,
        return_mean: bool = True,
        seed: int | None = None,
    ) -> float | np.ndarray:
        """Importance-sampled log p(x | s) (``scvi_edu.posterior.marginal_ll``): the mean over
        cells (as scvi-tools), or per cell with ``return_mean=False``."""
        data, x, idx = self._cells(adata, indices)
        return posterior.marginal_ll(
            self.module,
            x,
            data.batch_codes[idx],
            n_mc_samples=n_mc_samples,
            labels=self._labels(data, idx),
            batch_size=batch_size,
            return_mean=return_mean,
            seed=seed,
        )

    def differential_expression(
        self,
        adata: ad.AnnData | None = None,
        groupby: str | None = None,
        group1: Any = None,
        group2: Any = None,
        **kwargs: Any,
    ) -> pd.DataFrame:
        """Bayes-factor differential expression between groups of ``adata.obs[groupby]``
        (``scvi_edu.differential.differential_expression``; keywords ``mode``, ``delta``,
        ``fdr_target``, ``n_samples``, ``batch_correction``, ... go there)."""
        source = self.adata if adata is None else adata
        if groupby is None or groupby not in source.obs.columns:
            raise ValueError(
                f"groupby must be a column of adata.obs, got {groupby!r} "
                f"(columns: {list(source.obs.columns)})"
            )
        data = self._validate(adata)
        return differential.differential_expression(
            self.module,
            data.X,
            data.batch_codes,
            source.obs[groupby],
            group1,
            group2,
            labels=self._labels(data, np.arange(data.n_cells)),
            var_names=self.var_names,
            **kwargs,
        )

    def get_elbo(
        self, adata: ad.AnnData | None = None, batch_size: int = 1024, seed: int | None = None
    ) -> float:
        """Mean ELBO per cell, eq. (69)/(70) with one sample of (z, l): a negative number,
        higher is better (scvi-tools' ``get_elbo`` returns its negative). The sample makes it
        move by ~0.1 nat between calls; ``seed`` fixes it (the global Torch RNG is untouched)."""
        data = self._validate(adata)
        total = 0.0
        with seeded(seed, self.device), evaluating(self.module):
            for mb in data.minibatches(batch_size=batch_size, device=self.device):
                total += self.module(mb["x"], mb["batch_index"], mb["labels"]).elbo.sum().item()
        return total / data.n_cells

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Save weights, init arguments, categories, gene names and history to ``path/model.pt``."""
        os.makedirs(path, exist_ok=True)
        file = os.path.join(path, _FILE)
        if os.path.exists(file) and not overwrite:
            raise ValueError(f"{file} exists: pass overwrite=True to replace it")
        functions = [k for k, v in self.model_options.items() if callable(v)]
        if functions:
            raise ValueError(
                f"model options {functions} are functions, which cannot be saved: give them by "
                "name (e.g. var_activation='exp')"
            )
        state = {
            "state_dict": {k: v.cpu() for k, v in self.module.state_dict().items()},
            "module_kwargs": _plain(self._module_kwargs),
            "model_options": _plain(self.model_options),
            "keys": {
                "batch_key": self.batch_key,
                "labels_key": self.labels_key,
                "layer": self.layer,
            },
            "batch_categories": _plain(self.batch_categories),
            "label_categories": _plain(self.label_categories),
            "var_names": [str(v) for v in self.var_names],
            "is_trained": self.is_trained,
            "history": None
            if self.history is None
            else _plain(self.history.reset_index().to_dict("list")),
        }
        torch.save(state, file)

    @classmethod
    def load(cls, path: str | os.PathLike, adata: ad.AnnData) -> SCVI:
        """Rebuild a saved model on ``adata`` (same genes; batches among the saved categories).

        The library prior (latent library) is the saved one, not recomputed from ``adata``.
        """
        file = os.path.join(path, _FILE)
        if not os.path.exists(file):
            raise ValueError(f"no saved model at {file}")
        state = torch.load(file, map_location="cpu", weights_only=True)
        model = cls.__new__(cls)
        model.adata = adata
        model.batch_key = state["keys"]["batch_key"]
        model.labels_key = state["keys"]["labels_key"]
        model.layer = state["keys"]["layer"]
        model.batch_categories = state["batch_categories"]
        model.label_categories = state["label_categories"]
        model.var_names = state["var_names"]
        model.model_options = state["model_options"]
        model._module_kwargs = state["module_kwargs"]
        model._data = model._validate(adata)
        model.module = VAE(**model._module_kwargs)
        model.module.load_state_dict(state["state_dict"])
        model.module.eval()
        model.is_trained = state["is_trained"]
        hist = state["history"]
        model.history = None if hist is None else pd.DataFrame(hist).set_index("epoch")
        model.train_indices = model.validation_indices = None
        return model
