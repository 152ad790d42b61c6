"""Drawing a run's training subset and validation split (or its cross-validation folds), once per seed, from the training set only.

Subsets are stratified by class, as the spec's protocol asks (`uniform` is a
diagnostic); the indices are sorted, and their hash is recorded with every
run (the seed reproduces the indices). What a subset name means is
settings/subsets.py.
"""

from __future__ import annotations

import hashlib

import torch

from ..errors import ConfigError
from ..seeding import derive_seed
from ..settings.subsets import NUM_CLASSES, SubsetSpec, class_counts


def draw_subset(
    labels: torch.Tensor,
    spec: SubsetSpec,
    seed: int,
    draw: str = "stratified",
    stream: str = "subset",
    exclude: torch.Tensor | None = None,
    imbalance: float = 1.0,
) -> torch.Tensor:
    """Sorted int64 indices into the training set; deterministic for a seed.

    `stratified` takes `per_class` images of every class (the protocol), or
    with `imbalance` ρ > 1 the long tail of settings/subsets.py class_counts
    (each class's images are the first of the same seeded order, so the rare
    classes' images are a subset of what the balanced draw takes);
    `uniform` takes the same total uniformly at random, ignoring classes (a
    diagnostic). `exclude` removes images from the pool (e.g. a validation
    split); `stream` names the random stream (e.g. one per epoch for a
    diagnostic that redraws the subset every epoch).
    """
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
    for cls, count in enumerate(class_counts(spec.per_class, imbalance)):
        members = torch.nonzero((labels == cls) & pool).flatten()
        if len(members) < spec.per_class:
            raise ConfigError(
                f"data: {spec.name!r} asks for {spec.per_class} images of class {cls}, "
                f"but the training set has only {len(members)} available."
            )
        order = torch.randperm(len(members), generator=generator)
        chosen.append(members[order[:count]])
    return torch.sort(torch.cat(chosen)).values


def draw_validation(count: int, size: int, seed: int, exclude: torch.Tensor | None) -> torch.Tensor:
    """`size` training-set indices outside `exclude`, uniformly at random, sorted."""
    pool = torch.ones(count, dtype=torch.bool)
    if exclude is not None:
        pool[exclude] = False
    members = torch.nonzero(pool).flatten()
    if size > len(members):
        raise ConfigError(f"validation_size: {size} is more than the {len(members)} training images left outside the subset.")
    generator = torch.Generator().manual_seed(derive_seed(seed, "validation"))
    order = torch.randperm(len(members), generator=generator)
    return torch.sort(members[order[:size]]).values


def split_folds(labels: torch.Tensor, indices: torch.Tensor, folds: int, seed: int) -> list[torch.Tensor]:
    """The subset `indices` split into `folds` class-stratified folds, each sorted; deterministic for a seed.

    Each class's images, in a seeded random order, are dealt to the folds in
    turn, one deal continuing from class to class: so every fold holds ~1/k of
    every class (per-class counts differ by at most 1) and the fold sizes
    differ by at most 1 (fold f holds n // k + (f < n % k) images, see
    settings/run.py fold_size). The folds are disjoint and their union is the subset.
    """
    generator = torch.Generator().manual_seed(derive_seed(seed, "folds"))
    subset_labels = labels[indices]
    dealt = []
    for cls in range(NUM_CLASSES):
        members = indices[subset_labels == cls]
        dealt.append(members[torch.randperm(len(members), generator=generator)])
    order = torch.cat(dealt)
    return [torch.sort(order[fold::folds]).values for fold in range(folds)]


def noisy_labels(labels: torch.Tensor, kind: str, rate: float, seed: int) -> torch.Tensor:
    """A subset's labels (in its sorted index order) with noise, drawn from the seed alone; `labels` is left as it is.

    Each label is replaced with probability `rate`: "symmetric", by one of
    the other NUM_CLASSES − 1 classes uniformly; "pair", class c by c + 1 (mod
    NUM_CLASSES), the Co-teaching benchmark's pair flip. A uniform draw per
    sample decides the flip (drawn before the new classes, whatever the
    rate), so with one seed a lower rate flips a subset of the samples a
    higher rate flips.
    """
    if kind == "none":
        return labels
    generator = torch.Generator().manual_seed(derive_seed(seed, "label-noise"))
    flip = torch.rand(len(labels), generator=generator, dtype=torch.float64) < rate
    shift = torch.randint(1, NUM_CLASSES, (len(labels),), generator=generator) if kind == "symmetric" else torch.ones_like(labels)
    return torch.where(flip, (labels + shift) % NUM_CLASSES, labels)


def labels_hash(labels: torch.Tensor) -> str:
    """A short, stable fingerprint of the labels a run trains on (SHA-256 of the int64 labels)."""
    return hashlib.sha256(labels.to(torch.int64).cpu().numpy().tobytes()).hexdigest()[:16]


def indices_hash(indices: torch.Tensor) -> str:
    """A short, stable fingerprint of a subset (SHA-256 of the int64 indices)."""
    data = indices.to(torch.int64).cpu().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]
