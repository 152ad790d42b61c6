"""Every command-line option that more than one command takes, declared once, and `dba run`'s options.

The five grid commands (reproduce, tune, ablate, protocol, converge) share
eleven options; `with_grid_options` adds them to a command's signature and hands
them to it as one `GridOptions`. `dba run`'s options are generated from the
RunConfig fields (settings/run.py) and DBA's DBAConfig: their names, types,
defaults and help text are declared there, once. Nothing here imports torch.
"""

from __future__ import annotations

import copy
import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, get_args, get_origin, get_type_hints

import typer

from ..dba.config import DBAConfig
from ..settings.methods import ImportanceConfig, OnlineConfig, OrderedConfig
from ..errors import ConfigError
from ..files import path_problem
from ..settings import environment
from ..settings.packing import CPU_PACKED_METHODS, DEFAULT_GPU_PACK, DEFAULT_PACK, MAX_PACK, MAX_PACKED_IMAGES
from ..settings.run import RunConfig, field_extra
from ..settings.validation import excerpt, fields_of, whole_number
from ..training.devices import DEVICE_HELP
THREADS_HELP = (
    "torch threads per run. Results are identical only at the same thread count (it is recorded in each "
    "result); for speed run several runs at once (--jobs) rather than more threads per run."
)

def usable_path(value: Path | None) -> Path | None:
    """An option's path that the system can use at all (files.path_problem), or a one-line usage error."""
    if value is not None and (problem := path_problem(value)) is not None:
        raise typer.BadParameter(problem)
    return value


DataDirOption = Annotated[
    Optional[Path],
    typer.Option(
        "--data-dir", envvar=environment.DATA_DIR, show_default=False, callback=usable_path,
        help="Folder with the data set's four IDX files, MNIST's or Fashion-MNIST's (gzip or raw; also found in its "
        "MNIST/raw, FashionMNIST/raw, raw/, mnist/ or fashion-mnist/ subfolder). Default: for MNIST the verified copy "
        "shipped with dba; for Fashion-MNIST where `dba data fetch fashion-mnist` or Debian's dataset-fashion-mnist put it.",
    ),
]
DeviceOption = Annotated[str, typer.Option("--device", help=f"Where to train: {DEVICE_HELP}.")]
MAX_THREADS = 1024
MAX_JOBS = 1024
ThreadsOption = Annotated[int, typer.Option("--threads", min=1, max=MAX_THREADS, help=THREADS_HELP)]
JobsOption = Annotated[
    Optional[int],
    typer.Option(
        "--jobs", min=1, max=MAX_JOBS, envvar=environment.JOBS, show_default=False,
        help="Runs trained at once, each in its own worker process (never more than there are runs to train). Default: the "
        "cores this process may use, divided by --threads. Each run's result file is the same as with --jobs 1. "
        "With --device cuda the runs share the GPU.",
    ),
]
PackOption = Annotated[
    Optional[int],
    typer.Option(
        "--pack", min=1, max=MAX_PACK, envvar=environment.PACK, show_default=False,
        help="Train up to this many runs of one shape together in one process, as one batched computation (MLP runs on "
        f"at most {MAX_PACKED_IMAGES:,} images of SGD, Adam, AdamW, Ordered SGD, small-loss, DBA and dba-random; the "
        "others train alone). Each packed run's result is bit-identical to the run alone on the CPU, and a pack counts "
        f"as one of --jobs. 1: no packing. Default: on a CPU packs of {DEFAULT_PACK} of the methods measured faster "
        f"packed there ({', '.join(CPU_PACKED_METHODS)}), on a GPU packs of {DEFAULT_GPU_PACK} of all; fewer so "
        "that every job gets a pack. An interrupted pack's runs start over.",
    ),
]
RayOption = Annotated[
    Optional[str],
    typer.Option(
        "--ray", envvar=environment.RAY_ADDRESS, metavar="ADDRESS", show_default=False,
        help="Train the runs as tasks on a Ray cluster: its address (HOST:PORT of the head node) or 'auto' "
        "(the cluster this machine belongs to). Needs pip install 'dba-cli\\[ray]' here and on the workers. "
        "Results are written here, by this process; --jobs then caps the runs in flight (default: the cluster's CPUs / --threads).",
    ),
]
SmokeOption = Annotated[
    bool,
    typer.Option(
        "--smoke", help="Shrink epochs and seeds to the recipe's smoke settings: a fast end-to-end check, not a result. "
        "Default results folder: results/smoke.",
    ),
]
ResultsOption = Annotated[
    Optional[Path],
    typer.Option("--results", help="Results folder. Default: results/ (results/smoke with --smoke).", show_default=False,
                 callback=usable_path),
]
OverwriteOption = Annotated[
    bool,
    typer.Option("--overwrite", help="Train every run again and replace its result file, also one made with a different "
                 "config (without it, finished runs are kept and a different config is an error)."),
]
KeepStaleOption = Annotated[
    bool,
    typer.Option(
        "--keep-stale",
        help="Keep finished runs that are stale (made by other training code, or edited by hand) instead of rerunning "
        "them. Tables still name their code versions and refuse to mix them in one row.",
    ),
]
SetOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set", metavar="KEY=VALUE", show_default=False,
        help="Override any value of the recipe, e.g. --set methods.sgd.lr=0.05 or --set training.epochs=20 "
        "(repeatable; VALUE is YAML, null removes the key). The overridden values are in every run's saved config.",
    ),
]
RecipeArgument = Annotated[
    str, typer.Argument(help="A recipe: its name (see `dba recipes list`) or the path of a YAML file.", show_default=False)
]


@dataclass(frozen=True)
class GridOptions:
    """The options every grid command takes (see `with_grid_options`)."""

    smoke: bool = False
    results: Path | None = None
    overwrite: bool = False
    keep_stale: bool = False
    overrides: list[str] | None = None
    device: str = "auto"
    threads: int = 1
    jobs: int | None = None
    pack: int | None = None
    ray: str | None = None
    data_dir: Path | None = None

    @property
    def results_dir(self) -> Path:
        """--results, else results/ (results/smoke with --smoke, so that a smoke run never mixes with real results)."""
        return self.results or Path("results/smoke" if self.smoke else "results")


GRID_ANNOTATIONS = {
    "smoke": SmokeOption, "results": ResultsOption, "overwrite": OverwriteOption, "keep_stale": KeepStaleOption,
    "overrides": SetOption, "device": DeviceOption, "threads": ThreadsOption, "jobs": JobsOption, "pack": PackOption, "ray": RayOption,
    "data_dir": DataDirOption,
}


def with_grid_options(command):
    """Give `command` every grid option; it receives them as one keyword argument, `options: GridOptions`."""
    hints = get_type_hints(command, include_extras=True)
    own = [
        parameter.replace(annotation=hints[parameter.name])
        for parameter in inspect.signature(command).parameters.values() if parameter.name != "options"
    ]
    defaults = GridOptions()
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=getattr(defaults, name), annotation=annotation)
        for name, annotation in GRID_ANNOTATIONS.items()
    ]

    @functools.wraps(command)
    def with_options(**values):
        options = GridOptions(**{name: values.pop(name) for name in GRID_ANNOTATIONS})
        return command(**values, options=options)

    parameters = [*own, *shared]
    with_options.__signature__ = inspect.Signature(parameters)
    with_options.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    del with_options.__wrapped__  # Typer reads the signature above, not the command's own
    return with_options


def in_panel(annotation, panel: str):
    """An `Annotated[type, typer.Option(...)]` shown in another `--help` panel."""
    kind, info = get_args(annotation)
    info = copy.copy(info)
    info.rich_help_panel = panel
    return Annotated[kind, info]


def split_names(text: str | None) -> list[str] | None:
    """'a, b' -> ['a', 'b']; None or empty -> None (meaning: all)."""
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    return names or None


def parse_ints(text: str, option: str) -> list[int]:
    """--hidden / --channels / --batch-sizes: comma-separated whole numbers."""
    try:
        return [whole_number(part) for part in text.split(",")]
    except ValueError as exc:
        reason = f" ({exc})" if str(exc).startswith("too large") else ""
        raise ConfigError(f"{option}: {excerpt(text)} must be comma-separated whole numbers, e.g. 512 or 512,256{reason}.") from None


# --- `dba run`: an option per RunConfig field, and per DBAConfig field ---

PANELS = {
    "data": "Data", "model": "Model", "method": "Method", "training": "Training", "seed": "Training",
    "protocol": "Protocol (diagnostics; the defaults are the spec's protocol)",
}
DBA_PANEL = "DBA (only with --method dba or dba-random)"


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def is_list(annotation: Any) -> bool:
    return get_origin(annotation) is list


def cli_type(annotation: Any) -> type:
    """The type Typer parses an option as: text for choices and lists (validated by the config), else the field's."""
    if get_origin(annotation) is Literal or is_list(annotation):
        return str
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    arguments = [arg for arg in get_args(annotation) if arg is not type(None)]
    if arguments:  # X | None
        return cli_type(arguments[0])
    return annotation if annotation in (int, float, bool) else str


def run_parameters() -> list[inspect.Parameter]:
    """`dba run`'s options for the run's fields, generated from RunConfig and DBAConfig.

    Every option defaults to "not given", so that only what the user typed
    reaches the config (a `--channels` given to an MLP is an error, not a
    silent no-op); the help states each setting's default from the field.
    """
    parameters = []
    for name, field in RunConfig.model_fields.items():
        if name in NESTED:
            continue
        default = field.get_default(call_default_factory=True)
        if is_list(field.annotation):
            default = ",".join(map(str, default))
        shown = {"lr": "", "base": " (default: sgd)"}.get(name, f" (default: {default})")
        kind = cli_type(field.annotation)
        option = typer.Option(option_name(name), help=(field.description or "") + shown, show_default=False,
                              rich_help_panel=PANELS[field_extra(field)["group"]])
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=Annotated[Optional[kind], option]))
    for owner, (settings, panel, helps) in NESTED.items():
        for name, field in fields_of(settings).items():
            default = field.get_default(call_default_factory=True)
            accepted = f": {', '.join(get_args(field.annotation))}" if get_origin(field.annotation) is Literal else ""
            shown = ("no limit" if owner == "dba" else "none") if default is None else default
            help_text = f"{helps.get(name) or field.description or name}{accepted}. (default: {shown})"
            annotation = Annotated[Optional[cli_type(field.annotation)],
                                   typer.Option(option_name(name), help=help_text, show_default=False, rich_help_panel=panel)]
            parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))
    return parameters


DBA_HELP = {  # what each of DBA's settings is, for --help (its choices and default come from DBAConfig)
    "metric": "Subset metric",
    "direction": "Whether the search lowers or raises the metric",
    "min_size": "Smallest subset kept per layer (1 is the abstract's literal reading)",
    "max_removals": "Most samples removed per layer and step",
    "reduction": "Layer gradient (mean: the mean of the kept samples' gradients; sum_over_batch: their sum / the batch size)",
    "unbiased": "Bessel's correction (m - 1) for the variance metrics",
}
# The run fields that hold a method's own settings, each a nested config with an option per setting.
NESTED = {
    "dba": (DBAConfig, DBA_PANEL, DBA_HELP),
    "ordered": (OrderedConfig, "Ordered SGD and small-loss (only with --method ordered)", {}),  # help: settings/methods.py
    "online": (OnlineConfig, "Online batch selection (only with --method online)", {}),
    "importance": (ImportanceConfig, "Importance sampling (only with --method importance)", {}),
}
RUN_FIELDS = tuple(name for name in RunConfig.model_fields if name not in NESTED)
NESTED_FIELDS = {owner: tuple(fields_of(settings)) for owner, (settings, _, _) in NESTED.items()}
DBA_FIELDS = NESTED_FIELDS["dba"]


def run_values(values: dict) -> dict:
    """`dba run`'s parsed options -> RunConfig values (lists split, DBA's settings nested, unset ones left out)."""
    config: dict[str, Any] = {}
    for name in RUN_FIELDS:
        value = values.get(name)
        if value is None:
            continue
        config[name] = parse_ints(value, option_name(name)) if is_list(RunConfig.model_fields[name].annotation) else value
    for owner, fields in NESTED_FIELDS.items():
        own = {name: values[name] for name in fields if values.get(name) is not None}
        if own:
            config[owner] = own
    return config


def option_path(loc: tuple) -> tuple:
    """A RunConfig field path as the option that gave it: ('hidden', 0) -> ('--hidden', 0); DBA's via their own options."""
    if not loc:
        return loc
    if loc[0] in NESTED_FIELDS and len(loc) > 1 and loc[1] in NESTED_FIELDS[loc[0]]:
        return (option_name(str(loc[1])), *loc[2:])
    return (option_name(str(loc[0])), *loc[1:]) if loc[0] in RUN_FIELDS else loc
