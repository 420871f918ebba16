"""The training loop: BPTT over T, evaluation every epoch, TensorBoard logs, checkpoints.

``train(cfg, run_dir)`` is a plain function; the ``snntrain`` command is a thin Hydra
wrapper around it. ``setup(cfg)`` builds every component from the config without
training (tests use it to instantiate every config file).
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from .. import __version__
from ..errors import ConfigError
from ..models import make_factories
from ..registry import build
from . import checkpoint
from .config import check_resumable, resolve_device, validate
from .monitor import FiringRates
from .progress import EpochProgress

log = logging.getLogger("snntrain")

#: trainer.mode -> function(cfg, run_dir) for modes other than "bptt" (filled by their modules)
TRAINERS: dict = {}


def _args(section: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k != "name"}


def as_dict(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)  # type: ignore[return-value]


def setup(cfg: DictConfig | dict[str, Any], device: str | torch.device = "cpu") -> dict[str, Any]:
    """Validate ``cfg`` and build data, model, encoder, loss, optimizer and scheduler."""
    cfg = as_dict(cfg)
    validate(cfg)
    T = cfg["T"]
    data = build("dataset", cfg["dataset"]["name"], context={"T": T}, **_args(cfg["dataset"]))
    neuron, norm = make_factories(cfg["neuron"], cfg["surrogate"], cfg["norm"], T)
    ctx = {"in_shape": data.in_shape, "num_classes": data.num_classes, "T": T, "neuron": neuron, "norm": norm}
    model = build("model", cfg["model"]["name"], context=ctx, **_args(cfg["model"])).to(device)
    encoder = build("encoder", cfg["encoder"]["name"], context={"T": T}, **_args(cfg["encoder"]))
    loss_fn = build("loss", cfg["loss"]["name"], **_args(cfg["loss"]))
    optimizer = build("optimizer", cfg["optimizer"]["name"], context={"params": model.parameters()}, **_args(cfg["optimizer"]))
    scheduler = build(
        "scheduler", cfg["scheduler"]["name"], context={"optimizer": optimizer, "epochs": cfg["trainer"]["epochs"]},
        **_args(cfg["scheduler"]),
    )
    return dict(cfg=cfg, data=data, model=model, encoder=encoder, loss_fn=loss_fn, optimizer=optimizer, scheduler=scheduler)


def sequence_input(data, encoder):
    """Batch -> ``[T, B, ...]``: encode static samples, or move T first for temporal data."""
    if data.temporal:
        return lambda x: x.transpose(0, 1)
    return encoder


def make_loaders(data, tc: dict[str, Any], generator: torch.Generator, device: torch.device):
    """Train and test DataLoaders with the trainer's worker/pinning/prefetch settings."""
    workers = tc["num_workers"]
    common = dict(
        num_workers=workers,
        pin_memory=device.type == "cuda" if tc.get("pin_memory", "auto") == "auto" else bool(tc["pin_memory"]),
        persistent_workers=bool(tc.get("persistent_workers", False)) and workers > 0,
        prefetch_factor=tc.get("prefetch_factor") if workers > 0 else None,
    )
    lone_last = len(data.train) % tc["batch_size"] == 1  # a 1-sample batch breaks BN statistics
    train = DataLoader(data.train, tc["batch_size"], shuffle=True, generator=generator, drop_last=lone_last, **common)
    test = DataLoader(data.test, tc["eval_batch_size"], **common)
    return train, test


@torch.no_grad()
def evaluate(model, loader, encoder, loss_fn, device) -> dict[str, Any]:
    """Test loss, accuracy and per-layer firing rates (model in eval mode).

    ``encoder`` maps a batch to ``[T, B, ...]`` (see :func:`sequence_input`).
    """
    model.eval()
    loss_sum, correct, n = torch.zeros((), device=device), torch.zeros((), device=device), 0
    with FiringRates(model) as monitor:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(encoder(x))
            loss_sum += loss_fn(out, y) * len(y)
            correct += (out.mean(0).argmax(1) == y).sum()
            n += len(y)
    return {"loss": float(loss_sum) / n, "acc": float(correct) / n, "firing_rates": monitor.rates()}


def train(cfg: DictConfig | dict[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """Train as ``cfg`` says, writing TensorBoard logs, checkpoints and metrics.json to ``run_dir``."""
    cfg = as_dict(cfg)
    validate(cfg)
    if cfg["trainer"].get("mode", "bptt") != "bptt":
        return TRAINERS[cfg["trainer"]["mode"]](cfg, run_dir)
    run_dir, tc = Path(run_dir), cfg["trainer"]
    ckpt_dir = run_dir / "checkpoints"
    resumed = checkpoint.load(cfg["resume"]) if cfg.get("resume") else None
    checkpoint.guard_run_dir(run_dir, resumed)
    torch.manual_seed(cfg["seed"])
    device = resolve_device(cfg["device"])
    parts = setup(cfg, device)
    model, loss_fn, opt, sched = (parts[k] for k in ("model", "loss_fn", "optimizer", "scheduler"))
    encoder = sequence_input(parts["data"], parts["encoder"])
    if parts["data"].temporal and cfg["encoder"]["name"] != "direct":
        log.info(f"dataset {cfg['dataset']['name']} is already a spike sequence; encoder {cfg['encoder']['name']} is not used")
    start_epoch, best_acc, history = 0, 0.0, []
    if resumed:
        check_resumable(resumed["config"], cfg, resumed["path"])
        model.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["optimizer"])
        sched.load_state_dict(resumed["scheduler"])
        checkpoint.restore_rng(resumed, device)
        start_epoch, best_acc, history = resumed["epoch"], resumed["best_test_acc"], resumed["history"]
        log.info(f"resumed from {resumed['path']} after epoch {start_epoch}")

    order = torch.Generator()
    train_loader, test_loader = make_loaders(parts["data"], tc, order, device)
    n_batches = len(train_loader) if tc["limit_batches"] is None else min(tc["limit_batches"], len(train_loader))
    from torch.utils.tensorboard import SummaryWriter  # imported late: slow, and only needed here

    writer = SummaryWriter(str(run_dir / "tensorboard"))
    writer.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```", start_epoch)
    t_start, record, warned_silent = time.perf_counter(), history[-1] if history else {}, False
    for epoch in range(start_epoch, tc["epochs"]):
        # ---- train one epoch (BPTT through all T steps) ----
        model.train()
        order.manual_seed(cfg["seed"] * 1_000_003 + epoch)  # same batches for the same (seed, epoch)
        loss_sum, correct, n, t0 = torch.zeros((), device=device), torch.zeros((), device=device), 0, time.perf_counter()
        with EpochProgress(f"epoch {epoch + 1}/{tc['epochs']}", n_batches, enabled=tc["progress"]) as bar:
            for i, (x, y) in enumerate(train_loader):
                if i == n_batches:
                    break
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                out = model(encoder(x))  # [T, B, classes]
                loss = loss_fn(out, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach() * len(y)
                correct += (out.detach().mean(0).argmax(1) == y).sum()
                n += len(y)
                bar.advance(lambda: f"loss {float(loss_sum) / n:.4f} acc {float(correct) / n:.4f} "
                                    f"{n / (time.perf_counter() - t0):.0f} samples/s")
        train_s = time.perf_counter() - t0
        # ---- evaluate, log, checkpoint ----
        test = evaluate(model, test_loader, encoder, loss_fn, device)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        best_acc = max(best_acc, test["acc"])
        record = {
            "epoch": epoch + 1, "train_loss": float(loss_sum) / n, "train_acc": float(correct) / n,
            "test_loss": test["loss"], "test_acc": test["acc"], "best_test_acc": best_acc, "lr": lr,
            "samples_per_s": n / train_s, "firing_rates": test["firing_rates"],
        }
        silent = [layer for layer, rate in test["firing_rates"].items() if rate == 0.0]
        if silent and not warned_silent:
            warned_silent = True
            log.warning(
                f"layer(s) {', '.join(silent)} fired no spike on the test set after epoch {epoch + 1}: no gradient can "
                f"flow through a silent layer. Try a normalization (norm=bn or norm=tdbn), a lower neuron.threshold, "
                f"or a wider surrogate."
            )
        record["silent_layers"] = silent
        history.append(record)
        for key in ("train/loss", "train/acc", "test/loss", "test/acc"):
            writer.add_scalar(key, record[key.replace("/", "_")], epoch + 1)
        writer.add_scalar("lr", lr, epoch + 1)
        writer.add_scalar("train/samples_per_s", record["samples_per_s"], epoch + 1)
        for layer, rate in test["firing_rates"].items():
            writer.add_scalar(f"firing_rate/{layer}", rate, epoch + 1)
        writer.flush()
        state = {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "epoch": epoch + 1, "best_test_acc": best_acc, "history": history, "config": cfg,
            "version": __version__, **checkpoint.rng_states(device),
        }
        checkpoint.save(state, ckpt_dir / checkpoint.LAST)
        if test["acc"] >= best_acc:
            checkpoint.save(state, ckpt_dir / checkpoint.BEST)
        log.info(
            f"epoch {epoch + 1}/{tc['epochs']}  train loss {record['train_loss']:.4f} acc {record['train_acc']:.4f}  "
            f"test loss {test['loss']:.4f} acc {test['acc']:.4f}  lr {lr:.2e}  {record['samples_per_s']:.0f} samples/s"
        )
    writer.close()
    metrics = {
        **{k: v for k, v in record.items()}, "train_time_s": time.perf_counter() - t_start,
        "resumed_from": resumed["path"] if resumed else None, "history": history,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info(f"test accuracy {metrics['test_acc']:.4f} (best {best_acc:.4f}); run directory: {run_dir}")
    return metrics
