"""Data-parallel runs across processes: ``torchrun --nproc_per_node=N -m snntrain ...``.

torchrun (or Slurm through it) starts one process per device and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``. :func:`setup` joins the
process group then: ``nccl`` when the run is on CUDA (each process on
``cuda:<LOCAL_RANK>``), ``gloo`` on CPU. Without those variables (or with one process)
every helper here is the identity and nothing is initialised.

Conventions of a data-parallel run (see the README):

* ``trainer.batch_size`` is the **global** batch: each of the N processes takes its
  ``batch_size / N`` share of every batch, so the same config gives the same updates on
  any number of processes (up to floating-point summation order).
* Rank 0 owns the run directory, TensorBoard, ``train.log``, checkpoints and
  ``metrics.json``; the others write nothing. The run directory is rank 0's (Hydra's
  time-stamped default can differ between processes by a second).
* Losses, accuracies and firing rates are summed over all processes before they are
  reported; checkpoints hold the unwrapped model (no ``module.`` prefix) and every
  rank's RNG state.
* **Elastic restarts** (``torchrun --max-restarts=N``): when a worker dies, the others stop
  (:class:`PeerLost`: one paragraph naming the lost rank, the last checkpoint and the
  command to continue) and torchrun starts them all again with the same
  ``TORCHELASTIC_RUN_ID`` and a higher ``TORCHELASTIC_RESTART_COUNT``. Rank 0 recorded
  which run directory that run id trains (:func:`snntrain.training.rundir.remember_elastic`),
  so the restarted workers continue that run from its ``checkpoints/last.pt`` exactly as
  ``resume=<run dir>`` would.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, RunError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: ``rank`` of ``world`` processes (``world == 1``: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()


def from_env() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    return Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: str) -> tuple[Dist, torch.device]:
    """Join the process group if torchrun started this process; the device this process trains on."""
    import torch
    import torch.distributed as td

    d = from_env()
    cuda = device != "cpu" and torch.cuda.is_available()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {device} was asked for but torch sees no CUDA device here; use device=cpu or device=auto.")
    if not d.enabled:
        return d, torch.device("cuda" if cuda and device == "auto" else device if device != "auto" else "cpu")
    if cuda:
        if torch.cuda.device_count() <= d.local_rank:
            raise ConfigError(f"device: process {d.rank} has LOCAL_RANK {d.local_rank} but this node has only "
                              f"{torch.cuda.device_count()} CUDA devices; start at most that many processes per node.")
        torch.cuda.set_device(d.local_rank)
        dev = torch.device("cuda", d.local_rank)
    else:
        dev = torch.device("cpu")
    if not td.is_initialized():
        td.init_process_group("nccl" if cuda else "gloo", store=_attempt_store(d), rank=d.rank, world_size=d.world)
    return d, dev


def _attempt_store(d: Dist) -> Any:
    """The key-value store this attempt's process group meets in: torchrun's own store, under a prefix of
    its own per restart. torchrun keeps one store for every restart of a job and torch adds no prefix, so a
    restarted worker could read the connection address its peer wrote in the attempt that died, and wait
    on a dead port (gloo: "connectFullMesh failed ... Connection refused", or a hang of up to 30 minutes).
    None (torch's ``env://`` as usual) where the process was not started by torchrun's agent."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    import torch.distributed as td

    agent = td.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), d.world, is_master=False)
    return td.PrefixStore(f"snntrain/attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", agent)


def broadcast_object(obj: Any, d: Dist) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not d.enabled:
        return obj
    import torch.distributed as td

    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, d: Dist) -> list[Any]:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if not d.enabled:
        return [obj]
    import torch.distributed as td

    out: list[Any] = [None] * d.world
    td.all_gather_object(out, obj)
    return out


def all_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """The sum of ``t`` over all ranks (a new tensor; no autograd)."""
    if not d.enabled:
        return t
    import torch.distributed as td

    t = t.detach().clone()
    td.all_reduce(t)
    return t


def any_rank(flag: bool, d: Dist, device: torch.device) -> bool:
    """Whether ``flag`` is true on any rank (a collective: every rank must call it)."""
    if not d.enabled:
        return flag
    import torch

    return bool(all_sum(torch.tensor([float(flag)], device=device), d) > 0)


def first_error(err: Exception | None, d: Dist) -> str | None:
    """The message of the lowest rank's error, or None if no rank had one (a collective)."""
    messages = gather_objects(None if err is None else str(err), d)
    return next((m for m in messages if m is not None), None)


def shutdown(d: Dist, clean: bool = False) -> None:
    """Leave the process group. ``clean`` (every rank ended normally): all ranks leave together, after a
    barrier, so no rank tears down its connections while a peer still writes to them (gloo aborts
    a process whose peer vanished mid-exchange: "terminate called without an active exception")."""
    if d.enabled:
        import torch.distributed as td

        if td.is_initialized():
            if clean:
                with contextlib.suppress(RuntimeError):
                    td.barrier()
            td.destroy_process_group()


def elastic_run() -> tuple[str, int] | None:
    """``(run id, restart count)`` when torchrun (TorchElastic) started this process, else None."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if not run_id or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    return run_id, int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


class PeerLost(RunError):
    """Another process of a data-parallel run died; this one stopped too."""


#: words of the errors a collective raises when a peer process is gone
_LOST = ("connection closed by peer", "connection reset by peer", "broken pipe", "connection refused",
         "socket timeout", "nccl communicator was aborted", "timed out", "process group")


def lost_peer(err: BaseException, d: Dist) -> bool:
    """Whether ``err`` is a collective failing because another process of the run is gone."""
    if not d.enabled or not isinstance(err, RuntimeError) or isinstance(err, RunError):
        return False
    try:
        import torch.distributed as td

        if isinstance(err, getattr(td, "DistError", ())):
            return True
    except ImportError:  # pragma: no cover
        pass
    text = str(err).lower()
    return "gloo" in text or "nccl" in text or any(w in text for w in _LOST)
