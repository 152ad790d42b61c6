"""The `dba` application: every command registered on one Typer app, and the process's entry point."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from . import grids, other_commands, verify
from .console import OneLineErrors, flags_show_no_type, stop_on_signal
from .train_one import run_command

flags_show_no_type()
app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    help="Reproduce 'Dynamic Batch Adaptation' (arXiv:2208.00815) on MNIST: DBA against SGD and Adam.",
    pretty_exceptions_enable=False,
    add_completion=False,
)


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


app.command("run")(run_command())
for command in (grids.reproduce, grids.tune, grids.ablate, grids.protocol, grids.converge):
    app.command(command.__name__)(command)
app.command("verify")(verify.verify)
app.command("table")(other_commands.table)
app.command("plot")(other_commands.plot)

recipes_app = typer.Typer(no_args_is_help=True, help="The paper's settings as YAML recipes.")
recipes_app.command("list")(other_commands.recipes_list)
recipes_app.command("show")(other_commands.recipes_show)
app.add_typer(recipes_app, name="recipes")

data_app = typer.Typer(no_args_is_help=True, help="The data sets' files: where they come from, whether they verify, fetching Fashion-MNIST.")
data_app.command("check")(other_commands.data_check)
data_app.command("fetch")(other_commands.data_fetch)
app.add_typer(data_app, name="data")

bench_app = typer.Typer(no_args_is_help=True, help="Timing benchmarks, each measured as ratios in one run.")
bench_app.command("step")(other_commands.bench_step)
bench_app.command("pipeline")(other_commands.bench_pipeline)
bench_app.command("pack")(other_commands.bench_pack)
app.add_typer(bench_app, name="bench")


def main() -> None:
    signal.signal(signal.SIGINT, stop_on_signal)
    signal.signal(signal.SIGTERM, stop_on_signal)
    app()
