"""The run's own state: everything besides the trainer's that a checkpoint must hold to continue exactly.

:class:`RunState` is where the run is (``epoch`` index, ``batch`` = batches done in that
epoch, ``step`` = optimizer steps in the whole run), what it did (``history``: one record
per finished epoch, ``best``: the best test accuracy, ``skipped``: batches skipped for a
non-finite loss), the epoch's running sums (``accum``: ``sums``, ``n``, ``train_s``, so the
epoch's train metrics come out as without a stop), the random generators' states and the engine
the fused CPU neurons ran on (``cpu_neurons``: the same arithmetic, to the last bit, after a resume).

``state.to_checkpoint(...)`` gives the checkpoint entries and
``RunState.from_checkpoint(ckpt, rank, world)`` reads them back: the two round-trip
(tests/test_checkpoint_validation.py). In a data-parallel run every rank has its own
running sums and RNG streams; the checkpoint holds each rank's (``accum_ranks``,
``rng_ranks``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


def rng_states(device: torch.device) -> dict[str, Any]:
    """Generator states to store in a checkpoint, so a resumed run draws the same numbers."""
    return {"rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None}


def restore_rng(states: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(states["rng"].cpu())
    if device.type == "cuda" and states.get("cuda_rng") is not None:
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda_rng"]])


def fresh_accum() -> dict[str, Any]:
    return {"sums": {}, "n": 0}


@dataclass
class RunState:
    """Position, history, best, skipped batches, the epoch's running sums and (once restored) the RNG states."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None
    skipped: int = 0
    accum: dict[str, Any] = field(default_factory=fresh_accum)
    #: this rank's generator states from the checkpoint (None: a fresh run, or another world size)
    rng: dict[str, Any] | None = None
    #: the engine of the fused CPU neurons, "compiled" or "eager" (None: not a CPU run);
    #: a resumed run uses the same one (:func:`snntrain.kernels.cpu.pinned`)
    cpu_neurons: str | None = None

    @property
    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch, "step": self.step}

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    def to_checkpoint(self, device: torch.device, per_rank: list[tuple[dict, dict]] | None = None) -> dict[str, Any]:
        """Checkpoint entries; ``per_rank`` (every rank's ``(rng, accum)``) in a data-parallel run."""
        return {
            "epoch": self.epochs_done, "position": self.position, "accum": dict(self.accum), "best_test_acc": self.best,
            "history": self.history, "skipped_batches": self.skipped, **rng_states(device),
            "world_size": len(per_rank) if per_rank else 1,
            "rng_ranks": [r for r, _ in per_rank] if per_rank else None,
            "accum_ranks": [a for _, a in per_rank] if per_rank else None,
            "cpu_neurons": self.cpu_neurons,
        }

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any] | None, rank: int = 0, world: int = 1) -> "RunState":
        """The state a checkpoint holds, as rank ``rank`` of ``world`` sees it (a fresh state for None)."""
        if not ckpt:
            return cls()
        pos = ckpt["position"]
        accums = ckpt.get("accum_ranks") or [ckpt.get("accum") or fresh_accum()]
        rngs = ckpt.get("rng_ranks") or [{"rng": ckpt["rng"], "cuda_rng": ckpt.get("cuda_rng")}]
        same_world = len(rngs) == world
        return cls(
            epoch=pos["epoch"], batch=pos["batch"], step=pos["step"], history=list(ckpt.get("history") or []),
            best=ckpt.get("best_test_acc"), skipped=int(ckpt.get("skipped_batches") or 0),
            accum=dict(accums[rank] if len(accums) == world else accums[0]),
            rng=rngs[rank] if same_world else {"rng": ckpt["rng"], "cuda_rng": ckpt.get("cuda_rng")},
            cpu_neurons=ckpt.get("cpu_neurons"),
        )

    @staticmethod
    def world_of(ckpt: dict[str, Any]) -> int:
        """How many processes wrote ``ckpt``."""
        return len(ckpt.get("rng_ranks") or [None])
