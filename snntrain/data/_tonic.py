"""tonic's dataset readers and disk cache, subclassed for offline use (imported on first use).

Kept apart from :mod:`snntrain.data.neuromorphic` so that registering the neuromorphic
datasets does not import tonic (0.6 s, with scipy and h5py): runs on other data never pay for it.

Every file is checked before tonic (or h5py) reads it, with :mod:`snntrain.data.checks`: it lies inside
the dataset's folder; its header declares a sample that fits the memory budget and has the format's
layout (a whole number of N-MNIST records, a ``[N, 4]`` DVS-Gesture array, the SHD / SSC datasets
stored in the file itself with integer labels in range); the decoded events lie on the sensor. A
cached frame file must hold exactly what this run would have written. Whatever fails is a
:class:`~snntrain.data.checks.DataFileError` naming the file and the fix.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import tonic.datasets as tonic_datasets
from tonic.cached_dataset import save_to_disk_cache
from torch.utils.data import Dataset

from .checks import (BadEvents, DataFileError, check_declared, check_tree, dtype_name, h5_dataset, npy_header,
                     require_inside, sample_budget)


#: what tonic's readers, numpy and h5py raise on contents they cannot decode
READ_ERRORS = (ValueError, OSError, EOFError, IndexError, KeyError, TypeError, RuntimeError, OverflowError,
               MemoryError)


# ------------------------------------------------------------------ tonic datasets, offline
def source_file_error(path: Path, kind: str, source: str):
    """``fail(what)``: raise the :class:`DataFileError` for the dataset file ``path``."""
    def fail(what: str):
        raise DataFileError(
            f"dataset.root: the {kind} file {path} {what}. It is not a file of the dataset as distributed "
            f"(or it is damaged): replace it with a fresh copy from {source}, or delete it."
        )
    return fail



class _Offline:
    """Mixin: trust the explicit file check done before construction (see the module doc); list
    samples sorted by path, so the order does not depend on the file system; and check every file
    before tonic reads it (:meth:`__getitem__`).

    ``folder`` (the dataset's folder, e.g. ``root/NMNIST``), ``source`` (where the files come from,
    for the message) and ``budget`` are set by :func:`snntrain.data.neuromorphic._open` after construction.
    """

    folder: Path
    source: str = "the dataset's download page"
    kind: str = "event"
    budget: int | None = None  #: bytes one sample may declare (``None``: :func:`sample_budget` at each read)

    def _check_exists(self) -> bool:
        return True

    def _sort_by_path(self, *extra: str) -> None:
        order = sorted(range(len(self.data)), key=lambda i: self.data[i])
        for name in ("data", "targets", *extra):
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in order])

    def _file(self, index: int) -> Path:
        return Path(self.data[index])

    def _precheck(self, path: Path, fail) -> None:
        """Per-format checks of the header / size, before the file is read."""

    def _budget(self) -> int:
        return self.budget if self.budget is not None else sample_budget()

    def fail_for(self, path: Path):
        return source_file_error(path, self.kind, self.source)

    def __getitem__(self, index: int):
        path = self._file(index)
        fail = self.fail_for(path)
        real = require_inside(path, self.folder, fail)
        try:
            self._precheck(real, fail)
            return super().__getitem__(index)
        except DataFileError:
            raise
        except BadEvents as err:
            fail(str(err))
        except READ_ERRORS as err:  # the reader or the binning choked on the contents
            why = " ".join(str(err).split())[:300] or "no detail"
            fail(f"could not be read ({type(err).__name__}: {why})")


class NMNIST(_Offline, tonic_datasets.NMNIST):
    """tonic's N-MNIST reader; files under ``root/NMNIST`` (tonic uses the class name as folder)."""

    def _precheck(self, path: Path, fail) -> None:
        size = path.stat().st_size
        if size % 5:
            fail(f"holds {size} bytes, not a whole number of 5-byte N-MNIST events")
        check_declared(size // 5 * self.dtype.itemsize + 4 * size, self._budget(), fail)


class DVSGesture(_Offline, tonic_datasets.DVSGesture):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sort_by_path("users", "lighting")

    def _precheck(self, path: Path, fail) -> None:
        shape, dtype = npy_header(path)
        if len(shape) != 2 or shape[1] != 4 or dtype.kind not in "iuf":
            fail(f"holds a {dtype_name(dtype)} array of shape {list(shape)}, not the events [N, 4] (x, y, p, t) of a "
                 f"DVS-Gesture .npy file")
        check_declared(shape[0] * (4 * dtype.itemsize + self.dtype.itemsize), self._budget(), fail)


class CIFAR10DVS(_Offline, tonic_datasets.CIFAR10DVS):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sort_by_path()

    def _precheck(self, path: Path, fail) -> None:
        # uncompressed AEDAT4 stores 16 bytes per event; the decoded array takes about as much again
        check_declared(2 * path.stat().st_size, self._budget(), fail)


class _HSDFile(_Offline):
    """SHD / SSC: every sample is a row of one HDF5 file, checked whole by ``check_hsd_file``."""

    kind = "spike"

    def _file(self, index: int) -> Path:
        return Path(self.location_on_system) / self.data_filename


class SHD(_HSDFile, tonic_datasets.SHD):
    pass


class SSC(_HSDFile, tonic_datasets.SSC):
    pass


OFFLINE = {c.__name__: c for c in (NMNIST, DVSGesture, CIFAR10DVS, SHD, SSC)}


def check_hsd_file(path: Path, num_classes: int, fail) -> None:
    """The SHD / SSC layout: ragged ``spikes/times`` (float) and ``spikes/units`` (int) rows, one int
    ``labels`` entry per row in ``[0, num_classes)``, all stored in the file itself."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            rows = {}
            for name, kind in (("spikes/times", "f"), ("spikes/units", "iu")):
                d = h5_dataset(f, name, fail)
                base = h5py.check_vlen_dtype(d.dtype)
                if d.ndim != 1 or base is None or base.kind not in kind:
                    fail(f"holds '{name}' as {dtype_name(d.dtype)} {list(d.shape)}, not one ragged row of "
                         f"{'floats' if kind == 'f' else 'integers'} per sample")
                rows[name] = len(d)
            for name in ("extra/keys", "extra/speaker"):  # tonic reads them when it opens the file
                h5_dataset(f, name, fail)
            labels = h5_dataset(f, "labels", fail)
            if labels.ndim != 1 or labels.dtype.kind not in "iu":
                fail(f"holds the labels as {dtype_name(labels.dtype)} {list(labels.shape)}, not one integer per sample")
            if not len(labels) == rows["spikes/times"] == rows["spikes/units"]:
                fail(f"holds {len(labels)} labels for {rows['spikes/times']} / {rows['spikes/units']} spike rows")
            check_declared(labels.size * labels.dtype.itemsize, sample_budget(), fail)
            values = labels[()]
    except DataFileError:
        raise
    except READ_ERRORS as err:
        fail(f"could not be read as HDF5 ({type(err).__name__}: {' '.join(str(err).split())[:300]})")
    bad = values[(values < 0) | (values >= num_classes)]
    if len(bad):
        fail(f"holds the label {int(bad[0])}; labels are 0-{num_classes - 1}")


# ------------------------------------------------------------------ the frame cache
class FrameCache(Dataset):
    """The binned frames of ``dataset``, one ``<i>_0.hdf5`` per sample in ``cache_path`` (tonic's
    ``DiskCachedDataset`` format: datasets ``data/0`` and ``target/0``, written by tonic's
    ``save_to_disk_cache``). A sample is written to a temporary file and renamed, so parallel or
    interrupted runs never leave a half-written sample. A file already there is read only when it is
    what this run would have written (:meth:`read`): frames of ``shape`` stored in the file, an integer
    label in ``[0, num_classes)``, no larger than :func:`sample_budget`; else a :class:`DataFileError`
    names it and the cache folder ``folder`` to delete."""

    def __init__(self, dataset: Any, cache_path: str, shape: tuple[int, ...], num_classes: int, folder: Path):
        self.dataset, self.cache_path = dataset, cache_path
        self.shape, self.num_classes, self.folder = tuple(shape), num_classes, Path(folder)
        self.budget = sample_budget()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int):
        path = Path(self.cache_path) / f"{item}_0.hdf5"
        if os.path.lexists(path):
            return self.read(path)
        data, target = self.dataset[item]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        if os.path.lexists(tmp):  # a leftover (or a planted link): never write through it
            os.unlink(tmp)
        save_to_disk_cache(data, target, file_path=tmp)
        os.replace(tmp, path)
        return data, target

    def fail_for(self, path: Path):
        def fail(what: str):
            raise DataFileError(
                f"dataset.cache_dir: the cached frame file {path} {what}; it is not a file this run would "
                f"have written (damaged, or made with other settings). Clear the cache with `rm -r {self.folder}` "
                f"(the frames are binned again from the event files on the next run), or set dataset.cache=false."
            )
        return fail

    def read(self, path: Path) -> tuple[np.ndarray, int]:
        """The frames and label of the cache file ``path``, checked from its header before reading."""
        import h5py

        fail = self.fail_for(path)
        require_inside(path, self.folder, fail)
        if not path.is_file():
            fail("is not a regular file")
        try:
            with h5py.File(path, "r") as f:
                data = h5_dataset(f, "data/0", fail)
                if data.dtype.kind not in "iuf":
                    fail(f"holds {dtype_name(data.dtype)} values, not frame counts")
                check_declared(data.size * data.dtype.itemsize, self.budget, fail)
                if data.shape != self.shape:
                    fail(f"holds frames of shape {list(data.shape)}, not {list(self.shape)}")
                target = h5_dataset(f, "target/0", fail)
                if target.shape != () or target.dtype.kind not in "iu":
                    fail(f"holds the label as {dtype_name(target.dtype)} {list(target.shape)}, not one integer")
                label = int(target[()])
                if not 0 <= label < self.num_classes:
                    fail(f"holds the label {label}; labels are 0-{self.num_classes - 1}")
                frames = data[()]
        except DataFileError:
            raise
        except READ_ERRORS as err:  # not HDF5, truncated, unreadable
            fail(f"could not be read as HDF5 ({type(err).__name__}: {' '.join(str(err).split())[:300]})")
        if frames.dtype.kind == "f" and not np.isfinite(frames).all():
            fail("holds frame values that are not finite")
        return frames, label

    def check_files(self, limit: int = 32) -> None:
        """Start-of-run check: no link out of the cache, and the first ``limit`` cached samples read."""
        folder = Path(self.cache_path)
        check_tree(folder, self.fail_for)
        names = sorted((e.name for e in os.scandir(folder) if e.name.endswith("_0.hdf5")),
                       key=lambda n: (len(n), n))
        for name in names[:limit]:
            self.read(folder / name)
