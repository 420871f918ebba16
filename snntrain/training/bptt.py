r"""Supervised training with backpropagation through time (``trainer=bptt``, the default).

Each step encodes the batch into a sequence ``[T, B, ...]`` (or moves T first for
temporal datasets), runs the network over all T steps, takes the loss on the readout
sequence and back-propagates through time:

.. math:: \theta \leftarrow \mathrm{opt}\big(\theta,\ \nabla_\theta\,\mathcal{L}(f_\theta(x_{1..T}), y)\big)

**Truncated BPTT** (``trainer.tbptt_steps=K`` < T): the sequence is cut into chunks of
K steps (the last may be shorter). Each chunk continues the state the previous one left
(:func:`snntrain.layers.carry.carry_state`, detached between chunks) and back-propagates
its own loss at once, weighted by its share of the sequence,
:math:`\mathcal{L} = \sum_c \frac{K_c}{T}\,\mathcal{L}(f_\theta(x_{c}), y)`, so only one
chunk's graph is in memory; the gradients add up and the optimizer steps once per batch.
For a loss that averages per-step losses (``tet``, ``mse``) this is the full loss with the
gradient cut at the chunk boundaries; for a loss of the time-averaged readout (``ce``) it
is the mean of the chunks' losses. ``K`` >= T is full BPTT.

Before the optimizer step the loss and the gradient norm are checked: a non-finite
one applies nothing and raises :class:`~snntrain.training.engine.NonFinite` (the
engine stops or skips, per ``trainer.on_nonfinite``). The schedule steps once per
epoch. **Extending a run** (``resume=<dir> trainer.epochs=<more>``): the schedule is
re-planned for the new total and fast-forwarded through the epochs already done, so
the learning rate from the next epoch on is what a run planned with the new total
from the start would use (for ``cosine`` the lr rises again from where the short run
had annealed it); the weights and optimizer moments continue unchanged.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any

import torch
from torch import Tensor

from ..layers.carry import carry_state
from ..registry import register
from .config import validate
from ..norm.sync import sync_norms
from .distributed import SINGLE, Dist
from .engine import NonFinite, TrainerBase, as_dict
from .monitor import FiringRates
from .parts import Parts, sequence_input  # noqa: F401  (sequence_input: part of this module's interface)
from .recompute import carrying, install as install_recompute
from .report import Metric
from .sops import SynapticOps

log = logging.getLogger("snntrain")


def compiled(module: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile(module)``, or ``module`` with one log line where this machine cannot compile.

    The first call decides: a compiler error (no C++ compiler for the CPU backend, an
    unsupported GPU) falls back to the eager module for the rest of the run.
    """
    try:
        fast = torch.compile(module)
    except Exception as err:  # e.g. a Python version torch.compile does not support
        log.warning(f"trainer.compile: torch.compile is not available here ({type(err).__name__}: {err}); "
                    f"training continues with the eager model")
        return module

    class FirstCallDecides(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fast, self.eager, self.ok = fast, module, None

        def forward(self, *args: Any) -> Any:
            if self.ok is False:
                return self.eager(*args)
            try:
                out = self.fast(*args)
                self.ok = True
                return out
            except Exception as err:
                if self.ok:  # compiled before: a real error, not a missing compiler
                    raise
                self.ok = False
                first = " ".join(str(err).split())[:300]
                log.warning(f"trainer.compile: compiling failed ({type(err).__name__}: {first}); training continues "
                            f"with the eager model")
                return self.eager(*args)

        def no_sync(self):
            return self.eager.no_sync()

    return FirstCallDecides()


def build_parts(cfg: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Data, model, encoder, loss, optimizer and scheduler from the config sections (see :class:`Parts`)."""
    return Parts(cfg, device).supervised()


def setup(cfg, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Validate ``cfg`` and build its data, model, encoder, loss, optimizer and scheduler (nothing is trained)."""
    cfg = as_dict(cfg)
    validate(cfg)
    return {"cfg": cfg, **build_parts(cfg, torch.device(device))}


@torch.no_grad()
def evaluate(model, loader, encoder, loss_fn, device, reduce=lambda t: t) -> dict[str, Any]:
    """Test loss, accuracy, per-layer firing rates, synaptic operations and energy (model in eval mode).

    ``encoder`` maps a batch to ``[T, B, ...]`` (see :func:`sequence_input`); ``reduce``
    sums a tensor over the processes of a data-parallel run (each evaluates its share).
    ``sops`` and ``energy_uJ`` are per sample (:mod:`snntrain.training.sops`);
    ``activation_sparsity`` is the fraction of zero outputs over all spiking stages, steps
    and samples (NeuroBench's ``ActivationSparsity``).
    """
    model.eval()
    loss_sum, correct, n = (torch.zeros((), device=device, dtype=torch.float64) for _ in range(3))
    T = 1
    with FiringRates(model) as monitor, SynapticOps(model) as ops:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            x_seq = encoder(x)
            T = x_seq.shape[0]
            out = model(x_seq)
            loss_sum += loss_fn(out, y).double() * len(y)
            correct += (out.mean(0).argmax(1) == y).sum()
            n += len(y)
    totals = reduce(torch.stack([loss_sum, correct, n]))
    rates, fired = {}, torch.zeros(2, dtype=torch.float64, device=device)
    for layer, (spikes, entries) in monitor.counts().items():
        s = reduce(torch.stack([spikes.double(), torch.tensor(float(entries), dtype=torch.float64, device=spikes.device)]))
        rates[layer] = float(s[0] / s[1])
        fired += s.to(device)
    sparsity = float(1 - fired[0] / fired[1]) if fired[1] > 0 else float("nan")
    counted = ops.report(float(totals[2]), T, reduce(ops.counts(device)))
    return {"loss": float(totals[0] / totals[2]), "acc": float(totals[1] / totals[2]), "firing_rates": rates,
            **counted, "activation_sparsity": sparsity}


@register("trainer", "bptt")
class BPTT(TrainerBase):
    """Backpropagation through time on the readout sequence (surrogate gradients); the default trainer."""

    title = "epoch"
    report = {
        "train_loss": Metric("train/loss", "train loss", bar=True), "train_acc": Metric("train/acc", "acc", bar=True),
        "test_loss": Metric("test/loss", "test loss"), "test_acc": Metric("test/acc", "acc"),
        "lr": Metric("lr", "lr", ".2e"), "firing_rates": Metric("firing_rate/{}"),
        "sops": Metric("sops/{}"), "sops.stages": Metric("sops/{}"), "energy_uJ": Metric("energy/{}_uJ"),
        "activation_sparsity": Metric("activation_sparsity"),
    }

    def __init__(self, parts: Parts, loop: dict[str, Any], device: torch.device, dist: Dist = SINGLE):
        super().__init__(parts, loop, device, dist)
        built = parts.supervised()
        self.data, self.model, self.loss_fn = built["data"], built["model"], built["loss_fn"]
        self.optimizer, self.scheduler = built["optimizer"], built["scheduler"]
        self.recompute = install_recompute(self.model, self.loop["recompute"])  # trainer.recompute=stage: a wrapper
        self.net = self.model if self.recompute is None else self.recompute  # what the training step calls (or its DDP)
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            if self.loop["sync_norm"]:
                import torch.distributed as td

                synced = sync_norms(self.model, td.group.WORLD)
                log.info(f"trainer.sync_norm: batch statistics of {len(synced)} norm layer(s) taken over all "
                         f"{dist.world} processes")
            # recomputation back-propagates each stage inside the backward (reentrant): DDP needs the static graph
            self.net = DistributedDataParallel(self.net, device_ids=[device.index] if device.type == "cuda" else None,
                                               static_graph=self.recompute is not None)
        precision = str(self.loop["precision"])  # 32 from the command line is an int
        self.amp_dtype = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}[precision]
        # fp16 needs loss scaling against gradient underflow (on CUDA; CPU autocast rarely underflows, scaling is cheap)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "16-mixed")
        if self.loop["compile"]:
            self.net = compiled(self.net)
        self.encoder = parts.encoder
        if self.data.temporal and parts.names["encoder"] != "direct":
            log.info(f"dataset {parts.names['dataset']} is already a spike sequence; encoder {parts.names['encoder']} "
                     f"is not used")
        self.warned_silent = False

    # ---- state ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any], extended: bool) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if not extended:
            self.scheduler.load_state_dict(state["scheduler"])
            return
        for group in self.optimizer.param_groups:  # re-plan: replay the new schedule over the epochs done
            group["lr"] = group["initial_lr"]
        with warnings.catch_warnings():  # stepping a schedule without training is the point here
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(state["epoch"]):
                self.scheduler.step()

    # ---- training ------------------------------------------------------------------
    def train_mode(self) -> None:
        self.model.train()

    def train_step(self, x: Tensor, y: Tensor, micro: int = 0, window: int = 1) -> dict[str, Tensor]:
        last = micro == window - 1
        if micro == 0:
            self.optimizer.zero_grad(set_to_none=True)
        # gradients of earlier micro-batches stay local; the last one's backward all-reduces the sum
        no_sync = self.net.no_sync() if self.dist.enabled and not last else contextlib.nullcontext()
        x_seq = self.encoder(x)
        T = x_seq.shape[0]
        K = self.loop["tbptt_steps"] or T
        if K >= T:
            with no_sync:
                out, loss = self.forward_backward(x_seq, y, window)
        else:  # truncated BPTT: chunk by chunk, each chunk's graph freed by its backward
            outs, loss = [], 0.0
            with carry_state(self.model) as carry, carrying(self.recompute, carry):
                for start in range(0, T, K):
                    final = start + K >= T
                    # only the very last backward of the optimizer step all-reduces the gradients
                    sync = contextlib.nullcontext() if last and final else (
                        self.net.no_sync() if self.dist.enabled else contextlib.nullcontext())
                    with sync:
                        chunk = x_seq[start:start + K]
                        out_c, loss_c = self.forward_backward(chunk, y, window * T / len(chunk))
                    outs.append(out_c.detach())
                    loss = loss + loss_c.detach() * (len(chunk) / T)
                    carry.next_chunk()
            out = torch.cat(outs)
        return self.finish_step(out.detach(), loss.detach(), y, last)

    def finish_step(self, out: Tensor, loss: Tensor, y: Tensor, last: bool) -> dict[str, Tensor]:
        """The batch's stats; then, at the end of an optimizer step, the checks, clipping and the update.

        A non-finite loss (the same verdict on every process) or gradient raises :class:`NonFinite`
        with the gradients cleared and nothing applied."""
        stats = {"loss": loss.float() * len(y), "correct": (out.mean(0).argmax(1) == y).sum()}
        if bool(self.reduce((~torch.isfinite(loss)).float())):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFinite("loss")
        if not last:
            return stats
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in params]) if params else torch.zeros((), device=self.device)
        if not bool(torch.isfinite(norm)) and not self.scaler.is_enabled():  # grads are equal on every process
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFinite("gradient")
        clip = self.loop["gradient_clip_val"]
        if clip is not None and params:
            torch.nn.utils.clip_grads_with_norm_(params, clip, norm)
        self.scaler.step(self.optimizer)  # with fp16 a step on overflowed gradients is skipped and the scale lowered
        self.scaler.update()
        return stats

    def forward_backward(self, x_seq: Tensor, y: Tensor, divisor: float) -> tuple[Tensor, Tensor]:
        """Readout and loss of ``x_seq`` (under autocast), and the backward of ``loss / divisor``."""
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            out = self.net(x_seq)  # [T, B, classes]
            loss = self.loss_fn(out, y)
        # also on a non-finite loss: every process must join the gradient all-reduce
        self.scaler.scale(loss / divisor).backward()
        return out, loss

    def train_record(self, sums: dict[str, Tensor], n: int) -> dict[str, float]:
        if n == 0:
            return {"train_loss": float("nan"), "train_acc": float("nan")}
        return {"train_loss": float(sums["loss"]) / n, "train_acc": float(sums["correct"]) / n}

    # ---- evaluation ----------------------------------------------------------------
    def evaluate(self, epoch: int, last: bool) -> dict[str, Any]:
        # deterministic: a stochastic encoder is seeded from the run's seed, so a checkpoint re-scores the same
        # (snntrain-eval), and evaluating leaves the training's random streams untouched
        with self.seeded(self.parts.seed):
            test = evaluate(self.model, self.test_loader(), self.encoder, self.loss_fn, self.device, self.reduce)
        silent = [layer for layer, rate in test["firing_rates"].items() if rate == 0.0]
        if silent and not self.warned_silent:
            self.warned_silent = True
            log.warning(
                f"layer(s) {', '.join(silent)} fired no spike on the test set after epoch {epoch + 1}: no gradient can "
                f"flow through a silent layer. Try a normalization (norm=bn or norm=tdbn), a lower neuron.threshold, "
                f"or a wider surrogate."
            )
        return {"test_loss": test["loss"], "test_acc": test["acc"], "firing_rates": test["firing_rates"],
                "silent_layers": silent, "sops": test["sops"], "energy_uJ": test["energy_uJ"],
                "activation_sparsity": test["activation_sparsity"]}

    @contextlib.contextmanager
    def seeded(self, seed: int):
        """Random draws inside come from ``seed``; the run's own random streams (CPU, this GPU) are restored after."""
        with torch.random.fork_rng(devices=[self.device.index or 0] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            yield

    def log_epoch(self, writer: Any, epoch: int) -> None:
        """Spike rasters and membrane traces of 4 fixed test samples per stage; weight and gradient histograms."""
        from .dashboard import activity_images, log_histograms

        test = self.data.test
        x = torch.stack([test[i][0] for i in range(min(4, len(test)))]).to(self.device)
        with self.seeded(0):  # a fixed encoding; the run's random streams are untouched
            images = activity_images(self.model, self.encoder(x))
        for tag, img in images.items():
            writer.add_image(tag, img, epoch)
        log_histograms(writer, self.model, epoch)

    def end_epoch(self) -> dict[str, Any]:
        lr = self.optimizer.param_groups[0]["lr"]
        with warnings.catch_warnings():  # resumed at an epoch's end, this process has not stepped the optimizer yet
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            self.scheduler.step()
        return {"lr": lr}

    def final_line(self, metrics: dict[str, Any]) -> str:
        return f"test accuracy {metrics['test_acc']:.4f}"
