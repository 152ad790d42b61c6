"""The training procedure: one run of one method on one subset, read top to bottom.

Speed comes from keeping the whole (sub)set as one standardised float tensor on
the device and indexing mini-batches out of it: no per-sample Python
transforms, no DataLoader workers. The test set is evaluated in one large batch
at the epochs a run's schedule names (every epoch by default; recipes set a
sparser one, see settings/evaluation.py); evaluation time is kept apart from training time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..data.datasets import Dataset
from ..data.subsets import draw_subset, draw_validation, indices_hash, labels_hash, noisy_labels, split_folds
from ..models import build_model
from ..seeding import derive_seed
from ..settings.run import RunConfig
from ..settings.subsets import parse_subset
from .checkpoint import load_checkpoint, save_checkpoint
from .devices import synchronize
from .evaluate import class_accuracy, evaluate
from .optim import Stepper
from .provenance import library_versions


@dataclass
class TrainData:
    """Device tensors for one run, and the training-set indices they were drawn from."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    indices: torch.Tensor  # the images it trains on (the subset, less the validation fold), into the training set, sorted
    x_val: torch.Tensor | None = None  # validation split: training images outside the subset, or a fold of it
    y_val: torch.Tensor | None = None
    val_indices: torch.Tensor | None = None


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    test_loss: float | None  # None: not evaluated this epoch (runs evaluated at the end only)
    test_accuracy: float | None
    train_seconds: float
    eval_seconds: float
    kept: dict[str, dict[str, float]] | None = None  # DBA only: layer -> mean/min/max kept subset size
    val_loss: float | None = None  # with a validation split only
    val_accuracy: float | None = None


LABEL_RECORDS = ("train_labels_hash", "label_noise_realised", "class_counts", "final_class_accuracy")
OPTIONAL_RECORDS = (*LABEL_RECORDS, "pack_size")  # left out of a result file when None: other files stay as they were


@dataclass
class RunResult:
    """Everything a result file needs about one finished run."""

    config: dict
    device: str
    subset_size: int
    subset_hash: str
    subset_indices: list[int]
    history: list[EpochRecord] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    validation_hash: str | None = None
    threads: int | None = None  # torch threads it trained with: results are bit-identical only at the same count
    # With label noise or imbalance only: the labels as trained on, and what the draw realised
    train_labels_hash: str | None = None
    label_noise_realised: float | None = None  # fraction of training labels that differ from the true ones
    class_counts: list[int] | None = None  # training images per true class
    final_class_accuracy: list[float] | None = None  # imbalance only: the last epoch's test accuracy per class, %
    diverged_at_epoch: int | None = None  # the first epoch whose training loss was NaN or infinite
    pack_size: int | None = None  # trained in a pack of that many runs (training/packed.py); None: alone

    @property
    def final_test_accuracy(self) -> float:
        return self.history[-1].test_accuracy

    @property
    def train_seconds(self) -> float:
        return sum(record.train_seconds for record in self.history)

    def to_dict(self) -> dict:
        values = asdict(self)
        for name in OPTIONAL_RECORDS:
            if values[name] is None:
                del values[name]
        values["final_test_accuracy"] = self.final_test_accuracy
        values["final_val_accuracy"] = self.history[-1].val_accuracy
        values["train_seconds"] = self.train_seconds
        values["eval_seconds"] = sum(record.eval_seconds for record in self.history)
        return values


def draw_indices(dataset: Dataset, config: RunConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The run's training subset and validation split (None without one), as indices into the training set (`draw_split`)."""
    indices, val_indices, _ = draw_split(dataset, config)
    return indices, val_indices


def draw_split(dataset: Dataset, config: RunConfig) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The run's training subset, its validation split (None without one), and the labels it sees (`run_labels`).

    The subset is drawn first, from the whole training set, so that adding a
    validation split never changes it; the validation images come from the
    rest. For `full`, the validation images are held out of the training set.
    With `folds`, the subset itself is split: fold `fold` validates, the run
    trains on the others (the subset indices it records are those); the folds
    are stratified by the labels the user has (noisy ones, with label noise).
    All three depend only on the config (seed included), so a result file need
    not store them: hashes are enough to check a stored run against its seed.
    """
    spec = parse_subset(config.data)
    val_indices = None
    if spec.per_class is None:
        if config.validation_size:
            val_indices = draw_validation(len(dataset.train_labels), config.validation_size, config.seed, None)
        indices = draw_subset(dataset.train_labels, spec, config.seed, exclude=val_indices)
        return indices, val_indices, run_labels(dataset, config, indices)
    indices = draw_subset(dataset.train_labels, spec, config.seed, draw=config.subset_draw, imbalance=config.imbalance)
    labels = run_labels(dataset, config, indices)  # over the whole subset, before a fold is held out
    if config.folds:  # k-fold inside the subset: one fold validates, the others train; nothing from outside
        parts = split_folds(labels, indices, config.folds, config.seed)
        val_indices = parts[config.fold]
        indices = torch.sort(torch.cat([part for k, part in enumerate(parts) if k != config.fold])).values
    elif config.validation_size:
        val_indices = draw_validation(len(dataset.train_labels), config.validation_size, config.seed, indices)
    return indices, val_indices, labels


def run_labels(dataset: Dataset, config: RunConfig, subset: torch.Tensor) -> torch.Tensor:
    """The training set's labels as this run sees them: the subset's with the config's noise, every other image's clean.

    The noise is drawn over the whole subset (before any fold is held out), from
    the seed alone: every method and every fold of a seed sees the same noisy
    labels, and a held-out split outside the subset keeps its clean ones. The
    test set is never touched.
    """
    if config.label_noise == "none":
        return dataset.train_labels
    labels = dataset.train_labels.clone()
    labels[subset] = noisy_labels(dataset.train_labels[subset], config.label_noise, config.noise_rate, config.seed)
    return labels


def check_dataset(dataset: Dataset, config: RunConfig) -> None:
    """A run trains on the data set its config names, never on another that happens to be loaded."""
    if dataset.name != config.dataset:
        raise ValueError(f"the run is configured for {config.dataset} but was given {dataset.name}")


def deterministic_convolutions(device: torch.device) -> None:
    """On CUDA, make cuDNN pick deterministic convolution algorithms (the CNN), so a seed gives one result."""
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def subset_hashes(dataset: Dataset, config: RunConfig) -> tuple[str, str | None]:
    """(subset hash, validation hash or None) as a result file records them."""
    indices, val_indices = draw_indices(dataset, config)
    return indices_hash(indices), None if val_indices is None else indices_hash(val_indices)


def prepare_data(
    dataset: Dataset, config: RunConfig, device: torch.device, test: tuple[torch.Tensor, torch.Tensor] | None = None
) -> TrainData:
    """Draw the run's subset, validation split and labels (`draw_split`) and move standardised features to the device once.

    `test`: the test set's (features, labels) already on the device (a pack shares one copy).
    """
    indices, val_indices, labels = draw_split(dataset, config)
    if test is None:
        test = dataset.features(dataset.test_images).to(device), dataset.test_labels.to(device)
    data = TrainData(
        x_train=dataset.features(dataset.train_images[indices]).to(device),
        y_train=labels[indices].to(device),
        x_test=test[0],
        y_test=test[1],
        indices=indices,
        val_indices=val_indices,
    )
    if val_indices is not None:
        data.x_val = dataset.features(dataset.train_images[val_indices]).to(device)
        data.y_val = labels[val_indices].to(device)
    return data


def new_result(config: RunConfig, dataset: Dataset, data: TrainData, device: torch.device) -> RunResult:
    """A run's result before its first epoch: its config, subset, validation split and provenance."""
    return RunResult(
        config=config.to_dict(),
        device=str(device),
        subset_size=len(data.indices),
        subset_hash=indices_hash(data.indices),
        subset_indices=data.indices.tolist(),
        versions=library_versions(),
        validation_hash=None if data.val_indices is None else indices_hash(data.val_indices),
        threads=torch.get_num_threads(),
    )


def label_records(result: RunResult, dataset: Dataset, config: RunConfig, data: TrainData) -> None:
    """With label noise or imbalance only: the labels as trained on, and what the draw realised."""
    if config.label_noise != "none" or config.imbalance != 1.0:
        true = dataset.train_labels[data.indices]
        result.train_labels_hash = labels_hash(data.y_train)
        result.label_noise_realised = float((data.y_train.cpu() != true).double().mean())
        result.class_counts = torch.bincount(true, minlength=10).tolist()


def redraw_subset(data: TrainData, dataset: Dataset, config: RunConfig, epoch: int) -> None:
    """Diagnostic `resample: every_epoch`: a fresh subset for this epoch, never touching the validation split."""
    indices = draw_subset(
        dataset.train_labels, parse_subset(config.data), config.seed, draw=config.subset_draw,
        stream=f"subset-epoch-{epoch}", exclude=data.val_indices,
    )
    data.x_train = dataset.features(dataset.train_images[indices]).to(data.x_train.device)
    data.y_train = dataset.train_labels[indices].to(data.x_train.device)


def train_epoch(
    step: Stepper, data: TrainData, batch_size: int, generator: torch.Generator, epoch: int = 1
) -> tuple[float, dict[str, dict[str, float]] | None]:
    """One pass over the training subset: plain SGD's seeded random order, or the batches a peer of DBA draws.

    Returns the mean training loss (over the samples the steps' losses
    covered: each sample once for plain batches) and, for the DBA engine,
    each layer's kept subset size over the epoch's steps (mean, min, max).
    """
    total = torch.zeros((), device=data.x_train.device)
    count = 0
    kept_sizes: dict[str, list[int]] = {}
    for batch in step.batches(data.x_train, data.y_train, batch_size, generator, epoch):
        loss, kept, covered = step(data.x_train[batch], data.y_train[batch], batch)
        total += loss * covered
        count += covered
        for layer, size in (kept or {}).items():
            kept_sizes.setdefault(layer, []).append(size)
    return total.item() / count, kept_summary(kept_sizes)


def kept_summary(sizes: dict[str, list[int]]) -> dict[str, dict[str, float]] | None:
    """Each layer's kept subset size over an epoch's steps (mean, min, max); None for a method that keeps every sample."""
    summary = {layer: {"mean": sum(v) / len(v), "min": min(v), "max": max(v)} for layer, v in sizes.items()}
    return summary or None


def train(
    config: RunConfig,
    dataset: Dataset,
    device: torch.device,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    evaluate_at: Collection[int] | None = None,
    checkpoint: Path | None = None,
    checkpoint_interval: float = 1.0,
    model_out: dict | None = None,
) -> RunResult:
    """Train one model as the config says; evaluate on the full test set at the epochs `evaluate_at` names.

    `evaluate_at` None evaluates every epoch; a recipe's runs pass their
    schedule (`PlannedRun.evaluated_epochs`, see settings/evaluation.py), and tuning and
    ablation grids, which need only final accuracies, pass the last epoch
    only. Test and validation split are evaluated together. The last epoch,
    and the epoch where a run diverges, are always evaluated, whatever
    `evaluate_at` says. Epochs not evaluated record None. Evaluation never
    changes training (no randomness, no state), so every schedule trains
    bit-identical models.

    `model_out`, a dict, receives the trained model under "model" (tests
    compare weights across schedules; a result file never holds weights).

    A run whose training loss becomes NaN or infinite stops there and is
    recorded as diverged (with the epoch); it is a result, not an error.

    With a `checkpoint` path, the run resumes from that checkpoint if it
    belongs to this config, and saves one after an epoch whenever at least
    `checkpoint_interval` seconds passed since the last (0: every epoch), so a
    killed run loses at most about max(one epoch, that interval). Short runs
    never pay for a checkpoint.
    """
    scheduled = None if evaluate_at is None else frozenset(evaluate_at)
    check_dataset(dataset, config)
    deterministic_convolutions(device)
    data = prepare_data(dataset, config, device)
    model = build_model(config.architecture, config.hidden, config.channels, config.activation, config.seed).to(device)
    steps_per_epoch = math.ceil(len(data.indices) / config.batch_size)
    step = Stepper(model, config, total_steps=config.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(derive_seed(config.seed, "batches"))
    result = new_result(config, dataset, data, device)
    label_records(result, dataset, config, data)
    first_epoch = 1
    state = load_checkpoint(checkpoint, result.config) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        step.load_state_dict(state["stepper"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        result.history = [EpochRecord(**record) for record in state["history"]]
        first_epoch = state["epoch"] + 1
        for record in result.history:
            if on_epoch is not None:
                on_epoch(record)
    last_saved = time.monotonic()
    for epoch in range(first_epoch, config.epochs + 1):
        if config.resample == "every_epoch" and epoch > 1:
            redraw_subset(data, dataset, config, epoch)
        started = time.perf_counter()
        model.train()
        train_loss, kept = train_epoch(step, data, config.batch_size, generator, epoch)
        synchronize(device)
        trained = time.perf_counter()
        model.eval()
        last = epoch == config.epochs or not math.isfinite(train_loss)
        test_loss = test_accuracy = val_loss = val_accuracy = None
        eval_seconds = 0.0  # an epoch not evaluated costs no evaluation time (and its file stores none)
        if last or scheduled is None or epoch in scheduled:
            test_loss, test_accuracy = evaluate(model, data.x_test, data.y_test)
            if data.x_val is not None:
                val_loss, val_accuracy = evaluate(model, data.x_val, data.y_val)
            eval_seconds = time.perf_counter() - trained
        record = EpochRecord(
            epoch, train_loss, test_loss, test_accuracy, trained - started, eval_seconds, kept, val_loss, val_accuracy,
        )
        result.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if not math.isfinite(train_loss):
            result.diverged_at_epoch = epoch
            break
        if checkpoint is not None and not last and time.monotonic() - last_saved >= checkpoint_interval:
            save_checkpoint(checkpoint, result.config, epoch, model, step, generator, result.history)
            last_saved = time.monotonic()
    if config.imbalance != 1.0 and result.diverged_at_epoch is None:
        result.final_class_accuracy = class_accuracy(model, data.x_test, data.y_test)
    if model_out is not None:
        model_out["model"] = model
    return result
