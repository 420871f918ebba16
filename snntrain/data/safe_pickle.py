"""Read the official CIFAR "python version" batch files without letting them run code.

The CIFAR-10/100 batches are pickles, and ``pickle.load`` executes whatever a file
names (a crafted ``data_batch_1`` with a ``__reduce__`` runs any command).
:func:`load_cifar_batch` unpickles with :class:`CifarUnpickler`, which resolves only
the globals the official files contain — numpy's array reconstruction (``ndarray``,
``dtype``, ``_reconstruct``/``_frombuffer`` under ``numpy.core`` or ``numpy._core``) and
``_codecs.encode`` (bytes in pickles written by Python 3) — and refuses every other one
with :class:`pickle.UnpicklingError` naming it. The result is then checked to be what
the files hold: a dict whose ``data`` is a ``uint8`` array ``[N, 3072]`` and whose
labels are ``N`` integers.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED` globals."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(
                f"the file refers to the Python object {module}.{name}, which no official CIFAR file does; "
                f"it was not loaded, since loading it could run code"
            )
        return super().find_class(module, name)


def load_pickle(path: str | Path) -> Any:
    with open(path, "rb") as f:
        return CifarUnpickler(f, encoding="latin1").load()


def load_cifar_batch(path: str | Path, label_key: str) -> tuple[np.ndarray, list[int]]:
    """``(data [N, 3072] uint8, labels)`` of one batch file; anything else raises ``ValueError``."""
    entry = load_pickle(path)
    if not isinstance(entry, dict) or "data" not in entry or label_key not in entry:
        raise ValueError(f"{Path(path).name} is not a CIFAR batch (expected a dict with 'data' and '{label_key}')")
    data, labels = entry["data"], entry[label_key]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        raise ValueError(f"{Path(path).name}: 'data' must be a uint8 array [N, 3072], got "
                         f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    if not (isinstance(labels, (list, np.ndarray)) and len(labels) == len(data)
            and all(isinstance(v, (int, np.integer)) for v in labels)):
        raise ValueError(f"{Path(path).name}: {len(data)} images but the labels are not {len(data)} integers")
    return data, [int(v) for v in labels]
