"""The run engine: one place that owns a run, whatever trains the network.

``train(cfg, run_dir)`` reads as one page:

1. validate the config; read and check the checkpoint of ``resume=`` (:mod:`.checkpoint`);
2. assemble the parts (:class:`~snntrain.training.parts.Parts`: ``cfg`` -> data, network,
   encoder, loss, optimizer, scheduler) and build the trainer named by ``trainer.name``
   from them (a registry kind: ``bptt``, ``stdp``, ...);
3. restore the resumed run: the trainer's state (checked against the network first:
   :func:`.checkpoint.check_fits`) and the run's own (:class:`~.state.RunState`: position,
   history, best, skipped batches, running sums, RNG);
4. rank 0 claims and accepts the run directory (:class:`~.rankzero.RankZero`);
5. the loop (:class:`Run`): per epoch ``train_step`` on every batch, then ``evaluate``,
   the record, the checkpoints (:class:`~.checkpoint.CheckpointSaver`), the outputs.

A trainer supplies only what is its own (:class:`TrainerBase`): a training step, an
evaluation, its state, and a declaration of how its metrics are shown (:mod:`.report`).
Everything else is here, once:

* **Data order** — :class:`~snntrain.training.order.EpochBatches`, a function of
  (seed, epoch), so a run resumed mid-epoch sees the batches it would have seen.
* **Checkpoints** — ``checkpoints/last.pt`` at every epoch end, every
  ``trainer.checkpoint_every_steps`` optimizer steps (``step-<n>.pt``, the newest
  ``trainer.keep_checkpoints`` kept, ``last.pt`` a hard link to the newest) and when a
  signal stops the run; ``best.pt`` at the epoch end with the best test accuracy (ties:
  the later one). Each holds the exact position, the epoch's running sums and every
  RNG state, so ``resume=<run dir>`` continues bit for bit as if never stopped.
* **Signals** — SIGINT, SIGTERM and SIGHUP finish the current step, save, print the
  resume command and exit 128 + the signal's number (:mod:`~snntrain.training.signals`);
  one during the last epoch's evaluation lets the run finish.
* **Divergence** — a non-finite loss or gradient stops the run (``trainer.on_nonfinite:
  stop``: exit 3, naming epoch and step; the checkpoints keep the last finite state) or
  skips the batch (``skip``: counted in ``metrics.json`` as ``skipped_batches``). No
  checkpoint with a non-finite tensor is ever written.
* **Extending** — ``resume=<run dir> trainer.epochs=<more>`` continues the run to more
  epochs; the trainer re-plans its schedule for the new total (see ``bptt``).
* **Outputs** — ``tensorboard/``, ``train.log``, ``metrics.json`` (strict JSON: a
  non-finite number is written as null; ``status`` is ``running``, ``finished``,
  ``diverged``, ``interrupted`` or ``failed`` — a file could not be written, e.g. a full disk).

**Writing a trainer.** Subclass :class:`TrainerBase`, register it
(``@register("trainer", "<name>")``) and take ``(parts, loop, device, dist, **own keys)``:
``parts`` (:class:`~snntrain.training.parts.Parts`) builds what the trainer uses on first
access, ``loop`` the shared ``trainer.*`` settings; the trainer's own ``trainer.*`` keys
are its keyword arguments, checked by the registry. It never sees the config, a file or
a signal.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.utils.data import DataLoader

from .. import __version__
from ..errors import ConfigError, Diverged, Interrupted, StorageError
from ..kernels import cpu as cpu_kernel
from ..registry import build
from . import checkpoint, distributed, faults, report, rundir
from .checkpoint import CheckpointSaver, NonFiniteState
from .config import check_resumable, validate
from .distributed import SINGLE, Dist, PeerLost
from .order import EpochBatches
from .parts import Parts
from .progress import EpochProgress, clock, epochs_left
from .rankzero import RankZero
from .report import Metric
from .schema import LOOP
from .signals import StopSignals
from .state import RunState, restore_rng, rng_states

log = logging.getLogger("snntrain")


class NonFinite(Exception):
    """Raised by :meth:`TrainerBase.train_step` when the loss or a gradient is not finite (nothing was applied)."""


class TrainerBase:
    """What a registered trainer (kind ``trainer``) supplies to the engine; subclass it.

    Built as ``Trainer(parts, loop, device, dist, **its own trainer.* keys)`` (see the
    module doc). The engine then calls: ``state_dict`` / ``load_state_dict`` (what it
    checkpoints; must include ``model``), ``start`` once, and per epoch ``train_mode``,
    ``train_step`` for every batch, ``evaluate``, ``train_record`` and ``end_epoch``.
    The records they return are shown as :attr:`report` declares (:mod:`.report`).
    """

    #: word that starts the progress and log lines of an epoch
    title = "epoch"
    #: final metrics a sweep may optimise (``optimized_metric``), each ``max`` or ``min`` is better
    objectives: dict[str, str] = {"test_acc": "max", "best_test_acc": "max", "test_loss": "min",
                                  "train_acc": "max", "train_loss": "min"}
    #: record key -> how it is shown in the bar, the log line and TensorBoard
    report: dict[str, Metric] = {"test_acc": Metric("test/acc", "test acc")}

    def __init__(self, parts: Parts, loop: dict[str, Any], device: torch.device, dist: Dist = SINGLE):
        self.parts, self.device, self.dist = parts, torch.device(device), dist
        self.loop = {k: loop.get(k, key.default) for k, key in LOOP.items()}

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
        """Called once before the first epoch (e.g. to score the initial weights); ``writer`` has
        TensorBoard's ``add_scalar`` (it writes on rank 0 only)."""

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
        """The epoch's training metrics from the summed step outputs over ``n`` samples (also the bar's)."""
        return {}

    def evaluate(self, epoch: int, last: bool) -> dict[str, Any] | None:
        """Test metrics after epoch ``epoch`` (0-based), with ``test_acc``; None if not scored this epoch."""
        raise NotImplementedError

    def end_epoch(self) -> dict[str, Any]:
        """After the evaluation: extra record entries (e.g. the lr used; then the scheduler's step)."""
        return {}

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


def assemble(cfg: dict[str, Any], device: str | torch.device, dist: Dist = SINGLE) -> TrainerBase:
    """The one assembler: a config, validated -> its parts -> its trainer (nothing trained or written)."""
    spec = validate(cfg)  # first: a bad device string is refused by name here
    device = torch.device(device)
    parts = Parts(cfg, device)
    return build("trainer", spec.trainer, context={"parts": parts, "loop": spec.loop, "device": device, "dist": dist},
                 **spec.trainer_args)


def build_trainer(cfg: DictConfig | dict[str, Any], device: str | torch.device = "cpu", dist: Dist = SINGLE) -> Any:
    """Validate ``cfg`` and build its trainer (data, model, ...) without training or writing anything."""
    return assemble(as_dict(cfg), device, dist)


def load_resumed(cfg: dict[str, Any], epochs: int) -> dict[str, Any] | None:
    """The checkpoint ``resume=`` names, checked: readable, the engine's entries well-typed, the same config."""
    if not cfg["resume"]:
        return None
    resumed = checkpoint.load(cfg["resume"])
    checkpoint.check_run_fields(resumed)
    check_resumable(resumed["config"], cfg, resumed["path"])
    pos = resumed["position"]
    if pos["epoch"] > epochs or (pos["epoch"] == epochs and pos["batch"] > 0):
        raise ConfigError(
            f"trainer.epochs: the run being resumed ({resumed['path']}) is past epoch {epochs}; trainer.epochs can "
            f"only grow when resuming (it finished {resumed['epoch']} epochs)."
        )
    return resumed


def train(cfg: DictConfig | dict[str, Any], run_dir: str | Path, *, run_files: dict[str, str] | None = None,
          command: list[str] | None = None) -> dict[str, Any]:
    """Run training as ``cfg`` says in ``run_dir``; return the final metrics (also in ``metrics.json``).

    ``run_files`` (relative path -> text) are written once the run is accepted (the
    command line passes Hydra's ``.hydra/*.yaml``); ``command`` are the command-line
    overrides, used to print the exact resume command.
    """
    cfg = as_dict(cfg)
    loop = validate(cfg).loop
    elastic = distributed.elastic_run()
    if elastic and elastic[1] > 0 and not cfg["resume"]:  # torchrun restarted the workers: continue the run
        cfg, run_dir = continue_elastic(cfg, Path(run_dir), *elastic)
    resumed = load_resumed(cfg, loop["epochs"])
    if resumed and resumed["position"]["epoch"] == loop["epochs"]:
        log.info(f"the run in {resumed['path']} already finished all {loop['epochs']} epochs; nothing to do "
                 f"(raise trainer.epochs to train it longer)")
        return {**(resumed["history"][-1] if resumed["history"] else {}), "status": "already finished",
                "resumed_from": resumed["path"], "history": resumed["history"]}
    d, device = distributed.setup(cfg["device"])
    if d.enabled and loop["batch_size"] % d.world:
        raise ConfigError(f"trainer.batch_size: the global batch of {loop['batch_size']} does not split evenly over "
                          f"{d.world} processes; use a multiple of {d.world}.")
    if not d.main:
        logging.getLogger("snntrain").setLevel(logging.WARNING)  # one log line per epoch: rank 0's
    rz = RankZero(run_dir, resumed, d)
    # a CPU run keeps one neuron engine from start to end, across resumes (see snntrain.kernels.cpu)
    engine = (cpu_kernel.pinned(resumed.get("cpu_neurons") if resumed else None) if device.type == "cpu"
              else contextlib.nullcontext(None))
    with StopSignals(hold=command is not None) as signals, engine as cpu_neurons:
        rz.claim()  # rank 0 claims the directory; a refusal stops every rank
        try:
            torch.manual_seed(cfg["seed"])
            trainer = rz.together(lambda: assemble(cfg, device, d))
            if d.rank:  # the same initial weights on every rank, then each rank its own dropout/encoder draws
                torch.manual_seed(cfg["seed"] + 1_000_003 * d.rank)
            state = RunState.from_checkpoint(resumed, d.rank, d.world)
            state.cpu_neurons = cpu_neurons
            if resumed:
                rz.together(lambda: checkpoint.check_fits(resumed, trainer.state_dict()))
                trainer.load_state_dict(resumed, extended=resumed["config"]["trainer"]["epochs"] != loop["epochs"])
                if RunState.world_of(resumed) != d.world:
                    log.warning(f"the checkpoint was written by {RunState.world_of(resumed)} process(es), this run has "
                                f"{d.world}: the data order continues exactly, the random draws of dropout/encoders do not")
                restore_rng(state.rng, device)
                log.info(f"resumed from {resumed['path']}: continuing at epoch {state.epoch + 1}, batch {state.batch + 1}")

            def not_signalled() -> None:
                if signals.received:
                    raise Interrupted(f"{signals.name} received before training started; nothing was written.",
                                      signals.received)

            rz.accept(run_files, before=not_signalled)
            if elastic and d.main:
                rundir.remember_elastic(elastic[0], rz.path)
            saver = CheckpointSaver(rz.ckpt_dir, loop["keep_checkpoints"], loop["checkpoint_every_steps"], d.main,
                                    state.step)
            # the elastic record stays: a worker that fails after the end (at exit) is restarted by torchrun,
            # finds the finished run through it and ends at once ("already finished")
            return Run(cfg, loop, trainer, state, saver, rz, device, signals, resumed, command, d).fit()
        finally:
            rz.release()


def continue_elastic(cfg: dict[str, Any], run_dir: Path, run_id: str, restart: int) -> tuple[dict[str, Any], Path]:
    """The config and run directory of a worker torchrun restarted: the run directory its run id trained
    in before (rank 0's record), resumed from its last checkpoint when it has one."""
    d, _ = distributed.setup(cfg["device"])
    found = None
    if d.main:
        previous = rundir.elastic_previous(run_id)
        if previous is not None:
            found = (str(previous), (previous / "checkpoints" / checkpoint.LAST).is_file())
    found = distributed.broadcast_object(found, d)
    if found is None:
        return cfg, run_dir
    previous, has_checkpoint = Path(found[0]), found[1]
    if d.main:
        if previous.resolve() != run_dir.resolve():
            rundir.remove_if_empty(run_dir, run_dir.parent)  # the folder this restart's Hydra made, unused
        log.info(f"torchrun restart {restart} of run {run_id}: continuing the run in {previous}"
                 + (" from its last checkpoint" if has_checkpoint else " from the start (no checkpoint yet)"))
    return ({**cfg, "resume": str(previous)} if has_checkpoint else cfg), previous


class Run:
    """The epoch loop of one accepted run (built by :func:`train`) over its :class:`RunState`."""

    def __init__(self, cfg: dict[str, Any], loop: dict[str, Any], trainer: TrainerBase, state: RunState,
                 saver: CheckpointSaver, rz: RankZero, device: torch.device, signals: StopSignals,
                 resumed: dict[str, Any] | None, command: list[str] | None, d: Dist = SINGLE):
        self.cfg, self.loop, self.trainer, self.state, self.saver, self.rz = cfg, loop, trainer, state, saver, rz
        self.device, self.signals, self.resumed, self.command, self.d = device, signals, resumed, command, d
        self.status = "running"
        self.epoch_seconds: list[float] = []  # wall time of each epoch this process finished (for the ETAs)
        self.t_start = time.perf_counter()

    # ---- the loop ----------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        cfg, lc, trainer, s, rz = self.cfg, self.loop, self.trainer, self.state, self.rz
        if self.resumed:
            self.saver.adopt_best(self.resumed["path"])
        order = EpochBatches(len(trainer.data.train), lc["batch_size"], cfg["seed"], lc["limit_batches"],
                             self.d.rank, self.d.world)
        pin = self.device.type == "cuda" if lc["pin_memory"] == "auto" else lc["pin_memory"]
        loader = DataLoader(trainer.data.train, batch_sampler=order, num_workers=lc["num_workers"], pin_memory=pin,
                            persistent_workers=lc["persistent_workers"], prefetch_factor=lc["prefetch_factor"],
                            generator=torch.Generator().manual_seed(cfg["seed"]))
        rz.open_writer(purge_step=s.epochs_done + 1)
        rz.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```", s.epochs_done)
        trainer.start(rz, resumed=self.resumed is not None)
        self.t_start = time.perf_counter()  # train_time_s: the epochs, after every set-up step (kernels included)
        try:
            try:
                for epoch in range(s.epoch, lc["epochs"]):
                    t_epoch = time.perf_counter()
                    self.train_epoch(epoch, order, loader)
                    self.end_epoch(epoch, t_epoch)
            except RuntimeError as err:
                if not distributed.lost_peer(err, self.d):
                    raise
                raise self.peer_lost() from None
            self.status = "finished"
            metrics = self.write_metrics()
        except (Diverged, Interrupted) as stop:
            self.status = "diverged" if isinstance(stop, Diverged) else "interrupted"
            rz.log_hparams(cfg, self.write_metrics({"stopped": str(stop)}), s.epochs_done)
            raise
        except PeerLost as stop:
            self.status = "interrupted"
            with contextlib.suppress(StorageError):
                self.write_metrics({"stopped": str(stop)})
            if not self.d.main:  # the command line prints rank 0's errors; this rank may be the only one left
                print(f"snntrain: {stop}", file=sys.stderr, flush=True)
            raise
        except StorageError as stop:  # a full disk: metrics.json says so if it still can be written
            self.status = "failed"
            with contextlib.suppress(StorageError):
                self.write_metrics({"stopped": str(stop)})
            raise
        rz.log_hparams(cfg, metrics, s.epochs_done)
        best = s.best if s.best is not None else float("nan")
        log.info(f"{trainer.final_line(metrics)} (best {best:.4f}); run directory: {rz.path}")
        return metrics

    def train_epoch(self, epoch: int, order: EpochBatches, loader: DataLoader) -> None:
        lc, trainer, s = self.loop, self.trainer, self.state
        if epoch != s.epoch or s.batch == 0:  # a fresh epoch (else: resumed mid-epoch, its sums restored)
            s.accum = {"sums": {}, "n": 0}
        s.epoch, s.batch = epoch, s.batch if epoch == s.epoch else 0
        order.set_epoch(epoch, s.batch)
        trainer.train_mode()
        t0, n0, sums, per_step = time.perf_counter(), s.accum["n"], s.accum["sums"], lc["accumulate_grad_batches"]
        with EpochProgress(f"{trainer.title} {epoch + 1}/{lc['epochs']}", len(order),
                           enabled=lc["progress"] and self.d.main, epochs_after=lc["epochs"] - epoch - 1,
                           epoch_seconds=self.epoch_seconds) as bar:
            for x, y in loader:
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                first = s.batch // per_step * per_step  # the accumulation window of this batch
                window = min(per_step, order.per_epoch - first)
                micro = s.batch - first
                boundary = micro == window - 1  # an optimizer step ends this batch
                try:
                    stats = trainer.train_step(x, y, micro=micro, window=window)
                    s.step += boundary
                except NonFinite as what:
                    stats = self.nonfinite(str(what), epoch)
                for k, v in stats.items():
                    sums[k] = sums[k] + v if k in sums else v
                s.accum["n"] += len(y) if stats else 0
                s.batch += 1
                faults.batch_done(self.d.rank, epoch, s.batch, s.step, self.rz.path)
                bar.advance(lambda: self.bar_text(sums, s.accum["n"], time.perf_counter() - t0, s.accum["n"] - n0))
                if not boundary:  # checkpoints and signals wait for the optimizer step (no half-summed gradients)
                    continue
                if stats and self.saver.due(s.step):
                    self.save(step=True)
                if self.signalled():
                    self.stop_for_signal()
        s.accum["train_s"] = s.accum.get("train_s", 0.0) + time.perf_counter() - t0

    def end_epoch(self, epoch: int, t_epoch: float) -> None:
        lc, trainer, s, rz = self.loop, self.trainer, self.state, self.rz
        last = epoch + 1 == lc["epochs"]
        if last:
            faults.final_evaluation()
        test = trainer.evaluate(epoch, last)
        sums = {k: trainer.reduce(v) for k, v in s.accum["sums"].items()}
        n = int(trainer.reduce(torch.tensor(float(s.accum["n"]), device=self.device)))
        record = {"epoch": epoch + 1, **trainer.train_record(sums, n)}
        record["samples_per_s"] = n / max(s.accum.get("train_s", 0.0), 1e-9)
        is_best = False
        if test is not None:
            record.update(test)
            score = test["test_acc"]
            finite = all(math.isfinite(v) for v in (score, test.get("test_loss", 0.0)))
            if finite and (s.best is None or score >= s.best):
                s.best, is_best = score, True
        record.update(trainer.end_epoch())
        record["best_test_acc"] = s.best
        s.history.append(record)
        s.epoch, s.batch, s.accum = epoch + 1, 0, {"sums": {}, "n": 0}
        rz.add_scalars(report.scalars(record, self.report), epoch + 1)
        every = lc["log_images_every"]
        if rz.writer is not None and every and ((epoch + 1) % every == 0 or last):
            trainer.log_epoch(rz.writer, epoch + 1)
        rz.flush()
        self.save()
        if is_best:
            self.saver.mark_best()
        self.write_metrics()
        self.epoch_seconds.append(time.perf_counter() - t_epoch)
        left = lc["epochs"] - epoch - 1
        eta = f"  eta {clock(epochs_left(left, self.epoch_seconds))}" if left else ""
        rz.info(f"{trainer.title} {epoch + 1}/{lc['epochs']}  {report.line(record, self.report)}{eta}")
        if self.signalled():
            if last:  # every epoch is done and saved: the run finished
                rz.info(f"{self.signals.name} received during the last epoch's evaluation; the run finished all "
                        f"{lc['epochs']} epochs")
                return
            self.stop_for_signal()

    # ---- what the loop calls -----------------------------------------------------------
    @property
    def report(self) -> dict[str, Metric]:
        return {**self.trainer.report, "samples_per_s": SAMPLES_PER_S}

    def bar_text(self, sums: dict[str, Tensor], n: int, seconds: float, n_now: int) -> str:
        now = self.trainer.train_record(sums, n) if n else {}
        rate = f"{n_now / max(seconds, 1e-9):.0f} samples/s"
        return "  ".join(t for t in (report.line(now, self.trainer.report, bar=True), rate) if t)

    def payload(self) -> dict[str, Any]:
        """The checkpoint: the trainer's state, the run's state, the config (a collective in a data-parallel
        run: every rank's RNG and running sums are gathered)."""
        per_rank = distributed.gather_objects((rng_states(self.device), dict(self.state.accum)), self.d) \
            if self.d.enabled else None
        return {**self.trainer.state_dict(), **self.state.to_checkpoint(self.device, per_rank), "config": self.cfg,
                "version": __version__}

    def save(self, step: bool = False) -> None:
        try:
            (self.saver.save_step if step else self.saver.save_last)(self.payload())
        except NonFiniteState:
            raise Diverged(
                f"the weights or optimizer state became non-finite (by epoch {self.state.epoch + 1}, step "
                f"{self.state.step}) although every loss and gradient was finite: the updates overflowed. The "
                f"checkpoints keep the last finite state. {ADVICE}"
            ) from None

    def nonfinite(self, what: str, epoch: int) -> dict[str, Tensor]:
        """A non-finite loss or gradient: stop (raise :class:`Diverged`) or count the batch as skipped."""
        s = self.state
        if self.loop["on_nonfinite"] == "stop":
            kept = (f"{self.saver.last} keeps the last finite state (optimizer step {self.saver.saved_step})"
                    if self.saver.last.is_file() else "no checkpoint had been written yet")
            raise Diverged(
                f"the {what} was not finite at epoch {epoch + 1}, step {s.batch + 1} of the epoch (optimizer step "
                f"{s.step + 1} of the run); nothing of that step was applied, the run stopped, and {kept}. {ADVICE}"
            )
        s.skipped += 1
        log.warning(f"non-finite {what} at epoch {epoch + 1}, batch {s.batch + 1}: batch skipped ({s.skipped} so far)")
        return {}

    def write_metrics(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        s = self.state
        record = s.history[-1] if s.history else {}
        metrics = {
            **record, "best_test_acc": s.best, "status": self.status, "skipped_batches": s.skipped,
            "train_time_s": time.perf_counter() - self.t_start,
            "resumed_from": self.resumed["path"] if self.resumed else None,
            **(extra or {}), **self.trainer.final_metrics(record), "history": s.history,
        }
        self.rz.write_metrics(json.dumps(strict_json(metrics), indent=2, allow_nan=False))
        return metrics

    def resume_command(self) -> str:
        if self.command is None:
            return f"train again with the same config plus resume={self.rz.path}"
        kept = [a for a in self.command if not a.startswith("resume=")]
        return "snntrain " + " ".join(shlex.quote(a) for a in [*kept, f"resume={self.rz.path}"])

    def signalled(self) -> bool:
        """Whether any process got a stop signal (torchrun forwards them to every worker)."""
        got = distributed.any_rank(self.signals.received is not None, self.d, self.device)
        if got and self.signals.received is None:
            self.signals.received = signal.SIGTERM
        return got

    def peer_lost(self) -> PeerLost:
        others = [r for r in range(self.d.world) if r != self.d.rank]
        who = f"rank {others[0]}" if len(others) == 1 else f"one of ranks {', '.join(map(str, others))}"
        kept = (f"the last checkpoint is {self.saver.last} (optimizer step {self.saver.saved_step})"
                if self.saver.last.is_file() else "no checkpoint had been written yet")
        return PeerLost(
            f"process {who} of this {self.d.world}-process run stopped (killed or crashed) at epoch "
            f"{self.state.epoch + 1}, so rank {self.d.rank} stopped too; {kept}. Under torchrun --max-restarts the "
            f"workers continue the run from it by themselves; otherwise continue with: "
            + (f"torchrun --nproc_per_node={self.d.world} -m {self.resume_command()}" if self.command is not None
               else self.resume_command())
        )

    def stop_for_signal(self) -> None:
        s = self.state
        self.save()
        where = (f"after epoch {s.epoch} of {self.loop['epochs']}" if s.batch == 0 else
                 f"at epoch {s.epoch + 1}, batch {s.batch}")
        raise Interrupted(
            f"stopped by {self.signals.name} {where} (optimizer step {s.step}); {self.saver.last} holds that exact "
            f"position. Continue with: {self.resume_command()}",
            self.signals.received,  # type: ignore[arg-type]
        )


ADVICE = ("Try a lower optimizer.lr, gradient clipping, a normalization (norm=tdbn), or "
          "trainer.on_nonfinite=skip to skip such batches.")
SAMPLES_PER_S = Metric("train/samples_per_s", "samples/s", ".0f", unit=True)
