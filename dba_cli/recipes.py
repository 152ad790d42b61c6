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
from typing import Literal

import yaml
from pydantic import Field, PrivateAttr, ValidationError

from .config import DBASettings, Float, Int, RunConfig, Strict, Subset, config_error, make_config
from .errors import ConfigError

RECIPES_DIR_ENV = "DBA_RECIPES_DIR"


class Claim(Strict):
    """What the paper claims for this setting (numbers in %)."""

    dba_accuracy: Float | None = None
    error_reduction: Float | None = None
    implied_baseline_accuracy: Float | None = None
    convergence: str | None = None


class ModelSpec(Strict):
    hidden: list[Int] = Field(default_factory=lambda: [512], min_length=1)
    activation: Literal["relu", "tanh", "sigmoid", "gelu"] = "relu"


class TrainingSpec(Strict):
    epochs: Int = Field(ge=1)
    batch_size: Int = Field(ge=1)


class SmokeSpec(Strict):
    """The `--smoke` shrink: a fast end-to-end check, never a result."""

    epochs: Int = Field(2, ge=1)
    seeds: Int = Field(1, ge=1)


class MethodSpec(Strict):
    """One compared method. `role` says how tables show it."""

    role: Literal["baseline", "literal", "chosen"] = "baseline"
    method: Literal["sgd", "adam", "dba"]
    base: Literal["sgd", "adam"] = "sgd"
    lr: Float = Field(gt=0)
    momentum: Float = Field(0.0, ge=0, lt=1)
    weight_decay: Float = Field(0.0, ge=0)
    dba: DBASettings | None = None


class Recipe(Strict):
    name: str
    description: str = ""
    claim: Claim = Field(default_factory=Claim)
    data: Subset
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec
    seeds: Int = Field(ge=1)
    targets: list[Float] = Field(default_factory=list)  # accuracies for time-to-target columns
    methods: dict[str, MethodSpec] = Field(min_length=1)
    smoke: SmokeSpec = Field(default_factory=SmokeSpec)
    _source: str = PrivateAttr(default="")  # the file it was read from, for error messages

    def runs(
        self,
        seeds: int | None = None,
        methods: list[str] | None = None,
        smoke: bool = False,
        **overrides,
    ) -> list[PlannedRun]:
        """Every method x seed as a validated run, with command-line overrides applied.

        `overrides` are RunConfig fields (epochs, batch_size, hidden, ...) that
        replace the recipe's values for every run.
        """
        names = self.select_methods(methods)
        count = seeds if seeds is not None else (self.smoke.seeds if smoke else self.seeds)
        if count < 1:
            raise ConfigError(f"--seeds: {count} must be at least 1.")
        epochs = self.smoke.epochs if smoke else self.training.epochs
        planned = []
        for name in names:
            spec = self.methods[name]
            values = {
                "data": self.data,
                "hidden": self.model.hidden,
                "activation": self.model.activation,
                "epochs": epochs,
                "batch_size": self.training.batch_size,
                **spec.model_dump(exclude={"role"}, exclude_none=True),
                **{key: value for key, value in overrides.items() if value is not None},
            }
            if spec.method != "dba":
                values.pop("base", None)
            for seed in range(count):
                config = make_config(RunConfig, {**values, "seed": seed}, source=f"{self._source or self.name} (method {name})")
                planned.append(PlannedRun(self.name, name, spec.role, config))
        return planned

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
    """One run of a recipe: which method variant, its role in the tables, and its config."""

    recipe: str
    method_name: str
    role: str
    config: RunConfig

    @property
    def key(self) -> str:
        """Where its result lives, relative to the results folder."""
        return f"{self.recipe}/{self.method_name}/seed-{self.config.seed}.json"


def recipes_dir() -> Path:
    """`DBA_RECIPES_DIR`, else the repository's `recipes/` folder."""
    if os.environ.get(RECIPES_DIR_ENV):
        return Path(os.environ[RECIPES_DIR_ENV])
    return Path(__file__).resolve().parent.parent / "recipes"


def list_recipes() -> dict[str, Path]:
    folder = recipes_dir()
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def find_recipe(name_or_path: str) -> Path:
    """A recipe name from `recipes/` or a path to the user's own YAML file."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not path.is_file():
            raise ConfigError(f"recipe file {path} does not exist.")
        return path
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
    """Read and validate a recipe; every problem becomes a ConfigError naming the file."""
    path = find_recipe(name_or_path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not UTF-8 text; a recipe is a YAML file.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}.") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: a recipe must be a YAML mapping (key: value lines), got {type(document).__name__}.")
    try:
        recipe = Recipe.model_validate(document)
    except ValidationError as exc:
        raise config_error(exc, Recipe, str(path)) from None
    recipe._source = str(path)
    recipe.runs(seeds=1)  # each method must also make a valid run config
    return recipe
