"""Neuromorphic datasets: event cameras (N-MNIST, DVS-Gesture, CIFAR10-DVS) and spike trains (SHD, SSC).

Files are read by tonic's own dataset classes and readers; events become frames with
``tonic.transforms.ToFrame``:

* by default ``T`` frames per sample (``n_time_bins=T``: the recording from its first event
  is cut into T equal bins; tonic leaves out the events of the last partial bin, the last
  event among them);
* with ``time_window`` (microseconds): T consecutive windows of that length from the first
  event, zeros where the recording is shorter.

Before binning, ``denoise`` (``tonic.transforms.Denoise(filter_time)``, microseconds) drops
isolated events and ``size`` down-samples the sensor with ``tonic.transforms.Downsample``
(e.g. 128x128 -> 48x48 for DVS-Gesture / CIFAR10-DVS as in the SEW-ResNet / TET papers;
for SHD / SSC ``size`` is the number of channels, 700 -> ``size``).

Samples are float32 tensors ``[T, 2, H, W]`` (polarity channels) or ``[T, F]`` (SHD / SSC);
labels are ints; the bundle is ``temporal`` (the trainer skips the encoder).

**Cache.** Binning is the slow part, so the binned frames of every sample are stored once in
``<cache_dir or root/cache>/<dataset>/<key>/<split>/<index>_0.hdf5`` (tonic's
``DiskCachedDataset`` file format; ``key`` hashes every setting that changes the frames:
``T`` / ``time_window``, ``denoise``, ``size``, dataset options, the list of source files;
``settings.json`` beside the split folders says which). Later epochs and runs read the
frames back, after checking each file's header (a file that is not what this run would have
written — other dtype or shape, a label that is no class index, data stored outside the file, a
link out of the cache — is refused with the command that clears the cache). Random augmentation
(train split only) is applied to the frames *after* the cache: ``flip`` (probability of a left-right flip) and ``translate`` (a random shift of up to
that many pixels / channels, zero-filled). Both commute with binning, so they equal flipping
or shifting the events (``tonic.transforms.RandomFlipLR`` / a spatial shift) before binning,
without re-binning every epoch.

**Files.** With ``download=false`` (default) missing files raise a ``ConfigError`` naming the
files tonic expects under ``root`` and where they come from. tonic's own ``_check_exists``
also wants the downloaded archive (``train.zip``, ``ibmGestureTrain.tar.gz``, ...) next to the
extracted files and at least 10,000 / 100 / 1,000 extracted files for N-MNIST / DVS-Gesture /
CIFAR10-DVS, else it starts a download; the subclasses below replace that check by the
explicit file check (users often delete archives after extracting; the test fixtures have a
few files). No md5 sum is bypassed: tonic only hashes the archive it downloads itself. Every file
is checked before it is read (see :mod:`snntrain.data._tonic` and docs/data.md): a bad one is a
``ConfigError`` naming it, at the start of the run or when the sample is first read.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, check
from ..registry import register
from .bundle import DataBundle
from .checks import BadEvents, check_tree, sample_budget
from .files import DEFAULT_ROOT, require_files
from .split import stratified_split

#: bump when the cached frame format changes, so old caches are not read
CACHE_FORMAT = 1




def _open(cls_name: str, folder: Path, expected: list[str], source: str, dataset: str, download: bool,
          num_classes: int, **kwargs: Any):
    """Construct tonic dataset ``cls_name`` under ``folder.parent``; download only when asked.

    Before tonic reads anything: no file under ``folder`` may link outside it, an SHD / SSC file must
    have the layout and labels of the official ones; after: every sample's label is a class index.
    Later reads check each file again (:class:`snntrain.data._tonic._Offline`).
    """
    import tonic.datasets as tonic_datasets

    from ._tonic import OFFLINE, check_hsd_file, source_file_error

    root = str(folder.parent)
    missing = [e for e in expected if not (folder / e).exists()]
    if missing and download:
        try:  # tonic's own class: its _check_exists fails, so it downloads and extracts
            getattr(tonic_datasets, cls_name)(root, **kwargs)
        except Exception as err:  # network or disk trouble: say so without a traceback
            raise ConfigError(f"dataset.download: fetching {dataset} into {folder} failed: {err}") from None
    require_files(dataset, folder, expected, source)
    cls = OFFLINE[cls_name]
    check_tree(folder, lambda path: source_file_error(path, cls.kind, source))
    if cls_name in ("SHD", "SSC"):
        file = folder / f"{dataset}_{kwargs.get('split', 'train' if kwargs.get('train', True) else 'test')}.h5"
        check_hsd_file(file, num_classes, source_file_error(file, cls.kind, source))
    try:
        ds = cls(root, **kwargs)
    except (ValueError, KeyError, IndexError, OSError) as err:  # a stray file or folder tonic cannot name
        raise ConfigError(
            f"dataset.root: tonic could not list the {dataset} files in {folder} ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:300]}); a file or folder there does not follow the layout of "
            f"{source}. Move it out of {folder}."
        ) from None
    ds.folder, ds.source, ds.budget = folder, source, sample_budget()
    if len(ds) == 0:
        raise ConfigError(
            f"dataset.root: {folder} has the folders/files {', '.join(expected)} but no samples in them. "
            f"Get the data from {source}, or point dataset.root at the folder that holds {folder.name}/."
        )
    for path, target in zip(getattr(ds, "data", None) or [], getattr(ds, "targets", None) or []):
        if not (isinstance(target, (int, np.integer)) and 0 <= target < num_classes):
            ds.fail_for(Path(path))(f"is named as class {target!r}; classes are 0-{num_classes - 1}")
    return ds


# ------------------------------------------------------------------ transforms
class Binning:
    """The deterministic (cached) part: [Denoise] -> [Downsample] -> ToFrame -> int16 ``[T, P, H, W]``
    (``[T, 1, F]`` for 1-d sensors)."""

    def __init__(self, sensor: tuple[int, int, int], T: int, time_window: float | None = None,
                 denoise: float | None = None, size: int | None = None):
        import tonic.transforms as tf

        self.T, self.time_window, self.native = T, time_window, sensor
        self.steps: list[Callable] = []
        if denoise is not None:
            self.steps.append(tf.Denoise(filter_time=denoise))
        if size is not None and size != sensor[0]:
            target = (size, size) if sensor[1] > 1 else (size, 1)
            self.steps.append(tf.Downsample(sensor_size=sensor, target_size=target))
            sensor = (target[0], target[1], sensor[2])
        self.sensor = sensor
        w, h, p = sensor
        self.shape = (T, p, h, w) if h > 1 else (T, p, w)

    def __call__(self, events: np.ndarray) -> np.ndarray:
        import tonic.transforms

        ToFrame = tonic.transforms.ToFrame  # looked up per call (tests count its calls)
        self.check(events)
        for step in self.steps:
            events = step(events)
        if len(events) == 0:
            return np.zeros(self.shape, np.int16)
        if self.time_window is None:
            frames = ToFrame(sensor_size=self.sensor, n_time_bins=self.T)(events)
        else:
            t0 = float(events["t"][0])
            frames = ToFrame(sensor_size=self.sensor, time_window=self.time_window, start_time=t0,
                             end_time=t0 + self.T * self.time_window)(events)
        frames = np.asarray(frames, np.int16)[: self.T]
        if len(frames) < self.T:  # float round-off in the number of windows
            frames = np.concatenate([frames, np.zeros((self.T - len(frames), *self.shape[1:]), np.int16)])
        return frames


    def check(self, events: np.ndarray) -> None:
        """Raise :class:`BadEvents` unless every event lies on the (native) sensor at a finite time."""
        w, h, p = self.native
        for field, n in (("x", w), ("y", h), ("p", p)):
            if n > 1 and len(events):
                v = events[field]
                bad = v[(v < 0) | (v >= n)]
                if len(bad):
                    raise BadEvents(f"holds events with {field} = {bad[0]}, outside the sensor's 0-{n - 1}")
        if events["t"].dtype.kind == "f" and not np.isfinite(events["t"]).all():
            raise BadEvents("holds events whose time stamp is not finite")


class Augment:
    """Random frame augmentation for the train split: left-right flip with probability ``flip``,
    shift by up to ``translate`` pixels (channels for ``[T, F]``) per spatial axis, zero-filled.
    Uses torch's RNG (seeded by the run's ``seed``; per worker in DataLoader workers)."""

    def __init__(self, flip: float = 0.0, translate: int = 0):
        self.flip, self.translate = flip, translate

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip > 0 and float(torch.rand(())) < self.flip:
            x = x.flip(-1)
        if self.translate > 0:
            dims = (-2, -1) if x.dim() == 4 else (-1,)
            shifts = torch.randint(-self.translate, self.translate + 1, (len(dims),)).tolist()
            for dim, s in zip(dims, shifts):
                if s == 0:
                    continue
                x = torch.roll(x, s, dim)
                index = [slice(None)] * x.dim()
                index[dim] = slice(0, s) if s > 0 else slice(s, None)
                x[tuple(index)] = 0
        return x


# ------------------------------------------------------------------ cache and split views
class FrameDataset(Dataset):
    """One split: ``source[indices[i]]`` (binned frames, cached or not) -> float32 tensor, int label."""

    def __init__(self, source: Any, indices: list[int] | None, flat: bool, augment: Augment | None = None):
        self.source, self.flat, self.augment = source, flat, augment
        self.indices = list(range(len(source))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        frames, target = self.source[self.indices[i]]
        x = torch.from_numpy(np.asarray(frames, dtype=np.float32))
        if self.flat:
            x = x.reshape(x.shape[0], -1)
        if self.augment is not None:
            x = self.augment(x)
        return x, int(target)


def _source_names(ds: Any, root: Path) -> list[str]:
    """What identifies a split's source files: their paths, or an HDF5 file's name, size and length."""
    if isinstance(getattr(ds, "data", None), list) and ds.data:
        return [os.path.relpath(p, root) for p in ds.data]
    f = Path(ds.location_on_system) / ds.data_filename
    return [f"{f.name}:{f.stat().st_size}:{len(ds)}"]


def cache_folder(splits: dict[str, Any], settings: dict[str, Any], cache_dir: str | None, root: Path) -> Path:
    """``<cache_dir or root/cache>/<dataset>/<key>``, ``key`` hashing ``settings`` and the source files;
    ``settings.json`` there records what the frames were made with."""
    names = [f"{split}:{n}" for split, ds in sorted(splits.items()) for n in _source_names(ds, root)]
    settings = {**settings, "format": CACHE_FORMAT,
                "files": hashlib.sha1("\n".join(names).encode()).hexdigest()[:16]}
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = (Path(cache_dir).expanduser() if cache_dir else root / "cache") / settings["dataset"] / key
    try:
        for split in splits:
            (folder / split).mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(folder / "settings.json"):  # written beside, then renamed: never through a link
            tmp = folder / f".settings.json.{os.getpid()}.tmp"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            tmp.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, folder / "settings.json")
    except OSError as err:
        raise ConfigError(
            f"dataset.cache_dir: cannot write the frame cache at {folder} ({err.strerror or err}). "
            f"Point dataset.cache_dir at a writable folder, or set dataset.cache=false."
        ) from None
    return folder


# ------------------------------------------------------------------ shared builder
def _check_common(T: int, time_window: float | None, denoise: float | None, size: int | None, native: int,
                  flip: float, translate: int) -> None:
    check(T >= 1, "T", f"must be >= 1, got {T}")
    check(time_window is None or time_window > 0, "time_window", f"must be > 0 microseconds or null, got {time_window}")
    check(denoise is None or denoise > 0, "denoise", f"must be > 0 microseconds or null, got {denoise}")
    check(size is None or 1 <= size <= native, "size", f"must be in [1, {native}] (the sensor's size) or null, got {size}")
    check(0 <= flip <= 1, "flip", f"must be a probability in [0, 1], got {flip}")
    check(translate >= 0 and translate < (size or native), "translate",
          f"must be >= 0 and smaller than the frame size {size or native}, got {translate}")


def _bundle(dataset: str, splits: dict[str, Any], sensor: tuple[int, int, int], num_classes: int, T: int,
            time_window: float | None, denoise: float | None, size: int | None, flip: float, translate: int,
            cache: bool, cache_dir: str | None, root: Path, options: dict[str, Any],
            split_indices: dict[str, list[int]] | None = None) -> DataBundle:
    """Build the bundle from tonic datasets ``splits`` (``train``/``test``, or ``all`` with ``split_indices``)."""
    binning = Binning(sensor, T, time_window, denoise, size)
    settings = {"dataset": dataset, "sensor": list(binning.sensor), "denoise": denoise, **options,
                **({"T": T} if time_window is None else {"T": T, "time_window": time_window})}
    for ds in splits.values():
        ds.transform = binning  # tonic applies it to the events it reads
    sources = dict(splits)
    if cache:
        from ._tonic import FrameCache

        folder = cache_folder(splits, settings, cache_dir, root)
        sources = {split: FrameCache(ds, str(folder / split), binning.shape, num_classes, folder)
                   for split, ds in splits.items()}
        for source in sources.values():
            source.check_files()
    augment = Augment(flip, translate) if (flip > 0 or translate > 0) else None
    flat = len(binning.shape) == 3
    if split_indices is None:
        train = FrameDataset(sources["train"], None, flat, augment)
        test = FrameDataset(sources["test"], None, flat)
    else:
        train = FrameDataset(sources["all"], split_indices["train"], flat, augment)
        test = FrameDataset(sources["all"], split_indices["test"], flat)
    in_shape = (binning.shape[2],) if flat else tuple(binning.shape[1:])
    return DataBundle(train=train, test=test, in_shape=in_shape, num_classes=num_classes, temporal=True)


# ------------------------------------------------------------------ the registered datasets
_NMNIST_SOURCE = ("https://www.garrickorchard.com/datasets/n-mnist (train.zip and test.zip from "
                  "https://data.mendeley.com/datasets/468j46mzdv; unzip so that Train/<digit>/*.bin and "
                  "Test/<digit>/*.bin exist)")
_GESTURE_SOURCE = ("tonic's preprocessed DVS128 Gesture release: ibmGestureTrain.tar.gz "
                   "(https://figshare.com/ndownloader/files/38022171) and ibmGestureTest.tar.gz "
                   "(https://figshare.com/ndownloader/files/38020584); extract so that "
                   "ibmGestureTrain/user<NN>_<lighting>/<label>.npy exist")
_CIFAR_SOURCE = ("CIFAR10DVS.zip (https://figshare.com/ndownloader/files/38023437), then unzip its "
                 "airplane.zip ... truck.zip so that <class>/*.aedat4 exist")
_HSD_SOURCE = "https://zenkelab.org/datasets/ ({files}; unzip them)"
_CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@register("dataset", "nmnist")
def nmnist(
    T: int,
    root: str = DEFAULT_ROOT,
    download: bool = False,
    time_window: float | None = None,
    denoise: float | None = None,
    size: int | None = None,
    first_saccade_only: bool = False,
    stabilize: bool = False,
    flip: float = 0.0,
    translate: int = 0,
    cache: bool = True,
    cache_dir: str | None = None,
) -> DataBundle:
    """N-MNIST (Orchard et al. 2015): 34x34 event camera, 10 digits; frames ``[T, 2, H, W]``."""
    _check_common(T, time_window, denoise, size, 34, flip, translate)
    folder = Path(root).expanduser() / "NMNIST"
    kw = dict(first_saccade_only=first_saccade_only, stabilize=stabilize)
    splits = {s: _open("NMNIST", folder, ["Train", "Test"], _NMNIST_SOURCE, "nmnist", download, 10, train=s == "train",
                    **kw)
              for s in ("train", "test")}
    return _bundle("nmnist", splits, (34, 34, 2), 10, T, time_window, denoise, size, flip, translate, cache,
                   cache_dir, Path(root).expanduser(), kw)


@register("dataset", "dvsgesture")
def dvsgesture(
    T: int,
    root: str = DEFAULT_ROOT,
    download: bool = False,
    time_window: float | None = None,
    denoise: float | None = None,
    size: int | None = None,
    flip: float = 0.0,
    translate: int = 0,
    cache: bool = True,
    cache_dir: str | None = None,
) -> DataBundle:
    """DVS128 Gesture (Amir et al. 2017): 128x128 event camera, 11 gestures; frames ``[T, 2, H, W]``."""
    _check_common(T, time_window, denoise, size, 128, flip, translate)
    folder = Path(root).expanduser() / "DVSGesture"
    splits = {s: _open("DVSGesture", folder, ["ibmGestureTrain", "ibmGestureTest"], _GESTURE_SOURCE, "dvsgesture",
                       download, 11, train=s == "train") for s in ("train", "test")}
    return _bundle("dvsgesture", splits, (128, 128, 2), 11, T, time_window, denoise, size, flip, translate, cache,
                   cache_dir, Path(root).expanduser(), {})


@register("dataset", "cifar10dvs")
def cifar10dvs(
    T: int,
    root: str = DEFAULT_ROOT,
    download: bool = False,
    time_window: float | None = None,
    denoise: float | None = None,
    size: int | None = None,
    flip: float = 0.0,
    translate: int = 0,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    cache: bool = True,
    cache_dir: str | None = None,
) -> DataBundle:
    """CIFAR10-DVS (Li et al. 2017): 128x128 event camera, 10 classes; fixed seeded stratified split."""
    _check_common(T, time_window, denoise, size, 128, flip, translate)
    check(0 < test_fraction < 1, "test_fraction", f"must be in (0, 1), got {test_fraction}")
    try:
        import aedat  # noqa: F401  (tonic's read_aedat4 decodes the AEDAT4 files with it)
    except ImportError:
        raise ConfigError("dataset: cifar10dvs reads AEDAT4 files with the `aedat` package, which is not "
                          "installed: pip install aedat") from None
    folder = Path(root).expanduser() / "CIFAR10DVS"
    ds = _open("CIFAR10DVS", folder, _CIFAR_CLASSES, _CIFAR_SOURCE, "cifar10dvs", download, 10)
    train_idx, test_idx = stratified_split(list(ds.targets), test_fraction, split_seed)
    return _bundle("cifar10dvs", {"all": ds}, (128, 128, 2), 10, T, time_window, denoise, size, flip, translate,
                   cache, cache_dir, Path(root).expanduser(), {}, {"train": train_idx, "test": test_idx})


def _hsd(name: str, cls: str, num_classes: int, split_kwargs: dict[str, dict[str, Any]], T: int, root: str,
         download: bool, time_window: float | None, size: int | None, translate: int, cache: bool,
         cache_dir: str | None) -> DataBundle:
    _check_common(T, time_window, None, size, 700, 0.0, translate)
    folder = Path(root).expanduser() / cls
    files = [f"{name}_{s}.h5" for s in ("train", "test")]
    source = _HSD_SOURCE.format(files=", ".join(f"{f}.zip" for f in files))
    splits = {s: _open(cls, folder, files, source, name, download, num_classes, **kw) for s, kw in split_kwargs.items()}
    return _bundle(name, splits, (700, 1, 1), num_classes, T, time_window, None, size, 0.0, translate, cache,
                   cache_dir, Path(root).expanduser(), {})


@register("dataset", "shd")
def shd(
    T: int,
    root: str = DEFAULT_ROOT,
    download: bool = False,
    time_window: float | None = None,
    size: int | None = None,
    translate: int = 0,
    cache: bool = True,
    cache_dir: str | None = None,
) -> DataBundle:
    """Spiking Heidelberg Digits (Cramer et al. 2020): 700 channels, 20 spoken digits; ``[T, F]``."""
    return _hsd("shd", "SHD", 20, {"train": {"train": True}, "test": {"train": False}}, T, root, download,
                time_window, size, translate, cache, cache_dir)


@register("dataset", "ssc")
def ssc(
    T: int,
    root: str = DEFAULT_ROOT,
    download: bool = False,
    time_window: float | None = None,
    size: int | None = None,
    translate: int = 0,
    cache: bool = True,
    cache_dir: str | None = None,
) -> DataBundle:
    """Spiking Speech Commands (Cramer et al. 2020): 700 channels, 35 words; ``[T, F]`` (train / test files)."""
    return _hsd("ssc", "SSC", 35, {"train": {"split": "train"}, "test": {"split": "test"}}, T, root, download,
                time_window, size, translate, cache, cache_dir)
