"""Recipes: the paper's settings as commented YAML files, validated into typed objects.

A recipe fixes the data subset, the model, the schedule, the seeds, the methods
compared (each a named variant with its own optimizer and DBA settings) and the
paper's claims for that setting. `Recipe.runs()` expands it into one validated
`RunConfig` per method and seed; command-line overrides are applied there, so
the resolved config saved with each run is exactly what was trained.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from .config import (
    DEFAULT_LR, MAX_PATH_PART_LENGTH, OPTIMIZERS, Activation, Architecture, Channels, Dataset, DBASettings, Float, Int,
    Method, Optimizer, RunConfig, SafeName, Strict, Subset, Width, config_error, excerpt, make_config, name_problem,
)
from .dba.config import DIRECTIONS, METRICS, REDUCTIONS
from .errors import ConfigError
from .evaluation import DEFAULT_SCHEDULE, EvaluationSchedule, evaluated_epochs
from .safe_yaml import load_yaml_file

RECIPES_DIR_ENV = "DBA_RECIPES_DIR"
# The order reports list recipes in: the paper's settings, then beyond the paper (a CNN, Fashion-MNIST).
RECIPE_ORDER = (
    "mnist-1pct", "mnist-10-per-class", "mnist-full", "mnist-1pct-cnn", "fashion-1pct", "fashion-10-per-class", "fashion-full",
)


def recipe_order(name: str) -> tuple[int, str]:
    """Sort key: RECIPE_ORDER first, then any other recipe by name."""
    return (RECIPE_ORDER.index(name) if name in RECIPE_ORDER else len(RECIPE_ORDER), name)
# A result key, flattened with '/' -> '__' plus '.lock' (reproduce.lock_path), must stay one valid file name (255 bytes).
MAX_KEY_LENGTH = 240


class Claim(Strict):
    """What the paper claims for this setting (numbers in %)."""

    dba_accuracy: Float | None = None
    error_reduction: Float | None = None
    implied_baseline_accuracy: Float | None = None
    convergence: str | None = None


class ModelSpec(Strict):
    """The model: the MLP (`hidden` widths) or the small CNN (`channels` of its two convolutions), see models.py."""

    architecture: Architecture = "mlp"
    hidden: list[Width] = Field(default_factory=lambda: [512], min_length=1)
    channels: Channels = Field(default_factory=lambda: [8, 16])
    activation: Activation = "relu"

    def describe(self) -> str:
        """How tables name it: "width 512" or "CNN 8/16 channels"."""
        if self.architecture == "cnn":
            return "CNN " + "/".join(map(str, self.channels)) + " channels"
        return "width " + "/".join(map(str, self.hidden))


class TrainingSpec(Strict):
    epochs: Int = Field(ge=1)
    batch_size: Int = Field(ge=1)


class SmokeSpec(Strict):
    """The `--smoke` shrink: a fast end-to-end check, never a result."""

    epochs: Int = Field(2, ge=1)
    seeds: Int = Field(1, ge=1)


# How tables show a method: an untuned baseline, DBA as the abstract reads, DBA as the
# recipe chose it by hand, or a setting chosen by `dba tune` on the validation split.
ROLES = ("baseline", "literal", "chosen", "tuned-baseline", "tuned")


class MethodSpec(Strict):
    """One compared method. `role` says how tables show it."""

    role: Literal[ROLES] = "baseline"
    method: Method
    base: Optimizer = "sgd"
    lr: Float = Field(gt=0)
    momentum: Float = Field(0.0, ge=0, lt=1)
    weight_decay: Float = Field(0.0, ge=0)
    validation_size: Int = Field(0, ge=0)  # tuned methods carry the split they were chosen on
    dba: DBASettings | None = None
    # How many seeds (0..N-1) this method runs, instead of the recipe's `seeds`; not part of
    # its setting (a run's config never holds it). `--seeds` on the command line overrides it.
    seeds: Int | None = Field(None, ge=1)

    def same_setting(self, other: MethodSpec | None) -> bool:
        """The same method and hyperparameters, whatever number of seeds each runs."""
        return other is not None and self.model_dump(exclude={"seeds"}) == other.model_dump(exclude={"seeds"})


class TuneSpec(Strict):
    """`dba tune`: every method gets the same log-spaced learning-rate grid size; DBA also searches its selection.

    Candidates train on tuning seeds (`first_seed`, `first_seed + 1`, ...), disjoint
    from the reported seeds 0..N-1, and are compared by final validation accuracy
    averaged over those seeds. The test set plays no part in the choice.
    """

    validation_size: Int = Field(5000, ge=1)
    seeds: Int = Field(2, ge=1)
    first_seed: Int = Field(100, ge=0)
    lr_points: Int = Field(5, ge=1)
    lr_range: dict[Optimizer, Annotated[list[Float], Field(min_length=2, max_length=2)]]
    dba_bases: list[Optimizer] = Field(default_factory=lambda: ["sgd"], min_length=1)
    dba_variants: list[DBASettings] = Field(default_factory=lambda: [DBASettings()], min_length=1)

    @model_validator(mode="after")
    def ranges_are_ordered(self) -> TuneSpec:
        check_ranges(self.lr_range)
        return self

    def lr_grid(self, optimizer: str) -> list[float]:
        """`lr_points` log-spaced learning rates from the optimizer's range, ends included."""
        return log_grid(self.lr_range, optimizer, self.lr_points, "tune")


def check_ranges(ranges: dict[str, list[float]]) -> None:
    """Every learning-rate range is [low, high] with 0 < low <= high (a pydantic validator's ValueError otherwise)."""
    for name, (low, high) in ranges.items():
        if not 0 < low <= high:
            raise ValueError(f"lr_range.{name}: need 0 < low <= high, got [{low}, {high}]")


def log_grid(ranges: dict[str, list[float]], name: str, points: int, section: str) -> list[float]:
    """`points` log-spaced learning rates from `ranges[name]`, ends included (4 significant digits)."""
    if name not in ranges:
        raise ConfigError(f"{section}.lr_range has no range for {name}; add e.g. `{name}: [0.001, 0.1]`.")
    low, high = ranges[name]
    if points == 1:
        return [low]
    ratio = (high / low) ** (1 / (points - 1))
    return [float(f"{low * ratio**i:.4g}") for i in range(points)]


Percent = Annotated[Float, Field(ge=0, le=100)]


class ConvergenceSpec(Strict):
    """`dba converge`: steps and seconds to a validation accuracy, every method tuned for that (AlgoPerf style).

    A validation split is held out of the training set; every run has the same
    budget of `epochs`. Each family (SGD, SGD with momentum, Adam, DBA over
    each base with each selection setting) gets `lr_points` learning rates from
    its range; candidates train on tuning seeds and are ranked by median steps
    to the last (hardest) target, then are rerun on the reported seeds.
    """

    validation_size: Int = Field(5000, ge=1)
    targets: list[Percent] = Field(min_length=1)  # validation accuracies, %; the last ranks the candidates
    epochs: Int = Field(ge=1)
    seeds: Int = Field(5, ge=2)  # reported seeds 0..N-1: at least 2 for a paired interval
    tuning_seeds: Int = Field(2, ge=1)
    first_seed: Int = Field(100, ge=0)
    lr_points: Int = Field(4, ge=1)
    lr_range: dict[Literal["sgd", "sgd-momentum", "adam"], Annotated[list[Float], Field(min_length=2, max_length=2)]]
    momentum: Float = Field(0.9, gt=0, lt=1)
    dba_bases: list[Optimizer] = Field(default_factory=lambda: ["sgd", "adam"], min_length=1)
    dba_variants: list[DBASettings] = Field(min_length=1)

    @model_validator(mode="after")
    def ranges_are_ordered(self) -> ConvergenceSpec:
        check_ranges(self.lr_range)
        return self

    def lr_grid(self, name: str) -> list[float]:
        return log_grid(self.lr_range, name, self.lr_points, "convergence")


class AblationSpec(Strict):
    """`dba ablate`: the full grid of these DBA settings, each at its base optimizer's learning rate."""

    seeds: Int = Field(3, ge=1)
    validation_size: Int = Field(5000, ge=0)
    lr: dict[Optimizer, Float] = Field(default_factory=lambda: dict(DEFAULT_LR))
    metric: list[Literal[METRICS]] = Field(default_factory=lambda: list(METRICS), min_length=1)
    direction: list[Literal[DIRECTIONS]] = Field(default_factory=lambda: list(DIRECTIONS), min_length=1)
    min_size: list[Annotated[Int, Field(ge=1)]] = Field(default_factory=lambda: [1], min_length=1)
    reduction: list[Literal[REDUCTIONS]] = Field(default_factory=lambda: list(REDUCTIONS), min_length=1)
    base: list[Optimizer] = Field(default_factory=lambda: list(OPTIMIZERS), min_length=1)


class ProtocolSpec(Strict):
    """`dba protocol`: diagnostics of how protocol choices move the tuned methods' accuracy."""

    methods: list[SafeName] = Field(default_factory=lambda: ["sgd-tuned", "adam-tuned", "dba-tuned"], min_length=1)
    seeds: Int = Field(3, ge=1)
    widths: list[Annotated[Int, Field(ge=1)]] = Field(default_factory=lambda: [128, 1024])


class Recipe(Strict):
    """A whole recipe file. Its name and method names become folders of the results: see SafeName."""

    name: SafeName
    description: str = ""
    claim: Claim = Field(default_factory=Claim)
    dataset: Dataset = "mnist"  # the data set (data/__init__.py DATASETS); `data` is the subset of its training set
    data: Subset
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec
    seeds: Int = Field(ge=1)
    targets: list[Float] = Field(default_factory=list)  # accuracies for time-to-target columns
    evaluation: EvaluationSchedule = DEFAULT_SCHEDULE  # when the test set is evaluated (evaluation.py)
    methods: dict[SafeName, MethodSpec] = Field(min_length=1)
    smoke: SmokeSpec = Field(default_factory=SmokeSpec)
    tune: TuneSpec | None = None
    ablation: AblationSpec | None = None
    convergence: ConvergenceSpec | None = None
    protocol: ProtocolSpec = Field(default_factory=ProtocolSpec)
    _source: str = PrivateAttr(default="")  # the file it was read from, for error messages

    def runs(
        self,
        seeds: int | None = None,
        methods: list[str] | None = None,
        smoke: bool = False,
        **overrides,
    ) -> list[PlannedRun]:
        """Every method x seed as a validated run, with command-line overrides applied.

        Each method runs seeds 0..N-1, N from `seed_count` (its own `seeds:`, else the
        recipe's); `seeds` (the `--seeds` option) overrides every method's N.
        `overrides` are RunConfig fields (epochs, batch_size, hidden, ...) that
        replace the recipe's values for every run.
        """
        names = self.select_methods(methods)
        if seeds is not None and seeds < 1:
            raise ConfigError(f"--seeds: {seeds} must be at least 1.")
        planned = []
        for name in names:
            spec = self.methods[name]
            for seed in range(seeds if seeds is not None else self.seed_count(name, smoke)):
                config = self.config_for(spec, seed, smoke, label=f"method {name}", **overrides)
                planned.append(PlannedRun(self.name, name, spec.role, config, evaluation=self.evaluation))
        return planned

    def seed_count(self, name: str, smoke: bool = False) -> int:
        """How many seeds method `name` runs: the smoke count, its own `seeds:`, else the recipe's `seeds`."""
        if smoke:
            return self.smoke.seeds
        spec = self.methods.get(name)
        return spec.seeds if spec is not None and spec.seeds is not None else self.seeds

    def config_for(self, spec: MethodSpec, seed: int, smoke: bool = False, label: str = "", **overrides) -> RunConfig:
        """The validated run of `spec` on this recipe's data, model and schedule; overrides (not None) win."""
        values = {
            "dataset": self.dataset,
            "data": self.data,
            "architecture": self.model.architecture,
            "hidden": self.model.hidden,
            "channels": self.model.channels,
            "activation": self.model.activation,
            "epochs": self.smoke.epochs if smoke else self.training.epochs,
            "batch_size": self.training.batch_size,
            **spec.model_dump(exclude={"role", "seeds"}, exclude_none=True),
            **{key: value for key, value in overrides.items() if value is not None},
        }
        if spec.method != "dba":
            values.pop("base", None)
        where = f"{self._source or self.name}" + (f" ({label})" if label else "")
        return make_config(RunConfig, {**values, "seed": seed}, source=where)

    def section(self, name: str, purpose: str):
        """The recipe's optional `tune:` / `ablation:` section, or a ConfigError saying how to add it."""
        value = getattr(self, name)
        if value is None:
            raise ConfigError(
                f"recipe {self.name} has no `{name}:` section. Fix: add one (see recipes/mnist-1pct.yaml) {purpose}."
            )
        return value

    def select_methods(self, methods: list[str] | None) -> list[str]:
        if not methods:
            return list(self.methods)
        for name in methods:
            if name not in self.methods:
                close = difflib.get_close_matches(name, list(self.methods), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"--methods: {name!r} is not a method of recipe {self.name}.{hint} "
                    f"Its methods: {', '.join(self.methods)}."
                )
        return list(methods)


@dataclass(frozen=True)
class PlannedRun:
    """One run of a recipe: which method variant, its role in the tables, and its config.

    `group` files runs that are not paper-table rows (tuning candidates,
    ablation variants, protocol diagnostics) in their own folder. `evaluation`
    says at which epochs the test set (and validation split) is evaluated: the
    recipe's schedule for its runs, `evaluation.FINAL_ONLY` for runs that need
    only final accuracies (tuning, ablation, protocol).
    """

    recipe: str
    method_name: str
    role: str
    config: RunConfig
    group: str = ""
    evaluation: EvaluationSchedule = DEFAULT_SCHEDULE

    @property
    def evaluated_epochs(self) -> tuple[int, ...]:
        """The epochs this run evaluates (the last always; train() adds an epoch where it diverges)."""
        return evaluated_epochs(self.evaluation, self.config.epochs)

    @property
    def key(self) -> str:
        """Where its result lives, relative to the results folder: `[group/]recipe/method/seed-K.json`.

        `group` and `method_name` may hold several '/'-separated parts (tuning,
        protocol); every part must be a name that stays inside the results
        folder (see config.NAME_CHARACTERS), or this raises a ConfigError.
        Recipes are checked when loaded; this is the second line of defence.
        """
        parts = [*(self.group.split("/") if self.group else []), self.recipe, *self.method_name.split("/")]
        for part in parts:
            problem = name_problem(part, MAX_PATH_PART_LENGTH)
            if problem is not None:
                raise ConfigError(
                    f"result path of recipe {excerpt(self.recipe)}, method {excerpt(self.method_name)}: "
                    f"part {excerpt(part)} {problem}."
                )
        key = "/".join(parts) + f"/seed-{self.config.seed}.json"
        if len(key) > MAX_KEY_LENGTH:
            raise ConfigError(
                f"result path {excerpt(key)} is {len(key)} characters long; at most {MAX_KEY_LENGTH} fit in a file name. "
                "Fix: shorten the recipe or method name."
            )
        return key


def result_path(results_dir: Path, key: str) -> Path:
    """`results_dir / key`, after checking that it resolves (symlinks followed) to a file inside `results_dir`."""
    path = Path(results_dir) / key
    try:
        root = Path(results_dir).resolve()
        resolved = path.resolve()
    except (OSError, ValueError) as exc:  # e.g. a NUL character, a link loop
        raise ConfigError(f"result path {excerpt(key)} under {results_dir} cannot be used ({exc}).") from None
    if resolved == root or not resolved.is_relative_to(root):
        raise ConfigError(
            f"result path {excerpt(key)} would lie outside the results folder {results_dir} "
            f"(it resolves to {excerpt(str(resolved), 200)}); refusing to write it."
        )
    return path


def recipes_dir() -> Path:
    """`DBA_RECIPES_DIR`, else the recipes shipped inside the package (`dba_cli/recipe_files/`).

    They ship as package data, so a wheel install finds them as an editable one
    does; the repository's top-level `recipes/` is a link to the same folder.
    """
    if os.environ.get(RECIPES_DIR_ENV):
        return Path(os.environ[RECIPES_DIR_ENV])
    return Path(__file__).resolve().parent / "recipe_files"


def list_recipes() -> dict[str, Path]:
    folder = recipes_dir()
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def missing_recipes_folder() -> ConfigError:
    """The one-line error for an installation (or DBA_RECIPES_DIR) without its recipe folder."""
    where = f"{RECIPES_DIR_ENV}={os.environ[RECIPES_DIR_ENV]}" if os.environ.get(RECIPES_DIR_ENV) else "the installed package"
    return ConfigError(
        f"no recipe folder at {recipes_dir()} (looked there because of {where}). Fix: reinstall dba "
        f"(`pip install dba-cli` ships the recipes), point {RECIPES_DIR_ENV} to a folder of .yaml recipes, "
        "or give a recipe file's path."
    )


def find_recipe(name_or_path: str) -> Path:
    """A packaged recipe's name (see `recipes_dir`) or a path to the user's own YAML file."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        try:
            if path.is_dir():
                raise ConfigError(f"recipe file {path} is a folder, not a recipe file. Fix: give the path of a .yaml file.")
            if not path.exists():
                raise ConfigError(f"recipe file {path} does not exist.")
            if not path.is_file():
                raise ConfigError(f"recipe file {path} is not a regular file (a device, pipe or socket); a recipe is a .yaml file.")
        except OSError as exc:  # e.g. a name too long for the file system
            raise ConfigError(f"recipe file {excerpt(str(path))} cannot be read ({exc.strerror or exc}).") from None
        return path
    if not recipes_dir().is_dir():
        raise missing_recipes_folder()
    known = list_recipes()
    if name_or_path in known:
        return known[name_or_path]
    close = difflib.get_close_matches(name_or_path, list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"recipe {name_or_path!r} not found in {recipes_dir()}.{hint} "
        f"Known recipes: {', '.join(known) or 'none'}; or give a path to a .yaml file."
    )


def load_recipe(name_or_path: str) -> Recipe:
    """Read and validate a recipe; every problem becomes a ConfigError naming the file.

    Reading is bounded (size, nesting, values with aliases expanded, no duplicate
    keys: see safe_yaml), and every name that becomes a folder of the results is
    checked here (SafeName), before anything is planned or written.
    """
    path = find_recipe(name_or_path)
    document = load_yaml_file(path)
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: a recipe must be a YAML mapping (key: value lines), got {type(document).__name__}.")
    try:
        recipe = Recipe.model_validate(document)
    except ValidationError as exc:
        raise config_error(exc, Recipe, str(path)) from None
    recipe._source = str(path)
    recipe.runs(seeds=1)  # each method must also make a valid run config
    return recipe
