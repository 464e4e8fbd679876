"""The training loop: one loop for every recipe, with progress, atomic checkpoints, exact resume and history.

    >>> from gpsviz.config import TrainConfig
    >>> from gpsviz.train import train
    >>> run = train(TrainConfig(recipe="simclr", epochs=5), "runs/simclr")
    >>> run.history[-1]["knn_acc"]

Each step: anchors (a seeded permutation per epoch) → the positive source's view plan → the view maker's batch
(views by size + augmentation parameters) → :func:`gpsviz.step.ssl_step` (heads, objective, weighting) →
optimiser step → EMA teacher → callbacks. The loop knows nothing about methods (see :mod:`gpsviz.recipes`).

Randomness comes from one ``torch.Generator`` (anchor order, partners, augmentation parameters) whose state is
saved in each checkpoint, so a resumed run ends with exactly the weights of an uninterrupted one on CPU.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from gpsviz import distributed as D
from gpsviz.batch import Batch
from gpsviz.callbacks import Callback, LambdaCallback
from gpsviz.checkpoint import dataset_digest, load_checkpoint, load_state, nonfinite_entries, restore, save_checkpoint
from gpsviz.config import TrainConfig
from gpsviz.data import load_splits
from gpsviz.errors import ConfigError, GpsvizError
from gpsviz.evaluate import knn_accuracy
from gpsviz.features import extract, extract_features
from gpsviz.hardware import autocast, pick_layout, resolve_precision
from gpsviz.models.ssl import SSLModel, cosine_momentum
from gpsviz.optim import build_optimizer, lr_at, lr_with_restart, param_groups
from gpsviz.provenance import Session, machine
from gpsviz.recipes import build_ingredients
from gpsviz.runfolder import history_csv, repair_history, run_folder
from gpsviz.step import ssl_step
from gpsviz.utils import atomic_write_bytes, atomic_write_json, resolve_device

__all__ = ["train", "Run", "TrainingDiverged", "HISTORY_FIELDS"]

HISTORY_FIELDS = ("epoch", "loss", "lr", "knn_acc", "epoch_time", "aug_time")


class TrainingDiverged(GpsvizError):
    """The loss, a weight or a BatchNorm statistic became NaN/inf; the last good checkpoint (if any) is kept."""


#: Fields of a config that do not change what a run computes: a run may be resumed with other values of them.
RESUMABLE_FIELDS = ("device",)


@dataclass
class Run:
    """A finished (or resumed) run: its folder, config, model and per-epoch history."""

    out_dir: Path
    config: TrainConfig
    model: SSLModel
    history: list[dict[str, float]]

    def history_frame(self):
        """History as a pandas DataFrame when pandas is installed, else the list of dicts."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover
            return self.history
        return pd.DataFrame(self.history)


def _write_history(out_dir: Path, history: list[dict[str, float]]) -> None:
    atomic_write_bytes(out_dir / "history.csv", history_csv(history, HISTORY_FIELDS))


def _online_knn(model: SSLModel, train_ds, test_ds, cfg: TrainConfig, device: torch.device) -> float:
    if not (train_ds.labelled and test_ds.labelled):
        return float("nan")                  # unlabelled images: no kNN accuracy to monitor
    g = torch.Generator().manual_seed(1234)  # fixed subsets: comparable across epochs, no effect on training RNG
    tr = train_ds.subset(torch.randperm(len(train_ds), generator=g)[: max(cfg.eval_size, 5 * cfg.knn_k)])
    te = test_ds.subset(torch.randperm(len(test_ds), generator=g)[: cfg.eval_size // 2])
    return knn_accuracy(extract(model.backbone, tr, device), extract(model.backbone, te, device), k=cfg.knn_k)


class _StepModule(nn.Module):
    """The shared step as a module, so DistributedDataParallel sees one forward per step."""

    def __init__(self, model: SSLModel, objective: Any, weighting: Any) -> None:
        super().__init__()
        self.model, self.objective, self.weighting = model, objective, weighting

    def forward(self, batch: Batch) -> dict[str, Any]:
        return ssl_step(self.model, batch, self.objective, self.weighting)


class _Loop:
    """The state of one training run, split into the three parts of an epoch: making batches, optimising, and
    the end of the epoch (online kNN, checkpoint, history, callbacks)."""

    def __init__(self, cfg: TrainConfig, out_dir: Path, data: tuple[Any, Any], callbacks: list[Callback]) -> None:
        self.cfg, self.out_dir, self.callbacks = cfg, out_dir, callbacks
        self.train_ds, self.test_ds = data
        self.device = resolve_device(D.setup(cfg.device))
        if cfg.batch_size > len(self.train_ds):
            raise ConfigError(f"batch_size={cfg.batch_size} is larger than the training data ({len(self.train_ds)} "
                              f"images); use --batch-size ≤ {len(self.train_ds)}")
        self.dtype = resolve_precision(cfg.precision, self.device)
        self.channels_last = pick_layout(self.device, self.dtype, cfg.channels_last)
        torch.manual_seed(cfg.seed)  # model initialisation
        parts = build_ingredients(cfg, self.train_ds.channels, self.train_ds.image_size)
        self.model = parts.model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if cfg.sync_bn or (cfg.sync_bn is None and D.is_distributed() and self.device.type == "cuda"):
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.positives, self.views = parts.positives, parts.views
        self.objective, self.weighting = parts.objective, parts.weighting
        self.step_fn: nn.Module = _StepModule(self.model, self.objective, self.weighting)
        if D.is_distributed():
            self.share = D.share(cfg.batch_size)                     # this process's instances of each batch
            self.step_fn = nn.parallel.DistributedDataParallel(self.step_fn)
        self.want_descriptor = bool(self.model.projector.needs_descriptor)
        self.opt = build_optimizer(cfg.optimizer, param_groups(self.model, self.objective.lr_scales()),
                                   cfg.lr, cfg.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0
        cuda = self.device.type == "cuda"
        self.images = self.train_ds.images.to(self.device) if cuda else self.train_ds.images
        self.n_batches = len(self.train_ds) // cfg.batch_size
        self.total_steps = cfg.epochs * self.n_batches
        self.warmup_steps = int(round(cfg.warmup_epochs * self.n_batches))
        self.ckpt_path = out_dir / "checkpoint.pt"
        self.data_digest = dataset_digest(self.train_ds)
        self.provenance = None                                       # a provenance.Session, opened by start()
        self.earlier_provenance = None                               # the restored checkpoint's record

    def start(self, earlier: dict | None) -> None:
        """Open this call's provenance session (``earlier``: the record of the restored checkpoint)."""
        self.provenance = Session(machine(self.device, self.dtype, self.channels_last), earlier, self.start_epoch)

    def diverged(self, what: str, epoch: int) -> TrainingDiverged:
        """The error for a run that became non-finite in ``epoch`` (0-based), saying truthfully what is kept."""
        kept = (f"The last good checkpoint ({self.ckpt_path}, epoch {len(self.history)}) is kept."
                if self.ckpt_path.exists() and self.history else
                "No checkpoint was written (it diverged in its first epoch).")
        return TrainingDiverged(f"{what} at epoch {epoch + 1}; training stopped. {kept} Try a lower --lr (now "
                                f"{self.cfg.lr}) or --weight-decay (now {self.cfg.weight_decay}), or a higher "
                                f"--temperature.")

    # ------------------------------------------------------------------ state
    def restore(self) -> bool:
        """Load the checkpoint; True when the positive source's state was restored too."""
        ck = load_checkpoint(self.ckpt_path)
        saved, now = dict(ck["config"]), self.cfg.to_dict()
        for name in RESUMABLE_FIELDS:
            saved.pop(name, None), now.pop(name, None)
        if saved != now:
            diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            raise ConfigError(f"{self.ckpt_path} was written with a different config ({', '.join(diff[:6])} "
                              f"differ); resume with the same options or use a new --out folder")
        if ck.get("data_digest") not in (None, self.data_digest):
            raise ConfigError(f"{self.ckpt_path} was trained on other data than the {len(self.train_ds)} "
                              f"{self.cfg.data} images given now (their digests differ); resume with the data it "
                              f"was made on, or train into a new --out folder")
        self.earlier_provenance = ck.get("provenance")
        restore(ck, self.ckpt_path, self.model, self.opt, self.gen)
        self.history = list(ck["history"])
        if D.is_main():
            repair_history(self.out_dir, self.history, HISTORY_FIELDS)
        self.start_epoch = int(ck["epoch"])
        if ck.get("positives"):
            load_state(self.positives, ck["positives"], self.ckpt_path, "positives table")
            return True
        return False

    def prepare_positives(self) -> None:
        self.positives.prepare(self.train_ds, generator=None,
                               embed_fn=lambda ds: extract_features(self.model.backbone, ds, device=self.device))

    # ------------------------------------------------------------------ batch making
    def make_batch(self, anchors: torch.Tensor, step: int, epoch: int) -> Batch:
        plan = self.positives.plan(anchors, generator=self.gen)
        batch = self.views(self.images, plan, generator=self.gen, descriptor=self.want_descriptor,
                           instances=self.share if D.is_distributed() else None)
        if self.channels_last:
            batch.views = [v.contiguous(memory_format=torch.channels_last) for v in batch.views]
        batch.plan = batch.plan.to(self.device)
        batch.step, batch.epoch, batch.train_fraction = step, epoch, step / max(1, self.total_steps)
        return batch

    # ------------------------------------------------------------------ optimisation
    def lr_at(self, step: int) -> float:
        """The learning rate of ``step``: warm-up + cosine, restarted where the weighting asks (UOTA's option)."""
        restart = self.weighting.lr_restart()
        if restart is None:
            return lr_at(step, self.total_steps, self.warmup_steps, self.cfg.lr)
        fraction, factor = restart
        return lr_with_restart(step, self.total_steps, self.warmup_steps, self.cfg.lr,
                               int(math.ceil(fraction * self.total_steps)), factor)

    def optimise(self, batch: Batch, lr: float) -> dict[str, Any]:
        for group in self.opt.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        with autocast(self.device, self.dtype):
            out = self.step_fn(batch)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise self.diverged(f"loss became {loss.item()} at step {batch.step + 1}", batch.epoch)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.model.teacher is not None:
            self.model.teacher.update(self.model, cosine_momentum(batch.step + 1, max(1, self.total_steps),
                                                                  self.cfg.momentum_base))
        for cb in self.callbacks:
            cb.on_step(batch, out)
        return out

    # ------------------------------------------------------------------ end of epoch
    def end_epoch(self, row: dict[str, float]) -> None:
        cfg = self.cfg
        if cfg.eval_every and (row["epoch"] % cfg.eval_every == 0 or row["epoch"] == cfg.epochs) and D.is_main():
            row["knn_acc"] = _online_knn(self.model, self.train_ds, self.test_ds, cfg, self.device)
        bad = nonfinite_entries(self.model.state_dict())          # weights and buffers (BatchNorm statistics)
        if bad:
            raise self.diverged(f"{len(bad)} weight/buffer tensor(s) became NaN/inf ({', '.join(bad[:3])}"
                                f"{' …' if len(bad) > 3 else ''})", row["epoch"] - 1)
        self.history.append(row)
        if not D.is_main():                                          # rank 0 alone writes files
            return
        record = self.provenance.record(row["epoch"])
        save_checkpoint(self.ckpt_path, model=self.model, optimizer=self.opt, generator=self.gen,
                        epoch=row["epoch"], history=self.history, config=cfg.to_dict(),
                        in_channels=self.train_ds.channels,
                        positives=self.positives.state_dict(),
                        data_digest=self.data_digest, provenance=record, image_size=self.train_ds.image_size)
        _write_history(self.out_dir, self.history)
        atomic_write_json(self.out_dir / "provenance.json", record)
        for cb in self.callbacks:
            cb.on_epoch(row)

    def run_epoch(self, epoch: int, bar: Any, show: bool) -> dict[str, float]:
        refresh = int(self.positives.refresh_every or 0)
        if refresh and epoch > 0 and epoch % refresh == 0:
            self.prepare_positives()
        self.model.train()
        t0, aug_time, loss_sum = time.perf_counter(), 0.0, torch.zeros((), device=self.device)
        perm = torch.randperm(len(self.train_ds), generator=self.gen)
        bs, lr = self.cfg.batch_size, self.cfg.lr
        for b in range(self.n_batches):
            step = epoch * self.n_batches + b
            lr = self.lr_at(step)
            ta = time.perf_counter()
            batch = self.make_batch(perm[b * bs:(b + 1) * bs], step, epoch)
            aug_time += time.perf_counter() - ta
            loss = D.mean_over_processes(self.optimise(batch, lr)["loss"].detach())
            loss_sum += loss
            bar.update(1)
            if show and b % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}", refresh=False)
        return {"epoch": epoch + 1, "loss": float(loss_sum) / max(1, self.n_batches), "lr": lr,
                "knn_acc": float("nan"), "epoch_time": time.perf_counter() - t0, "aug_time": aug_time}


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, progress: bool = True,
          data: tuple[Any, Any] | None = None, on_epoch: Callable[[dict], None] | None = None,
          callbacks: Iterable[Callback] = (), stop_after: int | None = None) -> Run:
    """Train ``cfg`` into ``out_dir``; with ``resume`` continue from ``out_dir/checkpoint.pt``.

    ``progress``: show the progress bar. ``data`` = (train, held-out) ImageDatasets to use instead of loading
    ``cfg.data``. ``callbacks``: :class:`~gpsviz.callbacks.Callback` objects (``on_step(batch, outputs)``,
    ``on_epoch(row)``); ``on_epoch`` is a shortcut for a plain function. ``stop_after`` stops after that many
    epochs of this call (used to test resume). Returns the :class:`Run`.
    The run folder is validated and locked for the whole run by the writing process (see
    :mod:`gpsviz.runfolder`).
    """
    D.setup(cfg.device)
    out_dir = Path(out_dir).expanduser()
    with run_folder(out_dir, resume=resume) if D.is_main() else contextlib.nullcontext():
        return _train(cfg, out_dir, resume, progress, data, list(callbacks) + (
            [LambdaCallback(on_epoch=on_epoch)] if on_epoch is not None else []), stop_after)


def _train(cfg: TrainConfig, out_dir: Path, resume: bool, progress: bool, data: tuple[Any, Any] | None,
           cbs: list[Callback], stop_after: int | None) -> Run:
    if data is None:
        data = load_splits(cfg.data, cfg.data_options)
    loop = _Loop(cfg, out_dir, data, cbs)
    restored = False
    if resume and D.broadcast_object(loop.ckpt_path.exists()):
        restored = loop.restore()
    elif resume:
        raise ConfigError(f"cannot resume: {loop.ckpt_path} does not exist")
    if D.is_main():
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "config.json", cfg.to_dict())
    if not restored:
        loop.prepare_positives()
    loop.start(loop.earlier_provenance)

    # One bar for the whole run, kept on screen (a bar closed mid-run breaks its widget in served notebooks).
    bar = tqdm(total=loop.total_steps, initial=loop.start_epoch * loop.n_batches, desc=cfg.recipe,
               disable=not (progress and D.is_main()), unit="step", leave=True)
    done = 0
    for epoch in range(loop.start_epoch, cfg.epochs):
        bar.set_description(f"{cfg.recipe} epoch {epoch + 1}/{cfg.epochs}")
        row = loop.run_epoch(epoch, bar, progress)
        loop.end_epoch(row)
        if progress:
            knn = "" if math.isnan(row["knn_acc"]) else f"{row['knn_acc']:.3f}"
            bar.set_postfix(loss=f"{row['loss']:.3f}", knn=knn, refresh=True)
        done += 1
        if stop_after is not None and done >= stop_after:
            break
    bar.close()
    D.barrier()                                                      # rank 0's last files are written
    return Run(out_dir=out_dir, config=cfg, model=loop.model, history=loop.history)

