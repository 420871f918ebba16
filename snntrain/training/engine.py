"""The run engine: one place that owns a run, whatever trains the network.

``train(cfg, run_dir)`` validates the config, claims the run directory
(:mod:`~snntrain.training.rundir`), builds the trainer named by ``trainer.name`` (a
registry kind: ``bptt``, ``stdp``, ...), and runs the epoch loop below. A trainer
supplies only what is its own (:class:`Trainer`): a training step on a batch, an
evaluation, its state. Everything else is here, once:

* **Data order** — :class:`~snntrain.training.order.EpochBatches`, a function of
  (seed, epoch), so a run resumed mid-epoch sees the batches it would have seen.
* **Checkpoints** — ``checkpoints/last.pt`` at every epoch end, every
  ``trainer.checkpoint_every_steps`` optimizer steps (``step-<n>.pt``, the newest
  ``trainer.keep_checkpoints`` kept, ``last.pt`` a hard link to the newest) and when a
  signal stops the run; ``best.pt`` at the epoch end with the best test accuracy (ties:
  the later one). Each holds the exact position, the epoch's running sums and every
  RNG state, so ``resume=<run dir>`` continues bit for bit as if never stopped.
* **Signals** — SIGINT/SIGTERM finish the current step, save, print the resume command
  and exit 130/143 (:mod:`~snntrain.training.signals`).
* **Divergence** — a non-finite loss or gradient stops the run (``trainer.on_nonfinite:
  stop``: exit 3, naming epoch and step; the checkpoints keep the last finite state) or
  skips the batch (``skip``: counted in ``metrics.json`` as ``skipped_batches``). No
  checkpoint with a non-finite tensor is ever written.
* **Extending** — ``resume=<run dir> trainer.epochs=<more>`` continues the run to more
  epochs; the trainer re-plans its schedule for the new total (see ``bptt``).
* **Outputs** — ``tensorboard/``, ``train.log``, ``metrics.json`` (strict JSON: a
  non-finite number is written as null; ``status`` is ``running``, ``finished``,
  ``diverged`` or ``interrupted``).
"""
from __future__ import annotations

import json
import logging
import math
import shlex
import signal
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.utils.data import DataLoader

from .. import __version__
from ..errors import ConfigError, Diverged, Interrupted, RunError
from ..registry import build
from . import checkpoint
from . import distributed
from .config import check_resumable, validate
from .distributed import SINGLE, Dist
from .order import EpochBatches
from .progress import EpochProgress, clock, epochs_left
from .rundir import RunDir
from .schema import LOOP
from .signals import StopSignals

log = logging.getLogger("snntrain")


class NonFinite(Exception):
    """Raised by :meth:`Trainer.train_step` when the loss or a gradient is not finite (nothing was applied)."""


class TrainerBase:
    """What a registered trainer (kind ``trainer``) supplies to the engine; subclass it.

    A trainer is built as ``Trainer(cfg, device, **its own trainer.* arguments)`` (the
    registry checks those arguments) and builds its data (``self.data``, a
    :class:`~snntrain.data.DataBundle`), network and the rest. The engine then calls:
    ``state_dict`` / ``load_state_dict`` (what it checkpoints; must include ``model``),
    ``start`` once, and per epoch ``train_mode``, ``train_step`` for every batch,
    ``evaluate``, ``train_record`` and ``end_epoch``; ``scalars`` / ``summary`` report.
    """

    #: word that starts the progress and log lines of an epoch
    title = "epoch"
    #: final metrics a sweep may optimise (``optimized_metric``), each ``max`` or ``min`` is better
    objectives: dict[str, str] = {"test_acc": "max", "best_test_acc": "max", "test_loss": "min",
                                  "train_acc": "max", "train_loss": "min"}

    def __init__(self, cfg: dict[str, Any], device: torch.device, dist: Dist = SINGLE):
        self.cfg, self.device, self.dist = cfg, torch.device(device), dist
        self.loop = {k: cfg["trainer"].get(k, key.default) for k, key in LOOP.items()}

    def test_loader(self, dataset=None, batch_size: int | None = None) -> DataLoader:
        """An in-order loader of ``dataset`` (the test split) with the run's loader settings; in a
        data-parallel run, this process's share (every N-th sample) — sum the results with :meth:`reduce`."""
        from torch.utils.data import Subset

        lc = self.loop
        data = self.data.test if dataset is None else dataset
        if self.dist.enabled:
            data = Subset(data, range(self.dist.rank, len(data), self.dist.world))
        pin = self.device.type == "cuda" if lc["pin_memory"] == "auto" else lc["pin_memory"]
        return DataLoader(data, batch_size or lc["eval_batch_size"], num_workers=lc["num_workers"], pin_memory=pin,
                          prefetch_factor=lc["prefetch_factor"])

    def reduce(self, t: Tensor) -> Tensor:
        """``t`` summed over the processes of a data-parallel run (itself in a single process)."""
        return distributed.all_sum(t, self.dist)

    def start(self, writer: Any, resumed: bool) -> None:
        """Called once before the first epoch (e.g. to score the initial weights)."""

    def train_mode(self) -> None:
        """Put the network in training mode (called at the start of every epoch)."""

    def train_step(self, x: Tensor, y: Tensor, micro: int = 0, window: int = 1) -> dict[str, Tensor]:
        """Learn from one batch; returns running sums to add up over the epoch.

        With gradient accumulation the batch is micro-batch ``micro`` of a window of
        ``window`` batches whose gradients add up to one optimizer step, taken after the
        last one (``micro == window - 1``). Raise :class:`NonFinite` (having applied
        nothing) when the loss or a gradient is not finite.
        """
        raise NotImplementedError

    def train_record(self, sums: dict[str, Tensor], n: int) -> dict[str, float]:
        """The epoch's training metrics from the summed step outputs over ``n`` samples."""
        return {}

    def status(self, sums: dict[str, Tensor], n: int, seconds: float, n_now: int) -> str:
        """The progress bar's text."""
        return f"{n_now / max(seconds, 1e-9):.0f} samples/s"

    def evaluate(self, epoch: int, last: bool) -> dict[str, Any] | None:
        """Test metrics after epoch ``epoch`` (0-based), with ``test_acc``; None if not scored this epoch."""
        raise NotImplementedError

    def end_epoch(self) -> dict[str, Any]:
        """After the evaluation: extra record entries (e.g. the lr used; then the scheduler's step)."""
        return {}

    def scalars(self, record: dict[str, Any]) -> dict[str, float]:
        """TensorBoard tag -> value for the epoch's record."""
        return {}

    def summary(self, record: dict[str, Any]) -> str:
        """The epoch's log line."""
        return f"test acc {record.get('test_acc')}"

    def log_epoch(self, writer: Any, epoch: int) -> None:
        """Extra TensorBoard content after epoch ``epoch`` (1-based): images, histograms (every
        ``trainer.log_images_every`` epochs and after the last; rank 0 only)."""

    def final_metrics(self, record: dict[str, Any]) -> dict[str, Any]:
        """Extra entries of ``metrics.json``."""
        return {}

    def final_line(self, metrics: dict[str, Any]) -> str:
        """The last log line (before the best accuracy and the run directory)."""
        return f"test accuracy {metrics.get('test_acc')}"

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any], extended: bool) -> None:
        raise NotImplementedError


def as_dict(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)  # type: ignore[return-value]


def strict_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def build_trainer(cfg: DictConfig | dict[str, Any], device: str | torch.device = "cpu", dist: Dist = SINGLE) -> Any:
    """Validate ``cfg`` and build its trainer (data, model, ...) without training or writing anything."""
    cfg = as_dict(cfg)
    spec = validate(cfg)
    return build("trainer", spec.trainer, context={"cfg": cfg, "device": torch.device(device), "dist": dist},
                 **spec.trainer_args)


def _together(d: Dist, step):
    """Run ``step()`` on every rank; if it raised a user error on any rank, raise it on every rank."""
    err, out = None, None
    try:
        out = step()
    except (ConfigError, RunError) as e:
        err = e
    if d.enabled:
        message = distributed.first_error(err, d)
        if message is not None and err is None:
            raise ConfigError(message)
    if err is not None:
        raise err
    return out


def _finished(resumed: dict[str, Any], epochs: int) -> bool:
    pos = resumed["position"]
    if pos["epoch"] > epochs or (pos["epoch"] == epochs and pos["batch"] > 0):
        raise ConfigError(
            f"trainer.epochs: the run being resumed ({resumed['path']}) is past epoch {epochs}; trainer.epochs can "
            f"only grow when resuming (it finished {resumed['epoch']} epochs)."
        )
    return pos["epoch"] == epochs


def train(cfg: DictConfig | dict[str, Any], run_dir: str | Path, *, run_files: dict[str, str] | None = None,
          command: list[str] | None = None) -> dict[str, Any]:
    """Run training as ``cfg`` says in ``run_dir``; return the final metrics (also in ``metrics.json``).

    ``run_files`` (relative path -> text) are written once the run is accepted (the
    command line passes Hydra's ``.hydra/*.yaml``); ``command`` are the command-line
    overrides, used to print the exact resume command.
    """
    cfg = as_dict(cfg)
    spec = validate(cfg)
    resumed = checkpoint.load(cfg["resume"]) if cfg["resume"] else None
    if resumed:
        check_resumable(resumed["config"], cfg, resumed["path"])
        if _finished(resumed, spec.loop["epochs"]):
            log.info(f"the run in {resumed['path']} already finished all {spec.loop['epochs']} epochs; nothing to do "
                     f"(raise trainer.epochs to train it longer)")
            return {**(resumed["history"][-1] if resumed["history"] else {}), "status": "already finished",
                    "resumed_from": resumed["path"], "history": resumed["history"]}
    d, device = distributed.setup(cfg["device"])
    if d.enabled and spec.loop["batch_size"] % d.world:
        raise ConfigError(f"trainer.batch_size: the global batch of {spec.loop['batch_size']} does not split evenly over "
                          f"{d.world} processes; use a multiple of {d.world}.")
    if not d.main:
        logging.getLogger("snntrain").setLevel(logging.WARNING)  # one log line per epoch: rank 0's
    rd = RunDir(run_dir, resumed) if d.main else _NoDir(run_dir)
    with StopSignals() as signals:
        _together(d, rd.__enter__)  # rank 0 claims the directory; a refusal stops every rank
        try:
            torch.manual_seed(cfg["seed"])
            trainer = _together(d, lambda: build("trainer", spec.trainer, context={"cfg": cfg, "device": device,
                                                                                    "dist": d}, **spec.trainer_args))
            if d.rank:  # the same initial weights on every rank, then each rank its own dropout/encoder draws
                torch.manual_seed(cfg["seed"] + 1_000_003 * d.rank)
            if resumed:
                extended = resumed["config"]["trainer"]["epochs"] != spec.loop["epochs"]
                trainer.load_state_dict(resumed, extended=extended)
                ranks = resumed.get("rng_ranks") or [resumed]
                if len(ranks) != d.world:
                    log.warning(f"the checkpoint was written by {len(ranks)} process(es), this run has {d.world}: the "
                                f"data order continues exactly, the random draws of dropout/encoders do not")
                checkpoint.restore_rng(ranks[d.rank] if len(ranks) == d.world else resumed, device)
                pos = resumed["position"]
                log.info(f"resumed from {resumed['path']}: continuing at epoch {pos['epoch'] + 1}, batch {pos['batch'] + 1}")

            def accept():
                if signals.received:
                    raise Interrupted(f"{signals.name} received before training started; nothing was written.",
                                      signals.received)
                rd.accept(run_files)

            _together(d, accept)
            return Run(cfg, spec.loop, trainer, rd, device, signals, resumed, command, d).fit()
        finally:
            rd.__exit__(None, None, None)


class _NoDir:
    """What ranks other than 0 hold in place of the run directory: the path, and no writes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"

    def __enter__(self) -> "_NoDir":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def accept(self, files: Any = None) -> None:
        pass


class Run:
    """The epoch loop of one accepted run (built by :func:`train`)."""

    def __init__(self, cfg, loop, trainer, rd: RunDir, device, signals: StopSignals, resumed, command, d: Dist = SINGLE):
        self.cfg, self.loop, self.trainer, self.rd, self.device, self.d = cfg, loop, trainer, rd, device, d
        self.signals, self.resumed, self.command = signals, resumed, command
        self.ckpt_dir = rd.ckpt_dir
        r = resumed or {}
        self.pos = dict(r.get("position", {"epoch": 0, "batch": 0, "step": 0}))
        self.history: list[dict[str, Any]] = list(r.get("history", []))
        self.best_acc: float | None = r.get("best_test_acc")
        self.skipped = int(r.get("skipped_batches", 0))
        accums = r.get("accum_ranks") or [r.get("accum", {})]
        self.accum: dict[str, Any] = dict(accums[d.rank] if len(accums) == d.world else accums[0])
        self.status = "running"
        self.epoch_seconds: list[float] = []  # wall time of each epoch this process finished (for the ETAs)
        self._saved_step = self.pos["step"]

    # ---- checkpoints and metrics -------------------------------------------------------
    def _payload(self) -> dict[str, Any]:
        state = self.trainer.state_dict()
        if not checkpoint.all_finite(state):
            where = f"epoch {self.pos['epoch'] + 1}, step {self.pos['step']}"
            raise Diverged(
                f"the weights or optimizer state became non-finite (by {where}) although every loss and gradient was "
                f"finite: the updates overflowed. The checkpoints keep the last finite state. {self._advice()}"
            )
        rng = checkpoint.rng_states(self.device)
        per_rank = distributed.gather_objects((rng, dict(self.accum)), self.d)  # every rank's, for an exact resume
        return {
            **state, "epoch": len(self.history), "position": dict(self.pos), "accum": dict(self.accum),
            "best_test_acc": self.best_acc, "history": self.history, "skipped_batches": self.skipped,
            "config": self.cfg, "version": __version__, **rng, "world_size": self.d.world,
            "rng_ranks": [r for r, _ in per_rank] if self.d.enabled else None,
            "accum_ranks": [a for _, a in per_rank] if self.d.enabled else None,
        }

    def _save_last(self) -> None:
        payload = self._payload()  # a collective in a data-parallel run: every rank builds it, rank 0 writes
        if self.d.main:
            checkpoint.save(payload, self.ckpt_dir / checkpoint.LAST)
        self._saved_step = self.pos["step"]

    def _save_step(self) -> None:
        path = checkpoint.step_path(self.ckpt_dir, self.pos["step"])
        payload = self._payload()
        self._saved_step = self.pos["step"]
        if not self.d.main:
            return
        checkpoint.save(payload, path)
        checkpoint.link(path, self.ckpt_dir / checkpoint.LAST)
        checkpoint.prune_steps(self.ckpt_dir, self.loop["keep_checkpoints"])

    def _write_metrics(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        record = self.history[-1] if self.history else {}
        metrics = {
            **record, "best_test_acc": self.best_acc, "status": self.status, "skipped_batches": self.skipped,
            "train_time_s": time.perf_counter() - self.t_start, "resumed_from": self.resumed["path"] if self.resumed else None,
            **(extra or {}), **self.trainer.final_metrics(record), "history": self.history,
        }
        text = json.dumps(strict_json(metrics), indent=2, allow_nan=False)
        if self.d.main:
            checkpoint.write_atomic(self.rd.path / "metrics.json", lambda f: f.write(text.encode()), "metrics file")
        return metrics

    def _resume_command(self) -> str:
        if self.command is None:
            return f"train again with the same config plus resume={self.rd.path}"
        kept = [a for a in self.command if not a.startswith("resume=")]
        return "snntrain " + " ".join(shlex.quote(a) for a in [*kept, f"resume={self.rd.path}"])

    def _advice(self) -> str:
        return ("Try a lower optimizer.lr, gradient clipping, a normalization (norm=tdbn), or "
                "trainer.on_nonfinite=skip to skip such batches.")

    def _copy_best(self) -> None:
        """A resumed run in a new directory starts with the best checkpoint of the run it continues."""
        if not self.resumed:
            return
        source = Path(self.resumed["path"]).parent / checkpoint.BEST
        target = self.ckpt_dir / checkpoint.BEST
        if self.d.main and source.is_file() and source.resolve() != target.resolve():
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            checkpoint.link(source, target)

    # ---- the loop ----------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter  # imported late: slow, and only needed here

        cfg, lc, trainer = self.cfg, self.loop, self.trainer
        self._copy_best()
        data = trainer.data
        order = EpochBatches(len(data.train), lc["batch_size"], cfg["seed"], lc["limit_batches"], self.d.rank,
                             self.d.world)
        workers = lc["num_workers"]
        pin = self.device.type == "cuda" if lc["pin_memory"] == "auto" else lc["pin_memory"]
        loader = DataLoader(data.train, batch_sampler=order, num_workers=workers, pin_memory=pin,
                            persistent_workers=lc["persistent_workers"], prefetch_factor=lc["prefetch_factor"],
                            generator=torch.Generator().manual_seed(cfg["seed"]))
        self.writer = (SummaryWriter(str(self.rd.path / "tensorboard"), purge_step=len(self.history) + 1)
                       if self.d.main else _NoWriter())
        self.writer.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```", len(self.history))
        trainer.start(self.writer, resumed=self.resumed is not None)
        self.t_start = time.perf_counter()  # train_time_s: the epochs, after every set-up step (kernels included)
        try:
            for epoch in range(self.pos["epoch"], lc["epochs"]):
                t_epoch = time.perf_counter()
                self._train_epoch(epoch, order, loader)
                self._end_epoch(epoch, t_epoch)
            self.status = "finished"
            metrics = self._write_metrics()
            self._log_hparams(metrics)
        except (Diverged, Interrupted) as stop:
            self.status = "diverged" if isinstance(stop, Diverged) else "interrupted"
            self._log_hparams(self._write_metrics({"stopped": str(stop)}))
            raise
        finally:
            self.writer.close()
        best = self.best_acc if self.best_acc is not None else float("nan")
        log.info(f"{trainer.final_line(metrics)} (best {best:.4f}); run directory: {self.rd.path}")
        return metrics

    def _log_hparams(self, metrics: dict[str, Any]) -> None:
        """The run's config and final metrics in TensorBoard's HParams dashboard (a sweep: one table)."""
        if self.d.main:
            from .dashboard import log_hparams

            log_hparams(self.writer, self.cfg, metrics, len(self.history))

    def _train_epoch(self, epoch: int, order: EpochBatches, loader: DataLoader) -> None:
        lc, trainer = self.loop, self.trainer
        start = self.pos["batch"] if epoch == self.pos["epoch"] else 0
        if start == 0:
            self.accum = {"sums": {}, "n": 0}
        self.pos.update(epoch=epoch, batch=start)
        order.set_epoch(epoch, start)
        trainer.train_mode()
        t0, n0 = time.perf_counter(), self.accum["n"]
        sums = self.accum["sums"]
        with EpochProgress(f"{trainer.title} {epoch + 1}/{lc['epochs']}", len(order),
                           enabled=lc["progress"] and self.d.main, epochs_after=lc["epochs"] - epoch - 1,
                           epoch_seconds=self.epoch_seconds) as bar:
            per_step = lc["accumulate_grad_batches"]
            for x, y in loader:
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                first = self.pos["batch"] // per_step * per_step  # the accumulation window of this batch
                window = min(per_step, order.per_epoch - first)
                micro = self.pos["batch"] - first
                boundary = micro == window - 1  # an optimizer step ends this batch
                try:
                    stats = trainer.train_step(x, y, micro=micro, window=window)
                    self.pos["step"] += boundary
                except NonFinite as what:
                    if lc["on_nonfinite"] == "stop":
                        last = self.ckpt_dir / checkpoint.LAST
                        kept = (f"{last} keeps the last finite state (optimizer step {self._saved_step})"
                                if last.is_file() else "no checkpoint had been written yet")
                        raise Diverged(
                            f"the {what} was not finite at epoch {epoch + 1}, step {self.pos['batch'] + 1} of the "
                            f"epoch (optimizer step {self.pos['step'] + 1} of the run); nothing of that step was "
                            f"applied, the run stopped, and {kept}. {self._advice()}"
                        ) from None
                    self.skipped += 1
                    log.warning(f"non-finite {what} at epoch {epoch + 1}, batch {self.pos['batch'] + 1}: batch skipped "
                                f"({self.skipped} so far)")
                    stats = {}
                for k, v in stats.items():
                    sums[k] = sums[k] + v if k in sums else v
                self.accum["n"] += len(y) if stats else 0
                self.pos["batch"] += 1
                bar.advance(lambda: trainer.status(sums, self.accum["n"], time.perf_counter() - t0,
                                                   self.accum["n"] - n0))
                if not boundary:  # checkpoints and signals wait for the optimizer step (no half-summed gradients)
                    continue
                every = lc["checkpoint_every_steps"]
                if stats and every and self.pos["step"] % every == 0:
                    self._save_step()
                if self._signalled():
                    self._stop_for_signal()
        self.accum["train_s"] = self.accum.get("train_s", 0.0) + time.perf_counter() - t0

    def _signalled(self) -> bool:
        """Whether any process got SIGINT/SIGTERM (torchrun forwards them to every worker)."""
        got = distributed.any_rank(self.signals.received is not None, self.d, self.device)
        if got and self.signals.received is None:
            self.signals.received = signal.SIGTERM
        return got

    def _stop_for_signal(self) -> None:
        self._save_last()
        raise Interrupted(
            f"stopped by {self.signals.name} at epoch {self.pos['epoch'] + 1}, batch {self.pos['batch']} "
            f"(optimizer step {self.pos['step']}); {self.ckpt_dir / checkpoint.LAST} holds that exact position. "
            f"Continue with: {self._resume_command()}",
            self.signals.received,  # type: ignore[arg-type]
        )

    def _end_epoch(self, epoch: int, t_epoch: float) -> None:
        lc, trainer = self.loop, self.trainer
        last = epoch + 1 == lc["epochs"]
        test = trainer.evaluate(epoch, last)
        sums = {k: trainer.reduce(v) for k, v in self.accum["sums"].items()}
        n = int(trainer.reduce(torch.tensor(float(self.accum["n"]), device=self.device)))
        record = {"epoch": epoch + 1, **trainer.train_record(sums, n)}
        record["samples_per_s"] = n / max(self.accum.get("train_s", 0.0), 1e-9)
        is_best = False
        if test is not None:
            record.update(test)
            score = test["test_acc"]
            finite = all(math.isfinite(v) for v in (score, test.get("test_loss", 0.0)))
            if finite and (self.best_acc is None or score >= self.best_acc):
                self.best_acc, is_best = score, True
        record.update(trainer.end_epoch())
        record["best_test_acc"] = self.best_acc
        self.history.append(record)
        self.pos.update(epoch=epoch + 1, batch=0)
        self.accum = {"sums": {}, "n": 0}
        for tag, value in trainer.scalars(record).items():
            if value is not None and math.isfinite(value):
                self.writer.add_scalar(tag, value, epoch + 1)
        every = lc["log_images_every"]
        if self.d.main and every and ((epoch + 1) % every == 0 or last):
            trainer.log_epoch(self.writer, epoch + 1)
        self.writer.flush()
        self._save_last()
        if is_best and self.d.main:
            checkpoint.link(self.ckpt_dir / checkpoint.LAST, self.ckpt_dir / checkpoint.BEST)
        self._write_metrics()
        self.epoch_seconds.append(time.perf_counter() - t_epoch)
        left = lc["epochs"] - epoch - 1
        eta = f"  eta {clock(epochs_left(left, self.epoch_seconds))}" if left else ""
        log.info(f"{trainer.title} {epoch + 1}/{lc['epochs']}  {trainer.summary(record)}{eta}")
        if self._signalled():
            self._stop_for_signal()


class _NoWriter:
    """The TensorBoard writer of ranks other than 0: writes nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None
