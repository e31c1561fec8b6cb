"""The training loop: maximise the average ELBO of eq. (70) by minibatch stochastic gradients.

eq. (70) is max (1/N) sum_n L(x_n); a minibatch of B cells gives the unbiased estimate
(1/B) sum_{n in batch} L(x_n), and Adam (Kingma & Ba) follows its gradient. ``train`` is the
whole loop. The engineering the tutorial does not discuss (KL warm-up, validation ELBO and early
stopping, the minibatch of one cell, NaN diagnosis, seeding; chosen as in scvi-tools) is
explained in ``TrainConfig``, below the loop, with the helpers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .allocator import keep_freed_memory
from .context import evaluating, seeded
from .data import CountData, check_indices, split_indices
from .nn import recompute_batchnorm_statistics
from .optim import Adam

__all__ = ["train", "TrainConfig", "NonFiniteLossError", "kl_weight_schedule"]

_METRICS = ("elbo", "reconstruction_loss", "kl_z", "kl_l")


def train(module, data: CountData, config=None, *, train_indices=None, validation_indices=None,
          **options) -> pd.DataFrame:  # fmt: skip
    """Train ``module`` (a ``VAE``) on ``data`` with Adam; return the per-epoch history.

    ``config`` is a :class:`TrainConfig`, or give its fields as keywords
    (``train(module, data, max_epochs=20, lr=5e-3, seed=0)``). The split is ``train_indices``
    (and ``validation_indices``, default none), or a random ``train_size`` fraction seeded by
    ``seed``.

    Returns a DataFrame indexed by epoch: ``kl_weight`` (the weight of the epoch's *last* step),
    ``train_loss`` (the optimised objective per cell), ``train_elbo``,
    ``train_reconstruction_loss``, ``train_kl_z``, ``train_kl_l`` (averaged over the epoch's
    minibatches in training mode), the same four with the ``validation_`` prefix (eval mode; NaN
    without validation cells), and ``*_elbo_per_gene`` (the ELBO divided by the number of genes,
    comparable across datasets).
    """
    cfg = _make_config(config, options)
    with seeded(cfg.seed, cfg.device) as seed:
        train_idx, val_idx = _split(data, cfg, seed, train_indices, validation_indices)
        rng = np.random.default_rng(seed)  # shuffles the cells every epoch
        n_train = len(train_idx)
        steps_per_epoch = n_train // cfg.batch_size + (n_train % cfg.batch_size > 1)
        n_warmup_steps = cfg.n_warmup_steps(steps_per_epoch)
        module.to(cfg.device)
        params = [p for p in module.parameters() if p.requires_grad]
        # scvi_edu.optim.Adam: torch's fused Adam kernel; torch.optim imports torch._dynamo (~1.2 s)
        optimizer = Adam(params, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay)
        keep_freed_memory()  # malloc keeps a step's temporaries (scvi_edu/allocator.py says why)
        rows, step = [], 0
        best, best_epoch = -math.inf, 0
        validate_input, module.validate_input = module.validate_input, False  # counts checked once
        pbar = tqdm(range(cfg.max_epochs), desc="Training", disable=not cfg.progress_bar)
        try:
            for epoch in pbar:
                module.train()
                sums, n_seen = dict.fromkeys(("loss", *_METRICS), 0.0), 0
                for mb in data.minibatches(train_idx, cfg.batch_size, shuffle=True, rng=rng,
                                           drop_singleton=True, device=cfg.device):  # fmt: skip
                    kl_weight = kl_weight_schedule(step, n_warmup_steps)
                    out = module(mb["x"], mb["batch_index"], mb["labels"], kl_weight=kl_weight)
                    if not torch.isfinite(out.loss):
                        raise NonFiniteLossError(_nan_report(module, data, mb, cfg.lr, epoch,
                                                             step, kl_weight))  # fmt: skip
                    optimizer.zero_grad(set_to_none=True)
                    out.loss.backward()
                    optimizer.step()
                    step += 1
                    n_seen += len(mb["x"])
                    sums["loss"] += out.loss.item() * len(mb["x"])
                    for key in _METRICS:
                        sums[key] += getattr(out, key).detach().sum().item()
                _check_parameters(module, data, mb, cfg.lr, epoch, step, kl_weight)
                val = _evaluate(module, data, val_idx, cfg.batch_size, cfg.device)
                if len(val_idx):
                    _check_validation(val, module, data, mb, cfg.lr, epoch, step, kl_weight)
                row = {"epoch": epoch, "kl_weight": kl_weight, "train_loss": sums["loss"] / n_seen}
                row |= {f"train_{key}": sums[key] / n_seen for key in _METRICS}
                row |= {f"validation_{key}": val[key] for key in _METRICS}
                row["train_elbo_per_gene"] = row["train_elbo"] / data.n_genes
                row["validation_elbo_per_gene"] = row["validation_elbo"] / data.n_genes
                rows.append(row)
                pbar.set_postfix(elbo=f"{row['train_elbo']:.1f}", val=f"{val['elbo']:.1f}")

                if cfg.early_stopping:
                    monitored = row["validation_elbo"] if len(val_idx) else row["train_elbo"]
                    if step < n_warmup_steps:  # the objective is not the ELBO yet: do not count
                        best, best_epoch = -math.inf, epoch
                    elif monitored > best + cfg.min_delta:
                        best, best_epoch = monitored, epoch
                    elif epoch - best_epoch >= cfg.patience:
                        break
            if cfg.recompute_batchnorm:  # eval-mode statistics of the final weights (see below)
                batches = data.minibatches(train_idx, cfg.batch_size, device=cfg.device)
                recompute_batchnorm_statistics(
                    module, ((mb["x"], mb["batch_index"], mb["labels"]) for mb in batches)
                )
        finally:
            pbar.close()
            module.validate_input = validate_input
            module.eval()
    return pd.DataFrame(rows).set_index("epoch")


def kl_weight_schedule(step: int, n_warmup_steps: int) -> float:
    """Linear KL warm-up: step / n_warmup_steps, capped at 1 (1 throughout if no warm-up).

    ``step`` counts the optimiser steps from 0: the first step optimises the reconstruction
    term alone, and the weight reaches 1 at step ``n_warmup_steps``.
    """
    # TASK 5.1 begin
    if n_warmup_steps <= 0:
        return 1.0
    return min(1.0, step / n_warmup_steps)
    # TASK 5.1 end


@dataclass
class TrainConfig:
    """Every setting of :func:`train` (scvi-tools' names and defaults).

    max_epochs
        Number of passes over the training cells (the budget; early stopping may end sooner).
    lr, weight_decay, eps
        Adam's learning rate, L2 weight decay (the tutorial's "l2 norm of weights", text after
        (59)) and epsilon (scvi-tools: 1e-3, 1e-6, 0.01).
    batch_size
        Cells per minibatch. A last minibatch of a single cell is dropped (in training mode
        BatchNorm cannot normalise one cell); with shuffling, the cell dropped changes every
        epoch.
    kl_warmup_fraction, n_epochs_kl_warmup
        **KL warm-up.** The KL of z is multiplied by a weight that grows linearly from 0 to 1
        over this fraction of all training steps, or over this many epochs (<= max_epochs):
        ``kl_weight_schedule(step, n_warmup_steps)``. With a warm-up shorter than the run, the
        final epochs optimise the true ELBO (weight 1); a warm-up over the whole run ends one
        step short of 1. (scvi-tools warms up over 400 epochs while its default number of epochs
        drops below 400 above 20k cells: there the objective never becomes the ELBO.)
    train_size
        Fraction of the cells trained on when no split is given; the others are held out and
        their ELBO (eval mode, no dropout) is recorded every epoch.
    early_stopping, patience, min_delta
        Stop when the validation ELBO (the training ELBO without validation cells) has not
        improved by ``min_delta`` for ``patience`` epochs, counted only once the warm-up is over
        (before that the objective is not yet the ELBO).
    seed
        Fixes the split, the shuffling, dropout and the reparameterisation noise, inside a
        forked RNG (``scvi_edu.context.seeded``: the caller's global Torch RNG is untouched):
        same seed, same initial module => identical parameters. ``None``: a seed drawn from the
        global Torch RNG, so ``torch.manual_seed`` beforehand also makes the run reproducible.
    recompute_batchnorm
        **BatchNorm's eval-mode statistics.** In training mode BatchNorm normalises with the
        minibatch's statistics; in eval mode (every query after training) with running averages
        updated at momentum 0.01, which after a short run still carry the initial values and
        trail the changing weights (chapter 5 measures the log library overshooting by 0.7 nats
        at 40 epochs). With ``True`` (default) the statistics are recomputed from the training
        cells with the final weights once training ends
        (``scvi_edu.nn.recompute_batchnorm_statistics``); the history's last validation row was
        computed before. scvi-tools does not do this; ``False`` keeps its behaviour.
    progress_bar, device
        A tqdm bar per epoch; the device trained on.

    **What training changes in the process** (nothing else): before the first step it calls
    ``scvi_edu.allocator.keep_freed_memory()``, which lets glibc's malloc keep up to 64 MiB of
    a step's freed temporaries instead of returning them to the kernel (a step would otherwise
    cost thousands of page faults in a process that never held a large array).

    **NaN.** Training never ends with NaN silently: a non-finite loss, parameters made
    non-finite by a non-finite gradient (checked after every epoch) or a non-finite validation
    ELBO stop training with a ``NonFiniteLossError`` whose message says what was found
    (learning rate, library sizes, exploded encoder outputs, batch sizes).
    """

    max_epochs: int
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 1e-6
    eps: float = 0.01
    kl_warmup_fraction: float = 0.25
    n_epochs_kl_warmup: int | None = None
    train_size: float = 0.9
    early_stopping: bool = False
    patience: int = 45
    min_delta: float = 0.0
    seed: int | None = None
    recompute_batchnorm: bool = True
    progress_bar: bool = True
    device: str | torch.device = "cpu"

    def __post_init__(self):
        if int(self.max_epochs) != self.max_epochs or self.max_epochs < 1:
            raise ValueError(f"max_epochs must be a positive integer, got {self.max_epochs!r}")
        self.max_epochs = int(self.max_epochs)
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 2:
            raise ValueError(
                f"batch_size must be an integer >= 2 (BatchNorm), got {self.batch_size}"
            )
        self.batch_size = int(self.batch_size)
        if self.seed is not None and (int(self.seed) != self.seed or self.seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {self.seed!r}")
        if not 0.0 <= self.kl_warmup_fraction <= 1.0:
            raise ValueError(f"kl_warmup_fraction must be in [0, 1], got {self.kl_warmup_fraction}")
        if self.n_epochs_kl_warmup is not None and not 0 <= self.n_epochs_kl_warmup <= (
            self.max_epochs
        ):
            raise ValueError(
                f"n_epochs_kl_warmup={self.n_epochs_kl_warmup} must be in [0, max_epochs="
                f"{self.max_epochs}]: otherwise the KL weight never reaches 1 and the objective "
                "is never the ELBO"
            )
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        self.device = torch.device(self.device)

    def n_warmup_steps(self, steps_per_epoch: int) -> int:
        """The number of optimiser steps of the KL warm-up."""
        if self.n_epochs_kl_warmup is not None:
            return self.n_epochs_kl_warmup * steps_per_epoch
        return round(self.kl_warmup_fraction * self.max_epochs * steps_per_epoch)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite during training."""


# ------------------------------------------------------------------------------ helpers
def _make_config(config: TrainConfig | None, options: dict) -> TrainConfig:
    if config is None:
        return TrainConfig(**options)
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if options:
        raise ValueError(f"give either a TrainConfig or keywords, not both: {sorted(options)}")
    return config


def _split(data: CountData, cfg: TrainConfig, seed: int, train_indices, validation_indices):
    """The training and validation cells: the given ones, or a seeded random split."""
    if train_indices is None:
        if validation_indices is not None:
            raise ValueError("validation_indices needs train_indices (the training cells) too")
        return split_indices(data.n_cells, cfg.train_size, seed)
    train = check_indices(train_indices, data.n_cells, "train_indices")
    validation = check_indices(validation_indices, data.n_cells, "validation_indices")
    if np.intersect1d(train, validation).size:
        raise ValueError("train_indices and validation_indices share cells")
    if len(train) < 2:
        raise ValueError(f"{len(train)} training cells: BatchNorm needs at least 2")
    return train, validation


def _evaluate(module, data: CountData, indices: np.ndarray, batch_size: int, device) -> dict:
    """Per-cell averages of the ELBO and its terms on ``indices`` (eval mode, no gradients);
    NaN without cells."""
    if not len(indices):
        return dict.fromkeys(_METRICS, math.nan)
    sums = dict.fromkeys(_METRICS, 0.0)
    with evaluating(module):
        for mb in data.minibatches(indices, batch_size=max(batch_size, 512), device=device):
            out = module(mb["x"], mb["batch_index"], mb["labels"], kl_weight=1.0)
            for key in _METRICS:
                sums[key] += getattr(out, key).sum().item()
    return {k: v / len(indices) for k, v in sums.items()}


def _check_parameters(module, data, mb, lr, epoch, step, kl_weight) -> None:
    """A NaN/inf gradient with a finite loss: Adam wrote it into the weights."""
    if not all(torch.isfinite(p).all() for p in module.parameters()):
        what = ("the parameters became non-finite (a non-finite gradient) although the loss "
                "stayed finite")  # fmt: skip
        raise NonFiniteLossError(_nan_report(module, data, mb, lr, epoch, step, kl_weight, what))


def _check_validation(val: dict, module, data, mb, lr, epoch, step, kl_weight) -> None:
    """A non-finite validation ELBO (eval mode: BatchNorm's running statistics, no dropout)."""
    bad = [k for k, v in val.items() if not math.isfinite(v)]
    if bad:
        what = (f"the validation {bad} (eval mode: BatchNorm's running statistics, no dropout) "
                "became non-finite")  # fmt: skip
        raise NonFiniteLossError(_nan_report(module, data, mb, lr, epoch, step, kl_weight, what))


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
    """A message naming what is probably behind a non-finite loss, and its usual causes."""
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
