"""Finding, reading and verifying a data set's four IDX files, with a verified cache.

Why this shape:
- MNIST's four canonical files ship inside the package (`dba_cli/data/mnist/`),
  so the tool works offline. Fashion-MNIST (30 MB) does not: it is looked for
  where `dba data fetch fashion-mnist` puts it and where Debian's
  `dataset-fashion-mnist` package installs it. `--data-dir` / `DBA_DATA_DIR`
  points to another copy of either (gzip or raw IDX files, or torchvision's
  `MNIST/raw` / `FashionMNIST/raw` layout).
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
from importlib import resources
from pathlib import Path

from ..errors import DataError
from ..files import write_atomic
from .datasets import DATASET_SPECS, Dataset, DatasetSpec, IdxFile, decode_idx

from ..settings.environment import CACHE_DIR as CACHE_DIR_ENV
from ..settings.environment import DATA_DIR as DATA_DIR_ENV


def packaged_data_dir() -> Path:
    """The copy of MNIST shipped inside the package."""
    return Path(str(resources.files("dba_cli.data") / "mnist"))


def default_cache_dir() -> Path:
    """`DBA_CACHE_DIR`, else `$XDG_CACHE_HOME/dba`, else `~/.cache/dba`."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dba"


def fetched_data_dir() -> Path:
    """Where `dba data fetch` puts a data set that does not ship with dba: the cache's `datasets/`."""
    return default_cache_dir() / "datasets"


def default_dirs(spec: DatasetSpec) -> list[Path]:
    """Where a data set is looked for without --data-dir: the packaged copy, else the fetched and system ones."""
    return [packaged_data_dir()] if spec.packaged else [fetched_data_dir(), *map(Path, spec.system_dirs)]


def unset_hint(spec: DatasetSpec) -> str:
    """How to fall back on the default copy, for error messages."""
    if spec.packaged:
        return f"or unset --data-dir / {DATA_DIR_ENV} to use the copy shipped with dba"
    return f"or get a fresh copy: {spec.how_to_get}"


def resolve_data_dir(data_dir: str | Path | None, spec: DatasetSpec = DATASET_SPECS["mnist"]) -> Path:
    """The explicit folder, else `DBA_DATA_DIR`, else the first default folder holding the data set."""
    if data_dir is None and os.environ.get(DATA_DIR_ENV):
        data_dir = os.environ[DATA_DIR_ENV]
    if data_dir is None:
        candidates = default_dirs(spec)
        for folder in candidates:
            if all(locate(folder, file.stem, spec) for file in spec.files.values()):
                return folder
        if spec.packaged:
            return candidates[0]
        raise DataError(
            f"{spec.title} is not on this machine (looked in {', '.join(map(str, candidates))}). "
            f"Fix: {spec.how_to_get}; or pass --data-dir (or set {DATA_DIR_ENV}) to a folder holding its four IDX files."
        )
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DataError(
            f"{spec.title} folder {path} does not exist or is not a folder. "
            f"Fix: pass --data-dir (or set {DATA_DIR_ENV}) to a folder holding the four {spec.title} IDX files, "
            f"{unset_hint(spec)}."
        )
    return path


def search_folders(data_dir: Path, spec: DatasetSpec) -> list[Path]:
    """The folders an IDX file may be in: the folder itself, torchvision's <Folder>/raw, raw/ and <name>/."""
    return [data_dir, data_dir / spec.torchvision_folder / "raw", data_dir / "raw", data_dir / spec.name]


def locate(data_dir: Path, stem: str, spec: DatasetSpec) -> Path | None:
    """The IDX file `stem`, plain or .gz, in one of `search_folders`; None if there is none."""
    for folder in search_folders(data_dir, spec):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def find_file(data_dir: Path, stem: str, spec: DatasetSpec = DATASET_SPECS["mnist"]) -> Path:
    """Locate one IDX file (see `locate`), or say where it was looked for and how to fix it."""
    found = locate(data_dir, stem, spec)
    if found is not None:
        return found
    tried = [str(folder / name) for folder in search_folders(data_dir, spec) for name in (stem, stem + ".gz")]
    raise DataError(
        f"{spec.title} file {stem}(.gz) not found in {data_dir}. Looked for: {', '.join(tried)}. "
        f"Fix: put the four canonical {spec.title} files there (gzip or raw IDX), {unset_hint(spec)}."
    )


def read_content(path: Path, dataset: DatasetSpec = DATASET_SPECS["mnist"]) -> bytes:
    """The uncompressed bytes of a raw or gzip IDX file."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{dataset.title} file {path} could not be read ({exc}). "
            "Fix: replace it with a fresh copy of the canonical file."
        ) from exc


def verify(content: bytes, spec: IdxFile, path: Path, dataset: DatasetSpec = DATASET_SPECS["mnist"]) -> None:
    """Raise unless the uncompressed content has the canonical MD5."""
    actual = hashlib.md5(content).hexdigest()
    if actual != spec.md5:
        raise DataError(
            f"{dataset.title} file {path} failed its checksum: the MD5 of its uncompressed content is {actual}, "
            f"expected {spec.md5}. It is corrupted, truncated or not the canonical {dataset.title} {spec.stem}. "
            f"Fix: replace it with the canonical file, {unset_hint(dataset)}."
        )


def load_verified(
    spec: IdxFile, data_dir: Path, cache_dir: Path | None, dataset: DatasetSpec = DATASET_SPECS["mnist"]
) -> bytes:
    """Verified uncompressed content of one file, from the cache when possible."""
    cached = cache_dir / dataset.name / f"{spec.md5}.idx" if cache_dir else None
    if cached is not None and cached.is_file():
        content = cached.read_bytes()
        if hashlib.md5(content).hexdigest() == spec.md5:
            return content
        cached.unlink(missing_ok=True)  # a damaged cache entry is rebuilt from the source
    path = find_file(data_dir, spec.stem, dataset)
    content = read_content(path, dataset)
    verify(content, spec, path, dataset)
    if cached is not None:
        write_cache(cached, content)
    return content


def write_cache(path: Path, content: bytes) -> None:
    """Atomically write a cache entry; a read-only cache folder is not an error."""
    try:
        write_atomic(path, lambda handle: handle.write(content))
    except OSError:
        pass  # caching is an optimisation only


def load_dataset(
    data_dir: str | Path | None = None, cache_dir: str | Path | None | bool = None, dataset: str | DatasetSpec = "mnist"
) -> Dataset:
    """Load and verify all four files of `dataset` (a DATASET_SPECS key, or a spec of one's own).

    `cache_dir=None` uses `default_cache_dir()`, `False` disables the cache.
    """
    spec = dataset if isinstance(dataset, DatasetSpec) else DATASET_SPECS[dataset]
    folder = resolve_data_dir(data_dir, spec)
    if cache_dir is None:
        cache = default_cache_dir()
    elif cache_dir is False:
        cache = None
    else:
        cache = Path(cache_dir)
    tensors = {key: decode_idx(load_verified(file, folder, cache, spec), file) for key, file in spec.files.items()}
    return Dataset(
        train_images=tensors["train_images"],
        train_labels=tensors["train_labels"].long(),
        test_images=tensors["test_images"],
        test_labels=tensors["test_labels"].long(),
        source=str(folder),
        spec=spec,
    )


