"""The training loop: one loop for every recipe, with progress, atomic checkpoints, exact resume and history.

    >>> from gpsviz.recipes import TrainConfig
    >>> from gpsviz.train import train
    >>> run = train(TrainConfig(recipe="simclr", epochs=5), "runs/simclr")
    >>> run.history[-1]["knn_acc"]

Randomness comes from one ``torch.Generator`` (anchor order, partners, augmentation parameters) whose state is
saved in each checkpoint, so a resumed run ends with exactly the weights of an uninterrupted one on CPU.
"""
from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from gpsviz.checkpoint import load_checkpoint, load_state, restore, save_checkpoint
from gpsviz.errors import ConfigError, GpsvizError
from gpsviz.recipes import SSLModel, TrainConfig, get_recipe
from gpsviz.runfolder import repair_history, run_folder
from gpsviz.utils import atomic_write_bytes, atomic_write_json, resolve_device

HISTORY_FIELDS = ("epoch", "loss", "lr", "knn_acc", "epoch_time", "aug_time")


class TrainingDiverged(GpsvizError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


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
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(history)
    atomic_write_bytes(out_dir / "history.csv", buf.getvalue().encode())


def train_or_resume(cfg: TrainConfig, name: str, root: str | Path | None = None, **kw: Any) -> Run:
    """Train ``cfg`` in ``<data>/runs/<name>-<config key>``, continuing that folder's run when it exists.

    The folder is keyed by the whole config, so changing a parameter starts a new run instead of clashing with
    an old checkpoint; re-running a notebook cell with the same parameters continues (or just reloads) it."""
    from gpsviz.utils import data_root

    out = data_root(root) / "runs" / f"{name}-{cfg.key()}"
    return train(cfg, out, resume=(out / "checkpoint.pt").exists(), **kw)


def load_data(cfg: TrainConfig):
    """(train, held-out) datasets of a config; the held-out split only feeds the online kNN monitor."""
    from gpsviz.data import load_dataset

    return load_dataset(cfg.data, "train", **cfg.data_options), load_dataset(cfg.data, "test", **cfg.data_options)


def _online_knn(model: SSLModel, train_ds, test_ds, cfg: TrainConfig, device: torch.device) -> float:
    from gpsviz.evaluate import extract, knn_accuracy

    g = torch.Generator().manual_seed(1234)  # fixed subsets: comparable across epochs, no effect on training RNG
    tr = train_ds.subset(torch.randperm(len(train_ds), generator=g)[: max(cfg.eval_size, 5 * cfg.knn_k)])
    te = test_ds.subset(torch.randperm(len(test_ds), generator=g)[: cfg.eval_size // 2])
    return knn_accuracy(extract(model.backbone, tr, device), extract(model.backbone, te, device), k=cfg.knn_k)


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, progress: bool = True,
          data: tuple[Any, Any] | None = None, on_epoch: Callable[[dict], None] | None = None,
          stop_after: int | None = None) -> Run:
    """Train ``cfg`` into ``out_dir``; with ``resume`` continue from ``out_dir/checkpoint.pt``.

    ``data`` = (train, held-out) ImageDatasets to use instead of loading ``cfg.data``; ``stop_after`` stops
    after that many epochs of this call (used to test resume). Returns the :class:`Run`.
    The run folder is validated and locked for the whole run (see :mod:`gpsviz.runfolder`).
    """
    with run_folder(out_dir, resume=resume):
        return _train(cfg, out_dir, resume, progress, data, on_epoch, stop_after)


def _train(cfg: TrainConfig, out_dir: str | Path, resume: bool, progress: bool, data: tuple[Any, Any] | None,
           on_epoch: Callable[[dict], None] | None, stop_after: int | None) -> Run:
    from gpsviz.augment import Augmenter
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    recipe = get_recipe(cfg.recipe)
    device = resolve_device(cfg.device)
    train_ds, test_ds = data if data is not None else load_data(cfg)
    if cfg.batch_size > len(train_ds):
        raise ConfigError(f"batch_size={cfg.batch_size} is larger than the training data ({len(train_ds)} images); "
                          f"use --batch-size ≤ {len(train_ds)}")

    torch.manual_seed(cfg.seed)  # model initialisation
    model = recipe.build_model(cfg, train_ds.channels).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    from gpsviz.optim import build_optimizer, lr_at

    opt = build_optimizer(cfg.optimizer, params, cfg.lr, cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and cfg.amp)
    gen = torch.Generator().manual_seed(cfg.seed)
    augment = Augmenter(cfg.aug, strength=cfg.strength)
    positives = recipe.build_positives(cfg)
    history: list[dict[str, float]] = []
    start_epoch = 0
    positives_restored = False

    ckpt_path = out_dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        if ck["config"] != cfg.to_dict():
            raise ConfigError(f"{ckpt_path} was written with a different config; resume with the same options "
                              f"or use a new --out folder")
        restore(ck, ckpt_path, model, opt, gen)
        history = list(ck["history"])
        repair_history(out_dir, history, HISTORY_FIELDS)
        start_epoch = int(ck["epoch"])
        if ck.get("positives") and hasattr(positives, "load_state_dict"):
            load_state(positives, ck["positives"], ckpt_path, "positives table")
            positives_restored = True
    elif resume:
        raise ConfigError(f"cannot resume: {ckpt_path} does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "config.json", cfg.to_dict())

    images = train_ds.images.to(device) if cuda else train_ds.images
    n_batches = len(train_ds) // cfg.batch_size
    total_steps = cfg.epochs * n_batches
    warmup_steps = int(round(cfg.warmup_epochs * n_batches))

    def embed_fn(ds):
        from gpsviz.evaluate import extract_features
        return extract_features(model.backbone, ds, device=device)

    refresh = int(getattr(positives, "refresh_every", 0) or 0)
    if not positives_restored:
        positives.prepare(train_ds, generator=None, embed_fn=embed_fn)

    epochs_done_now = 0
    # One bar for the whole run, kept on screen (a bar closed mid-run breaks its widget in served notebooks).
    bar = tqdm(total=total_steps, initial=start_epoch * n_batches, desc=cfg.recipe, disable=not progress,
               unit="step", leave=True)
    for epoch in range(start_epoch, cfg.epochs):
        if refresh and epoch > 0 and epoch % refresh == 0:
            positives.prepare(train_ds, generator=None, embed_fn=embed_fn)
        model.train()
        t0, aug_time, loss_sum = time.perf_counter(), 0.0, torch.zeros((), device=device)
        perm = torch.randperm(len(train_ds), generator=gen)
        bar.set_description(f"{cfg.recipe} epoch {epoch + 1}/{cfg.epochs}")
        for b in range(n_batches):
            step = epoch * n_batches + b
            lr = lr_at(step, total_steps, warmup_steps, cfg.lr)
            for group in opt.param_groups:
                group["lr"] = lr
            anchors = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            pos = positives.sample(anchors, generator=gen)
            rows = torch.cat([anchors, pos.partners]).to(images.device)
            ta = time.perf_counter()
            views, _ = augment(images[rows], generator=gen)
            if cuda:
                views = views.contiguous(memory_format=torch.channels_last)
            aug_time += time.perf_counter() - ta
            with torch.autocast(device.type, enabled=cuda and cfg.amp):
                out = recipe.step(model, views, pos.group_ids.to(device), cfg, step / max(1, total_steps))
            loss = out["loss"]
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {b + 1}; training stopped. The last "
                    f"good checkpoint ({ckpt_path}, epoch {start_epoch + epochs_done_now}) is kept. "
                    f"Try a lower --lr (now {cfg.lr}) or a higher --temperature.")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if recipe.after_step is not None:
                recipe.after_step(model, cfg, (step + 1) / max(1, total_steps))
            loss_sum += loss.detach()
            bar.update(1)
            if progress and b % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}", refresh=False)
        row = {"epoch": epoch + 1, "loss": float(loss_sum) / max(1, n_batches), "lr": lr,
               "knn_acc": float("nan"), "epoch_time": time.perf_counter() - t0, "aug_time": aug_time}
        if cfg.eval_every and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            row["knn_acc"] = _online_knn(model, train_ds, test_ds, cfg, device)
        history.append(row)
        save_checkpoint(ckpt_path, model=model, optimizer=opt, generator=gen, epoch=epoch + 1, history=history,
                        config=cfg.to_dict(), in_channels=train_ds.channels,
                        positives=positives.state_dict() if hasattr(positives, "state_dict") else None)
        _write_history(out_dir, history)
        if progress:
            knn = "" if math.isnan(row["knn_acc"]) else f"{row['knn_acc']:.3f}"
            bar.set_postfix(loss=f"{row['loss']:.3f}", knn=knn, refresh=True)
        if on_epoch is not None:
            on_epoch(row)
        epochs_done_now += 1
        if stop_after is not None and epochs_done_now >= stop_after:
            break
    bar.close()
    return Run(out_dir=out_dir, config=cfg, model=model, history=history)
