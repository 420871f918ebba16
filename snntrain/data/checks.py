"""What a data or cache file must be before it is read, and the error when it is not.

Every reader in this package checks a user-supplied file before trusting it:

* **where it lies**: a file inside a dataset folder (or a frame cache) must resolve inside that folder;
  the folder itself may be a link (data on another disk), a file in it that links elsewhere
  (``NMNIST/Train/0/00000.bin -> /etc/passwd``) is refused (:func:`require_inside`, :func:`check_tree`);
* **what it declares**: the size of a sample is read from the file's header (HDF5 dataset shape, ``.npy``
  header, file size) and compared with :func:`sample_budget` *before* anything is read, so a file that
  declares a 10 GB sample cannot exhaust the machine;
* **what HDF5 may point at**: datasets must be stored in the file itself — external storage
  (``h5py``'s ``external=``, which reads raw bytes from any file, e.g. ``/etc/passwd``), virtual datasets
  and soft or external links are refused (:func:`h5_dataset`).

A file that fails a check raises :class:`DataFileError`: one paragraph naming the file, what is wrong
and how to clear it, printed by the command line without a traceback (exit status 2).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: bytes one sample may declare; ``None``: an eighth of the memory available when the dataset is built
MAX_SAMPLE_BYTES: int | None = None


class DataFileError(ConfigError):
    """A data or cache file that is not what its reader expects; the message names it and the fix.

    Raised inside a DataLoader worker process, it reaches the main process as torch's
    ``ExceptionWrapper.reraise`` rebuilds it: ``DataFileError("Caught DataFileError in DataLoader
    worker process 0.\\nOriginal Traceback ...")``. The constructor recognises that text and keeps
    only the original paragraph, so the user sees the same message with or without workers.
    """

    def __init__(self, message: str):
        marker = f"{type(self).__module__}.{type(self).__qualname__}: "
        if message.startswith("Caught ") and "Original Traceback" in message and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


class BadEvents(ValueError):
    """Decoded events that do not fit the sensor (the reader adds the file's name)."""


def available_memory() -> int:
    """Bytes of RAM this process may still take (``MemAvailable`` within the container's limit): the
    run's memory budget's own measure, :func:`snntrain.training.budget.available`."""
    import torch

    from ..training.budget import available

    return available(torch.device("cpu"))[0]


def sample_budget() -> int:
    """The most bytes one sample may declare: :data:`MAX_SAMPLE_BYTES`, else an eighth of the available
    memory (a batch, the workers' prefetched batches and the model share the rest)."""
    return MAX_SAMPLE_BYTES if MAX_SAMPLE_BYTES is not None else available_memory() // 8


def human(n: float) -> str:
    from ..training.budget import size

    return size(n)


def dtype_name(dtype: Any) -> str:
    """``text`` for strings (numpy ``S``/``U``, h5py's variable-length strings), else numpy's name."""
    import h5py

    if dtype.kind in "SU" or h5py.check_string_dtype(dtype) is not None:
        return "text"
    return str(dtype)


def check_declared(nbytes: int, budget: int, fail) -> None:
    """Call ``fail(what)`` when a sample declares more than ``budget`` bytes."""
    if nbytes > budget:
        why = "an eighth of the memory available" if MAX_SAMPLE_BYTES is None else "MAX_SAMPLE_BYTES"
        fail(f"declares a sample of {human(nbytes)}, more than the {human(budget)} one sample may take ({why})")


def require_inside(path: str | Path, folder: Path, fail) -> Path:
    """``path`` resolved; ``fail(what)`` when it resolves outside ``folder`` (resolved too)."""
    real = Path(os.path.realpath(path))
    base = Path(os.path.realpath(folder))
    if real != base and base not in real.parents:
        fail(f"is a link to {real}, outside {base}; a dataset's files must lie inside its folder "
             f"(link the whole folder instead, or copy the file in)")
    return real


def check_tree(folder: Path, fail_for) -> None:
    """Walk ``folder`` and call ``fail_for(path)(what)`` for the first link that resolves outside it and
    the first entry that is neither a file nor a folder (a FIFO would block the reader forever).
    Cheap: the walk reads directory entries only; only links are resolved."""
    base = Path(os.path.realpath(folder))
    stack = [base]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue  # unreadable: the reader says so when it needs the folder
        for e in entries:
            if e.is_symlink():
                require_inside(e.path, base, fail_for(Path(e.path)))
            elif e.is_dir(follow_symlinks=False):
                stack.append(Path(e.path))
            elif not e.is_file(follow_symlinks=False):
                fail_for(Path(e.path))("is neither a file nor a folder (a pipe, socket or device)")


def h5_dataset(group: Any, name: str, fail) -> Any:
    """``group[name]`` when it is an HDF5 dataset stored in the file itself; else ``fail(what)``."""
    import h5py

    parent = group
    parts = name.split("/")
    for i, part in enumerate(parts):
        here = "/".join(parts[: i + 1])
        link = parent.get(part, getlink=True) if isinstance(parent, h5py.Group) else None
        if link is None:
            fail(f"has no '{here}'")
        if not isinstance(link, h5py.HardLink):
            fail(f"makes '{here}' a {type(link).__name__} (to {getattr(link, 'filename', '')}"
                 f"{getattr(link, 'path', '')}); only data stored in the file itself is read")
        parent = parent[part]
    if not isinstance(parent, h5py.Dataset):
        fail(f"has a group, not a dataset, at '{name}'")
    if parent.external:
        fail(f"stores '{name}' in external files ({', '.join(str(e[0]) for e in parent.external)}); "
             f"only data stored in the file itself is read")
    if parent.is_virtual:
        fail(f"makes '{name}' a virtual dataset (mapped from other files); only data stored in the file "
             f"itself is read")
    return parent


def npy_header(path: Path) -> tuple[tuple[int, ...], Any]:
    """``(shape, dtype)`` from the header of the ``.npy`` file ``path`` (nothing else is read)."""
    import numpy as np

    with open(path, "rb") as f:
        fmt = np.lib.format
        read = fmt.read_array_header_1_0 if fmt.read_magic(f) == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(f, max_header_size=10_000)
    return shape, dtype
