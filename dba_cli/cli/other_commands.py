"""The commands that train nothing: recipes, tables and figures, the data sets' files, and the benchmarks.

`recipes list`, `table` and every `--help` answer without loading torch (tests/test_fast_answers.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .console import user_errors, warnings_shown
from .display import err, make_progress
from .options import DataDirOption, DeviceOption, ThreadsOption, parse_ints, split_names, usable_path

# --- recipes ---


def recipes_list() -> None:
    """List the packaged recipes with their data set and subset, model, methods and seeds."""
    from ..recipes.loading import list_recipes, load_recipe, missing_recipes_folder, recipes_dir

    with user_errors():
        if not recipes_dir().is_dir():
            raise missing_recipes_folder()
        for name in list_recipes():
            recipe = load_recipe(name)
            run = recipe.defaults
            typer.echo(
                f"{name:22} {run.dataset:13} data {run.data:13} {run.architecture}  "
                f"seeds {recipe.seeds}  epochs {run.epochs:4}  "
                f"methods {', '.join(recipe.methods)}"
            )


def recipes_show(
    name: Annotated[str, typer.Argument(help="A recipe name (see `dba recipes list`) or a path to a YAML file.")],
    resolved: Annotated[
        bool, typer.Option(help="Print the recipe as dba reads it: with what it extends merged in (without comments).")
    ] = False,
) -> None:
    """Print a recipe file (with its comments) after checking that it is valid."""
    import yaml

    from ..files import read_bounded
    from ..recipes.loading import find_recipe, load_recipe, read_document
    from ..recipes.safe_yaml import MAX_BYTES

    with user_errors():
        load_recipe(name)  # valid, and read within bounds once already
        if resolved:
            typer.echo(yaml.safe_dump(read_document(name)[0], sort_keys=False), nl=False)
        else:
            typer.echo(read_bounded(find_recipe(name), MAX_BYTES).decode("utf-8"), nl=False)


# --- tables and figures ---


def table(
    results: Annotated[Path, typer.Option(help="Results folder to read (and to write the reports into).", callback=usable_path)] = Path("results"),
    recipes: Annotated[
        Optional[str], typer.Option(help="Comma-separated recipe names to include. Default: every recipe with results.", show_default=False)
    ] = None,
    mixed_versions: Annotated[
        bool, typer.Option(help="Tabulate rows whose seeds were made by different versions of the training code (refused by default; the tables then list them).")
    ] = False,
) -> None:
    """Rebuild every report from the result files: paper-tables.md and .csv (claims beside ours, code versions named),
    and the tuning, time-to-target, ablation and protocol reports."""
    with user_errors():
        from ..reports.write import write_all  # inside: Ctrl-C while it loads is "Interrupted.", exit 130

        with warnings_shown():
            written, markdown = write_all(results, split_names(recipes), mixed_versions)
        typer.echo(markdown)
        err.print(f"wrote {', '.join(str(path) for path in written)}", highlight=False)


def plot(
    results: Annotated[Path, typer.Option(help="Results folder to read.", callback=usable_path)] = Path("results"),
    out: Annotated[
        Optional[Path],
        typer.Option(help="Where to write the figures (PDF and 300 dpi PNG). Default: RESULTS/figures.", show_default=False,
                     callback=usable_path),
    ] = None,
    recipes: Annotated[
        Optional[str], typer.Option(help="Comma-separated recipe names. Default: every recipe with results.", show_default=False)
    ] = None,
) -> None:
    """Write figures (PDF and PNG): test accuracy against epoch, one panel per method family, and DBA's kept subset sizes per layer."""
    from ..errors import ConfigError

    with user_errors():
        # matplotlib is imported only for this command, and inside: Ctrl-C while it loads is "Interrupted.", exit 130
        from ..reports.figures import make_figures

        with warnings_shown():
            paths = make_figures(results, out, split_names(recipes))
        if not paths:
            raise ConfigError(f"no result files under {results}. Fix: run `dba reproduce RECIPE` first.")
        for path in paths:
            typer.echo(f"wrote {path}")


# --- data ---

DatasetArgument = Annotated[str, typer.Argument(help="Data set: mnist or fashion-mnist.")]


def check_dataset_name(name: str) -> None:
    """A data set argument dba knows, or a ConfigError listing them."""
    from ..errors import ConfigError
    from ..settings.run import DATASETS

    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}. Fix: use one of {', '.join(DATASETS)}.")


def data_check(dataset: DatasetArgument = "mnist", data_dir: DataDirOption = None) -> None:
    """Read a data set's four files where dba finds them (or in --data-dir), verify each by content checksum, and
    report the load time. The cache is not used: every file is read and verified."""
    import time

    from ..data.datasets import DATASET_SPECS
    from ..data.loading import default_cache_dir, load_dataset

    with user_errors():
        check_dataset_name(dataset)
        started = time.perf_counter()
        loaded = load_dataset(data_dir, cache_dir=False, dataset=dataset)  # the folder itself, never the cache
        seconds = time.perf_counter() - started
        typer.echo(f"source: {loaded.source}")
        cache = default_cache_dir()
        typer.echo(f"cache:  {cache / DATASET_SPECS[dataset].name if cache is not None else 'none (no home folder)'} (not used by this check)")
        typer.echo(
            f"verified: {len(loaded.train_labels)} training and {len(loaded.test_labels)} test images "
            f"(MD5 of uncompressed content) in {seconds:.3f}s"
        )


def data_fetch(
    dataset: DatasetArgument,
    to: Annotated[
        Optional[Path],
        typer.Option(help="Folder to install into (as FOLDER/FashionMNIST/raw; then pass --data-dir FOLDER). "
                     "Default: the cache's datasets/ folder, where dba looks without --data-dir.", show_default=False,
                     callback=usable_path),
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
    from ..data.fetch import fetch_dataset
    from ..settings.environment import DATA_DIR

    with user_errors():
        check_dataset_name(dataset)
        with make_progress() as progress:
            task = progress.add_task(f"fetch {dataset}", total=4, status="", unit="files")
            folder = fetch_dataset(
                dataset, to, mirror or None, on_file=lambda name: progress.advance(task),
                on_bytes=lambda name, size: progress.update(task, status=f"{size / 2**20:.1f} MB"),
            )
        typer.echo(f"{dataset}: four files verified in {folder}")
        if to is not None:
            typer.echo(f"use it with --data-dir {to} (or set {DATA_DIR})")


# --- benchmarks ---


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
    from ..bench.pipeline import compare_pipelines
    from ..data.loading import load_dataset
    from ..training.devices import resolve_device, set_threads

    with user_errors():
        torch_device = resolve_device(device)
        set_threads(threads)
        mnist = load_dataset(data_dir)
        with make_progress() as progress:
            task = progress.add_task("benchmark", total=repeats, status="", unit="rounds")
            timing = compare_pipelines(
                mnist, torch_device, repeats=repeats, batch_size=batch_size, hidden=hidden,
                num_workers=num_workers, data_dir=data_dir, on_round=lambda: progress.advance(task),
            )
        typer.echo(timing.table())


def bench_step(
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "64,256",
    architecture: Annotated[str, typer.Option(help="Model: mlp or cnn.")] = "mlp",
    hidden: Annotated[int, typer.Option(min=1, help="Hidden width of the 784-H-10 MLP.")] = 512,
    channels: Annotated[str, typer.Option(help="CNN: output channels of its two 5x5 convolutions, comma-separated.")] = "8,16",
    repeats: Annotated[int, typer.Option(min=1, help="Timed steps per variant and batch size.")] = 100,
    naive_repeats: Annotated[int, typer.Option(min=0, help="Timed steps of the (slow) naive DBA; 0 leaves it out.")] = 2,
    peers: Annotated[bool, typer.Option(help="Also time DBA's peers (Ordered SGD, small-loss, online batch selection, "
                                             "importance sampling, the random-composition control).")] = True,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = 1,
    data_dir: DataDirOption = None,
) -> None:
    """Median training-step time: plain SGD, per-sample Gram only, full DBA, naive DBA and DBA's peers; ratios to SGD."""
    from ..bench.step import benchmark_steps, format_table
    from ..data.loading import load_dataset
    from ..settings.run import run_config
    from ..training.devices import resolve_device, set_threads

    with user_errors():
        sizes = tuple(parse_ints(batch_sizes, "--batch-sizes"))
        given = {"channels": parse_ints(channels, "--channels")} if architecture == "cnn" else {}
        model = run_config(architecture=architecture, **given)  # validates both
        torch_device = resolve_device(device)
        set_threads(threads)
        mnist = load_dataset(data_dir)
        inputs, targets = mnist.features(mnist.train_images), mnist.train_labels
        with make_progress() as progress:
            task = progress.add_task("benchmark", total=repeats * len(sizes), status="", unit="timed steps")
            rows = benchmark_steps(
                batch_sizes=sizes, hidden=hidden, repeats=repeats, naive_repeats=naive_repeats,
                inputs=inputs, targets=targets, device=torch_device,
                on_repeat=lambda batch, repeat: progress.advance(task),
                architecture=model.architecture, channels=tuple(model.channels), peers=peers,
            )
        typer.echo(format_table(rows))


def bench_pack(
    recipe: Annotated[str, typer.Argument(help="The recipe whose tuning candidates are timed, e.g. mnist-1pct.")] = "mnist-1pct",
    family: Annotated[str, typer.Option(help="The tuning family whose candidates train (sgd, adam, ...).")] = "sgd",
    runs: Annotated[int, typer.Option(min=2, help="How many of its candidate runs (in plan order) train at each pack size.")] = 48,
    packs: Annotated[str, typer.Option(help="Comma-separated pack sizes; the first is the reference the others are checked against.")] = "1,16",
    gflops_packs: Annotated[str, typer.Option(help="Pack sizes whose packed SGD step's GFLOP/s is measured against a large matmul ('' for none).")] = "1,8,16,32",
    jobs: Annotated[int, typer.Option(min=1, help="Runs (or packs) trained at once, each in its own worker process.")] = 1,
    epochs: Annotated[Optional[int], typer.Option(min=1, max=10_000, show_default=False,
                                                 help="Train each run this many epochs (default: the recipe's), for a shorter check.")] = None,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = 1,
) -> None:
    """Wall time of one real tuning grid trained unpacked and packed (same runs, fresh folders, results compared), and a packed step's GFLOP/s."""
    from ..bench.packing import family_runs, gflops_table, grid_table, time_grids
    from ..recipes.loading import load_recipe
    from ..run.runners import InProcessRunner, PoolRunner
    from ..studies import tune
    from ..training.devices import resolve_device, set_threads

    with user_errors():
        sizes = parse_ints(packs, "--packs")
        rate_sizes = parse_ints(gflops_packs, "--gflops-packs") if gflops_packs.strip() else []
        torch_device = resolve_device(device)
        set_threads(threads)
        planned = family_runs(tune.candidate_runs(load_recipe(recipe)), family, runs, epochs)
        if len(planned) < 2:
            raise typer.BadParameter(f"{recipe} has {len(planned)} tuning run(s) of family {family!r}: name a family it tunes")

        def runner():
            if jobs == 1:
                return InProcessRunner(torch_device)
            return PoolRunner(jobs, threads, device, None, {p.config.dataset for p in planned})

        with make_progress() as progress:
            task = progress.add_task("benchmark", total=len(sizes), status="", unit="grids")
            timings = time_grids(planned, sizes, runner, on_grid=lambda: progress.advance(task))
        length = f"{planned[0].config.epochs} epochs" + ("" if epochs is None else " (--epochs)")
        typer.echo(f"{recipe}, family {family}: {len(planned)} tuning runs of {length}, --jobs {jobs}, --threads {threads}, {device}\n")
        typer.echo(grid_table(timings, len(planned), jobs))
        if rate_sizes:
            typer.echo("")
            typer.echo(gflops_table(rate_sizes, torch_device, batch=64))
