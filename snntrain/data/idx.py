"""Checks of the MNIST-format idx files, so a bad file gets a message saying what is wrong.

An idx file (LeCun et al., http://yann.lecun.com/exdb/mnist/) is a big-endian header —
two zero bytes, a type byte (``0x08`` = unsigned byte), the number of dimensions ``d``,
then ``d`` 32-bit sizes — followed by the values. MNIST and Fashion-MNIST use
``0x00000803`` (images ``[N, 28, 28]``) and ``0x00000801`` (labels ``[N]``). torchvision
only asserts on them (``AssertionError`` with no text); :func:`check_mnist_files` reads
the headers and sizes first and raises ``ValueError`` naming the file and the problem:
a wrong magic number, a size that does not match the header, images and labels of
different counts, labels outside 0-9.
"""
from __future__ import annotations

import struct
from pathlib import Path

IMAGES, LABELS = 0x00000803, 0x00000801


def read_header(path: Path, magic: int) -> tuple[int, ...]:
    """The dimensions in the header of ``path``; checks the magic number and the file size."""
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or struct.unpack(">I", head)[0] != magic:
            got = f"0x{struct.unpack('>I', head)[0]:08x}" if len(head) == 4 else f"{len(head)} bytes"
            raise ValueError(f"{path.name} is not an idx file of this kind (magic number {got}, expected 0x{magic:08x})")
        ndim = magic & 0xFF
        raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise ValueError(f"{path.name} ends inside its header")
    dims = struct.unpack(f">{ndim}I", raw)
    n_values = 1
    for d in dims:
        n_values *= d
    size = path.stat().st_size
    if size != 4 + 4 * ndim + n_values:
        raise ValueError(f"{path.name} holds {size} bytes but its header {list(dims)} needs {4 + 4 * ndim + n_values}; "
                         f"it is truncated or not an uncompressed idx file")
    return dims


def check_mnist_files(folder: Path) -> None:
    """Check ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` in ``folder`` (raises ``ValueError``)."""
    for split in ("train", "t10k"):
        images = read_header(folder / f"{split}-images-idx3-ubyte", IMAGES)
        labels = read_header(folder / f"{split}-labels-idx1-ubyte", LABELS)
        if images[0] != labels[0]:
            raise ValueError(f"{split}-images-idx3-ubyte holds {images[0]} images but {split}-labels-idx1-ubyte "
                             f"holds {labels[0]} labels")
        if images[1:] != (28, 28):
            raise ValueError(f"{split}-images-idx3-ubyte holds {images[1]}x{images[2]} images, expected 28x28")
        values = (folder / f"{split}-labels-idx1-ubyte").read_bytes()[8:]
        if values and max(values) > 9:
            raise ValueError(f"{split}-labels-idx1-ubyte holds the label {max(values)}; labels are 0-9")
