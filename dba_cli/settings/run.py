"""The validated configuration of one training run: every setting of a run, declared once.

Every entry point builds a `RunConfig`: `dba run` (its options are generated
from these fields, help text included), recipes (their `model:`, `training:`
and `methods:` sections hold these same fields and are validated as one
`RunConfig` per run), tuning grids, and Python users (`run_config(...)`).
A field's `group` says where it belongs (a recipe section, a `--help` panel);
`omit_default` fields were added after results existed and are left out of a
saved config at their default, so those results stay current. DBA's own
settings are the engine's `DBAConfig` (dba/config.py). Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic.fields import FieldInfo

from ..dba.config import DBAConfig
from ..errors import ConfigError
from .methods import METHODS as METHOD_DECLARATIONS
from .methods import OPTIMIZERS, SETTINGS_FIELDS, ImportanceConfig, OnlineConfig, OrderedConfig, declared
from .subsets import SUBSET_HELP, TRAIN_SIZE, class_counts, parse_subset
from .validation import Float, Int, Strict, make_config

DATASETS = ("mnist", "fashion-mnist")  # both 28x28 grey images of 10 classes in the IDX format (data/datasets.py)
ARCHITECTURES = ("mlp", "cnn")  # models.py
ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "gelu": "GELU"}  # name -> its torch.nn class
METHODS = tuple(METHOD_DECLARATIONS)  # settings/methods.py: the optimizers (training/optim.py), DBA and its peers
SELECTION_METHODS = tuple(name for name, method in METHOD_DECLARATIONS.items() if method.over_base)
DEFAULT_LR = {"sgd": 0.1, "adam": 0.001, "adamw": 0.001}

# Where a field belongs: a recipe's top level (data), its `model:` and `training:` sections, a
# method's own settings, the protocol (which a method may also set), or the seed (never in a recipe).
GROUPS = ("data", "model", "method", "training", "protocol", "seed")


def setting(default: Any = ..., *, group: str, help: str, omit_default: bool = False, factory=None, **bounds) -> Any:
    """A RunConfig field: its default, bounds, `--help` text and group, in one place."""
    assert group in GROUPS, group
    extra = {"group": group, "omit_default": omit_default}
    if factory is not None:
        return Field(default_factory=factory, description=help, json_schema_extra=extra, **bounds)
    return Field(default, description=help, json_schema_extra=extra, **bounds)


def subset_name(value: str) -> str:
    """A training subset name that `parse_subset` accepts."""
    try:
        parse_subset(value)
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix(f"data: {value!r} ")) from None
    return value


Subset = Annotated[str, Field(strict=True), AfterValidator(subset_name)]
# Upper bounds: far above any sensible run, low enough that a typo (a 20-digit width, 10^20 epochs) is a
# one-line error here instead of an allocation failure, an overflow in compiled code or a run that never ends.
MAX_WIDTH = 65536  # a hidden layer's units
MAX_CHANNELS = 4096  # a convolution's output channels
MAX_EPOCHS = 100_000
MAX_BATCH = 1_000_000
MAX_SEED = 2**31 - 1
MAX_FOLDS = 20  # k of k-fold cross-validation: 2..20 (more folds of a small subset validate on a handful of images)
SCHEDULES = ("constant", "cosine")  # learning-rate schedules (training/optim.py)
LABEL_NOISE = ("none", "symmetric", "pair")  # data/subsets.py noisy_labels
Width = Annotated[Int, Field(ge=1, le=MAX_WIDTH)]  # a layer's width
Channels = Annotated[Int, Field(ge=1, le=MAX_CHANNELS)]  # a convolution's output channels


class RunConfig(Strict):
    """One run: data subset, model, method (optimizer, DBA settings), schedule and seed."""

    dataset: Literal[DATASETS] = setting(
        "mnist", group="data", omit_default=True, help="Data set: mnist or fashion-mnist (Fashion-MNIST: see `dba data fetch`)."
    )
    data: Subset = setting("10-per-class", group="data", help=f"Training subset: {SUBSET_HELP}.")
    label_noise: Literal[LABEL_NOISE] = setting(
        "none", group="data", omit_default=True,
        help="Noise on the training subset's labels (never the test set's): none; symmetric (a label becomes "
        "one of the other 9 classes, uniformly, with probability noise_rate); pair (class c becomes c+1 mod 10 "
        "with probability noise_rate). Drawn once per seed, from the seed alone.",
    )
    noise_rate: Float = setting(
        0.0, group="data", omit_default=True, ge=0, le=1, help="The probability that a training label is replaced (label_noise).",
    )
    imbalance: Float = setting(
        1.0, group="data", omit_default=True, ge=1, le=1000,
        help="Imbalance ratio ρ of a long-tailed subset: class c keeps round(n x ρ^(−c/9)) of its n images per "
        "class (1: balanced; stratified per-class subsets only).",
    )
    method: Literal[METHODS] = setting("sgd", group="method", help="Training method: " + ", ".join(METHODS) + ".")
    base: Literal[OPTIMIZERS] = setting(
        "sgd", group="method", help="The optimizer that applies the selected gradient (methods " + ", ".join(SELECTION_METHODS) + "): "
        + ", ".join(OPTIMIZERS) + "."
    )
    lr: Float = setting(
        DEFAULT_LR["sgd"], group="method", gt=0,
        help="Learning rate. Default by optimizer: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_LR.items()) + ".",
    )
    momentum: Float = setting(0.0, group="method", ge=0, lt=1, help="SGD momentum (0 = plain SGD; ignored by Adam and AdamW).")
    nesterov: bool = setting(
        False, group="method", omit_default=True, strict=True, help="SGD: Nesterov momentum (needs momentum > 0)."
    )
    weight_decay: Float = setting(
        0.0, group="method", ge=0, help="Weight decay: L2 added to the gradient (SGD, Adam), decoupled (AdamW)."
    )
    architecture: Literal[ARCHITECTURES] = setting(
        "mlp", group="model", omit_default=True, help="Model: mlp (uses hidden) or cnn (uses channels)."
    )
    hidden: list[Width] = setting(
        group="model", factory=lambda: [512], min_length=1, max_length=16, help="MLP: hidden layer widths, e.g. 512 or 512,256."
    )
    channels: list[Channels] = setting(
        group="model", factory=lambda: [8, 16], min_length=2, max_length=2,
        help="CNN: output channels of its two 5x5 convolutions, e.g. 8,16.",
    )
    activation: Literal[tuple(ACTIVATIONS)] = setting(
        "relu", group="model", help="Hidden activation: " + ", ".join(ACTIVATIONS) + "."
    )
    epochs: Int = setting(50, group="training", ge=1, le=MAX_EPOCHS, help="Passes over the training subset.")
    batch_size: Int = setting(64, group="training", ge=1, le=MAX_BATCH, help="Mini-batch size.")
    seed: Int = setting(0, group="seed", ge=0, le=MAX_SEED, help="Seed for the subset, the initial weights and the batch order.")
    schedule: Literal[SCHEDULES] = setting(
        "constant", group="method", omit_default=True,
        help="Learning-rate schedule: constant, or cosine (step t of T = epochs x steps per epoch: "
        "lr x 0.5 x (1 + cos(pi t / T)), no warm-up).",
    )
    dba: DBAConfig | None = setting(
        None, group="method", help="DBA's settings (methods dba and dba-random only; defaults filled in)."
    )
    ordered: OrderedConfig | None = setting(
        None, group="method", help="Ordered SGD's settings (method ordered only; defaults filled in)."
    )
    online: OnlineConfig | None = setting(
        None, group="method", help="Online batch selection's settings (method online only; defaults filled in)."
    )
    importance: ImportanceConfig | None = setting(
        None, group="method", help="Importance sampling's settings (method importance only; defaults filled in)."
    )
    # Protocol: the defaults are the spec's protocol; other values are diagnostics.
    validation_size: Int = setting(
        0, group="protocol", omit_default=True, ge=0, le=TRAIN_SIZE,
        help="Training images outside the subset held out as a validation split (choices are made on it).",
    )
    subset_draw: Literal["stratified", "uniform"] = setting(
        "stratified", group="protocol", omit_default=True,
        help="How the subset is drawn: stratified by class, or uniform (a diagnostic).",
    )
    resample: Literal["once", "every_epoch"] = setting(
        "once", group="protocol", omit_default=True,
        help="once: one subset per seed; every_epoch: a fresh subset each epoch (a diagnostic).",
    )
    folds: Int = setting(
        0, group="protocol", omit_default=True, ge=0, le=MAX_FOLDS,
        help=f"k-fold cross-validation inside the subset: 0 = none, else 2..{MAX_FOLDS} class-stratified folds "
        "(one validates, the others train).",
    )
    fold: Int = setting(
        0, group="protocol", omit_default=True, ge=0, le=MAX_FOLDS - 1,
        help="The fold held out for validation (0..folds-1; with folds > 0 only).",
    )

    @model_validator(mode="before")
    @classmethod
    def fill_defaults(cls, values: Any) -> Any:
        """Default lr from the optimizer; default settings of its own for a selection method (DBA, a peer).

        With an unknown method or base there is no default lr, and that is the
        only error to report: the unset lr is dropped rather than passed on as
        None (which would add a spurious "lr: should be a number" error).
        """
        if not isinstance(values, dict):
            return values
        values = dict(values)
        method = values.get("method", "sgd")
        declaration = declared(method) if isinstance(method, str) else None
        optimizer = values.get("base", "sgd") if declaration is not None and declaration.over_base else method
        if values.get("lr") is None:
            default = DEFAULT_LR.get(optimizer) if isinstance(optimizer, str) else None
            if default is not None:
                values["lr"] = default
            else:
                values.pop("lr", None)
        own = declaration.settings if declaration is not None else None
        if own is not None and values.get(own) is None:
            values[own] = {}
        return values

    @model_validator(mode="after")
    def settings_fit_the_method(self) -> RunConfig:
        for name in SETTINGS_FIELDS:
            if getattr(self, name) is not None and declared(self.method).settings != name:
                users = [m for m, d in METHOD_DECLARATIONS.items() if d.settings == name]
                raise ValueError(
                    f"{name}: settings were given but method is {self.method!r}; use method {' or '.join(users)} or drop them"
                )
        if self.nesterov and not (self.optimizer == "sgd" and self.momentum > 0):
            raise ValueError("nesterov: needs SGD with momentum > 0; set momentum (e.g. 0.9) or drop nesterov")
        self.check_data_changes()
        self.check_validation_split()
        self.check_folds()
        self.check_model_fields()
        return self

    def check_data_changes(self) -> None:
        """Label noise needs its rate and the rate its kind; imbalance needs a stratified per-class subset drawn once."""
        if self.label_noise == "none" and self.noise_rate:
            raise ValueError(f"noise_rate: {self.noise_rate:g} is set but label_noise is none; set label_noise "
                             "(symmetric or pair) or drop noise_rate")
        if self.label_noise != "none" and not self.noise_rate:
            raise ValueError(f"label_noise: {self.label_noise} needs a noise_rate above 0 (e.g. 0.2)")
        if self.label_noise != "none" and self.resample != "once":
            raise ValueError("label_noise: the noise is drawn once over the subset, but resample is every_epoch; "
                             "set resample to once or label_noise to none")
        if self.imbalance != 1.0:
            if parse_subset(self.data).per_class is None:
                raise ValueError("imbalance: a long-tailed subset is drawn per class, but data is full; use a subset "
                                 "(e.g. data: 1pct) or drop imbalance")
            if self.subset_draw != "stratified" or self.resample != "once":
                raise ValueError("imbalance: needs subset_draw stratified and resample once (the long tail is drawn per class, once)")

    @property
    def subset_size(self) -> int | None:
        """Images in the training subset before any split (None: the full training set)."""
        spec = parse_subset(self.data)
        return None if spec.per_class is None else sum(class_counts(spec.per_class, self.imbalance))

    def check_validation_split(self) -> None:
        """The validation split comes from the training images the subset leaves, and must leave some to train on."""
        subset = self.subset_size
        if subset is None and self.validation_size >= TRAIN_SIZE:
            raise ValueError(
                f"validation_size: {self.validation_size} leaves no training image of the {TRAIN_SIZE} (data: full "
                "trains on the images outside the validation split); use at most "
                f"{TRAIN_SIZE - 1}, e.g. 5000"
            )
        if subset is not None and self.validation_size > TRAIN_SIZE - subset:
            raise ValueError(
                f"validation_size: {self.validation_size} is more than the {TRAIN_SIZE - subset} training images "
                f"outside the {subset}-image subset ({self.data}); use at most {TRAIN_SIZE - subset}"
            )

    def check_folds(self) -> None:
        """Cross-validation splits the subset itself: it needs a subset, and is the only validation split."""
        if self.folds == 0:
            if self.fold:
                raise ValueError(
                    f"fold: {self.fold} is set but folds is 0 (no cross-validation); set folds (e.g. 5) or drop fold"
                )
            return
        subset = self.subset_size
        if self.folds == 1:
            raise ValueError(f"folds: 1 leaves nothing to train on; use 0 (no cross-validation) or 2..{MAX_FOLDS}")
        if self.fold >= self.folds:
            raise ValueError(f"fold: {self.fold} is not a fold of {self.folds} (they are 0..{self.folds - 1}); use fold < folds")
        if subset is None:
            raise ValueError(
                "folds: cross-validation splits a subset, but data is full; use a subset (e.g. data: 1pct) "
                "or validation_size (a split held out of the full set) instead"
            )
        if self.validation_size:
            raise ValueError(
                f"folds: {self.folds} and validation_size: {self.validation_size} are two validation splits; "
                "use one: set validation_size to 0 (the fold validates) or folds to 0"
            )
        if self.folds > subset:
            raise ValueError(
                f"folds: {self.folds} is more than the {subset} images of the subset ({self.data}); use at most {subset}"
            )
        if self.resample != "once":
            raise ValueError(
                "folds: cross-validation splits one subset, but resample is every_epoch (a fresh subset each epoch); "
                "set resample to once or folds to 0"
            )

    def check_model_fields(self) -> None:
        """A model setting the chosen architecture ignores is a mistake, never silently dropped."""
        ignored = {"mlp": "channels", "cnn": "hidden"}[self.architecture]
        if ignored in self.model_fields_set:
            uses = {"mlp": "hidden", "cnn": "channels"}[self.architecture]
            raise ValueError(
                f"{ignored}: is set but architecture {self.architecture} ignores it (it uses {uses}); "
                f"drop {ignored} or set architecture {'cnn' if ignored == 'channels' else 'mlp'}"
            )

    @property
    def optimizer(self) -> str:
        """The torch optimizer that applies the update."""
        return self.base if declared(self.method).over_base else self.method

    def to_dict(self) -> dict:
        """Plain JSON-able values, as saved with each run.

        Fields that do not apply (DBA settings of a baseline, the widths of the
        model not used) are left out, and so are `omit_default` fields at their
        defaults, so that result files stay comparable when new settings are added.
        """
        values = self.model_dump()
        if not declared(self.method).over_base:
            values.pop("base")
        for name in SETTINGS_FIELDS:
            if declared(self.method).settings != name:
                values.pop(name)
        values.pop("channels" if self.architecture == "mlp" else "hidden")
        for name, field in type(self).model_fields.items():
            if field_extra(field).get("omit_default") and name in values and values[name] == field.get_default(call_default_factory=True):
                values.pop(name)
        return values

    def replace(self, **changes) -> RunConfig:
        """This config with `changes`; only the settings that were given are passed on, so none becomes "given"."""
        return make_config(RunConfig, {**self.model_dump(include=self.model_fields_set), **changes})


def field_extra(field: FieldInfo) -> dict:
    """A RunConfig field's group and omit_default (see `setting`)."""
    return field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}


def fields_in(*groups: str) -> list[str]:
    """The RunConfig fields of these groups, in declaration order."""
    return [name for name, field in RunConfig.model_fields.items() if field_extra(field).get("group") in groups]


def run_config(**values) -> RunConfig:
    """Shorthand for Python users and tests: `run_config(method="adam", epochs=3)`."""
    return make_config(RunConfig, values)


def run_notes(config: RunConfig) -> list[str]:
    """What a user should know before a run that is valid but may not do what they expect."""
    size = config.subset_size or TRAIN_SIZE - config.validation_size
    if config.folds:
        size -= fold_size(size, config.folds, config.fold)
    batch = min(config.batch_size, size)
    notes = []
    if config.batch_size > size:
        notes.append(
            f"batch size {config.batch_size} is larger than the training subset ({size} images of {config.data}): "
            "every step uses the whole subset (full-batch training, one step per epoch)."
        )
    if config.dba is not None and config.dba.min_size >= batch:
        notes.append(
            f"dba.min_size {config.dba.min_size} is not smaller than the batch ({batch} samples): "
            f"{'DBA' if config.method == 'dba' else config.method} can remove no sample and trains exactly like plain {config.base}."
        )
    return notes


def fold_size(subset: int, folds: int, fold: int) -> int:
    """Images in fold `fold` of a `subset`-image subset: the draw deals them to folds in turn (data/subsets.py split_folds)."""
    return subset // folds + (fold < subset % folds)


def describe(config: RunConfig, batch_size: int | None = None) -> str:
    """A method's setting in a few words, as reports name it: "sgd, lr 0.1, momentum 0.9" or "DBA over sgd, lr 0.1; ...".

    Settings at their defaults are left out; the batch size is named when it
    differs from `batch_size` (the recipe's).
    """
    name = declared(config.method).label
    if config.ordered is not None and config.ordered.keep == "smallest":
        name = "small-loss"
    parts = [f"{name} over {config.base}, lr {config.lr:g}" if name else f"{config.optimizer}, lr {config.lr:g}"]
    defaults = RunConfig.model_fields
    for field in ("momentum", "weight_decay"):
        if getattr(config, field) != defaults[field].default:
            parts.append(f"{field.replace('_', ' ')} {getattr(config, field):g}")
    if config.nesterov:
        parts.append("Nesterov")
    if config.schedule != "constant":
        parts.append(f"{config.schedule} schedule")
    if batch_size is not None and config.batch_size != batch_size:
        parts.append(f"batch {config.batch_size}")
    text = ", ".join(parts)
    if config.dba is not None:
        s = config.dba
        text += f"; {s.metric} {s.direction}, min_size {s.min_size}, {s.reduction}"
        if s.max_removals is not None:
            text += f", max_removals {s.max_removals}"
        if s.unbiased:
            text += ", unbiased"
    for field in ("ordered", "online", "importance"):
        own = getattr(config, field)
        if own is not None:
            default = asdict(type(own)())
            given = {key: value for key, value in asdict(own).items() if value != default[key] and key != "keep"}
            if given:
                text += "; " + ", ".join(f"{key.replace('_', ' ')} {value:g}" if isinstance(value, float) else
                                         f"{key.replace('_', ' ')} {value}" for key, value in given.items())
    return text


def describe_model(config: RunConfig) -> str:
    """How tables name a run's model: "width 512" (the MLP) or "CNN 8/16 channels"."""
    if config.architecture == "cnn":
        return "CNN " + "/".join(map(str, config.channels)) + " channels"
    return "width " + "/".join(map(str, config.hidden))
