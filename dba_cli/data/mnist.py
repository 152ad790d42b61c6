"""MNIST from IDX files, verified by content checksum, with a verified cache.

Why this shape:
- The four canonical files ship inside the package (`dba_cli/data/mnist/`), so
  the tool works offline. `--data-dir` / `DBA_DATA_DIR` points to another copy
  (gzip or raw IDX files, or torchvision's `MNIST/raw` layout).
- We check the MD5 of the *uncompressed* content: gzip output differs between
  compressors, the IDX bytes do not. Nothing is decoded from unverified bytes.
- The cache stores the uncompressed IDX bytes under their own checksum, so a
  cached load is verified by exactly the same MD5 as a first load and skips
  only the gzip decompression. A cache that fails the check is discarded.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from . import DATA_DIR_ENV
from ..io import write_atomic

CACHE_DIR_ENV = "DBA_CACHE_DIR"

# Pixel statistics of the training set after /255 (the data README's sanity facts).
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081


@dataclass(frozen=True)
class IdxFile:
    """One of the four canonical MNIST files."""

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
class MNIST:
    """The verified data set: uint8 images (N, 28, 28) and int64 labels (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str  # the folder the files came from


def packaged_data_dir() -> Path:
    """The copy of MNIST shipped inside the package."""
    return Path(str(resources.files("dba_cli.data") / "mnist"))


def default_cache_dir() -> Path:
    """`DBA_CACHE_DIR`, else `$XDG_CACHE_HOME/dba`, else `~/.cache/dba`."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dba"


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The explicit folder, else `DBA_DATA_DIR`, else the packaged copy."""
    if data_dir is None and os.environ.get(DATA_DIR_ENV):
        data_dir = os.environ[DATA_DIR_ENV]
    if data_dir is None:
        return packaged_data_dir()
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DataError(
            f"MNIST folder {path} does not exist or is not a folder. "
            f"Fix: pass --data-dir (or set {DATA_DIR_ENV}) to a folder holding the four MNIST IDX files, "
            "or leave both unset to use the copy shipped with dba."
        )
    return path


def find_file(data_dir: Path, stem: str) -> Path:
    """Locate one IDX file: plain or .gz, directly or in torchvision's MNIST/raw."""
    tried = []
    for folder in (data_dir, data_dir / "MNIST" / "raw", data_dir / "raw"):
        for name in (stem, stem + ".gz"):
            candidate = folder / name
            if candidate.is_file():
                return candidate
            tried.append(str(candidate))
    raise DataError(
        f"MNIST file {stem}(.gz) not found in {data_dir}. Looked for: {', '.join(tried)}. "
        "Fix: put the four canonical MNIST files there (gzip or raw IDX), "
        f"or unset --data-dir / {DATA_DIR_ENV} to use the copy shipped with dba."
    )


def read_content(path: Path) -> bytes:
    """The uncompressed bytes of a raw or gzip IDX file."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(
            f"MNIST file {path} could not be read ({exc}). "
            "Fix: replace it with a fresh copy of the canonical file."
        ) from exc


def verify(content: bytes, spec: IdxFile, path: Path) -> None:
    """Raise unless the uncompressed content has the canonical MD5."""
    actual = hashlib.md5(content).hexdigest()
    if actual != spec.md5:
        raise DataError(
            f"MNIST file {path} failed its checksum: the MD5 of its uncompressed content is {actual}, "
            f"expected {spec.md5}. It is corrupted, truncated or not the canonical {spec.stem}. "
            "Fix: replace it with the canonical file, or unset --data-dir / "
            f"{DATA_DIR_ENV} to use the copy shipped with dba."
        )


def decode_idx(content: bytes, spec: IdxFile) -> torch.Tensor:
    """Decode verified IDX bytes (unsigned-byte type) into a uint8 tensor."""
    ndim = content[3]
    dims = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    assert dims == spec.shape, (dims, spec.shape)  # guaranteed by the checksum
    array = np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return torch.from_numpy(array.copy())


def load_verified(spec: IdxFile, data_dir: Path, cache_dir: Path | None) -> bytes:
    """Verified uncompressed content of one file, from the cache when possible."""
    cached = cache_dir / "mnist" / f"{spec.md5}.idx" if cache_dir else None
    if cached is not None and cached.is_file():
        content = cached.read_bytes()
        if hashlib.md5(content).hexdigest() == spec.md5:
            return content
        cached.unlink(missing_ok=True)  # a damaged cache entry is rebuilt from the source
    path = find_file(data_dir, spec.stem)
    content = read_content(path)
    verify(content, spec, path)
    if cached is not None:
        write_cache(cached, content)
    return content


def write_cache(path: Path, content: bytes) -> None:
    """Atomically write a cache entry; a read-only cache folder is not an error."""
    try:
        write_atomic(path, lambda handle: handle.write(content))
    except OSError:
        pass  # caching is an optimisation only


def load_mnist(data_dir: str | Path | None = None, cache_dir: str | Path | None | bool = None) -> MNIST:
    """Load and verify all four files.

    `cache_dir=None` uses `default_cache_dir()`, `False` disables the cache.
    """
    folder = resolve_data_dir(data_dir)
    if cache_dir is None:
        cache = default_cache_dir()
    elif cache_dir is False:
        cache = None
    else:
        cache = Path(cache_dir)
    tensors = {key: decode_idx(load_verified(spec, folder, cache), spec) for key, spec in FILES.items()}
    return MNIST(
        train_images=tensors["train_images"],
        train_labels=tensors["train_labels"].long(),
        test_images=tensors["test_images"],
        test_labels=tensors["test_labels"].long(),
        source=str(folder),
    )


def to_features(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 784), standardised with the training-set statistics."""
    return images.reshape(len(images), -1).float().div_(255.0).sub_(PIXEL_MEAN).div_(PIXEL_STD)
