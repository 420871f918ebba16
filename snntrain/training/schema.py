"""The schema of the keys that are not a component's arguments: top level and the run loop.

Components (model, neuron, ..., and the trainer's own arguments) are checked by the
registry from their signatures. The keys here belong to the run itself: ``T``,
``seed``, ``device``, ``resume`` at the top level, and the ``trainer.*`` keys every
trainer shares (:data:`LOOP`): epochs, batches, data loading, checkpoints, what to do
on a non-finite loss. Each key is declared once with its type (checked exactly as the
registry checks component arguments: a float must be finite, a bool is true or false),
its lower bound and its default; :func:`check_section` rejects unknown keys with the
closest valid one as a hint.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from ..errors import ConfigError
from ..registry import _type_ok

#: component groups of the top-level config (each a section with a ``name``)
GROUPS = ("model", "neuron", "surrogate", "norm", "dataset", "encoder", "optimizer", "scheduler", "loss", "trainer")


@dataclass(frozen=True)
class Key:
    """One config key: its type hint, default, lower bound (inclusive) and a line of help."""

    type: Any
    default: Any
    help: str
    low: float | None = None


TOP: dict[str, Key] = {
    "T": Key(int, 4, "time steps per sample", low=1),
    "seed": Key(int, 0, "model init, batch order and encoder randomness", low=0),
    "device": Key(str, "auto", "auto | cpu | cuda | cuda:<index>"),
    "resume": Key(Optional[str], None, "a run directory (or checkpoint file) to continue from"),
    "optimized_metric": Key(str, "test_acc", "the final metric a sweep's run returns (what Optuna optimises)"),
}

LOOP: dict[str, Key] = {
    "epochs": Key(int, 30, "epochs in the whole run (raise it with resume= to extend a run)", low=1),
    "batch_size": Key(int, 64, "training batch size", low=1),
    "eval_batch_size": Key(int, 512, "evaluation batch size", low=1),
    "limit_batches": Key(Optional[int], None, "cap on training batches per epoch (smoke runs)", low=1),
    "num_workers": Key(int, 0, "DataLoader worker processes", low=0),
    "pin_memory": Key(Union[bool, Literal["auto"]], "auto", "auto (true on CUDA) | true | false"),
    "persistent_workers": Key(bool, False, "keep workers alive between epochs (needs num_workers >= 1)"),
    "prefetch_factor": Key(Optional[int], None, "batches prefetched per worker (needs num_workers >= 1)", low=1),
    "progress": Key(bool, True, "progress bar (drawn only on a terminal)"),
    "checkpoint_every_steps": Key(Optional[int], None, "also checkpoint every N optimizer steps (null: epoch ends only)", low=1),
    "keep_checkpoints": Key(int, 3, "step checkpoints kept (the newest ones; last.pt and best.pt always stay)", low=1),
    "on_nonfinite": Key(Literal["stop", "skip"], "stop", "a non-finite loss or gradient: stop the run, or skip the batch"),
    "sync_norm": Key(bool, False, "torchrun: take the batch statistics of every norm over all processes"),
    "precision": Key(Literal[32, "32", "bf16-mixed", "16-mixed"], "32",
                     "32 | bf16-mixed | 16-mixed (autocast; fp16 with a gradient scaler)"),
    "compile": Key(bool, False, "compile the model with torch.compile (falls back to eager with a message)"),
    "accumulate_grad_batches": Key(int, 1, "batches whose gradients add up to one optimizer step", low=1),
    "gradient_clip_val": Key(Optional[float], None, "clip the gradients' total 2-norm to this value (null: off)", low=0),
    "log_images_every": Key(Optional[int], 5, "TensorBoard spike rasters, membrane traces and histograms every N "
                            "epochs and after the last (null: never)", low=1),
    "tbptt_steps": Key(Optional[int], None, "truncated BPTT: back-propagate through chunks of this many steps, the "
                       "state carried across (null: the whole sequence)", low=1),
    "recompute": Key(Literal["none", "stage"], "none", "stage: recompute each spiking stage in the backward instead of "
                     "keeping its activations (spikes kept as bits); the same gradients, less memory"),
}

#: keys that mean something only to a trainer that follows gradients (``gradient_free`` trainers refuse them)
GRADIENT_KEYS = ("sync_norm", "precision", "compile", "accumulate_grad_batches", "gradient_clip_val", "tbptt_steps",
                 "recompute")

#: keys that may differ between a checkpoint's config and the run that resumes it
#: (``trainer.epochs`` may grow: the run is extended)
RESUME_MAY_DIFFER = (
    "resume", "device", "optimized_metric", "trainer.epochs", "trainer.num_workers", "trainer.pin_memory", "trainer.persistent_workers",
    "trainer.prefetch_factor", "trainer.progress", "trainer.eval_batch_size", "trainer.checkpoint_every_steps",
    "trainer.keep_checkpoints", "trainer.on_nonfinite", "trainer.compile", "trainer.log_images_every",
)


def unknown_key(prefix: str, key: str, valid: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean {prefix}{close[0]}?" if close else ""
    return ConfigError(
        f"{prefix}{key}: not a key of {where}.{hint} Valid keys: {', '.join(valid)}. Remove it or fix its spelling."
    )


def check_value(name: str, value: Any, key: Key) -> None:
    ok, desc = _type_ok(value, key.type)
    if ok and key.low is not None and value is not None and value < key.low:
        ok, desc = False, f"{desc} >= {key.low:g}"
    if not ok:
        raise ConfigError(f"{name}: expected {desc}, got {value!r}. Set it with {name}=<value>.")


def check_section(values: dict[str, Any], schema: dict[str, Key], prefix: str, where: str,
                  also_valid: tuple[str, ...] = ()) -> dict[str, Any]:
    """``values`` with defaults filled in; unknown keys (other than ``also_valid``) and bad values raise."""
    for k in values:
        if k not in schema and k not in also_valid:
            raise unknown_key(prefix, k, [*schema, *also_valid], where)
    out = {k: values.get(k, key.default) for k, key in schema.items()}
    for k, key in schema.items():
        check_value(prefix + k, out[k], key)
    return out


def precheck(cfg: dict[str, Any]) -> None:
    """The checks that need no registered component, so no torch: top-level keys and values, a section
    with a ``name`` for each group, the values of the shared ``trainer.*`` keys and ``device``'s form.

    The command line runs this before importing torch, so these mistakes are refused in well
    under a second; :func:`snntrain.training.config.validate` runs it first too, then the checks
    that need the registry (trainer names and arguments, the optimized metric, ...).
    """
    for key in cfg:
        if key not in TOP and key not in GROUPS:
            raise unknown_key("", key, [*TOP, *GROUPS], "the snntrain config")
    for group in GROUPS:
        section = cfg.get(group)
        if not isinstance(section, dict) or "name" not in section:
            raise ConfigError(
                f"{group}: the config has no {group} section with a 'name'. Choose one with {group}=<name> "
                f"(see `snntrain-list {group}`)."
            )
    check_section({k: v for k, v in cfg.items() if k in TOP}, TOP, "", "the snntrain config")
    for k, value in cfg["trainer"].items():  # unknown trainer keys need the trainer's own arguments: later
        if k in LOOP:
            check_value(f"trainer.{k}", value, LOOP[k])
    device = cfg["device"]
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device: must be auto, cpu, cuda or cuda:<index>, got {device!r}.")
