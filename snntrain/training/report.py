"""How a trainer's metrics are shown: one declaration, three outputs (bar, log line, TensorBoard).

A trainer reports plain dicts (its epoch record: ``train_record`` + ``evaluate`` + ``end_epoch``)
and declares, once, how each key is shown (:class:`Metric`, in :attr:`TrainerBase.report`):

* **the progress bar** — the keys with ``bar=True``, from the epoch's running sums;
* **the epoch's log line** — the keys with a ``label``, in declaration order;
* **TensorBoard** — every key with a ``tag``; a dict value writes one scalar per number in
  it, its key filling the ``{}`` of the tag (``firing_rate/{}`` -> ``firing_rate/stage1``).
  A dotted record key (``sops.stages``) reaches into a nested dict.

Missing and ``None`` values are left out everywhere; a non-finite number is not written to
TensorBoard.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    """How one record key is shown (see the module doc)."""

    tag: str | None = None  #: TensorBoard tag (``{}``: a dict's keys)
    label: str | None = None  #: label in the log line (None: not in the line)
    fmt: str = ".4f"  #: format spec of the value
    bar: bool = False  #: also in the progress bar (a key of ``train_record``)
    unit: bool = False  #: the label follows the value ("123 samples/s")


def lookup(record: dict[str, Any], key: str) -> Any:
    value: Any = record
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _item(label: str, value: Any, m: Metric) -> str:
    text = format(value, m.fmt) if isinstance(value, (int, float)) else str(value)
    return f"{text} {label}" if m.unit else f"{label} {text}"


def line(record: dict[str, Any], report: dict[str, Metric], bar: bool = False) -> str:
    """The labelled values of ``record`` (for the log line, or with ``bar`` the bar's keys)."""
    items = [_item(m.label, v, m) for key, m in report.items()
             if m.label and (m.bar or not bar) and (v := lookup(record, key)) is not None]
    return "  ".join(items)


def scalars(record: dict[str, Any], report: dict[str, Metric]) -> dict[str, float]:
    """TensorBoard tag -> number for ``record``."""
    out: dict[str, float] = {}
    for key, m in report.items():
        value = lookup(record, key)
        if m.tag is None or value is None:
            continue
        if isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(sub, str) and isinstance(v, dict):  # one level of nesting below: sops.stages
                    out.update({m.tag.format(f"{sub}/{k}"): x for k, x in v.items() if isinstance(x, (int, float))})
                elif isinstance(v, (int, float)):
                    out[m.tag.format(sub)] = v
        elif isinstance(value, (int, float)):
            out[m.tag] = value
    return {tag: float(v) for tag, v in out.items() if not isinstance(v, bool) and math.isfinite(float(v))}
