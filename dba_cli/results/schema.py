"""The one schema of a result file as stored (schema 2): every field's type and range, checked on read.

A result file is an input like any other: a hand edit, a damaged copy or
another program's file must never crash a report nor be tabulated as if it
were a real run. `check_document` validates the stored JSON (history still as
columns) against `ResultFile`, its `config` against the run settings
themselves (`RunConfig`, in the canonical form dba writes), and its place: a
file at `.../RECIPE/METHOD/seed-K.json` must say it is that recipe's METHOD,
seed K. Anything else is one `ResultProblem` naming the field, which readers
report as "not a valid result file (FIELD: what is wrong)" and treat like a
damaged file: skipped by tables and figures, rerun by the grid commands.

Ranges are what dba can write: seeds 0..2^31-1, accuracies in [0, 100],
seconds >= 0, threads 1..1024, epochs within the run's own. Losses may be
NaN or infinite (a diverged run stops at the first such epoch); nothing else may.
Nothing here imports torch.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import PurePath
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError
from ..settings.methods import declared
from ..settings.roles import RESULT_ROLES
from ..settings.names import MAX_PATH_PART_LENGTH, name_problem
from ..settings.run import MAX_EPOCHS, MAX_SEED, RunConfig
from ..settings.validation import config_error, excerpt, make_config
from .format import SCHEMA_VERSION

MAX_THREADS = 1024  # the bound of --threads
MAX_PACK = 1024  # the bound of --pack (settings/packing.py)
MAX_TEXT = 512  # provenance strings (platform, device, versions): a line each
MAX_LAYERS = 64  # DBA's kept sizes are recorded per selected layer


class ResultProblem(ValueError):
    """A result file's content does not fit the schema: the message names the field and what is wrong."""


class Stored(BaseModel):
    """A stored mapping: exactly its fields, strictly typed (a string is never a number, 1 never true)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def recipe_name(text: str) -> str:
    """A recipe's name, as a recipe may spell it: a folder name under the results folder."""
    problem = name_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text


def method_parts(text: str) -> str:
    """A method name: '/'-separated parts (tuning and protocol add labels), each a folder name."""
    for part in text.split("/"):
        problem = name_problem(part, MAX_PATH_PART_LENGTH)
        if problem is not None:
            raise ValueError(f"part {excerpt(part)} {problem}")
    return text


def timestamp(text: str) -> str:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be an ISO 8601 date and time, e.g. 2026-11-30T05:56:56+00:00") from None
    return text


Name = Annotated[str, AfterValidator(recipe_name)]
MethodName = Annotated[str, Field(max_length=4 * MAX_PATH_PART_LENGTH), AfterValidator(method_parts)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{8,64}$")]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Loss = float  # NaN or infinite where a run diverged
Epoch = Annotated[int, Field(ge=1, le=MAX_EPOCHS)]
Size = Annotated[int, Field(ge=0)]


def column(item):
    """A per-epoch column: one `item` per epoch (or evaluated epoch), at least one, at most a run's epochs."""
    return Annotated[list[item], Field(min_length=1, max_length=MAX_EPOCHS)]


class Evaluated(Stored):
    """The epochs a run evaluated, and each evaluation's values (a column per quantity, a row per epoch)."""

    epoch: column(Epoch)
    test_loss: list[Loss | None] | None = None
    test_accuracy: list[Percent | None] | None = None
    val_loss: list[Loss | None] | None = None
    val_accuracy: list[Percent | None] | None = None
    eval_seconds: list[Seconds | None] | None = None

    @model_validator(mode="after")
    def one_row_per_epoch(self) -> Evaluated:
        if list(self.epoch) != sorted(set(self.epoch)):
            raise ValueError("epoch: evaluated epochs must increase")
        for name in ("test_loss", "test_accuracy", "val_loss", "val_accuracy", "eval_seconds"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.epoch):
                raise ValueError(f"{name}: {len(values)} values for {len(self.epoch)} evaluated epochs")
        return self


class Kept(Stored):
    """DBA's kept subset sizes of one layer, per epoch: their mean, min and max over the epoch's steps."""

    mean: list[Annotated[float, Field(ge=0, allow_inf_nan=False)] | None]
    min: list[Size | None]
    max: list[Size | None]

    @model_validator(mode="after")
    def ordered(self) -> Kept:
        if not len(self.mean) == len(self.min) == len(self.max):
            raise ValueError("mean: the mean, min and max columns differ in length")
        for low, mean, high in zip(self.min, self.mean, self.max):
            if (low is None) != (mean is None) or (mean is None) != (high is None):
                raise ValueError("mean: an epoch has some of mean, min, max but not all")
            if mean is not None and not low - 1e-6 <= mean <= high + 1e-6:
                raise ValueError("mean: an epoch's mean lies outside its min and max")
        return self


class History(Stored):
    """Per-epoch columns of every epoch, the evaluated epochs apart, DBA's kept sizes per layer."""

    train_loss: column(Loss)
    train_seconds: column(Seconds) | None = None  # absent only from a summary-only history
    summary: Literal[True] | None = None  # a `dba tune` candidate's: no per-epoch seconds or kept sizes (format.summary_only)
    evaluated: Evaluated | None = None
    kept: Annotated[dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.]{1,64}$")], Kept], Field(max_length=MAX_LAYERS)] | None = None

    @model_validator(mode="after")
    def one_length(self) -> History:
        epochs = len(self.train_loss)
        if self.summary and (self.train_seconds is not None or self.kept is not None):
            raise ValueError("summary: a summary-only history has no per-epoch train_seconds and no kept sizes")
        if not self.summary and (self.train_seconds is None or len(self.train_seconds) != epochs):
            raise ValueError("train_seconds: per-epoch columns differ in length")
        if self.evaluated is not None and self.evaluated.epoch[-1] > epochs:
            raise ValueError(f"evaluated: an evaluated epoch is after the last of {epochs} epochs")
        for layer, kept in (self.kept or {}).items():
            if len(kept.mean) != epochs:
                raise ValueError(f"kept: layer {layer} has {len(kept.mean)} epochs of sizes, not {epochs}")
        return self


class Code(Stored):
    hash: Hex
    commit: Annotated[str, Field(pattern=r"^[0-9a-f]{7,64}$")] | None = None
    dirty: bool | None = None


class ResultFile(Stored):
    """A finished run's file as dba writes it (run/document.py, format.encode_result)."""

    schema_version: Literal[SCHEMA_VERSION]
    recipe: Name
    method_name: MethodName
    role: Literal[RESULT_ROLES]
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)]
    status: Literal["finished"]
    config: dict  # validated as a RunConfig by check_document
    device: Text
    subset_size: Annotated[int, Field(ge=1)]
    subset_hash: Hex
    validation_hash: Hex | None = None
    subset_indices: list[Annotated[int, Field(ge=0)]] | None = None  # `dba run --output` keeps them
    history: History
    versions: Annotated[dict[Annotated[str, Field(max_length=64)], Text], Field(max_length=64)]
    threads: Annotated[int, Field(ge=1, le=MAX_THREADS)]
    pack_size: Annotated[int, Field(ge=2, le=MAX_PACK)] | None = None  # trained in a pack of that many (training/packed.py)
    final_test_accuracy: Percent
    final_val_accuracy: Percent | None = None
    train_seconds: Seconds
    eval_seconds: Seconds
    diverged_at_epoch: Epoch | None = None
    device_name: Text
    code: Code
    protocol: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")] | None = None  # the declaration's digest; None: made before one
    # label noise or imbalance only (training/train.py): the labels as trained on and what their draw realised
    train_labels_hash: Hex | None = None
    label_noise_realised: Annotated[float, Field(ge=0, le=1)] | None = None
    class_counts: Annotated[list[Annotated[int, Field(ge=0, le=60000)]], Field(min_length=10, max_length=10)] | None = None
    final_class_accuracy: Annotated[list[Percent], Field(min_length=10, max_length=10)] | None = None
    finished_at: Annotated[str, Field(max_length=64), AfterValidator(timestamp)]
    digest: Annotated[str, Field(max_length=64)]

    @model_validator(mode="after")
    def consistent(self) -> ResultFile:
        epochs = len(self.history.train_loss)
        if self.diverged_at_epoch is not None and self.diverged_at_epoch > epochs:
            raise ValueError(f"diverged_at_epoch: {self.diverged_at_epoch} is after the last of {epochs} trained epochs")
        losses = self.history.train_loss
        if not all(math.isfinite(loss) for loss in losses[:-1]):
            raise ValueError("history.train_loss: a loss is NaN or infinite before the last epoch (a run stops where it diverges)")
        if not math.isfinite(losses[-1]) and self.diverged_at_epoch != epochs:
            raise ValueError(f"diverged_at_epoch: the loss of epoch {epochs} is not finite, so it must say {epochs}")
        if self.class_counts is not None and sum(self.class_counts) != self.subset_size:
            raise ValueError(f"class_counts: {sum(self.class_counts)} images for a subset of {self.subset_size}")
        if self.subset_indices is not None and len(self.subset_indices) != self.subset_size:
            raise ValueError(f"subset_indices: {len(self.subset_indices)} indices for a subset of {self.subset_size}")
        return self


def check_document(document: dict, path: str | PurePath | None = None, inside: str | PurePath | None = None) -> None:
    """Raise ResultProblem if the stored `document` (history as columns) is not a result file dba could have written.

    `path` and `inside` (its results folder) give the file's place: the
    parts of `path` below `inside` must end with the document's recipe, its
    method name's parts and `seed-SEED.json`, as far as they reach.
    """
    try:
        stored = ResultFile.model_validate(document)
    except ValidationError as exc:
        raise ResultProblem(problem_text(config_error(exc, ResultFile))) from None
    try:
        config = make_config(RunConfig, stored.config)
    except ConfigError as exc:
        raise ResultProblem(problem_text(exc, "config.")) from None
    canonical = config.to_dict()
    if canonical != stored.config:
        differ = sorted(key for key in {*canonical, *stored.config} if canonical.get(key) != stored.config.get(key))
        if differ[0] not in stored.config:
            raise ResultProblem(f"config.{differ[0]}: missing; dba writes it in every config of this kind")
        raise ResultProblem(f"config.{differ[0]}: not in the form dba writes (got {excerpt(stored.config.get(differ[0]))})")
    if config.seed != stored.seed:
        raise ResultProblem(f"seed: {stored.seed}, but its config.seed is {config.seed}")
    epochs = len(stored.history.train_loss)
    if epochs > config.epochs:
        raise ResultProblem(f"history: {epochs} epochs trained, more than config.epochs {config.epochs}")
    if epochs < config.epochs and stored.diverged_at_epoch != epochs:
        raise ResultProblem(f"history: {epochs} of config.epochs {config.epochs} trained, and the run did not diverge")
    if stored.history.summary and (stored.role != "tuning" or stored.history.evaluated is None
                                   or stored.history.evaluated.epoch != [epochs]):
        raise ResultProblem("history.summary: only a tuning candidate evaluated at its last epoch alone has a summary-only history")
    if not stored.history.summary and declared(config.method).kept_sizes != bool(stored.history.kept):
        raise ResultProblem("history.kept: DBA's kept sizes must be there for a run of the DBA engine (dba, dba-random), and only for one")
    if path is not None:
        check_place(stored, PurePath(path), PurePath(inside) if inside is not None else None)


def check_place(stored: ResultFile, path: PurePath, inside: PurePath | None) -> None:
    """The folders a result file lies in name its recipe, method and seed; a file moved or relabelled is refused."""
    if not path.name.startswith("seed-"):
        return  # `dba run --output NAME`: the user named the file
    try:
        parts = path.relative_to(inside).parts if inside is not None else path.parts
    except ValueError:
        parts = path.parts
    expected = (stored.recipe, *stored.method_name.split("/"), f"seed-{stored.seed}.json")
    found = parts[-len(expected):]
    for index, (want, have) in enumerate(zip(reversed(expected), reversed(found))):
        if want != have:
            what = "seed" if index == 0 else "recipe" if index == len(expected) - 1 else "method_name"
            raise ResultProblem(f"{what}: the file says {excerpt(want)} but lies at {excerpt(have)} ({excerpt('/'.join(found))})")


def problem_text(exc: ConfigError, prefix: str = "") -> str:
    """The first problem of a validation message, its field path prefixed (`config.threads: ...`)."""
    first = str(exc).split("; ")[0]
    return prefix + first
