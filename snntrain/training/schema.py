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

import re
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from ..errors import ConfigError, did_you_mean
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
    above: float | None = None  #: exclusive lower bound (a value that would mean "off" where null already does)


TOP: dict[str, Key] = {
    "T": Key(int, 4, "time steps per sample", low=1),
    "seed": Key(int, 0, "model init, batch order and encoder randomness", low=0),
    "device": Key(str, "auto", "auto | cpu | cuda | cuda:<index>"),
    "resume": Key(Optional[str], None, "a run directory (or checkpoint file) to continue from"),
    "optimized_metric": Key(str, "test_acc", "the final metric a sweep's run returns (what Optuna optimises)"),
}

#: a seed inside a component section (e.g. ``dataset.split_seed``); null lets the component pick
SEED = Key(Optional[int], None, "a random seed", low=0)

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
    "gradient_clip_val": Key(Optional[float], None, "clip the gradients' total 2-norm to this value (null: off; 0 is refused, it "
                             "would zero every step)", above=0),
    "log_images_every": Key(Optional[int], 5, "TensorBoard spike rasters, membrane traces and histograms every N "
                            "epochs and after the last (null: never)", low=1),
    "memory_budget": Key(Optional[Union[int, str]], None, "bytes (or a size: 8GB, 512MiB) the run may use; null: the "
                         "memory available (RAM, or the GPU's free memory). Runs estimated above it are refused"),
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
    "trainer.keep_checkpoints", "trainer.on_nonfinite", "trainer.memory_budget", "trainer.compile", "trainer.log_images_every",
)


_UNITS = {"": 1, "b": 1, "k": 2 ** 10, "kb": 10 ** 3, "kib": 2 ** 10, "m": 2 ** 20, "mb": 10 ** 6, "mib": 2 ** 20,
          "g": 2 ** 30, "gb": 10 ** 9, "gib": 2 ** 30, "t": 2 ** 40, "tb": 10 ** 12, "tib": 2 ** 40}


def parse_size(value: Any, key: str = "trainer.memory_budget") -> int | None:
    """Bytes from ``value``: null, an integer of bytes, or ``"<number><unit>"`` (B, KB/MB/GB/TB = powers of
    1000; K/M/G/T and KiB/MiB/GiB/TiB = powers of 1024)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]{0,3})\s*", value)) \
            and m[2].lower() in _UNITS:
        n = int(float(m[1]) * _UNITS[m[2].lower()])
    else:
        raise ConfigError(f"{key}: expected null (the memory available), a number of bytes or a size such as 8GB or "
                          f"512MiB, got {value!r}.")
    if n <= 0:
        raise ConfigError(f"{key}: must be more than 0 bytes, got {value!r} (null: the memory available).")
    return n



def unknown_key(prefix: str, key: str, valid: list[str], where: str) -> ConfigError:
    hint = did_you_mean(prefix + key, [prefix + v for v in valid], {"name": where.partition("=")[2] or where})
    return ConfigError(
        f"{prefix}{key}: not a key of {where}.{hint} Valid keys: {', '.join(valid)}. Remove it or fix its spelling."
    )


def check_value(name: str, value: Any, key: Key) -> None:
    ok, desc = _type_ok(value, key.type)
    if ok and key.low is not None and value is not None and value < key.low:
        ok, desc = False, f"{desc} >= {key.low:g}"
    if ok and key.above is not None and value is not None and value <= key.above:
        ok, desc = False, f"{desc} > {key.above:g} (null turns it off)"
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
    parse_size(cfg["trainer"].get("memory_budget"))
    for group in GROUPS:  # a seed in any section means what the top-level seed means: an integer >= 0
        for k, value in cfg[group].items():
            if k == "seed" or k.endswith("_seed"):
                check_value(f"{group}.{k}", value, SEED)
    device = cfg["device"]
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device: must be auto, cpu, cuda or cuda:<index>, got {device!r}.")
