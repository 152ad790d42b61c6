"""The data sets a run can train on: their canonical files, pixel statistics, and the model's input features.

MNIST and Fashion-MNIST are both 28x28 grey images of 10 classes in the IDX
format, 60,000 for training and 10,000 for testing, so every subset, split and
model works on either. Each is known by the MD5 of its files' *uncompressed*
content (gzip bytes differ between compressors; the IDX content does not).
Where the files are found, how they are read and verified, and the cache:
loading.py. This module is a training source (training/code_version.py): the
decoding and the standardisation below change what a model sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Pixel statistics of MNIST's training set after /255 (the data README's sanity facts).
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081


@dataclass(frozen=True)
class IdxFile:
    """One of a data set's four canonical files."""

    stem: str  # file name without .gz, as in torchvision's MNIST/raw
    md5: str  # MD5 of the uncompressed content
    shape: tuple[int, ...]


FILES = {
    "train_images": IdxFile("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb", (60000, 28, 28)),
    "train_labels": IdxFile("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624", (60000,)),
    "test_images": IdxFile("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea", (10000, 28, 28)),
    "test_labels": IdxFile("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637", (10000,)),
}


@dataclass(frozen=True)
class DatasetSpec:
    """What identifies a data set: its canonical files, pixel statistics, and where a copy is found."""

    name: str  # as a recipe's `dataset:` names it
    title: str  # as messages name it
    files: dict[str, IdxFile]
    pixel_mean: float  # of the training set after /255: features are standardised with these
    pixel_std: float
    torchvision_folder: str  # torchvision's root/<folder>/raw layout
    packaged: bool  # shipped inside the package
    system_dirs: tuple[str, ...] = ()  # where an operating-system package installs it
    how_to_get: str = ""  # the ways to get a copy, for the missing-data message


# Canonical Fashion-MNIST (github.com/zalandoresearch/fashion-mnist): MD5 of the uncompressed
# IDX content, which every copy shares (the gzip bytes differ: Debian's are recompressed).
FASHION_FILES = {
    "train_images": IdxFile("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a", (60000, 28, 28)),
    "train_labels": IdxFile("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9", (60000,)),
    "test_images": IdxFile("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a", (10000, 28, 28)),
    "test_labels": IdxFile("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965", (10000,)),
}

DATASET_SPECS = {
    "mnist": DatasetSpec("mnist", "MNIST", FILES, PIXEL_MEAN, PIXEL_STD, "MNIST", packaged=True),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", "Fashion-MNIST", FASHION_FILES, 0.2860, 0.3530, "FashionMNIST", packaged=False,
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        how_to_get="`dba data fetch fashion-mnist` (downloads it through torchvision), "
        "or without internet install Debian's package (`apt install dataset-fashion-mnist`)",
    ),
}


@dataclass(frozen=True)
class Dataset:
    """A verified data set: uint8 images (N, 28, 28) and int64 labels (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str  # the folder the files came from
    spec: DatasetSpec = DATASET_SPECS["mnist"]  # which data set it is

    @property
    def name(self) -> str:
        """The data set's name, as a run's `dataset` names it."""
        return self.spec.name

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """`to_features` with this data set's own pixel statistics."""
        return to_features(images, self.spec.pixel_mean, self.spec.pixel_std)


def decode_idx(content: bytes, spec: IdxFile) -> torch.Tensor:
    """Decode verified IDX bytes (unsigned-byte type) into a uint8 tensor."""
    ndim = content[3]
    dims = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    assert dims == spec.shape, (dims, spec.shape)  # guaranteed by the checksum
    array = np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return torch.from_numpy(array.copy())


def to_features(images: torch.Tensor, mean: float = PIXEL_MEAN, std: float = PIXEL_STD) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 784), standardised with the training-set statistics (MNIST's by default)."""
    return images.reshape(len(images), -1).float().div_(255.0).sub_(mean).div_(std)
