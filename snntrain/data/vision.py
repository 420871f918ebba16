"""Static image datasets read from their official files by torchvision: MNIST, Fashion-MNIST, CIFAR-10/100.

Samples are ``float32`` tensors ``[C, H, W]`` (``ToTensor``: pixels scaled to [0, 1]),
optionally standardised per channel with the dataset's usual mean and std
(``normalize``); labels are class indices. Nothing is downloaded unless
``download=true``; otherwise a missing file ends in a :class:`~snntrain.errors.ConfigError`
that names every file torchvision reads and where to get it, before anything is
created on disk.

Where the files go (``root`` is ``dataset.root``, by default ``$SNNTRAIN_DATA`` or ``data``)::

    root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte          (gunzipped)
    root/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte   (gunzipped)
    root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} (extracted tarball)
    root/cifar-100-python/{train, test, meta}                            (extracted tarball)

torchvision >= 0.16 (the version this project requires) reads MNIST straight from the
uncompressed idx files in ``raw/``; the ``processed/{training,test}.pt`` caches that
torchvision < 0.9 wrote are still read if present (torchvision prefers them), so a
``root`` filled by an old torchvision works too and counts as complete.

Before torchvision reads them, no file may link outside its dataset folder and the files together
must fit in half of the available memory (they are read whole); after, the images must be uint8 of
the dataset's shape and the labels class indices. A file that fails is named in a ``ConfigError``.

Encoders: ``normalize=true`` gives zero-mean inputs, right for the ``direct`` encoder.
The ``rate`` encoder (and ``trainer=stdp``) needs intensities in [0, 1]: set
``dataset.normalize=false`` there.
"""
from __future__ import annotations

import functools
import pickle
from pathlib import Path

from ..errors import ConfigError, check
from ..registry import register
from .bundle import DataBundle
from .checks import DataFileError, available_memory, human, check_tree
from .files import DEFAULT_ROOT, require_files
from .idx import check_mnist_files
from .safe_pickle import load_cifar_batch, load_pickle

# Per-channel mean and std of each *training* split, pixels scaled to [0, 1]
# (np.mean / np.std of train_set.data / 255 over all images and pixels, per channel).
#: MNIST: the values of the official PyTorch example (pytorch/examples, mnist/main.py).
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
#: Fashion-MNIST: the same statistics of its 60,000 training images (72.94 and 90.02 on the 0-255 scale).
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
#: CIFAR-10, channels R, G, B, over the 50,000 training images. Many repositories (e.g.
#: kuangliu/pytorch-cifar) use std (0.2023, 0.1994, 0.2010) instead, a different and smaller
#: quantity; these are the plain pixel standard deviations.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
#: CIFAR-100, over its 50,000 training images (weiaicunzai/pytorch-cifar100 uses the same, to more digits).
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

_MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
_SOURCES = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/ (mirror of http://yann.lecun.com/exdb/mnist/; "
             "the four .gz files, uncompressed with gunzip)",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ "
                     "(https://github.com/zalandoresearch/fashion-mnist; the four .gz files, uncompressed with gunzip)",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract it in dataset.root)",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (extract it in dataset.root)",
}


def _presence_checked(cls: type) -> type:
    """``cls`` (torchvision CIFAR10/CIFAR100) reading its files safely and checking only that they exist.

    torchvision verifies the md5 of every batch file before loading and then unpickles
    them with ``pickle.load``. Those sums protect a *download* against corruption
    (``download=true`` still verifies the tarball's md5); checking them on every start
    costs a full read and rejects any file that is not byte-identical to the official
    one, such as the small files the tests write. Without the md5 check, ``pickle.load``
    would run whatever code a crafted batch file names, so the batches and the meta
    file are read with :mod:`snntrain.data.safe_pickle` instead (only numpy arrays and
    plain data) and their contents are checked.
    """

    class PresenceChecked(cls):  # type: ignore[misc, valid-type]
        meta = {**cls.meta, "md5": None}  # check_integrity(path, None) tests existence only

        def __init__(self, root: str, train: bool = True, transform=None, target_transform=None,
                     download: bool = False):
            import numpy as np
            from torchvision.datasets import VisionDataset

            VisionDataset.__init__(self, root, transform=transform, target_transform=target_transform)
            self.train = train
            if download:
                self.download()  # torchvision's: verifies the tarball's md5, skips when the files exist
            label_key = "labels" if cls.__name__ == "CIFAR10" else "fine_labels"
            data, self.targets = [], []
            for name, _ in self.train_list if train else self.test_list:
                x, y = load_cifar_batch(Path(root) / self.base_folder / name, label_key)
                data.append(x)
                self.targets.extend(y)
            self.data = np.vstack(data).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))
            meta = load_pickle(Path(root) / self.base_folder / self.meta["filename"])
            if not isinstance(meta, dict) or not isinstance(meta.get(self.meta["key"]), list):
                raise ValueError(f"{self.meta['filename']} lacks the list '{self.meta['key']}' of class names")
            self.classes = meta[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
            bad = sorted({t for t in self.targets if not 0 <= t < len(self.classes)})
            if bad:
                raise ValueError(f"labels {bad[:5]} are outside the {len(self.classes)} classes of {self.meta['filename']}")

        def _check_integrity(self) -> bool:
            folder = Path(self.root) / self.base_folder
            return all((folder / name).is_file() for name, _ in self.train_list + self.test_list)

    # importable as snntrain.data.vision.<name> (via __getattr__), so DataLoader workers
    # started with "spawn" (macOS, Windows) can pickle the dataset
    PresenceChecked.__name__ = PresenceChecked.__qualname__ = f"{cls.__name__}Files"
    PresenceChecked.__module__ = __name__
    return PresenceChecked


@functools.cache
def __getattr__(name: str) -> type:
    """``CIFAR10Files`` / ``CIFAR100Files``: built on first use so importing snntrain skips torchvision."""
    if name in ("CIFAR10Files", "CIFAR100Files"):
        from torchvision import datasets

        return _presence_checked(getattr(datasets, name[: -len("Files")]))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _transforms(mean, std, normalize: bool, augment: bool, crop_padding: int, flip: bool, size: int):
    from torchvision import transforms as T

    tail = [T.ToTensor()] + ([T.Normalize(mean, std)] if normalize else [])
    aug = []
    if augment:
        if crop_padding > 0:
            aug.append(T.RandomCrop(size, padding=crop_padding))
        if flip:
            aug.append(T.RandomHorizontalFlip())
    return T.Compose(aug + tail), T.Compose(tail)


def _download(dataset: str, cls: type, root: Path) -> None:
    try:
        cls(str(root), train=True, download=True)
    except Exception as err:  # URLError, timeouts, bad checksums: the user's network or disk
        why = " ".join(str(err).split())  # torchvision's messages span several lines
        raise ConfigError(
            f"dataset.download: fetching {dataset} into {root} failed ({type(err).__name__}: {why}). "
            f"Download it by hand from {_SOURCES[dataset]}, or check the network connection."
        ) from None


def _load(dataset: str, cls: type, root: str, download: bool, expected_folder: str, expected: list[str],
          legacy_complete: bool, mean, std, normalize: bool, augment: bool, crop_padding: int, flip: bool,
          in_shape: tuple[int, int, int], num_classes: int) -> DataBundle:
    check(crop_padding >= 0, "crop_padding", f"must be >= 0, got {crop_padding}")
    base = Path(root).expanduser()
    if download:
        _download(dataset, cls, base)
    train_tf, test_tf = _transforms(mean, std, normalize, augment, crop_padding, flip, in_shape[-1])
    folder = base / expected_folder.split("/")[0]
    try:
        if not legacy_complete:
            require_files(dataset, base / expected_folder, expected, _SOURCES[dataset])
        _check_files(dataset, folder)
        if not legacy_complete and expected == _MNIST_FILES:
            check_mnist_files(base / expected_folder)
        train = cls(str(base), train=True, transform=train_tf)
        test = cls(str(base), train=False, transform=test_tf)
        for split in (train, test):
            _check_loaded(dataset, folder, split, in_shape, num_classes)
        # without random augmentation a split is read a batch at a time from one uint8 tensor (same values)
        from .images import InMemoryImages

        test = InMemoryImages.from_torchvision(test, normalize, mean, std)
        if not augment:
            train = InMemoryImages.from_torchvision(train, normalize, mean, std)
    except ConfigError:
        raise
    except OSError as err:  # unreadable folder or file
        raise ConfigError(
            f"dataset.root: the {dataset} files in {base / expected_folder} could not be read ({type(err).__name__}: "
            f"{err.strerror or err}{f': {err.filename}' if err.filename else ''}). Check that the folder and its files "
            f"are readable by this user (ls -l), or point dataset.root at a readable copy."
        ) from None
    except (RuntimeError, ValueError, TypeError, AssertionError, KeyError, EOFError, IndexError,
            pickle.UnpicklingError) as err:  # truncated, malformed or foreign files
        why = " ".join(str(err).split()) or "no detail"
        if "Weights only load failed" in why:  # torch's text advises weights_only=False, which can run code
            why = "not a file of tensors that torch loads safely"
        where = base / (expected_folder.split("/")[0] + "/processed" if legacy_complete else expected_folder)
        raise ConfigError(
            f"dataset.root: the {dataset} files in {where} could not be read "
            f"({type(err).__name__}: {why[:300]}). They may be truncated or not the official files; "
            f"get them again from {_SOURCES[dataset]}."
        ) from None
    return DataBundle(train=train, test=test, in_shape=in_shape, num_classes=num_classes)


def _file_error(dataset: str, path: Path):
    def fail(what: str):
        raise DataFileError(f"dataset.root: the {dataset} file {path} {what}. Get the official files again from "
                            f"{_SOURCES[dataset]}.")
    return fail


def _check_files(dataset: str, folder: Path) -> None:
    """Before reading: no file of ``folder`` links outside it, and the files (all read into memory)
    fit in half of the memory available."""
    check_tree(folder, lambda path: _file_error(dataset, path))
    total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    budget = available_memory() // 2
    if total > budget:
        raise DataFileError(
            f"dataset.root: the {dataset} files in {folder} hold {human(total)}; they are read into memory whole, "
            f"and only {human(budget)} (half of the memory available) may go to them. They are not the official "
            f"files ({_SOURCES[dataset]}), or this machine has too little free memory for {dataset}."
        )


def _check_loaded(dataset: str, folder: Path, split, in_shape: tuple[int, int, int], num_classes: int) -> None:
    """What torchvision read: ``[N, H, W(, C)]`` uint8 images and ``N`` class indices in ``[0, num_classes)``."""
    import torch

    data, targets = split.data, torch.as_tensor(split.targets)
    c, h, w = in_shape
    image = (h, w) if c == 1 else (h, w, c)
    which = f"{'train' if split.train else 'test'} split"
    if tuple(data.shape[1:]) != image or str(data.dtype).split(".")[-1] != "uint8":
        raise DataFileError(f"dataset.root: the {dataset} {which} in {folder} holds {str(data.dtype).split('.')[-1]} "
                            f"images of shape {list(data.shape[1:])}, not uint8 {list(image)}. Get the official "
                            f"files again from {_SOURCES[dataset]}.")
    if targets.dim() != 1 or len(targets) != len(data) or targets.is_floating_point() or targets.dtype == torch.bool:
        raise DataFileError(f"dataset.root: the {dataset} {which} in {folder} has {list(targets.shape)} "
                            f"{str(targets.dtype).split('.')[-1]} labels for {len(data)} images, not one class index "
                            f"per image. Get the official files again from {_SOURCES[dataset]}.")
    bad = targets[(targets < 0) | (targets >= num_classes)]
    if len(bad):
        raise DataFileError(f"dataset.root: the {dataset} {which} in {folder} holds the label {int(bad[0])}; "
                            f"labels are 0-{num_classes - 1}. Get the official files again from {_SOURCES[dataset]}.")


def _mnist_like(dataset: str, cls_name: str, root: str, download: bool, normalize: bool, augment: bool,
                crop_padding: int, mean, std, flip: bool) -> DataBundle:
    from torchvision import datasets

    cls = getattr(datasets, cls_name)  # MNIST/FashionMNIST read raw/ below root/<class name>/
    processed = Path(root).expanduser() / cls_name / "processed"
    legacy = all((processed / f).is_file() for f in ("training.pt", "test.pt"))  # torchvision < 0.9 cache
    return _load(dataset, cls, root, download, f"{cls_name}/raw", _MNIST_FILES, legacy, mean, std,
                 normalize, augment, crop_padding, flip, (1, 28, 28), 10)


def _cifar(dataset: str, cls_name: str, root: str, download: bool, normalize: bool, augment: bool,
           crop_padding: int, mean, std, num_classes: int) -> DataBundle:
    cls = __getattr__(f"{cls_name}Files")
    expected = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return _load(dataset, cls, root, download, cls.base_folder, expected, False, mean, std,
                 normalize, augment, crop_padding, True, (3, 32, 32), num_classes)


@register("dataset", "mnist")
def mnist(root: str = DEFAULT_ROOT, download: bool = False, normalize: bool = True, augment: bool = False,
          crop_padding: int = 4) -> DataBundle:
    """MNIST handwritten digits, 28x28 grey, 10 classes (60k / 10k), from root/MNIST/raw."""
    return _mnist_like("mnist", "MNIST", root, download, normalize, augment, crop_padding,
                       MNIST_MEAN, MNIST_STD, flip=False)  # digits are not mirror-symmetric


@register("dataset", "fashion_mnist")
def fashion_mnist(root: str = DEFAULT_ROOT, download: bool = False, normalize: bool = True, augment: bool = False,
                  crop_padding: int = 4) -> DataBundle:
    """Fashion-MNIST clothing images, 28x28 grey, 10 classes (60k / 10k), from root/FashionMNIST/raw."""
    return _mnist_like("fashion_mnist", "FashionMNIST", root, download, normalize, augment, crop_padding,
                       FASHION_MNIST_MEAN, FASHION_MNIST_STD, flip=True)


@register("dataset", "cifar10")
def cifar10(root: str = DEFAULT_ROOT, download: bool = False, normalize: bool = True, augment: bool = True,
            crop_padding: int = 4) -> DataBundle:
    """CIFAR-10 colour images, 3x32x32, 10 classes (50k / 10k), from root/cifar-10-batches-py."""
    return _cifar("cifar10", "CIFAR10", root, download, normalize, augment, crop_padding,
                  CIFAR10_MEAN, CIFAR10_STD, 10)


@register("dataset", "cifar100")
def cifar100(root: str = DEFAULT_ROOT, download: bool = False, normalize: bool = True, augment: bool = True,
             crop_padding: int = 4) -> DataBundle:
    """CIFAR-100 colour images, 3x32x32, 100 fine classes (50k / 10k), from root/cifar-100-python."""
    return _cifar("cifar100", "CIFAR100", root, download, normalize, augment, crop_padding,
                  CIFAR100_MEAN, CIFAR100_STD, 100)
