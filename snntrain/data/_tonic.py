"""tonic's dataset readers and disk cache, subclassed for offline use (imported on first use).

Kept apart from :mod:`snntrain.data.neuromorphic` so that registering the neuromorphic
datasets does not import tonic (0.6 s, with scipy and h5py): runs on other data never pay for it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tonic.datasets as tonic_datasets
from tonic.cached_dataset import DiskCachedDataset, load_from_disk_cache, save_to_disk_cache


# ------------------------------------------------------------------ tonic datasets, offline
class _Offline:
    """Mixin: trust the explicit file check done before construction (see the module doc);
    and list samples sorted by path, so the order does not depend on the file system."""

    def _check_exists(self) -> bool:
        return True

    def _sort_by_path(self, *extra: str) -> None:
        order = sorted(range(len(self.data)), key=lambda i: self.data[i])
        for name in ("data", "targets", *extra):
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in order])


class NMNIST(_Offline, tonic_datasets.NMNIST):
    """tonic's N-MNIST reader; files under ``root/NMNIST`` (tonic uses the class name as folder)."""


class DVSGesture(_Offline, tonic_datasets.DVSGesture):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sort_by_path("users", "lighting")


class CIFAR10DVS(_Offline, tonic_datasets.CIFAR10DVS):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sort_by_path()


class SHD(_Offline, tonic_datasets.SHD):
    pass


class SSC(_Offline, tonic_datasets.SSC):
    pass


OFFLINE = {c.__name__: c for c in (NMNIST, DVSGesture, CIFAR10DVS, SHD, SSC)}


class FrameCache(DiskCachedDataset):
    """tonic's ``DiskCachedDataset`` (``<i>_0.hdf5`` per sample, tonic's save/load functions), except
    that a sample is written to a temporary file and renamed, so parallel or interrupted runs never
    leave a half-written sample, and that no copy index is drawn from numpy's global RNG."""

    def __getitem__(self, item: int):
        path = Path(self.cache_path) / f"{item}_0.hdf5"
        try:
            return load_from_disk_cache(path)
        except (FileNotFoundError, OSError):
            data, target = self.dataset[item]
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            save_to_disk_cache(data, target, file_path=tmp)
            os.replace(tmp, path)
            return data, target
