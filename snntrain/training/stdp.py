r"""Unsupervised STDP training of one spiking layer (``trainer=stdp``), scored by a linear readout.

The network is ``flatten -> Linear(in_features -> trainer.units, no bias) -> neuron``
(the neuron from the ``neuron``/``surrogate`` config groups; ``model``, ``norm``,
``loss``, ``optimizer`` and ``scheduler`` are not used). Inputs should be spikes:
``trainer/stdp.yaml`` selects the ``rate`` encoder (a command-line ``encoder=...``
still wins). Every training batch runs the layer on the encoded sequence
``[T, B, ...]`` and updates the weight with :class:`snntrain.learning.STDPLearner`
(no gradients):

.. math:: W \leftarrow \mathrm{clamp}(W + lr\,\Delta W,\ w_{min}, w_{max}),
          \quad \text{then optionally } W_{o,:} \leftarrow W_{o,:}\,\frac{n}{\sum_i W_{o,i}}

with :math:`\Delta W` from fresh traces over the batch's sequence (see
:mod:`snntrain.learning.stdp` for the equations and sign conventions). ``wta: true``
turns on the neuron's ``inhibition`` (per sample and step only the neuron with the
highest membrane may fire), the competition that makes neurons learn different
inputs. ``homeostasis`` > 0 adds an adaptive threshold per neuron (as a negative bias
current, Diehl & Cook 2015): after each batch :math:`b_o \leftarrow b_o - \eta\,(r_o -
r^*)`, :math:`r_o` the neuron's firing rate on the batch and :math:`r^*` =
``target_rate``, so neurons that win too often get harder to fire.

Score: the layer's spike counts over T (rate-coded with a fixed seed, the same input
spikes for every readout) feed a logistic regression (scikit-learn), fitted on the
train split and scored on the test split. It is measured for the initial weights
(``readout_acc_initial``) and after training (``test_acc``), so the effect of STDP is
visible; ``best_test_acc`` is the best readout over the epochs that were scored.

Outputs (as the BPTT trainer): ``tensorboard/`` (``stdp/weight_change`` — mean
:math:`|\Delta W|` actually applied per batch —, ``stdp/firing_rate``, ``stdp/weight_mean``,
``readout/test_acc``, ``readout/train_acc``), ``checkpoints/last.pt`` and ``best.pt``
(``model``, ``initial_model``, ``config``, ``epoch``, ``best_test_acc``, ``history``,
``rng``; resumable with ``resume=<run dir>``), ``metrics.json``.
"""
from __future__ import annotations

import copy
import json
import warnings
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .. import __version__
from ..errors import ConfigError
from ..learning import REDUCTIONS, WEIGHT_FUNCTIONS, STDPLearner
from ..models import make_factories
from ..registry import build
from . import checkpoint
from .config import check_resumable, resolve_device, validate
from .loop import TRAINERS, as_dict, sequence_input
from .progress import EpochProgress

log = logging.getLogger("snntrain")

#: every key ``trainer=stdp`` reads, with its default (configs/trainer/stdp.yaml documents them)
DEFAULTS: dict[str, Any] = {
    "mode": "stdp", "epochs": 3, "batch_size": 32, "eval_batch_size": 512, "limit_batches": None,
    "num_workers": 0, "progress": True, "units": 100, "lr": 0.05, "tau_pre": 2.0, "tau_post": 2.0,
    "f_pre": "multiplicative", "f_post": "multiplicative", "a_pre": 1.0, "a_post": 1.0, "reduction": "mean",
    "w_min": 0.0, "w_max": 1.0, "init_min": 0.0, "init_max": 0.3, "clamp": True, "normalize": 5.0,
    "wta": True, "homeostasis": 0.5, "target_rate": None, "readout_every": 1, "readout_max_iter": 1000,
}


# ---- config ------------------------------------------------------------------------
def _num(tc: dict[str, Any], key: str, low: float | None = None, strict: bool = False, allow_none: bool = False) -> None:
    v = tc[key]
    if v is None and allow_none:
        return
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok and low is not None:
        ok = v > low if strict else v >= low
    if not ok:
        bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
        raise ConfigError(f"trainer.{key}: must be a finite number{bound}{' or null' if allow_none else ''}, got {v!r}. "
                          f"Set it with trainer.{key}=<value>.")


def _choice(tc: dict[str, Any], key: str, choices: tuple[str, ...]) -> None:
    if tc[key] not in choices:
        raise ConfigError(f"trainer.{key}: must be one of {', '.join(choices)}, got {tc[key]!r}.")


def stdp_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``trainer`` section with defaults filled in, checked; bad values raise :class:`ConfigError`."""
    unknown = sorted(set(cfg["trainer"]) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"trainer.{unknown[0]}: not a key of trainer=stdp. Valid keys: {', '.join(DEFAULTS)}. "
                          f"Remove it or fix its spelling.")
    tc = {**DEFAULTS, **cfg["trainer"]}
    for key in ("units", "readout_every", "readout_max_iter"):
        v = tc[key]
        low = 0 if key == "readout_every" else 1
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ConfigError(f"trainer.{key}: must be an integer >= {low}, got {v!r}. Set it with trainer.{key}=<value>.")
    for key in ("tau_pre", "tau_post"):
        _num(tc, key, 1.0)  # SpikingJelly's Euler trace needs tau >= 1 step
    _num(tc, "lr", 0.0)
    for key in ("a_pre", "a_post", "homeostasis"):
        _num(tc, key, 0.0)
    for key in ("w_min", "w_max", "init_min", "init_max"):
        _num(tc, key)
    _num(tc, "target_rate", 0.0, allow_none=True)
    _num(tc, "normalize", 0.0, strict=True, allow_none=True)
    for key in ("f_pre", "f_post"):
        _choice(tc, key, WEIGHT_FUNCTIONS)
    _choice(tc, "reduction", REDUCTIONS)
    for key in ("clamp", "wta", "progress"):
        if not isinstance(tc[key], bool):
            raise ConfigError(f"trainer.{key}: must be true or false, got {tc[key]!r}.")
    if not tc["w_min"] < tc["w_max"]:
        raise ConfigError(f"trainer.w_max: must be greater than trainer.w_min ({tc['w_min']}), got {tc['w_max']}.")
    if not tc["init_min"] <= tc["init_max"]:
        raise ConfigError(f"trainer.init_max: must be >= trainer.init_min ({tc['init_min']}), got {tc['init_max']}.")
    if tc["target_rate"] is None:  # what winner-take-all gives when one neuron fires per step
        tc["target_rate"] = 1.0 / tc["units"]
    if tc["target_rate"] > 1:
        raise ConfigError(f"trainer.target_rate: a firing rate per step, must be in [0, 1], got {tc['target_rate']}.")
    return tc


# ---- the model ---------------------------------------------------------------------
class STDPLayer(nn.Module):
    """``[T, B, *in_shape]`` -> flatten -> ``Linear`` -> neuron -> spikes ``[T, B, units]``.

    The linear bias is the homeostatic current (zero, and never changed, unless
    ``trainer.homeostasis`` > 0).
    """

    def __init__(self, in_features: int, units: int, neuron: nn.Module):
        super().__init__()
        self.fc = nn.Linear(in_features, units)
        self.neuron = neuron

    def forward(self, x_seq: Tensor, return_input: bool = False):
        s_pre = x_seq.flatten(2)
        s_post = self.neuron(self.fc(s_pre))
        return (s_pre, s_post) if return_input else s_post


def build_layer(cfg: dict[str, Any], tc: dict[str, Any], in_features: int) -> STDPLayer:
    neuron_cfg = {**cfg["neuron"], "inhibition": tc["wta"]}
    make_neuron, _ = make_factories(neuron_cfg, cfg["surrogate"], cfg["norm"], cfg["T"])
    layer = STDPLayer(in_features, tc["units"], make_neuron((tc["units"],)))
    with torch.no_grad():
        layer.fc.weight.uniform_(tc["init_min"], tc["init_max"])
        layer.fc.bias.zero_()
    return layer.requires_grad_(False)  # learned by STDP only


def _normalize(weight: Tensor, total: float) -> None:
    """Rescale each neuron's incoming weights to sum to ``total`` (Diehl & Cook's normalisation)."""
    s = weight.sum(1, keepdim=True)
    weight.mul_(torch.where(s > 0, total / s.clamp_min(1e-12), torch.ones_like(s)))


# ---- readout -----------------------------------------------------------------------
@torch.no_grad()
def spike_counts(layer: STDPLayer, dataset, encoder, batch_size: int, seed: int, device) -> tuple[Tensor, Tensor, float]:
    """Spike counts over T ``[N, units]``, labels ``[N]``, and the mean firing rate.

    The encoder draws inside a forked RNG seeded with ``seed`` (the training RNG is
    restored afterwards), so every readout sees the same input spikes.
    """
    devices = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        counts, labels, spikes, entries = [], [], 0.0, 0
        for x, y in DataLoader(dataset, batch_size):
            s = layer(encoder(x.to(device)))
            counts.append(s.sum(0).cpu())
            labels.append(y)
            spikes += float((s != 0).sum())
            entries += s.numel()
    return torch.cat(counts), torch.cat(labels), spikes / max(entries, 1)


def readout(layer: STDPLayer, data, encoder, tc: dict[str, Any], seed: int, device) -> dict[str, float]:
    """Fit a logistic regression on the train split's spike counts; accuracy on both splits."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    layer.eval()
    x_tr, y_tr, _ = spike_counts(layer, data.train, encoder, tc["eval_batch_size"], seed + 1, device)
    x_te, y_te, rate = spike_counts(layer, data.test, encoder, tc["eval_batch_size"], seed + 2, device)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=tc["readout_max_iter"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_tr.numpy(), y_tr.numpy())
    return {
        "train_acc": float(clf.score(x_tr.numpy(), y_tr.numpy())),
        "test_acc": float(clf.score(x_te.numpy(), y_te.numpy())),
        "firing_rate": rate,
    }


# ---- the trainer -------------------------------------------------------------------
def train_stdp(cfg: dict[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """Train one layer with STDP as ``cfg`` says; write metrics.json, TensorBoard logs, checkpoints."""
    cfg = as_dict(cfg)
    validate(cfg)
    tc = stdp_config(cfg)
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    resumed = checkpoint.load(cfg["resume"]) if cfg.get("resume") else None
    checkpoint.guard_run_dir(run_dir, resumed)
    torch.manual_seed(cfg["seed"])
    device = resolve_device(cfg["device"])
    data = build("dataset", cfg["dataset"]["name"], context={"T": cfg["T"]},
                 **{k: v for k, v in cfg["dataset"].items() if k != "name"})
    encoder = sequence_input(data, build("encoder", cfg["encoder"]["name"], context={"T": cfg["T"]},
                                         **{k: v for k, v in cfg["encoder"].items() if k != "name"}))
    in_features = math.prod(data.in_shape)
    layer = build_layer(cfg, tc, in_features).to(device)
    initial = copy.deepcopy(layer)
    learner = STDPLearner(layer.fc, tc["tau_pre"], tc["tau_post"], tc["f_pre"], tc["f_post"], w_min=tc["w_min"],
                          w_max=tc["w_max"], a_pre=tc["a_pre"], a_post=tc["a_post"], reduction=tc["reduction"])
    if tc["normalize"] is not None:
        with torch.no_grad():
            _normalize(layer.fc.weight, tc["normalize"])
            initial.load_state_dict(layer.state_dict())
    start_epoch, best_acc, history, initial_score = 0, 0.0, [], None
    if resumed:
        check_resumable(resumed["config"], cfg, resumed["path"])
        layer.load_state_dict(resumed["model"])
        initial.load_state_dict(resumed["initial_model"])
        checkpoint.restore_rng(resumed, device)
        start_epoch, best_acc, history = resumed["epoch"], resumed["best_test_acc"], resumed["history"]
        initial_score = resumed["readout_initial"]
        log.info(f"resumed from {resumed['path']} after epoch {start_epoch}")
    if initial_score is None:
        initial_score = readout(initial, data, encoder, tc, cfg["seed"], device)
        log.info(f"readout on the initial weights: test acc {initial_score['test_acc']:.4f} "
                 f"(firing rate {initial_score['firing_rate']:.4f})")

    order = torch.Generator()
    loader = DataLoader(data.train, tc["batch_size"], shuffle=True, generator=order,
                        num_workers=tc["num_workers"], pin_memory=device.type == "cuda")
    n_batches = len(loader) if tc["limit_batches"] is None else min(tc["limit_batches"], len(loader))
    from torch.utils.tensorboard import SummaryWriter  # imported late: slow, and only needed here

    writer = SummaryWriter(str(run_dir / "tensorboard"))
    writer.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```", start_epoch)
    if not resumed:
        writer.add_scalar("readout/test_acc", initial_score["test_acc"], 0)
        writer.add_scalar("readout/train_acc", initial_score["train_acc"], 0)
    t_start, record, score = time.perf_counter(), history[-1] if history else {}, None
    for epoch in range(start_epoch, tc["epochs"]):
        layer.train()
        order.manual_seed(cfg["seed"] * 1_000_003 + epoch)  # same batches for the same (seed, epoch)
        change, spikes, entries, n, t0 = 0.0, 0.0, 0, 0, time.perf_counter()
        with EpochProgress(f"stdp epoch {epoch + 1}/{tc['epochs']}", n_batches, enabled=tc["progress"]) as bar, \
                torch.no_grad():
            for i, (x, _) in enumerate(loader):
                if i == n_batches:
                    break
                s_pre, s_post = layer(encoder(x.to(device, non_blocking=True)), return_input=True)
                before = layer.fc.weight.clone()
                learner.learn(s_pre, s_post, tc["lr"], clamp=tc["clamp"])
                if tc["normalize"] is not None:
                    _normalize(layer.fc.weight, tc["normalize"])
                if tc["homeostasis"] > 0:
                    rate = (s_post != 0).float().mean((0, 1))
                    layer.fc.bias.sub_(tc["homeostasis"] * (rate - tc["target_rate"]))
                change += float((layer.fc.weight - before).abs().mean())
                spikes += float((s_post != 0).sum())
                entries += s_post.numel()
                n += len(x)
                bar.advance(lambda: f"|dW| {change / (i + 1):.2e} rate {spikes / max(entries, 1):.3f} "
                                    f"{n / (time.perf_counter() - t0):.0f} samples/s")
        train_s = time.perf_counter() - t0
        last = epoch + 1 == tc["epochs"]
        scored = last or (tc["readout_every"] > 0 and (epoch + 1) % tc["readout_every"] == 0)
        score = readout(layer, data, encoder, tc, cfg["seed"], device) if scored else None
        if score is not None:
            best_acc = max(best_acc, score["test_acc"])
        record = {
            "epoch": epoch + 1, "weight_change": change / max(n_batches, 1), "train_firing_rate": spikes / max(entries, 1),
            "weight_mean": float(layer.fc.weight.mean()), "samples_per_s": n / train_s,
            "test_acc": score["test_acc"] if score else None, "readout_train_acc": score["train_acc"] if score else None,
            "firing_rate": score["firing_rate"] if score else None, "best_test_acc": best_acc,
        }
        history.append(record)
        writer.add_scalar("stdp/weight_change", record["weight_change"], epoch + 1)
        writer.add_scalar("stdp/firing_rate", record["train_firing_rate"], epoch + 1)
        writer.add_scalar("stdp/weight_mean", record["weight_mean"], epoch + 1)
        writer.add_scalar("train/samples_per_s", record["samples_per_s"], epoch + 1)
        if score is not None:
            writer.add_scalar("readout/test_acc", score["test_acc"], epoch + 1)
            writer.add_scalar("readout/train_acc", score["train_acc"], epoch + 1)
            writer.add_scalar("readout/firing_rate", score["firing_rate"], epoch + 1)
        writer.flush()
        state = {
            "model": layer.state_dict(), "initial_model": initial.state_dict(), "optimizer": {}, "scheduler": {},
            "epoch": epoch + 1, "best_test_acc": best_acc, "history": history, "config": cfg,
            "readout_initial": initial_score, "version": __version__, **checkpoint.rng_states(device),
        }
        checkpoint.save(state, ckpt_dir / checkpoint.LAST)
        if score is not None and score["test_acc"] >= best_acc:
            checkpoint.save(state, ckpt_dir / checkpoint.BEST)
        log.info(
            f"stdp epoch {epoch + 1}/{tc['epochs']}  mean |dW| {record['weight_change']:.3e}  "
            f"firing rate {record['train_firing_rate']:.4f}  weight mean {record['weight_mean']:.4f}"
            + (f"  readout test acc {score['test_acc']:.4f}" if score else "")
            + f"  {record['samples_per_s']:.0f} samples/s"
        )
    writer.close()
    if score is None:  # resumed after the last epoch: nothing trained, score what is there
        score = readout(layer, data, encoder, tc, cfg["seed"], device)
    metrics = {
        "epoch": record.get("epoch", start_epoch), "test_acc": score["test_acc"], "readout_train_acc": score["train_acc"],
        "readout_acc_initial": initial_score["test_acc"], "readout_train_acc_initial": initial_score["train_acc"],
        "best_test_acc": max(best_acc, score["test_acc"]), "firing_rate": score["firing_rate"],
        "firing_rate_initial": initial_score["firing_rate"], "train_firing_rate": record.get("train_firing_rate"),
        "weight_change": record.get("weight_change"), "train_time_s": time.perf_counter() - t_start,
        "resumed_from": resumed["path"] if resumed else None, "history": history,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info(f"linear readout test accuracy: initial weights {initial_score['test_acc']:.4f} -> after STDP "
             f"{score['test_acc']:.4f} (best {metrics['best_test_acc']:.4f}); run directory: {run_dir}")
    return metrics


TRAINERS["stdp"] = train_stdp
