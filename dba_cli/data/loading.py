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
- Every file is an input: read with bounds (its canonical size is known), so a
  decompression bomb or a FIFO is one error, never a hang or a MemoryError.
- The cache stores the uncompressed IDX bytes of a gzip file under that gzip
  file's hash and the content's MD5, so it only ever stands in for the file it
  was made from, which is always read; a cached load is verified by the same
  MD5 as a first load and skips only the decompression. So the cache can only
  ever save time: a cache folder that is a file, cannot be written, or holds a
  damaged entry it cannot remove is bypassed with one warning (`CacheBypassed`),
  never an error, and the data are read from their files as without a cache.
- The cache never sits at the filesystem root: with HOME empty (or `/`) and
  neither DBA_CACHE_DIR nor XDG_CACHE_HOME set, there is no cache (a warning says so).
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zlib
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, DataError, UnreadableFile
from ..files import read_bounded, write_atomic
from .datasets import DATASET_SPECS, Dataset, DatasetSpec, IdxFile, decode_idx

from ..settings.environment import CACHE_DIR as CACHE_DIR_ENV
from ..settings.environment import DATA_DIR as DATA_DIR_ENV


def packaged_data_dir() -> Path:
    """The copy of MNIST shipped inside the package."""
    return Path(str(resources.files("dba_cli.data") / "mnist"))


class CacheBypassed(UserWarning):
    """The data cache cannot be used (a file in its place, read-only, no home folder): data are read without it."""


NO_HOME = (
    f"HOME is empty or the filesystem root and neither {CACHE_DIR_ENV} nor XDG_CACHE_HOME is set, so dba has no cache "
    "folder (it never puts one at the filesystem root)"
)


def default_cache_dir() -> Path | None:
    """`DBA_CACHE_DIR`, else `$XDG_CACHE_HOME/dba`, else `~/.cache/dba`; None where that would lie at the root.

    `HOME=""` makes Python's home `/`, which would put the cache at
    `/.cache/dba`, shared by every user and beside the system's own folders:
    without a real home folder there is no cache (`NO_HOME` says why). A
    relative XDG_CACHE_HOME is ignored, as the XDG specification asks.
    """
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute() and Path(xdg).resolve() != Path("/"):
        return Path(xdg) / "dba"
    try:
        home = Path.home()
    except (RuntimeError, KeyError):  # no HOME and no password entry
        return None
    if not home.is_absolute() or home.resolve() == Path("/"):
        return None
    return home / ".cache" / "dba"


def fetched_data_dir() -> Path:
    """Where `dba data fetch` puts a data set that does not ship with dba: the cache's `datasets/`."""
    cache = default_cache_dir()
    if cache is None:
        raise ConfigError(f"{NO_HOME}. Fix: pass --to FOLDER (then --data-dir FOLDER), or set {CACHE_DIR_ENV}.")
    return cache / "datasets"


def default_dirs(spec: DatasetSpec) -> list[Path]:
    """Where a data set is looked for without --data-dir: the packaged copy, else the fetched (if any) and system ones."""
    if spec.packaged:
        return [packaged_data_dir()]
    cache = default_cache_dir()
    return [*([cache / "datasets"] if cache is not None else []), *map(Path, spec.system_dirs)]


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
            if os.path.lexists(folder / name) and not (folder / name).is_dir():  # a FIFO too: read_content says what it is
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


GZIP_MAGIC = b"\x1f\x8b"
# A gzip file is never much larger than what it holds (incompressible data grows by about 0.03%); anything larger
# than the canonical file's content plus this is not the file, and is refused before it is read.
GZIP_SLACK = 2**20


def idx_size(spec: IdxFile) -> int:
    """The exact size of a canonical IDX file's content: its header (magic, one 4-byte size per dimension) and its bytes."""
    count = 1
    for dimension in spec.shape:
        count *= dimension
    return 4 + 4 * len(spec.shape) + count


def replace_hint(dataset: DatasetSpec) -> str:
    """The advice every error about a damaged or foreign data file ends with."""
    return f"Fix: replace it with the canonical file, {unset_hint(dataset)}."


def read_content(path: Path, spec: IdxFile, dataset: DatasetSpec = DATASET_SPECS["mnist"]) -> bytes:
    """The uncompressed bytes of a raw or gzip IDX file, never more than the canonical file holds.

    A raw file must have the canonical size exactly, checked before it is read;
    a gzip file may not be larger than that (plus GZIP_SLACK), and its
    decompression stops as soon as it yields more than the canonical size. So
    a decompression bomb, a sparse 100 GB file or /dev/zero costs a stat or a
    few MB, never the memory it claims. Only then is the content's MD5 checked
    (`verify`). A FIFO, a device or a folder is refused without being opened for long.
    """
    expected = idx_size(spec)
    fix = replace_hint(dataset)
    try:
        data = read_bounded(path, expected + GZIP_SLACK)
    except UnreadableFile as exc:
        raise DataError(f"{dataset.title} file {path} is not the canonical {spec.stem}: {exc.reason}. {fix}") from None
    except OSError as exc:
        raise DataError(f"{dataset.title} file {path} could not be read ({exc.strerror or exc}). {fix}") from None
    return content_of(data, path, spec, dataset)


def content_of(data: bytes, path: Path, spec: IdxFile, dataset: DatasetSpec) -> bytes:
    """The uncompressed content of the bytes `data` read from `path` (raw or gzip), checked against the canonical size."""
    expected = idx_size(spec)
    if data[:2] != GZIP_MAGIC:
        fix = replace_hint(dataset)
        if len(data) != expected:
            raise DataError(
                f"{dataset.title} file {path} holds {len(data):,} bytes; the canonical {spec.stem} holds exactly "
                f"{expected:,}. It is truncated, padded or another file. {fix}"
            )
        return data
    return decompress_bounded(data, expected, path, spec, dataset)


def decompress_bounded(data: bytes, expected: int, path: Path, spec: IdxFile, dataset: DatasetSpec) -> bytes:
    """A gzip file's content, decompressed in steps that never yield more than `expected` + 1 bytes in all."""
    fix = replace_hint(dataset)
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
    out = bytearray()
    pending = data
    try:
        while pending and not decompressor.eof:
            out += decompressor.decompress(pending, expected + 1 - len(out))
            pending = decompressor.unconsumed_tail
            if len(out) > expected:
                raise DataError(
                    f"{dataset.title} file {path} expands to more than the {expected:,} bytes the canonical {spec.stem} "
                    f"holds; decompression was stopped there. It is not the canonical file. {fix}"
                )
    except zlib.error as exc:
        raise DataError(f"{dataset.title} file {path} is not a valid gzip file ({exc}). {fix}") from None
    if not decompressor.eof:
        raise DataError(f"{dataset.title} file {path} ends before its gzip stream does: truncated. {fix}")
    return bytes(out)


def verify(content: bytes, spec: IdxFile, path: Path, dataset: DatasetSpec = DATASET_SPECS["mnist"], fix: str | None = None) -> None:
    """Raise unless the uncompressed content has the canonical MD5."""
    actual = hashlib.md5(content).hexdigest()
    if actual != spec.md5:
        raise DataError(
            f"{dataset.title} file {path} failed its checksum: the MD5 of its uncompressed content is {actual}, "
            f"expected {spec.md5}. It is corrupted, truncated or not the canonical {dataset.title} {spec.stem}. "
            + (fix if fix is not None else replace_hint(dataset))
        )


def load_verified(
    spec: IdxFile, data_dir: Path, cache_dir: Path | None, dataset: DatasetSpec = DATASET_SPECS["mnist"]
) -> bytes:
    """Verified uncompressed content of one file of `data_dir`, from the cache when that file was cached before.

    The file is always found and read in `data_dir` (a folder that does not
    hold it is an error, whatever the cache holds). A raw file is verified
    directly. A gzip file's content is cached under the hash of the gzip file
    itself and the content's MD5 (`cache_path`), so the cache only ever stands
    in for the very file it was made from, and only after its content verified;
    a cached load costs a hash of the gzip file instead of its decompression.
    """
    path = find_file(data_dir, spec.stem, dataset)
    if path.suffix != ".gz" or cache_dir is None:
        content = read_content(path, spec, dataset)
        verify(content, spec, path, dataset)
        return content
    try:
        source = read_bounded(path, idx_size(spec) + GZIP_SLACK)
    except (UnreadableFile, OSError):
        source = None  # read_content says what is wrong with it
    cached = cache_path(cache_dir, dataset, spec, source) if source is not None else None
    if cached is not None:
        try:
            content = read_bounded(cached, idx_size(spec))
            if hashlib.md5(content).hexdigest() == spec.md5:
                return content
        except (UnreadableFile, OSError):
            pass
        try:
            cached.unlink(missing_ok=True)  # missing or damaged: rebuilt from the source below
        except OSError as exc:  # a read-only cache, or a file where its folder should be
            bypass_cache(cache_dir, f"its entry {cached} is damaged or unreadable and cannot be removed ({exc.strerror or exc})")
            cached = None
    # the file already read (not read twice), or read_content's one-line error saying what is wrong with it
    content = content_of(source, path, spec, dataset) if source is not None else read_content(path, spec, dataset)
    verify(content, spec, path, dataset)
    if cached is not None:
        write_cache(cached, content, cache_dir)
    return content


def cache_path(cache_dir: Path, dataset: DatasetSpec, spec: IdxFile, source: bytes) -> Path:
    """Where the content of the gzip file `source` is cached: keyed by that file's SHA-256 and by the content's MD5."""
    return Path(cache_dir) / dataset.name / f"{hashlib.sha256(source).hexdigest()[:32]}-{spec.md5}.idx"


def write_cache(path: Path, content: bytes, cache_dir: Path) -> None:
    """Atomically write a cache entry; a cache that cannot be written is bypassed with a warning, never an error."""
    try:
        write_atomic(path, lambda handle: handle.write(content))
    except OSError as exc:
        bypass_cache(cache_dir, f"{path} cannot be written ({exc.strerror or exc})")


BYPASSED: set[str] = set()  # the cache folders already warned about (by this load_dataset call): one warning, not four


def bypass_cache(cache_dir: Path | None, why: str) -> None:
    """Warn, once per process and cache folder, that the cache is not used; the data are read and verified without it."""
    key = str(cache_dir)
    if key in BYPASSED:
        return
    BYPASSED.add(key)
    if cache_dir is None:
        text = f"no data cache: {why}; the data are read and verified without one. Fix: set {CACHE_DIR_ENV} to a folder to cache them."
    else:
        text = (
            f"data cache {cache_dir} bypassed: {why}; the data are read and verified without it. "
            f"Fix: remove the file named (or make the folder writable), or set {CACHE_DIR_ENV} to a writable folder."
        )
    warnings.warn(text, CacheBypassed, stacklevel=3)


def usable_cache(cache_dir: Path) -> Path | None:
    """`cache_dir`, or None (with a warning) when it is not a folder: a regular file or a device in its place."""
    if cache_dir.exists() and not cache_dir.is_dir():
        bypass_cache(cache_dir, "it is not a folder")
        return None
    return cache_dir


def load_dataset(
    data_dir: str | Path | None = None, cache_dir: str | Path | None | bool = None, dataset: str | DatasetSpec = "mnist"
) -> Dataset:
    """Load and verify all four files of `dataset` (a DATASET_SPECS key, or a spec of one's own).

    `cache_dir=None` uses `default_cache_dir()`, `False` disables the cache.
    """
    spec = dataset if isinstance(dataset, DatasetSpec) else DATASET_SPECS[dataset]
    folder = resolve_data_dir(data_dir, spec)
    BYPASSED.clear()
    if cache_dir is None:
        cache = default_cache_dir()
        if cache is None:
            bypass_cache(None, NO_HOME)
    elif cache_dir is False:
        cache = None
    else:
        cache = Path(cache_dir)
    cache = usable_cache(cache) if cache is not None else None
    tensors = {key: decode_idx(load_verified(file, folder, cache, spec), file) for key, file in spec.files.items()}
    return Dataset(
        train_images=tensors["train_images"],
        train_labels=tensors["train_labels"].long(),
        test_images=tensors["test_images"],
        test_labels=tensors["test_labels"].long(),
        source=str(folder),
        spec=spec,
    )


