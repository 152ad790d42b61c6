"""The `dba` command line: thin commands that parse options and call the library.

Help, `recipes list` and `table` answer without loading torch or numba: what
trains, loads data or benchmarks is imported inside the command that needs it
(tests/test_fast_answers.py checks this). Options of `dba run` take their
choices and defaults from the config models (RunConfig, DBAConfig), never typed
here a second time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, get_args, get_origin

import typer
from pydantic.fields import FieldInfo
from rich.markup import escape
from typer.core import TyperGroup

from .config import DEFAULT_LR, RunConfig, fields_of, run_config
from .data import DATA_DIR_ENV
from .data.subsets import SUBSET_HELP
from .dba.config import DBAConfig
from .devices import DEVICE_HELP
from .display import RichReporter, err, is_diverged, make_progress, outcome_text
from .errors import ConfigError, DBAError, ResultsNotWritable
from .io import check_output_file, json_text, write_json_atomic

def is_click_error(exc: BaseException) -> bool:
    """A usage error from the parser (unknown option, bad value, missing argument, ...).

    Recognised by what it can do, not by its class: Click's exceptions moved
    between Typer releases (the `click` package, then vendored inside Typer),
    and only their behaviour, an exit code and `format_message()`, is shared.
    """
    return isinstance(getattr(exc, "exit_code", None), int) and callable(getattr(exc, "format_message", None))


def is_help_request(exc: BaseException) -> bool:
    """Click's NoArgsIsHelpError (`dba` or `dba recipes` alone): its message is the help text itself."""
    return any(cls.__name__ == "NoArgsIsHelpError" for cls in type(exc).__mro__) and callable(getattr(exc, "show", None))


class OneLineErrors(TyperGroup):
    """Usage errors (unknown option, bad value, missing argument) as one line, like every other dba error.

    Typer draws these in a multi-line box; a reproducer that is scripted and
    logged is better served by `error: <what> (see 'dba CMD --help')`, exit 2.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            err.print("Aborted.")
            sys.exit(1)
        except Exception as exc:
            if is_help_request(exc):
                exc.show()
                sys.exit(exc.exit_code)
            if not is_click_error(exc):
                raise
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = " ".join(exc.format_message().split())
            err.print(f"error: {message}{hint}", highlight=False, soft_wrap=True, markup=False)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    help="Reproduce 'Dynamic Batch Adaptation' (arXiv:2208.00815) on MNIST: DBA against SGD and Adam.",
    pretty_exceptions_enable=False,
    add_completion=False,
)

DataDirOption = Annotated[
    Optional[Path],
    typer.Option(
        "--data-dir",
        envvar=DATA_DIR_ENV,
        help="Folder with the data set's four IDX files (gzip or raw; also found in its MNIST/raw, FashionMNIST/raw, "
        "raw/, mnist/ or fashion-mnist/ subfolder). Default: for MNIST the verified copy shipped with dba; for "
        "Fashion-MNIST where `dba data fetch fashion-mnist` or Debian's dataset-fashion-mnist package put it.",
        show_default=False,
    ),
]
DeviceOption = Annotated[str, typer.Option("--device", help=f"Where to train: {DEVICE_HELP}.")]
THREADS_HELP = (
    "torch threads per run. Results are identical only at the same thread count (it is recorded in each "
    "result); for speed run several runs at once rather than more threads per run."
)
ThreadsOption = Annotated[int, typer.Option("--threads", min=1, help=THREADS_HELP)]
JobsOption = Annotated[
    Optional[int],
    typer.Option(
        "--jobs", min=1, envvar="DBA_JOBS",
        help="Runs trained at once, each in its own worker process. Default: the cores this process may use, "
        "divided by --threads. Each run's result file is the same as with --jobs 1. With --device cuda the runs share the GPU.",
        show_default=False,
    ),
]
RayOption = Annotated[
    Optional[str],
    typer.Option(
        "--ray", envvar="DBA_RAY_ADDRESS", metavar="ADDRESS",
        help="Train the runs as tasks on a Ray cluster: its address (HOST:PORT of the head node) or 'auto' "
        "(the cluster this machine belongs to). Needs pip install 'dba-cli[ray]' here and on the workers. "
        "Results are written here, by this process; --jobs then caps the runs in flight (default: the cluster's CPUs / --threads).",
        show_default=False,
    ),
]


@contextmanager
def user_errors() -> Iterator[None]:
    """Never a traceback: user-fixable errors exit 2, Ctrl-C 130, a bug 1 with its traceback saved to a file."""
    try:
        yield
    except DBAError as exc:
        message = " ".join(str(exc).splitlines())  # one line, whatever a file's contents put in it
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        err.print("[yellow]Interrupted.[/]")
        raise typer.Exit(code=130) from None
    except BrokenPipeError:  # `dba recipes list | head`: the reader has gone, nothing is wrong with dba
        silence_stdout()
        raise typer.Exit(code=1) from None
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if type(exc).__name__ == "RunsFailed":  # reproduce.RunsFailed (not imported here: it would load torch)
            err.print(f"[bold red]failed:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from None
        from .devices import out_of_memory_message

        message = out_of_memory_message(exc)
        if message is not None:
            err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        report = save_crash_report(exc)
        err.print(
            f"[bold red]internal error[/] (a bug in dba, not in your input): {type(exc).__name__}: {exc}. "
            f"Traceback saved to {report}; please attach it to a bug report. Finished runs are kept; "
            "rerunning the same command continues.",
            highlight=False, soft_wrap=True,
        )
        raise typer.Exit(code=1) from None


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's last flush at exit does not hit the closed pipe again."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. under a test runner)
        pass


def save_crash_report(exc: BaseException) -> str:
    """Write the traceback to a file (the user sees one line, a maintainer gets everything)."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    try:
        handle, path = tempfile.mkstemp(prefix="dba-crash-", suffix=".log")
        with open(handle, "w", encoding="utf-8") as out:
            out.write(" ".join(sys.argv) + "\n\n" + text)
        return path
    except OSError:
        return "(could not be saved)"


def show_notes(notes: list[str]) -> None:
    """Each distinct note once, before anything trains."""
    for note in dict.fromkeys(notes):
        err.print(f"[cyan]note:[/] {note}", highlight=False, soft_wrap=True)


def split_names(text: str | None) -> list[str] | None:
    """'a, b' -> ['a', 'b']; None or empty -> None (meaning: all)."""
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    return names or None


@contextmanager
def warnings_shown() -> Iterator[None]:
    """Show library warnings (e.g. a skipped damaged result file) as one yellow line each."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                err.print(f"[yellow]warning:[/] {escape(str(warning.message))}", highlight=False)


def parse_hidden(text: str, name: str = "hidden") -> tuple[int, ...]:
    """--hidden / --channels: comma-separated integers."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"{name}: {text!r} must be comma-separated integers, e.g. 512 or 512,256.") from None
    return widths


def show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"dba {version('dba-cli')}")
        raise typer.Exit()


@app.callback()
def cli(
    version: Annotated[
        bool, typer.Option("--version", callback=show_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Reproduce 'Dynamic Batch Adaptation' (arXiv:2208.00815) on MNIST: DBA against SGD and Adam."""


DBA_PANEL = "DBA (only with --method dba)"
OUT_PANEL = "Device, data and output"
RUN_FIELDS = RunConfig.model_fields
DBA_FIELDS = fields_of(DBAConfig)


def default(field: FieldInfo) -> Any:
    """A config field's default value (a factory's product for lists), as an option's default."""
    return field.get_default(call_default_factory=True)


def choices(field: FieldInfo) -> str:
    """'a, b, c': the values a Literal field accepts."""
    annotation = field.annotation
    assert get_origin(annotation) is Literal, f"{annotation} is not a Literal"
    return ", ".join(get_args(annotation))


def comma_list(values: list) -> str:
    """[512, 256] -> '512,256', as --hidden takes it."""
    return ",".join(str(value) for value in values)


def dba_help(name: str, what: str, note: str = "", none: str = "") -> str:
    """An option of DBA's `name` setting: `what` it is, its choices and default, the last two from DBAConfig.

    These options default to "not given" (so that they are an error without
    --method dba), so the help states DBAConfig's default itself.
    """
    field = DBA_FIELDS[name]
    accepted = f": {choices(field)}" if get_origin(field.annotation) is Literal else ""
    value = default(field)
    return f"{what}{accepted}. {note + ' ' if note else ''}(default: {none if value is None else value})"


@app.command()
def run(
    dataset: Annotated[
        str, typer.Option(help=f"Data set: {choices(RUN_FIELDS['dataset'])} (Fashion-MNIST: see `dba data fetch`).")
    ] = default(RUN_FIELDS["dataset"]),
    data: Annotated[str, typer.Option(help=f"Training subset: {SUBSET_HELP}.")] = default(RUN_FIELDS["data"]),
    method: Annotated[str, typer.Option(help=f"Training method: {choices(RUN_FIELDS['method'])}.")] = default(RUN_FIELDS["method"]),
    epochs: Annotated[int, typer.Option(help="Passes over the training subset.")] = default(RUN_FIELDS["epochs"]),
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = default(RUN_FIELDS["batch_size"]),
    lr: Annotated[
        Optional[float],
        typer.Option(
            help=f"Learning rate. Default by optimizer: {', '.join(f'{k} {v}' for k, v in DEFAULT_LR.items())}.",
            show_default=False,
        ),
    ] = None,
    momentum: Annotated[float, typer.Option(help="SGD momentum (0 = plain SGD; ignored by Adam).")] = default(RUN_FIELDS["momentum"]),
    weight_decay: Annotated[float, typer.Option(help="L2 weight decay.")] = default(RUN_FIELDS["weight_decay"]),
    architecture: Annotated[
        str, typer.Option(help=f"Model: {choices(RUN_FIELDS['architecture'])} (mlp uses --hidden, cnn uses --channels).")
    ] = default(RUN_FIELDS["architecture"]),
    hidden: Annotated[
        str, typer.Option(help="MLP: hidden layer widths, comma-separated: 512 or 512,256.")
    ] = comma_list(default(RUN_FIELDS["hidden"])),
    channels: Annotated[
        str, typer.Option(help="CNN: output channels of its two 5x5 convolutions, comma-separated.")
    ] = comma_list(default(RUN_FIELDS["channels"])),
    activation: Annotated[
        str, typer.Option(help=f"Hidden activation: {choices(RUN_FIELDS['activation'])}.")
    ] = default(RUN_FIELDS["activation"]),
    seed: Annotated[int, typer.Option(help="Seed for the subset, the initial weights and the batch order.")] = default(RUN_FIELDS["seed"]),
    base: Annotated[
        Optional[str],
        typer.Option(
            help=f"Optimizer that applies DBA's gradient: {choices(RUN_FIELDS['base'])}. (default: {default(RUN_FIELDS['base'])})",
            rich_help_panel=DBA_PANEL, show_default=False,
        ),
    ] = None,
    metric: Annotated[
        Optional[str], typer.Option(help=dba_help("metric", "Subset metric"), rich_help_panel=DBA_PANEL, show_default=False)
    ] = None,
    direction: Annotated[
        Optional[str],
        typer.Option(help=dba_help("direction", "Whether the search lowers or raises the metric"), rich_help_panel=DBA_PANEL, show_default=False),
    ] = None,
    min_size: Annotated[
        Optional[int],
        typer.Option(help=dba_help("min_size", "Smallest subset kept per layer (1 is the abstract's literal reading)"), rich_help_panel=DBA_PANEL, show_default=False),
    ] = None,
    max_removals: Annotated[
        Optional[int],
        typer.Option(help=dba_help("max_removals", "Most samples removed per layer and step", none="no limit"), rich_help_panel=DBA_PANEL, show_default=False),
    ] = None,
    reduction: Annotated[
        Optional[str],
        typer.Option(
            help=dba_help("reduction", "Layer gradient", "mean: the mean of the kept samples' gradients; sum_over_batch: their sum / the batch size."),
            rich_help_panel=DBA_PANEL, show_default=False,
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help=f"Where to train: {DEVICE_HELP}.", rich_help_panel=OUT_PANEL)] = "auto",
    data_dir: Annotated[
        Optional[Path],
        typer.Option("--data-dir", envvar=DATA_DIR_ENV, rich_help_panel=OUT_PANEL, show_default=False,
                     help="Folder with the four MNIST IDX files (gzip or raw, or torchvision's MNIST/raw layout). Default: the verified copy shipped with dba."),
    ] = None,
    output: Annotated[
        Optional[Path], typer.Option(help="Also save the full result (config, subset, per-epoch history) to this JSON file.", rich_help_panel=OUT_PANEL)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON result on stdout.", rich_help_panel=OUT_PANEL)] = False,
    threads: Annotated[int, typer.Option("--threads", min=1, help=THREADS_HELP, rich_help_panel=OUT_PANEL)] = 1,
) -> None:
    """Train one model (the MLP, or --architecture cnn) on MNIST or Fashion-MNIST and print its final test accuracy."""
    import time

    from .data.mnist import load_mnist
    from .devices import resolve_device, set_threads
    from .train import run_notes, train

    with user_errors():
        values = dict(
            dataset=dataset, data=data, method=method, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
            weight_decay=weight_decay, architecture=architecture, hidden=parse_hidden(hidden),
            channels=parse_hidden(channels, "channels"), activation=activation, seed=seed,
        )
        dba = {key: value for key, value in dict(
            metric=metric, direction=direction, min_size=min_size, max_removals=max_removals, reduction=reduction
        ).items() if value is not None}
        if base is not None:
            values["base"] = base
        if dba:
            values["dba"] = dba
        config = run_config(**values)
        if output is not None:
            output = check_output_file(output)  # before training, so a bad path never costs a finished run
        show_notes(run_notes(config))
        torch_device = resolve_device(device)
        set_threads(threads)
        mnist = load_mnist(data_dir, dataset=config.dataset)
        started = time.perf_counter()
        with make_progress() as progress:
            task = progress.add_task(f"{config.method} on {config.data}", total=config.epochs, status="", unit="epochs")

            def on_epoch(record) -> None:
                status = f"loss {record.train_loss:.4f}  test acc {record.test_accuracy:.2f}%"
                progress.update(task, advance=1, status=status)

            result = train(config, mnist, torch_device, on_epoch=on_epoch)
        from .code_version import code_version

        summary = {**result.to_dict(), "code": code_version()}
        if output is not None:
            save_output(output, summary)
        if as_json:
            summary.pop("subset_indices")
            sys.stdout.write(json.dumps(summary) + "\n")
        else:
            typer.echo(
                f"{'run' if is_diverged(summary) else 'final test accuracy'}: "
                f"{outcome_text(summary, time.perf_counter() - started)} "
                f"({config.method}, {config.data}, {config.epochs} epochs, lr {config.lr}, seed {config.seed}, "
                f"{result.device}, {result.threads} thread{'s' if result.threads != 1 else ''})"
            )


def save_output(path: Path, summary: dict) -> None:
    """Write --output; should it fail after all (checked before training), the result goes to stdout, not lost."""
    try:
        write_json_atomic(path, summary, create_parents=False)
    except OSError as exc:
        sys.stdout.write(json_text(summary))
        raise ResultsNotWritable(
            f"could not write --output {path} ({exc.strerror or exc}); the full result was printed on stdout instead."
        ) from None


recipes_app = typer.Typer(no_args_is_help=True, help="The paper's settings as YAML recipes.")
app.add_typer(recipes_app, name="recipes")


@recipes_app.command("list")
def recipes_list() -> None:
    """List the packaged recipes with their data set and subset, model, methods and seeds."""
    from .recipes import list_recipes, load_recipe, missing_recipes_folder, recipes_dir

    with user_errors():
        if not recipes_dir().is_dir():
            raise missing_recipes_folder()
        for name in list_recipes():
            recipe = load_recipe(name)
            typer.echo(
                f"{name:22} {recipe.dataset:13} data {recipe.data:13} {recipe.model.architecture}  "
                f"seeds {recipe.seeds}  epochs {recipe.training.epochs:4}  "
                f"methods {', '.join(recipe.methods)}"
            )


@recipes_app.command("show")
def recipes_show(
    name: Annotated[str, typer.Argument(help="A recipe name (see `dba recipes list`) or a path to a YAML file.")],
) -> None:
    """Print a recipe file (with its comments) after checking that it is valid."""
    from .recipes import find_recipe, load_recipe

    with user_errors():
        load_recipe(name)
        typer.echo(find_recipe(name).read_text(encoding="utf-8"), nl=False)


OverwriteOption = Annotated[bool, typer.Option(help="Replace result files that were made with a different config.")]
KeepStaleOption = Annotated[
    bool,
    typer.Option(
        help="Keep finished runs that are stale (made by other training code, edited by hand, or from a schema-1 file) "
        "instead of rerunning them. Tables still name their code versions and refuse to mix them in one row."
    ),
]


@app.command()
def reproduce(
    recipe: Annotated[str, typer.Argument(help="Recipe name (mnist-full, mnist-1pct, mnist-10-per-class) or path to a YAML file.")],
    seeds: Annotated[Optional[int], typer.Option(help="Number of seeds (0..N-1). Default: the recipe's.", show_default=False)] = None,
    methods: Annotated[
        Optional[str], typer.Option(help="Comma-separated method names of the recipe to run. Default: all.", show_default=False)
    ] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override the recipe's epochs.", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Override the recipe's batch size.", show_default=False)] = None,
    smoke: Annotated[
        bool, typer.Option(help="Shrink epochs and seeds to the recipe's smoke settings: a fast end-to-end check, not a result. Default results folder: results/smoke.")
    ] = False,
    results: Annotated[Optional[Path], typer.Option(help="Results folder. Default: results/ (results/smoke with --smoke).", show_default=False)] = None,
    overwrite: OverwriteOption = False,
    keep_stale: KeepStaleOption = False,
    device: DeviceOption = "auto",
    threads: ThreadsOption = 1,
    jobs: JobsOption = None,
    ray: RayOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run every method x seed of a recipe; finished runs are kept and skipped on a rerun.

    A run in progress saves a checkpoint after an epoch once a second has passed since the last (DBA_CHECKPOINT_SECONDS;
    0 = every epoch), so after Ctrl-C, SIGTERM or kill -9 a rerun resumes it. Two reproduce processes
    may share a results folder: each run is locked, a run the other process is training is left to it.
    """
    from .recipes import load_recipe
    from .reproduce import reproduce as run_recipe
    from .train import run_notes

    with user_errors():
        loaded = load_recipe(recipe)
        runs = loaded.runs(seeds=seeds, methods=split_names(methods), smoke=smoke, epochs=epochs, batch_size=batch_size)
        results_dir = results_folder(results, smoke)
        show_notes([note for planned in runs for note in run_notes(planned.config)])
        plan = run_grid(
            "", lambda mnist, dev, rep, runner: run_recipe(runs, mnist, dev, results_dir, overwrite, rep, keep_stale=keep_stale, runner=runner),
            device, data_dir, results_dir, threads, jobs, ray, loaded.dataset,
        )
        busy = f", {len(plan.busy)} left to another dba process (rerun when it ends)" if plan.busy else ""
        typer.echo(
            f"{loaded.name}: {len(plan.done)} run(s) done, {len(plan.skipped)} already finished{busy}; "
            f"results in {results_dir}/{loaded.name}/"
        )


def results_folder(results: Path | None, smoke: bool) -> Path:
    """--results, else results/ (results/smoke with --smoke, so that a smoke run never mixes with real results)."""
    return results or Path("results/smoke" if smoke else "results")


def run_grid(
    label: str, runs_fn, device: str, data_dir: Path | None, results_dir: Path, threads: int,
    jobs: int | None = None, ray: str | None = None, dataset: str = "mnist",
):
    """Shared by reproduce/tune/ablate/protocol: load data, pick the runner, run with progress, turn Ctrl-C into a resumable stop.

    `runs_fn(mnist, device, reporter, runner)` does the work; the runner is
    this process (--jobs 1), a local worker pool, or a Ray cluster (parallel.py).
    """
    from .data.mnist import load_mnist
    from .devices import resolve_device, set_threads

    torch_device = resolve_device(device)
    set_threads(threads)
    mnist = load_mnist(data_dir, dataset=dataset)
    runner = make_runner(jobs, ray, threads, torch_device, mnist)
    try:
        try:
            with make_progress() as progress:
                outcome = runs_fn(mnist, torch_device, RichReporter(progress, runner.slots), runner)
        except BaseException:
            runner.stop()  # at once: no worker outlives an interrupted or failed command
            raise
        runner.shutdown()
        return outcome
    except KeyboardInterrupt:
        err.print(
            f"[yellow]Interrupted.[/] Finished {label + ' ' if label else ''}runs are kept in {results_dir}; "
            "runs in progress left no result file. Rerun the same command to continue (they resume from their last checkpoints)."
        )
        raise typer.Exit(code=130) from None


def make_runner(jobs: int | None, ray: str | None, threads: int, device, mnist):
    """--ray: a Ray cluster; else --jobs local workers (default: cores / threads), or this process for one job."""
    from .parallel import InProcessRunner, PoolRunner, default_jobs, oversubscription_note

    if ray:
        from .ray_runner import RayRunner

        return RayRunner(ray, threads, device, jobs)
    jobs = jobs or default_jobs(threads)
    note = oversubscription_note(jobs, threads)
    if note:
        err.print(f"[cyan]note:[/] {note}", highlight=False)
    if jobs == 1:
        return InProcessRunner(mnist, device)
    return PoolRunner(jobs, threads, device, mnist.source)


RecipeArgument = Annotated[str, typer.Argument(help="Recipe name (mnist-1pct, mnist-10-per-class, ...) or path to a YAML file.")]
SmokeOption = Annotated[
    bool, typer.Option(help="Recipe's smoke epochs and one seed: a fast end-to-end check, not a result. Default results folder: results/smoke.")
]
ResultsOption = Annotated[Optional[Path], typer.Option(help="Results folder. Default: results/ (results/smoke with --smoke).", show_default=False)]


@app.command()
def tune(
    recipe: RecipeArgument,
    smoke: SmokeOption = False,
    results: ResultsOption = None,
    overwrite: OverwriteOption = False,
    keep_stale: KeepStaleOption = False,
    device: DeviceOption = "auto",
    threads: ThreadsOption = 1,
    jobs: JobsOption = None,
    ray: RayOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Choose each method's setting on a validation split (same lr grid for all), then rerun it on the recipe's seeds.

    Writes RESULTS/tune/RECIPE.md (the choice and every candidate), RESULTS/tune/RECIPE/chosen.yaml
    (paste into the recipe) and the reruns on the recipe's seeds as sgd-tuned, adam-tuned, dba-tuned: in RESULTS/RECIPE/,
    shared with `dba reproduce`, where the recipe already holds that setting, else in RESULTS/tune/RECIPE/reruns/.
    Finished candidates are kept: rerunning continues where it stopped.
    """
    from .recipes import load_recipe
    from .tuning import describe, tune as run_tune

    with user_errors():
        loaded = load_recipe(recipe)
        results_dir = results_folder(results, smoke)
        command = f"dba tune {recipe}" + (" --smoke" if smoke else "")
        outcome = run_grid(
            "tuning", lambda mnist, dev, rep, runner: run_tune(loaded, mnist, dev, results_dir, command, smoke, overwrite, rep, keep_stale, runner),
            device, data_dir, results_dir, threads, jobs, ray, loaded.dataset,
        )
        for family, entry in outcome.chosen.items():
            typer.echo(f"{family}-tuned: {describe(entry.candidate.spec)} (validation {entry.val_mean:.2f}%)")
        for note in outcome.differences:
            err.print(f"[yellow]note:[/] {note}; paste {outcome.chosen_path} into the recipe's methods to make them the recipe's.")
        typer.echo(f"wrote {outcome.report_path} and {outcome.chosen_path}")


@app.command()
def ablate(
    recipe: RecipeArgument,
    seeds: Annotated[Optional[int], typer.Option(help="Seeds per variant (0..N-1). Default: the recipe's ablation.seeds.", show_default=False)] = None,
    smoke: SmokeOption = False,
    results: ResultsOption = None,
    overwrite: OverwriteOption = False,
    keep_stale: KeepStaleOption = False,
    device: DeviceOption = "auto",
    threads: ThreadsOption = 1,
    jobs: JobsOption = None,
    ray: RayOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Train every combination of the recipe's ablation grid (metric, direction, min_size, reduction, base).

    Results go to RESULTS/ablation/RECIPE/; RESULTS/ablation.md ranks the variants of every
    ablated recipe by validation accuracy. Finished variants are kept and skipped on a rerun.
    """
    from .ablation import ablation_runs, write_ablation_table
    from .recipes import load_recipe
    from .reproduce import reproduce as run_all

    with user_errors():
        loaded = load_recipe(recipe)
        results_dir = results_folder(results, smoke)
        runs = ablation_runs(loaded, smoke, seeds)
        plan = run_grid(
            "ablation", lambda mnist, dev, rep, runner: run_all(runs, mnist, dev, results_dir, overwrite, rep, wait_for_busy=True, keep_stale=keep_stale, runner=runner),
            device, data_dir, results_dir, threads, jobs, ray, loaded.dataset,
        )
        with warnings_shown():
            path, _ = write_ablation_table(results_dir)
        typer.echo(f"{loaded.name}: {len(plan.done)} ablation run(s) done, {len(plan.skipped)} already finished; wrote {path}")


@app.command()
def protocol(
    recipe: RecipeArgument,
    smoke: SmokeOption = False,
    results: ResultsOption = None,
    overwrite: OverwriteOption = False,
    keep_stale: KeepStaleOption = False,
    device: DeviceOption = "auto",
    threads: ThreadsOption = 1,
    jobs: JobsOption = None,
    ray: RayOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Diagnostics: how a fresh subset per epoch, a best-on-test epoch, a uniform draw or another width move the tuned methods.

    Needs the recipe's tuned methods (see `dba tune`). Runs go to RESULTS/protocol/RECIPE/;
    RESULTS/protocol.md shows every recipe with protocol runs, our protocol's row marked as the only result.
    """
    from .protocol import default_runs, protocol_runs, recipes_for_table, write_protocol_table
    from .recipes import load_recipe
    from .reproduce import reproduce as run_all

    with user_errors():
        loaded = load_recipe(recipe)
        results_dir = results_folder(results, smoke)
        runs = default_runs(loaded, smoke) + protocol_runs(loaded, smoke)
        plan = run_grid(
            "protocol", lambda mnist, dev, rep, runner: run_all(runs, mnist, dev, results_dir, overwrite, rep, wait_for_busy=True, keep_stale=keep_stale, runner=runner),
            device, data_dir, results_dir, threads, jobs, ray, loaded.dataset,
        )
        with warnings_shown():
            path, _ = write_protocol_table(results_dir, recipes_for_table(results_dir, loaded, smoke), smoke)
        typer.echo(f"{loaded.name}: {len(plan.done)} run(s) done, {len(plan.skipped)} already finished; wrote {path}")


@app.command()
def converge(
    recipe: RecipeArgument,
    smoke: SmokeOption = False,
    results: ResultsOption = None,
    overwrite: OverwriteOption = False,
    keep_stale: KeepStaleOption = False,
    device: DeviceOption = "auto",
    threads: ThreadsOption = 1,
    jobs: JobsOption = None,
    ray: RayOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Time to target: tune every method for steps to the recipe's validation targets, then time them on the reported seeds.

    Needs the recipe's `convergence:` section (targets, epoch budget, grids; see recipes/mnist-full.yaml).

    Every family (SGD, SGD with momentum, Adam, DBA over each base and selection setting) gets the same number of learning rates; candidates train on tuning seeds and are ranked by median steps to the last target.

    Writes RESULTS/convergence/RECIPE.md (the table, and DBA minus the fastest baseline in steps and seconds with 95% intervals) and RESULTS/convergence/RECIPE-tuning.md (every candidate); `dba plot` draws the figure. Finished runs are kept: rerunning continues where it stopped.
    """
    from .convergence import converge as run_converge
    from .convergence import convergence_spec
    from .recipes import load_recipe
    from .tuning import describe

    with user_errors():
        loaded = load_recipe(recipe)
        convergence_spec(loaded)  # before any data is loaded: a recipe without the section is one line
        results_dir = results_folder(results, smoke)
        command = f"dba converge {recipe}" + (" --smoke" if smoke else "")
        with warnings_shown():
            outcome = run_grid(
                "convergence",
                lambda mnist, dev, rep, runner: run_converge(loaded, mnist, dev, results_dir, command, smoke, overwrite, rep, keep_stale, runner),
                device, data_dir, results_dir, threads, jobs, ray, loaded.dataset,
            )
        for family, candidate in outcome.chosen.items():
            typer.echo(f"{family}-tuned: {describe(candidate.spec)}")
        typer.echo(f"wrote {outcome.report_path} and {outcome.tuning_path}")


@app.command()
def table(
    results: Annotated[Path, typer.Option(help="Results folder to read (and to write paper-tables.md/.csv into).")] = Path("results"),
    recipes: Annotated[
        Optional[str], typer.Option(help="Comma-separated recipe names to include. Default: every recipe with results.", show_default=False)
    ] = None,
    mixed_versions: Annotated[
        bool, typer.Option(help="Tabulate rows whose seeds were made by different versions of the training code (refused by default; the tables then list them).")
    ] = False,
) -> None:
    """Write paper-tables.md and paper-tables.csv from the result files, claims beside ours, and the code versions they come from."""
    from .tables import write_tables

    with user_errors():
        with warnings_shown():
            md_path, csv_path, markdown = write_tables(results, split_names(recipes), mixed_versions)
        typer.echo(markdown)
        err.print(f"wrote {md_path} and {csv_path}")


@app.command()
def plot(
    results: Annotated[Path, typer.Option(help="Results folder to read.")] = Path("results"),
    out: Annotated[Optional[Path], typer.Option(help="Where to write the figures (PDF and 300 dpi PNG). Default: RESULTS/figures.", show_default=False)] = None,
    recipes: Annotated[
        Optional[str], typer.Option(help="Comma-separated recipe names. Default: every recipe with results.", show_default=False)
    ] = None,
) -> None:
    """Write figures (PDF and PNG): test accuracy against epoch, one panel per method family, and DBA's kept subset sizes per layer."""
    from .plots import make_figures  # matplotlib is imported only for this command

    with user_errors():
        with warnings_shown():
            paths = make_figures(results, out, split_names(recipes))
        if not paths:
            raise ConfigError(f"no result files under {results}. Fix: run `dba reproduce RECIPE` first.")
        for path in paths:
            typer.echo(f"wrote {path}")


data_app = typer.Typer(no_args_is_help=True, help="The data sets' files: where they come from, whether they verify, fetching Fashion-MNIST.")
app.add_typer(data_app, name="data")
DatasetArgument = Annotated[str, typer.Argument(help=f"Data set: {choices(RUN_FIELDS['dataset'])}.")]


@data_app.command("check")
def data_check(dataset: DatasetArgument = "mnist", data_dir: DataDirOption = None) -> None:
    """Load a data set, verify all four files by content checksum, and report the load time."""
    import time

    from .data.mnist import DATASET_SPECS, default_cache_dir, load_mnist

    with user_errors():
        check_dataset_name(dataset)
        cache = default_cache_dir()
        started = time.perf_counter()
        mnist = load_mnist(data_dir, dataset=dataset)
        seconds = time.perf_counter() - started
        typer.echo(f"source: {mnist.source}")
        typer.echo(f"cache:  {cache / DATASET_SPECS[dataset].name}")
        typer.echo(
            f"verified: {len(mnist.train_labels)} training and {len(mnist.test_labels)} test images "
            f"(MD5 of uncompressed content) in {seconds:.3f}s"
        )


def check_dataset_name(name: str) -> None:
    """A data set argument dba knows, or a ConfigError listing them."""
    from .data import DATASETS

    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}. Fix: use one of {', '.join(DATASETS)}.")


@data_app.command("fetch")
def data_fetch(
    dataset: DatasetArgument,
    to: Annotated[
        Optional[Path],
        typer.Option(help="Folder to install into (as FOLDER/FashionMNIST/raw; then pass --data-dir FOLDER). "
                     "Default: the cache's datasets/ folder, where dba looks without --data-dir.", show_default=False),
    ] = None,
    mirror: Annotated[
        Optional[list[str]],
        typer.Option(help="URL prefix to download from instead of torchvision's mirrors (repeatable; file:// works).", show_default=False),
    ] = None,
) -> None:
    """Download Fashion-MNIST through torchvision, verify every file by content checksum, and install it.

    Without internet: Debian's package dataset-fashion-mnist (`apt install dataset-fashion-mnist`) installs the same
    files in /usr/share/datasets/fashion-mnist, where dba finds them; or pass --data-dir to any copy.
    """
    from .fetch import fetch_dataset

    with user_errors():
        check_dataset_name(dataset)
        with make_progress() as progress:
            task = progress.add_task(f"fetch {dataset}", total=4, status="", unit="files")
            folder = fetch_dataset(dataset, to, mirror or None, on_file=lambda name: progress.advance(task))
        typer.echo(f"{dataset}: four files verified in {folder}")
        if to is not None:
            typer.echo(f"use it with --data-dir {to} (or set {DATA_DIR_ENV})")


bench_app = typer.Typer(no_args_is_help=True, help="Timing benchmarks, each measured as ratios in one run.")
app.add_typer(bench_app, name="bench")


@bench_app.command("pipeline")
def bench_pipeline(
    repeats: Annotated[int, typer.Option(min=1, help="Rounds; each round times one epoch of every pipeline.")] = 3,
    batch_size: Annotated[int, typer.Option(min=1, help="Mini-batch size.")] = 64,
    hidden: Annotated[int, typer.Option(min=1, help="Hidden width of the 784-H-10 MLP.")] = 512,
    num_workers: Annotated[int, typer.Option(min=0, help="DataLoader worker processes for the torchvision pipelines.")] = 0,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = 1,
    data_dir: DataDirOption = None,
) -> None:
    """One epoch of full-MNIST SGD: our tensor pipeline against torchvision + ToTensor + DataLoader."""
    from .data.mnist import load_mnist
    from .devices import resolve_device, set_threads
    from .pipeline_bench import compare_pipelines

    with user_errors():
        torch_device = resolve_device(device)
        set_threads(threads)
        mnist = load_mnist(data_dir)
        with make_progress() as progress:
            task = progress.add_task("benchmark", total=repeats, status="", unit="rounds")
            timing = compare_pipelines(
                mnist, torch_device, repeats=repeats, batch_size=batch_size, hidden=hidden,
                num_workers=num_workers, data_dir=data_dir, on_round=lambda: progress.advance(task),
            )
        typer.echo(timing.table())


@bench_app.command("step")
def bench_step(
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "64,256",
    architecture: Annotated[
        str, typer.Option(help=f"Model: {choices(RUN_FIELDS['architecture'])} (the CNN's convolutions take DBA's generic torch.func path).")
    ] = "mlp",
    hidden: Annotated[int, typer.Option(min=1, help="Hidden width of the 784-H-10 MLP.")] = 512,
    channels: Annotated[
        str, typer.Option(help="CNN: output channels of its two 5x5 convolutions, comma-separated.")
    ] = comma_list(default(RUN_FIELDS["channels"])),
    repeats: Annotated[int, typer.Option(min=1, help="Timed steps per variant and batch size.")] = 100,
    naive_repeats: Annotated[int, typer.Option(min=0, help="Timed steps of the (slow) naive DBA; 0 leaves it out.")] = 2,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = 1,
    data_dir: DataDirOption = None,
) -> None:
    """Median training-step time: plain SGD, per-sample Gram only, full DBA, naive DBA; ratios to SGD."""
    from .data.mnist import load_mnist, to_features
    from .dba.bench import benchmark_steps, format_table
    from .devices import resolve_device, set_threads

    with user_errors():
        sizes = tuple(int(part) for part in batch_sizes.split(","))
        model = run_config(architecture=architecture, channels=parse_hidden(channels, "channels"))  # validates both
        torch_device = resolve_device(device)
        set_threads(threads)
        mnist = load_mnist(data_dir)
        inputs, targets = to_features(mnist.train_images), mnist.train_labels
        with make_progress() as progress:
            task = progress.add_task("benchmark", total=repeats * len(sizes), status="", unit="timed steps")
            rows = benchmark_steps(
                batch_sizes=sizes, hidden=hidden, repeats=repeats, naive_repeats=naive_repeats,
                inputs=inputs, targets=targets, device=torch_device,
                on_repeat=lambda batch, repeat: progress.advance(task),
                architecture=model.architecture, channels=tuple(model.channels),
            )
        typer.echo(format_table(rows))


def stop_on_signal(signum, frame) -> None:
    """SIGTERM (and SIGINT, even where a shell started us with it ignored) stop like Ctrl-C."""
    raise KeyboardInterrupt


def main() -> None:
    import signal

    signal.signal(signal.SIGINT, stop_on_signal)
    signal.signal(signal.SIGTERM, stop_on_signal)
    app()
