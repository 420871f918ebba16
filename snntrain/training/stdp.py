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
import logging
import math
import warnings
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..errors import ConfigError, check
from ..learning import REDUCTIONS, WEIGHT_FUNCTIONS, STDPLearner
from ..registry import register
from .distributed import SINGLE, Dist
from .engine import TrainerBase
from .parts import Parts
from .report import Metric

log = logging.getLogger("snntrain")


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


def build_layer(parts: Parts, in_features: int, units: int, wta: bool, init_min: float,
                init_max: float) -> STDPLayer:
    make_neuron, _ = parts.neuron_factories(inhibition=wta)
    layer = STDPLayer(in_features, units, make_neuron((units,)))
    with torch.no_grad():
        layer.fc.weight.uniform_(init_min, init_max)
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


def readout(layer: STDPLayer, data, encoder, batch_size: int, max_iter: int, seed: int, device) -> dict[str, float]:
    """Fit a logistic regression on the train split's spike counts; accuracy on both splits."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    layer.eval()
    x_tr, y_tr, _ = spike_counts(layer, data.train, encoder, batch_size, seed + 1, device)
    x_te, y_te, rate = spike_counts(layer, data.test, encoder, batch_size, seed + 2, device)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_tr.numpy(), y_tr.numpy())
    return {
        "train_acc": float(clf.score(x_tr.numpy(), y_tr.numpy())),
        "test_acc": float(clf.score(x_te.numpy(), y_te.numpy())),
        "firing_rate": rate,
    }


# ---- the trainer -------------------------------------------------------------------
@register("trainer", "stdp")
class STDP(TrainerBase):
    """Unsupervised trace STDP of one spiking layer, scored by a linear readout of its spike counts."""

    title = "stdp epoch"
    objectives = {"test_acc": "max", "best_test_acc": "max", "readout_train_acc": "max"}
    gradient_free = True  # trainer.precision, compile, accumulate_grad_batches, ... are refused
    report = {
        "weight_change": Metric("stdp/weight_change", "mean |dW|", ".3e", bar=True),
        "train_firing_rate": Metric("stdp/firing_rate", "firing rate", bar=True),
        "weight_mean": Metric("stdp/weight_mean", "weight mean"),
        "test_acc": Metric("readout/test_acc", "readout test acc"), "readout_train_acc": Metric("readout/train_acc"),
        "firing_rate": Metric("readout/firing_rate"),
    }

    def __init__(
        self, parts: Parts, loop: dict[str, Any], device: torch.device, dist: Dist = SINGLE, units: int = 100, lr: float = 0.05, tau_pre: float = 2.0,
        tau_post: float = 2.0, f_pre: Literal[WEIGHT_FUNCTIONS] = "multiplicative",  # type: ignore[valid-type]
        f_post: Literal[WEIGHT_FUNCTIONS] = "multiplicative",  # type: ignore[valid-type]
        a_pre: float = 1.0, a_post: float = 1.0, reduction: Literal[REDUCTIONS] = "mean",  # type: ignore[valid-type]
        w_min: float = 0.0, w_max: float = 1.0, init_min: float = 0.0, init_max: float = 0.3, clamp: bool = True,
        normalize: float | None = 5.0, wta: bool = True, homeostasis: float = 0.5, target_rate: float | None = None,
        readout_every: int = 1, readout_max_iter: int = 1000,
    ):
        super().__init__(parts, loop, device, dist)
        if dist.enabled:
            raise ConfigError("trainer: trainer=stdp trains one layer in one process; start it without torchrun "
                              "(or with --nproc_per_node=1).")
        check(units >= 1, "units", f"must be >= 1, got {units}")
        check(readout_every >= 0, "readout_every", f"must be >= 0, got {readout_every}")
        check(readout_max_iter >= 1, "readout_max_iter", f"must be >= 1, got {readout_max_iter}")
        for name, tau in (("tau_pre", tau_pre), ("tau_post", tau_post)):  # SpikingJelly's Euler trace needs tau >= 1
            check(tau >= 1, name, f"must be >= 1 (time steps), got {tau}")
        for name, v in (("lr", lr), ("a_pre", a_pre), ("a_post", a_post), ("homeostasis", homeostasis)):
            check(v >= 0, name, f"must be >= 0, got {v}")
        check(normalize is None or normalize > 0, "normalize", f"must be > 0 or null, got {normalize}")
        check(w_min < w_max, "w_max", f"must be greater than trainer.w_min ({w_min}), got {w_max}")
        check(init_min <= init_max, "init_max", f"must be >= trainer.init_min ({init_min}), got {init_max}")
        target_rate = 1.0 / units if target_rate is None else target_rate  # what winner-take-all gives
        check(0 <= target_rate <= 1, "target_rate", f"a firing rate per step, must be in [0, 1], got {target_rate}")
        self.lr, self.clamp, self.normalize, self.homeostasis, self.target_rate = lr, clamp, normalize, homeostasis, target_rate
        self.readout_every, self.readout_max_iter = readout_every, readout_max_iter
        self.data, self.encoder = parts.data, parts.encoder
        self.layer = build_layer(parts, math.prod(self.data.in_shape), units, wta, init_min, init_max).to(self.device)
        self.learner = STDPLearner(self.layer.fc, tau_pre, tau_post, f_pre, f_post, w_min=w_min, w_max=w_max,
                                   a_pre=a_pre, a_post=a_post, reduction=reduction)
        if normalize is not None:
            with torch.no_grad():
                _normalize(self.layer.fc.weight, normalize)
        self.initial = copy.deepcopy(self.layer)
        self.initial_score: dict[str, float] | None = None

    def _readout(self, layer: STDPLayer) -> dict[str, float]:
        return readout(layer, self.data, self.encoder, self.loop["eval_batch_size"], self.readout_max_iter,
                       self.parts.seed, self.device)

    # ---- state ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.layer.state_dict(), "initial_model": self.initial.state_dict(),
                "readout_initial": self.initial_score}

    def load_state_dict(self, state: dict[str, Any], extended: bool) -> None:
        self.layer.load_state_dict(state["model"])
        self.initial.load_state_dict(state["initial_model"])
        self.initial_score = state["readout_initial"]

    def start(self, writer: Any, resumed: bool) -> None:
        if self.initial_score is None:
            self.initial_score = self._readout(self.initial)
            log.info(f"readout on the initial weights: test acc {self.initial_score['test_acc']:.4f} "
                     f"(firing rate {self.initial_score['firing_rate']:.4f})")
        if not resumed:
            writer.add_scalar("readout/test_acc", self.initial_score["test_acc"], 0)
            writer.add_scalar("readout/train_acc", self.initial_score["train_acc"], 0)

    # ---- training ------------------------------------------------------------------
    def train_mode(self) -> None:
        self.layer.train()

    @torch.no_grad()
    def train_step(self, x: Tensor, y: Tensor, micro: int = 0, window: int = 1) -> dict[str, Tensor]:
        s_pre, s_post = self.layer(self.encoder(x), return_input=True)
        weight = self.layer.fc.weight
        before = weight.clone()
        self.learner.learn(s_pre, s_post, self.lr, clamp=self.clamp)
        if self.normalize is not None:
            _normalize(weight, self.normalize)
        if self.homeostasis > 0:
            rate = (s_post != 0).float().mean((0, 1))
            self.layer.fc.bias.sub_(self.homeostasis * (rate - self.target_rate))
        return {"weight_change": (weight - before).abs().mean(), "batches": torch.ones(()),
                "spikes": (s_post != 0).sum().double(), "entries": torch.tensor(float(s_post.numel()), dtype=torch.float64)}

    def train_record(self, sums: dict[str, Tensor], n: int) -> dict[str, float]:
        if not sums:
            return {"weight_change": float("nan"), "train_firing_rate": float("nan"), "weight_mean": self._weight_mean()}
        return {"weight_change": float(sums["weight_change"] / sums["batches"]),
                "train_firing_rate": float(sums["spikes"] / sums["entries"].clamp_min(1)),
                "weight_mean": self._weight_mean()}

    def _weight_mean(self) -> float:
        return float(self.layer.fc.weight.mean())

    # ---- evaluation ----------------------------------------------------------------
    def evaluate(self, epoch: int, last: bool) -> dict[str, Any] | None:
        scored = last or (self.readout_every > 0 and (epoch + 1) % self.readout_every == 0)
        if not scored:
            return None
        score = self._readout(self.layer)
        return {"test_acc": score["test_acc"], "readout_train_acc": score["train_acc"],
                "firing_rate": score["firing_rate"]}

    def final_metrics(self, record: dict[str, Any]) -> dict[str, Any]:
        init = self.initial_score or {}
        return {"readout_acc_initial": init.get("test_acc"), "readout_train_acc_initial": init.get("train_acc"),
                "firing_rate_initial": init.get("firing_rate")}

    def final_line(self, metrics: dict[str, Any]) -> str:
        return (f"linear readout test accuracy: initial weights {metrics['readout_acc_initial']:.4f} -> after STDP "
                f"{metrics['test_acc']:.4f}")
