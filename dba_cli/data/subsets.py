"""Training subsets: full MNIST, N images per class, or a stratified fraction.

Subsets are drawn once per seed, from the training set only, and stratified by
class, as the spec's protocol asks. A fraction is stratified to *equal* counts
per class (1% of 60,000 = 600 images = 60 per class), following the spec's
"60/class for 1%". The drawn indices are sorted and recorded with every run.

Parsing a subset name needs no torch (configs and `--help` parse them); the
draws import it where they run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..seeding import derive_seed

if TYPE_CHECKING:
    import torch

NUM_CLASSES = 10


@dataclass(frozen=True)
class SubsetSpec:
    """What to train on. `per_class` is None for the full training set."""

    name: str
    per_class: int | None

    def size(self) -> int | None:
        return None if self.per_class is None else self.per_class * NUM_CLASSES


SUBSET_HELP = "'full', 'N-per-class' (e.g. 10-per-class) or a stratified fraction like '1pct' / '1%' / '0.01'"


def parse_subset(text: str, train_size: int = 60000) -> SubsetSpec:
    """Parse a subset name; raise ConfigError naming the accepted forms."""
    value = text.strip().lower()
    if value == "full":
        return SubsetSpec("full", None)
    if match := re.fullmatch(r"(\d+)-per-class", value):
        per_class = int(match.group(1))
    else:
        fraction = parse_fraction(value)
        if fraction is None or not 0 < fraction <= 1:
            raise ConfigError(f"data: {text!r} is not a training subset. Use {SUBSET_HELP}.")
        per_class = round(fraction * train_size / NUM_CLASSES)
    if per_class < 1:
        raise ConfigError(f"data: {text!r} selects no images per class. Use {SUBSET_HELP}.")
    return SubsetSpec(value, per_class)


def parse_fraction(value: str) -> float | None:
    """'1pct', '1%' -> 0.01; '0.01' -> 0.01; anything else -> None."""
    if match := re.fullmatch(r"(\d+(?:\.\d+)?)(pct|%)", value):
        return float(match.group(1)) / 100
    try:
        return float(value)
    except ValueError:
        return None


def draw_subset(
    labels: torch.Tensor,
    spec: SubsetSpec,
    seed: int,
    draw: str = "stratified",
    stream: str = "subset",
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sorted int64 indices into the training set; deterministic for a seed.

    `stratified` takes `per_class` images of every class (the protocol);
    `uniform` takes the same total uniformly at random, ignoring classes (a
    diagnostic). `exclude` removes images from the pool (e.g. a validation
    split); `stream` names the random stream (e.g. one per epoch for a
    diagnostic that redraws the subset every epoch).
    """
    import torch

    pool = torch.ones(len(labels), dtype=torch.bool)
    if exclude is not None:
        pool[exclude] = False
    if spec.per_class is None:
        return torch.nonzero(pool).flatten()
    generator = torch.Generator().manual_seed(derive_seed(seed, stream))
    if draw == "uniform":
        members = torch.nonzero(pool).flatten()
        order = torch.randperm(len(members), generator=generator)
        return torch.sort(members[order[: spec.per_class * NUM_CLASSES]]).values
    chosen = []
    for cls in range(NUM_CLASSES):
        members = torch.nonzero((labels == cls) & pool).flatten()
        if len(members) < spec.per_class:
            raise ConfigError(
                f"data: {spec.name!r} asks for {spec.per_class} images of class {cls}, "
                f"but the training set has only {len(members)} available."
            )
        order = torch.randperm(len(members), generator=generator)
        chosen.append(members[order[: spec.per_class]])
    return torch.sort(torch.cat(chosen)).values


def draw_validation(count: int, size: int, seed: int, exclude: torch.Tensor | None) -> torch.Tensor:
    """`size` training-set indices outside `exclude`, uniformly at random, sorted."""
    import torch

    pool = torch.ones(count, dtype=torch.bool)
    if exclude is not None:
        pool[exclude] = False
    members = torch.nonzero(pool).flatten()
    if size > len(members):
        raise ConfigError(f"validation_size: {size} is more than the {len(members)} training images left outside the subset.")
    generator = torch.Generator().manual_seed(derive_seed(seed, "validation"))
    order = torch.randperm(len(members), generator=generator)
    return torch.sort(members[order[:size]]).values


def indices_hash(indices: torch.Tensor) -> str:
    """A short, stable fingerprint of a subset (SHA-256 of the int64 indices)."""
    import torch

    data = indices.to(torch.int64).cpu().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]
