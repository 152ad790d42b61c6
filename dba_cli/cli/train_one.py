"""`dba run`: train one model and print its final test accuracy; its options are every RunConfig field.

The options are generated (options.run_parameters) from the run's fields in
settings/run.py and DBA's in dba/config.py, so a new setting is an option,
with its help, the moment it is declared there. A bad value is one line
naming the option. `--output` writes the same schema-2 document as a
results folder holds (with the subset's indices), `--json` prints it.
"""

from __future__ import annotations

import inspect
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from .console import show_notes, user_errors, warnings_shown
from .display import is_diverged, make_progress, outcome_text
from .options import DataDirOption, DeviceOption, ThreadsOption, in_panel, option_path, run_parameters, run_values, usable_path

OUT_PANEL = "Device, data and output"
RUN_RECIPE = "run"  # the recipe name a `dba run` document records (it belongs to no recipe)


def train_one(
    device: DeviceOption = "auto",
    data_dir: DataDirOption = None,
    output: Optional[Path] = None,
    as_json: bool = False,
    threads: ThreadsOption = 1,
    **settings,
) -> None:
    """Train one model (the MLP, or --architecture cnn) on MNIST or Fashion-MNIST and print its final test accuracy."""
    from ..errors import ResultsNotWritable
    from ..files import check_output_file, write_text_atomic
    from ..recipes.planned import PlannedRun
    from ..results.format import encode_result
    from ..run.document import run_document
    from ..run.runners import loaded_dataset
    from ..settings.evaluation import every_epoch
    from ..settings.run import RunConfig, run_notes
    from ..settings.validation import make_config
    from ..training.devices import resolve_device, set_threads

    with user_errors(), warnings_shown():  # one line per warning (a bypassed data cache)
        config = make_config(RunConfig, run_values(settings), where=option_path)
        if output is not None:
            output = check_output_file(output)  # before training, so a bad path never costs a finished run
        show_notes(run_notes(config))
        torch_device = resolve_device(device)
        set_threads(threads)
        dataset = loaded_dataset(config.dataset, None if data_dir is None else str(data_dir))
        planned = PlannedRun(RUN_RECIPE, config.method, "baseline", config, evaluation=every_epoch(config.epochs))
        started = time.perf_counter()
        with make_progress() as progress:
            task = progress.add_task(f"{config.method} on {config.data}", total=config.epochs, status="", unit="epochs")

            class Progress:
                def epoch_done(self, planned, record) -> None:
                    status = f"loss {record.train_loss:.4f}  test acc {record.test_accuracy:.2f}%"
                    progress.update(task, advance=1, status=status)

            document = run_document(planned, dataset, torch_device, Progress())
        if output is not None:
            try:
                write_text_atomic(output, encode_result(document, keep_indices=True), create_parents=False)
            except OSError as exc:  # checked before training; should it fail after all, the result is not lost
                sys.stdout.write(encode_result(document, keep_indices=True))
                raise ResultsNotWritable(
                    f"could not write --output {output} ({exc.strerror or exc}); the full result was printed on stdout instead."
                ) from None
        if as_json:
            sys.stdout.write(encode_result(document))
        else:
            typer.echo(
                f"{'run' if is_diverged(document) else 'final test accuracy'}: "
                f"{outcome_text(document, time.perf_counter() - started)} "
                f"({config.method}, {config.data}, {config.epochs} epochs, lr {config.lr}, seed {config.seed}, "
                f"{document['device']}, {document['threads']} thread{'s' if document['threads'] != 1 else ''})"
            )


def run_command():
    """`train_one` with an option for every run setting (see the module docstring)."""
    output_options = {
        "device": (DeviceOption, "auto"),
        "data_dir": (DataDirOption, None),
        "output": (Annotated[Optional[Path], typer.Option(
            "--output", help="Also save the full result (config, subset, per-epoch history) to this JSON file.",
            callback=usable_path)], None),
        "as_json": (Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON result on stdout.")], False),
        "threads": (ThreadsOption, 1),
    }
    parameters = run_parameters() + [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=in_panel(annotation, OUT_PANEL))
        for name, (annotation, default) in output_options.items()
    ]

    def run(**values) -> None:
        train_one(**values)

    run.__doc__ = train_one.__doc__
    run.__signature__ = inspect.Signature(parameters)
    run.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return run
