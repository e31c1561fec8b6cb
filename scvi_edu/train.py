"""The training loop: maximise the average ELBO of eq. (70) by minibatch stochastic gradients.

eq. (70) is max (1/N) sum_n L(x_n); a minibatch of B cells gives the unbiased estimate
(1/B) sum_{n in batch} L(x_n), and Adam (Kingma & Ba) follows its gradient. Everything else is
engineering the tutorial does not discuss, chosen as in scvi-tools:

* **KL warm-up.** The KL of z is multiplied by a weight that grows linearly from 0 to 1 over
  the first ``kl_warmup_fraction`` of the *training steps* (or over ``n_epochs_kl_warmup``
  epochs, which must not exceed ``max_epochs``). The weight reaches 1 within the run, so the
  final epochs optimise the true ELBO. (scvi-tools warms up over 400 epochs while its default
  number of epochs drops below 400 above 20k cells: there the objective never becomes the ELBO.)
* **Validation ELBO and early stopping.** A seeded split keeps ``1 - train_size`` of the cells
  out; their ELBO (eval mode, no dropout) is recorded every epoch, and with ``early_stopping``
  training stops after ``patience`` epochs without improvement, counted only once the warm-up
  is over (before that the objective is not yet the ELBO).
* **BatchNorm and a minibatch of one cell.** A last minibatch of a single cell is dropped (in
  training mode BatchNorm cannot normalise one cell); with shuffling, the cell dropped changes
  every epoch.
* **NaN.** Training never ends with NaN silently: a non-finite loss, parameters made
  non-finite by a non-finite gradient (checked after every epoch) or a non-finite validation
  ELBO (eval mode) stop training with a ``NonFiniteLossError`` whose message says what was
  found (learning rate, library sizes, exploded encoder outputs, batch sizes).
* **Seeding.** ``seed`` fixes the split, the shuffling, dropout and the reparameterisation
  noise, inside a forked RNG (the caller's global Torch RNG is untouched): same seed, same
  initial module => identical parameters.

The loss is reported per cell and per cell per gene (divide by the number of genes), which is
comparable across datasets.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .data import CountData, split_indices

__all__ = ["train", "NonFiniteLossError", "kl_weight_schedule"]

_METRICS = ("elbo", "reconstruction_loss", "kl_z", "kl_l")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite during training."""


def kl_weight_schedule(step: int, n_warmup_steps: int) -> float:
    """Linear KL warm-up: step / n_warmup_steps, capped at 1 (1 throughout if no warm-up)."""
    if n_warmup_steps <= 0:
        return 1.0
    return min(1.0, step / n_warmup_steps)


def _nan_report(
    module,
    data: CountData,
    mb: dict,
    lr: float,
    epoch: int,
    step: int,
    kl_weight: float,
    what: str = "the loss became non-finite",
) -> str:
    """A message naming what is probably behind a non-finite loss (DESIGN: 'NaN losses')."""
    found = []
    bad_params = [n for n, p in module.named_parameters() if not torch.isfinite(p).all()]
    if bad_params:
        found.append(f"non-finite parameters after the previous update: {bad_params[:5]}")
    if lr > 1e-2:
        found.append(f"the learning rate {lr:g} is high (scvi-tools uses 1e-3): lower it")
    totals = np.asarray(data.X.sum(axis=1)).reshape(-1)
    if totals.min() < 10:
        found.append(
            f"{int((totals < 10).sum())} cells have fewer than 10 counts (min {totals.min():g}): "
            "filter low-count cells (scanpy.pp.filter_cells(adata, min_counts=...))"
        )
    if totals.max() > 1e6:
        found.append(
            f"a cell has {totals.max():.3g} total counts: are these raw counts? (normalized or "
            "scaled-up data can look integer)"
        )
    per_batch = np.bincount(data.batch_codes, minlength=data.n_batch)
    if per_batch.min() < 2:
        found.append(
            f"batch categories with a single cell: {np.flatnonzero(per_batch < 2).tolist()}"
        )
    try:
        with torch.no_grad():
            out = module.inference(mb["x"], mb["batch_index"])
        for key in ("qz_loc", "qz_scale", "ql_loc", "ql_scale", "library"):
            v = out.get(key)
            if v is None:
                continue
            if not torch.isfinite(v).all():
                found.append(f"the encoder output {key} is non-finite")
            elif key in ("ql_loc", "library") and v.abs().max() > 20:
                found.append(
                    f"the latent log library exploded ({key} reaches {v.abs().max().item():.3g}; "
                    "exp overflows above ~88 in float32): lower lr or use the observed library"
                )
            elif key == "qz_loc" and v.abs().max() > 1e3:
                found.append(f"the latent z exploded (|qz_loc| up to {v.abs().max().item():.3g})")
    except Exception as err:  # the diagnosis must not hide the original problem
        found.append(f"the encoder itself fails on this minibatch: {err}")
    causes = (
        "Likely causes, in scvi-tools' experience: normalized or log-transformed data instead of "
        "raw counts; cells with very few counts; a learning rate that is too high; a latent "
        "library size that explodes early in training; a batch with a single cell (BatchNorm)."
    )
    found_text = "; ".join(found) if found else "no specific cause detected"
    return (
        f"{what} at epoch {epoch}, step {step} (kl_weight {kl_weight:.3g}). "
        f"Found: {found_text}. {causes}"
    )


def _evaluate(module, data: CountData, indices: np.ndarray, batch_size: int, device) -> dict:
    """Per-cell averages of the ELBO and its terms on ``indices`` (eval mode, no gradients)."""
    sums = dict.fromkeys(_METRICS, 0.0)
    was_training = module.training
    module.eval()
    with torch.no_grad():
        for mb in data.minibatches(indices, batch_size=max(batch_size, 512), device=device):
            out = module(mb["x"], mb["batch_index"], mb["labels"], kl_weight=1.0)
            for key in _METRICS:
                sums[key] += getattr(out, key).sum().item()
    module.train(was_training)
    return {k: v / len(indices) for k, v in sums.items()}


def train(
    module: torch.nn.Module,
    data: CountData,
    max_epochs: int,
    lr: float = 1e-3,
    batch_size: int = 128,
    weight_decay: float = 1e-6,
    eps: float = 0.01,
    kl_warmup_fraction: float = 0.25,
    n_epochs_kl_warmup: int | None = None,
    train_size: float = 0.9,
    train_indices: np.ndarray | None = None,
    validation_indices: np.ndarray | None = None,
    early_stopping: bool = False,
    patience: int = 45,
    min_delta: float = 0.0,
    seed: int | None = None,
    progress_bar: bool = True,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """Train ``module`` (a ``VAE``) on ``data`` with Adam; return the per-epoch history.

    Parameters
    ----------
    max_epochs
        Number of passes over the training cells (the budget; early stopping may end sooner).
    lr, weight_decay, eps
        Adam's learning rate, L2 weight decay (the tutorial's "l2 norm of weights", text after
        (59)) and epsilon (scvi-tools: 1e-3, 1e-6, 0.01).
    kl_warmup_fraction, n_epochs_kl_warmup
        KL warm-up over this fraction of all training steps, or over this many epochs
        (<= max_epochs). Either way the weight is 1 before the run ends.
    train_size, train_indices, validation_indices
        The split: given indices, or a random ``train_size`` fraction (seeded by ``seed``).
    early_stopping, patience, min_delta
        Stop when the validation ELBO (the training ELBO without validation cells) has not
        improved by ``min_delta`` for ``patience`` epochs after the warm-up.
    seed
        Makes the run reproducible (see module docstring). ``None``: draws from the global
        Torch RNG, so ``torch.manual_seed`` beforehand also makes it reproducible.

    Returns
    -------
    DataFrame indexed by epoch: ``kl_weight``, ``train_loss`` (the optimised objective per
    cell), ``train_elbo``, ``train_reconstruction_loss``, ``train_kl_z``, ``train_kl_l``
    (averaged over the epoch's minibatches in training mode), the same four with the
    ``validation_`` prefix (NaN without validation cells), and ``*_elbo_per_gene``.
    """
    if int(max_epochs) != max_epochs or max_epochs < 1:
        raise ValueError(f"max_epochs must be a positive integer, got {max_epochs!r}")
    if not lr > 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (BatchNorm), got {batch_size}")
    if not 0.0 <= kl_warmup_fraction <= 1.0:
        raise ValueError(f"kl_warmup_fraction must be in [0, 1], got {kl_warmup_fraction}")
    if n_epochs_kl_warmup is not None and not 0 <= n_epochs_kl_warmup <= max_epochs:
        raise ValueError(
            f"n_epochs_kl_warmup={n_epochs_kl_warmup} must be in [0, max_epochs={max_epochs}]: "
            "otherwise the KL weight never reaches 1 and the objective is never the ELBO"
        )
    if patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    max_epochs = int(max_epochs)
    device = torch.device(device)
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        return _train(
            module, data, max_epochs, lr, batch_size, weight_decay, eps, kl_warmup_fraction,
            n_epochs_kl_warmup, train_size, train_indices, validation_indices, early_stopping,
            patience, min_delta, seed, progress_bar, device,
        )  # fmt: skip


def _train(
    module, data, max_epochs, lr, batch_size, weight_decay, eps, kl_warmup_fraction,
    n_epochs_kl_warmup, train_size, train_indices, validation_indices, early_stopping, patience,
    min_delta, seed, progress_bar, device,
) -> pd.DataFrame:  # fmt: skip
    rng = np.random.default_rng(seed)
    if train_indices is None:
        train_indices, validation_indices = split_indices(data.n_cells, train_size, seed)
    train_indices = np.asarray(train_indices, dtype=np.int64)
    validation_indices = np.asarray(
        validation_indices if validation_indices is not None else [], dtype=np.int64
    )
    if len(train_indices) < 2:
        raise ValueError(f"{len(train_indices)} training cells: BatchNorm needs at least 2")

    n_train = len(train_indices)
    steps_per_epoch = n_train // batch_size + (n_train % batch_size > 1)
    if n_epochs_kl_warmup is not None:
        n_warmup_steps = n_epochs_kl_warmup * steps_per_epoch
    else:
        n_warmup_steps = round(kl_warmup_fraction * max_epochs * steps_per_epoch)

    module.to(device)
    params = [p for p in module.parameters() if p.requires_grad]
    try:  # the fused kernel (one pass over all parameters) where this torch has it
        optimizer = torch.optim.Adam(params, lr=lr, eps=eps, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):
        optimizer = torch.optim.Adam(params, lr=lr, eps=eps, weight_decay=weight_decay)
    module.validate_input = False  # CountData validated every count once
    try:
        return _fit(module, data, optimizer, params, train_indices, validation_indices, rng,
                    max_epochs, batch_size, n_warmup_steps, lr, early_stopping, patience,
                    min_delta, progress_bar, device)  # fmt: skip
    finally:
        module.validate_input = True
        module.eval()


def _fit(module, data, optimizer, params, train_indices, validation_indices, rng, max_epochs,
         batch_size, n_warmup_steps, lr, early_stopping, patience, min_delta, progress_bar,
         device) -> pd.DataFrame:  # fmt: skip
    """The epoch loop of :func:`train` (minibatch steps, validation, early stopping)."""
    n_genes = data.n_genes
    rows, step = [], 0
    best, best_epoch = -math.inf, 0
    pbar = tqdm(range(max_epochs), desc="Training", disable=not progress_bar, leave=True)
    for epoch in pbar:
        module.train()
        sums = dict.fromkeys(("loss", *_METRICS), 0.0)
        n_seen = 0
        for mb in data.minibatches(
            train_indices, batch_size, shuffle=True, rng=rng, drop_singleton=True, device=device
        ):
            kl_weight = kl_weight_schedule(step, n_warmup_steps)
            out = module(mb["x"], mb["batch_index"], mb["labels"], kl_weight=kl_weight)
            if not torch.isfinite(out.loss):
                raise NonFiniteLossError(_nan_report(module, data, mb, lr, epoch, step, kl_weight))
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            step += 1
            last_mb = mb
            n = mb["x"].shape[0]
            n_seen += n
            sums["loss"] += out.loss.item() * n
            for key in _METRICS:
                sums[key] += getattr(out, key).detach().sum().item()
        if not all(torch.isfinite(p).all() for p in params):
            # a NaN/inf gradient with a finite loss: Adam wrote it into the weights
            raise NonFiniteLossError(
                _nan_report(module, data, last_mb, lr, epoch, step, kl_weight,
                            "the parameters became non-finite (a non-finite gradient) although "
                            "the loss stayed finite")
            )  # fmt: skip
        row = {"epoch": epoch, "kl_weight": kl_weight_schedule(step, n_warmup_steps)}
        row["train_loss"] = sums["loss"] / n_seen
        for key in _METRICS:
            row[f"train_{key}"] = sums[key] / n_seen
        if len(validation_indices):
            val = _evaluate(module, data, validation_indices, batch_size, device)
            if not all(math.isfinite(v) for v in val.values()):
                bad = [k for k, v in val.items() if not math.isfinite(v)]
                raise NonFiniteLossError(
                    _nan_report(module, data, last_mb, lr, epoch, step, kl_weight,
                                f"the validation {bad} (eval mode: BatchNorm's running "
                                "statistics, no dropout) became non-finite")
                )  # fmt: skip
            for key in _METRICS:
                row[f"validation_{key}"] = val[key]
        else:
            for key in _METRICS:
                row[f"validation_{key}"] = math.nan
        row["train_elbo_per_gene"] = row["train_elbo"] / n_genes
        row["validation_elbo_per_gene"] = row["validation_elbo"] / n_genes
        rows.append(row)
        pbar.set_postfix(elbo=f"{row['train_elbo']:.1f}", val=f"{row['validation_elbo']:.1f}")

        if early_stopping:
            monitored = row["validation_elbo"] if len(validation_indices) else row["train_elbo"]
            if step < n_warmup_steps:  # the objective is not the ELBO yet: do not count
                best, best_epoch = -math.inf, epoch
            elif monitored > best + min_delta:
                best, best_epoch = monitored, epoch
            elif epoch - best_epoch >= patience:
                break
    pbar.close()
    return pd.DataFrame(rows).set_index("epoch")
