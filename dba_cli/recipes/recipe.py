"""A recipe: the paper's settings as a commented YAML file, validated into one typed object.

A recipe fixes the data, the model, the schedule, the seeds, the methods
compared (each a named variant with its own optimizer and DBA settings) and
the paper's claims for that setting. Its `model:`, `training:` and `methods:`
sections hold RunConfig's own fields (settings/run.py), declared there once:
each method's runs are validated as RunConfigs, and a problem is reported at
the recipe path where the value was written (`methods.sgd.lr`).
`Recipe.runs()` expands it into one planned run per method and seed.
"""

from __future__ import annotations

import difflib
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, create_model, model_validator

from ..errors import ConfigError
from ..settings.evaluation import DEFAULT_SCHEDULE, EvaluationSchedule
from ..settings.methods import declared
from ..settings.names import SafeName
from ..settings.roles import RECIPE_ROLES, TUNED_ROLES
from ..settings.run import RunConfig, fields_in
from ..settings.validation import Float, Int, Strict, config_error, make_config
from .planned import MAX_SEEDS, PlannedRun, check_grid_size
from .protocol import declaration
from .sections import AblationSpec, Claim, ConvergenceSpec, ProtocolSpec, SmokeSpec, TuneSpec

# How tables show a method: an untuned baseline, DBA as the abstract reads, DBA as the
# recipe chose it by hand, or a setting chosen by `dba tune` on the validation split.
ROLES = RECIPE_ROLES  # settings/roles.py
MODEL_FIELDS = tuple(fields_in("model"))
TRAINING_FIELDS = tuple(fields_in("training"))
TOP_FIELDS = tuple(fields_in("data"))  # dataset, data: at the recipe's top level
METHOD_FIELDS = tuple(name for name in RunConfig.model_fields if name != "seed")  # a method may set any run field


def section(name: str, fields: tuple[str, ...], **own) -> type[Strict]:
    """A recipe section holding these RunConfig fields, each optional (None: not given).

    Values are validated when runs are composed (`Recipe.config_for`), as the
    RunConfig they become; here only the keys are checked, so an unknown key
    is named at its path with the nearest known one.
    """
    return create_model(name, __base__=Strict, **own, **{field: (Any, None) for field in fields})


ModelSection = section("ModelSection", MODEL_FIELDS)
TrainingSection = section("TrainingSection", TRAINING_FIELDS)
# `role`: how tables show it; `seeds`: how many seeds (0..N-1) it runs instead of the recipe's
# `seeds` (not part of its setting: a run's config never holds it; `--seeds` overrides it).
Method = section(
    "Method", METHOD_FIELDS, role=(Literal[ROLES], "baseline"), seeds=(Int | None, Field(None, ge=1, le=MAX_SEEDS)),
)


def given(model: Strict, fields: tuple[str, ...]) -> dict[str, Any]:
    """The fields of a section that the recipe gave (not None)."""
    return {name: value for name in fields if (value := getattr(model, name)) is not None}


def method_settings(method) -> dict[str, Any]:
    """A method's own run settings, as written (role and seeds left out)."""
    return given(method, METHOD_FIELDS)


def make_method(role: str = "baseline", seeds: int | None = None, **settings) -> Any:
    """A recipe method from run settings (studies make their candidates this way)."""
    return Method(role=role, seeds=seeds, **settings)


class Recipe(Strict):
    """A whole recipe file. Its name and method names become folders of the results: see SafeName."""

    name: SafeName
    description: str = ""
    claim: Claim = Field(default_factory=Claim)
    dataset: Any = None  # RunConfig.dataset: the data set (`data` is the subset of its training set)
    data: Any  # RunConfig.data: the training subset (required)
    label_noise: Any = None  # RunConfig.label_noise, noise_rate, imbalance: the training subset's labels and class counts
    noise_rate: Any = None
    imbalance: Any = None
    model: ModelSection = Field(default_factory=ModelSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    seeds: Int = Field(ge=1, le=MAX_SEEDS)
    targets: list[Float] = Field(default_factory=list, max_length=16)  # accuracies for time-to-target columns
    evaluation: EvaluationSchedule = DEFAULT_SCHEDULE  # when the test set is evaluated (settings/evaluation.py)
    methods: dict[SafeName, Method] = Field(min_length=1, max_length=256)
    smoke: SmokeSpec = Field(default_factory=SmokeSpec)
    tune: TuneSpec | None = None
    ablation: AblationSpec | None = None
    convergence: ConvergenceSpec | None = None
    protocol: ProtocolSpec = Field(default_factory=ProtocolSpec)
    _source: str = PrivateAttr(default="")  # the file it was read from, for error messages

    @model_validator(mode="after")
    def searches_have_the_budget(self) -> Recipe:
        """Every family of `tune:` and `convergence:` holds the declaration's K for this recipe (Search.check_budget)."""
        for section in ("tune", "convergence"):
            search = getattr(self, section)
            if search is not None:
                search.check_budget(self.name, section)
        return self

    @property
    def source(self) -> str:
        return self._source or self.name

    @cached_property
    def defaults(self) -> RunConfig:
        """The recipe's data, model and training settings as a run (a plain SGD run): what all its methods share."""
        return self.config_for(make_method(method="sgd"), 0, label="data, model and training")

    def runs(
        self,
        seeds: int | None = None,
        methods: list[str] | None = None,
        smoke: bool = False,
        **overrides,
    ) -> list[PlannedRun]:
        """Every method x seed as a validated run, with command-line overrides applied.

        Each method runs its `seed_range`: seeds 0..N-1, N its own `seeds:`, else the
        recipe's, or, for a tuned method, the declaration's reported seeds (1000..);
        `seeds` (the `--seeds` option) overrides every method's N.
        `overrides` are RunConfig fields (epochs, batch_size, ...) that replace the
        recipe's values for every run.
        """
        names = self.select_methods(methods)
        if seeds is not None and not 1 <= seeds <= MAX_SEEDS:
            raise ConfigError(f"--seeds: {seeds} must be between 1 and {MAX_SEEDS}.")
        check_grid_size(sum(len(self.seed_range(name, smoke, seeds)) for name in names), f"recipe {self.name}")
        planned = []
        for name in names:
            method = self.methods[name]
            for seed in self.seed_range(name, smoke, seeds):
                config = self.config_for(method, seed, smoke, label=f"method {name}", method_name=name, **overrides)
                planned.append(PlannedRun(self.name, name, method.role, config, evaluation=self.evaluation))
        return planned

    def seed_range(self, name: str, smoke: bool = False, seeds: int | None = None) -> range:
        """The seeds method `name` runs: the first N of its range, N the smoke count, `seeds`, its own `seeds:`, else the recipe's.

        A tuned method (role tuned or tuned-baseline, chosen by `dba tune`) runs the
        declaration's reported seeds (dba_cli/protocol.yaml: fresh ones, 1000 onward,
        never seen by any choice), all of them by default; every other method seeds 0, 1, ....
        """
        method = self.methods.get(name)
        tuned = method is not None and method.role in TUNED_ROLES
        own = method.seeds if method is not None and method.seeds is not None else None
        if tuned:
            reported = declaration().seeds.reported.seeds
            count = self.smoke.seeds if smoke else seeds if seeds is not None else own or len(reported)
            return reported[:count]
        count = self.smoke.seeds if smoke else seeds if seeds is not None else own or self.seeds
        return range(count)

    def seed_count(self, name: str, smoke: bool = False) -> int:
        """How many seeds method `name` runs (`seed_range`)."""
        return len(self.seed_range(name, smoke))

    def config_for(
        self, method, seed: int, smoke: bool = False, label: str = "", method_name: str | None = None, **overrides
    ) -> RunConfig:
        """The validated run of `method` on this recipe's data, model and schedule; overrides (not None) win.

        A value the RunConfig rejects is reported at the recipe path it was
        written at: the method's own setting, else `training.`, `model.` or the top level.
        """
        layers = [
            ((), {name: getattr(self, name) for name in TOP_FIELDS if getattr(self, name) is not None}),
            (("model",), given(self.model, MODEL_FIELDS)),
            (("training",), given(self.training, TRAINING_FIELDS)),
            (("methods", method_name) if method_name else (), method_settings(method)),
            (("smoke",), {"epochs": self.smoke.epochs} if smoke else {}),
            ((), {key: value for key, value in overrides.items() if value is not None}),
        ]
        values: dict[str, Any] = {}
        origin: dict[str, tuple] = {}
        for prefix, settings in layers:
            for key, value in settings.items():
                values[key], origin[key] = value, prefix
        method_name = values.get("method", "sgd")
        if not (isinstance(method_name, str) and declared(method_name).over_base):
            values.pop("base", None)

        def where(loc: tuple) -> tuple:
            return (*origin.get(loc[0], ()), *loc) if loc else loc

        source = self.source + (f" ({label})" if label else "")
        return make_config(RunConfig, {**values, "seed": seed}, source=source, where=where)

    def section(self, name: str, purpose: str):
        """The recipe's optional `tune:` / `ablation:` / `convergence:` section, or a ConfigError saying how to add it."""
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

    def check_searches(self) -> None:
        """Every setting of the `tune:` and `convergence:` searches must make a valid run: a ConfigError naming it otherwise."""
        for section in ("tune", "convergence"):
            search = getattr(self, section)
            if search is None:
                continue
            for family in search.families:
                for settings, varying in search.settings(family):
                    where = f"{section} family {family}, setting {varying or settings}"
                    try:
                        method = make_method(**settings)
                    except ValidationError as exc:
                        raise config_error(exc, Method, f"{self.source} ({where})") from None
                    self.config_for(method, 0, label=where)

    def same_setting(self, name: str, method) -> bool:
        """Whether the recipe's method `name` trains exactly as `method` (the number of seeds aside)."""
        mine = self.methods.get(name)
        return mine is not None and self.config_for(mine, 0) == self.config_for(method, 0)
