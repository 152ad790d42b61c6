"""The grid commands: reproduce, tune, ablate, protocol, converge. Each plans, executes, chooses and reports.

Every one of them takes the shared grid options (options.py: results folder,
smoke, overwrite, keep-stale, --set, device, threads, jobs, pack, ray, data-dir);
the study (studies/) says which runs to train and how to choose, run/ trains
them, reports/ writes what they show. Torch loads only once a command runs; each passes its
first grid's runs to `executing`, so that a worker pool starts before torch loads here.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..recipes.planned import MAX_SEEDS
from .console import show_notes, user_errors, warnings_shown
from .display import err
from .grid import executing
from .options import GridOptions, RecipeArgument, split_names, with_grid_options


def load(recipe: str, options: GridOptions):
    from ..recipes.loading import load_recipe

    return load_recipe(recipe, options.overrides)


def command_text(verb: str, recipe: str, options: GridOptions) -> str:
    """How a report names the command that made it."""
    extra = "".join(f" --set {item}" for item in options.overrides or [])
    return f"dba {verb} {recipe}" + (" --smoke" if options.smoke else "") + extra


@with_grid_options
def reproduce(
    recipe: RecipeArgument,
    seeds: Annotated[
        Optional[int], typer.Option(min=1, max=MAX_SEEDS, help="Number of seeds (0..N-1). Default: the recipe's.", show_default=False)
    ] = None,
    methods: Annotated[
        Optional[str], typer.Option(help="Comma-separated method names of the recipe to run. Default: all.", show_default=False)
    ] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Override the recipe's epochs, for every method.", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Override the recipe's batch size, for every method.", show_default=False)] = None,
    *,
    options: GridOptions,
) -> None:
    """Run every method x seed of a recipe; finished runs are kept and skipped on a rerun.

    A run in progress saves a checkpoint after an epoch once a second has passed since the last (DBA_CHECKPOINT_SECONDS;
    0 = every epoch), so after Ctrl-C, SIGTERM or kill -9 a rerun resumes it. Two reproduce processes
    may share a results folder: each run is locked, a run the other process is training is left to it.
    """
    from ..settings.run import run_notes

    with user_errors():
        loaded = load(recipe, options)
        runs = loaded.runs(seeds=seeds, methods=split_names(methods), smoke=options.smoke, epochs=epochs, batch_size=batch_size)
        show_notes([note for planned in runs for note in run_notes(planned.config)])
        with executing(options, {planned.config.dataset for planned in runs}, runs=runs) as executor:
            plan = executor.execute(runs)
        busy = f", {len(plan.busy)} left to another dba process (rerun when it ends)" if plan.busy else ""
        typer.echo(
            f"{loaded.name}: {len(plan.done)} run(s) done, {len(plan.skipped)} already finished{busy}; "
            f"results in {options.results_dir}/{loaded.name}/"
        )
        if plan.skipped and not plan.done and not plan.busy and not plan.stale:
            err.print(
                f"All {len(plan.skipped)} run(s) were already finished in {options.results_dir}/, made by this code with "
                "this config: nothing was trained. To train them again: --results ANOTHER_FOLDER (keeps these), "
                "or --overwrite (replaces them).", highlight=False,
            )


def train_extended_grid(executor, study_runs, extended_grid) -> list:
    """Train a search's candidates, then the edge rule's extensions round by round, until it adds none.

    The grid is recomputed from the result files each round (`extended_grid`),
    so an interrupted search continues where it stopped with the same grid.
    """
    limit = 1 + 20 * 8  # at most max_extensions (<= 20) rounds for each of at most 8 families: never loops for ever
    for _ in range(limit):
        grid, extensions, _ = extended_grid()
        runs = study_runs(grid)
        plan = executor.execute(runs, wait_for_busy=True)  # the choice needs every candidate
        if not plan.done or plan.failed:  # nothing new: the grid cannot change any more
            return extensions
    return extensions


@with_grid_options
def tune(
    recipe: RecipeArgument,
    choose_only: Annotated[
        bool, typer.Option("--choose-only", help="Train the candidates and write chosen.yaml and the report; run nothing on "
                           "the reported seeds (paste chosen.yaml into the recipe first, then rerun without it).")
    ] = False,
    validation: Annotated[
        Optional[str], typer.Option(
            help="Where candidates are validated: 'folds' (k-fold inside the training subset, the declaration's primary "
                 "for data-scarce recipes) or 'holdout' (5,000 images outside the subset: the declared sensitivity "
                 "variant, filed under RESULTS/tune-holdout/). Default: the declaration's primary for the recipe.",
            show_default=False)
    ] = None,
    *,
    options: GridOptions,
) -> None:
    """Choose each family's setting under the protocol declaration (the same budget and axes for every family), then run it on the reported seeds.

    Candidates train on the declaration's tuning seeds, are validated on folds of the training subset (data-scarce
    recipes) or a held-out split, and are ranked by mean minus k sd of validation accuracy; where a family's best lies
    at the end of a numeric line of its grid, one step beyond is tried (the edge rule, logged in the report).
    Writes RESULTS/tune/RECIPE.md (the choice, failures, the sensitivity, every candidate), RESULTS/tune/RECIPE/chosen.yaml
    (paste into the recipe) and the reruns on the reported seeds as FAMILY-tuned: in RESULTS/RECIPE/, shared with
    `dba reproduce`, where the recipe already holds that setting, else in RESULTS/tune/RECIPE/reruns/; each family's
    runners-up also run on the reported seeds (RESULTS/tune/RECIPE/top/). Finished runs are kept: rerunning continues
    where it stopped.
    """
    from ..errors import ConfigError
    from ..files import write_text_atomic
    from ..reports.write import write_tune_report
    from ..settings.run import describe
    from ..studies import tune as study
    from ..studies.candidates import choose

    with user_errors():
        if validation is not None and validation not in study.VARIANTS:
            raise ConfigError(f"--validation: {validation!r} is not one of {', '.join(study.VARIANTS)}.")
        loaded = load(recipe, options)
        variant = validation
        if variant == "folds" and not study.scarce(loaded):
            raise ConfigError(f"--validation folds: recipe {loaded.name} trains on the full training set; its candidates "
                              "are validated on a held-out split (drop --validation).")
        results = options.results_dir
        candidates = study.candidate_runs(loaded, options.smoke, variant=variant)
        command = command_text("tune", recipe, options) + (f" --validation {variant}" if variant else "")
        err.print(f"tune {loaded.name}: {study.tune_spec(loaded).budget_text()} ({study.validation_of(loaded, variant)} "
                  f"validation): {len(candidates)} tuning runs, edge extensions where a best lies at an end, then the "
                  "best settings of each family on the reported seeds", highlight=False)
        with executing(options, {loaded.defaults.dataset}, "tuning", candidates) as executor:
            train_extended_grid(
                executor, lambda grid: study.runs_of(loaded, grid, options.smoke, variant),
                lambda: study.extended_grid(loaded, results, options.smoke, variant),
            )
            scored = study.score(loaded, results, options.smoke, variant)
            chosen = choose(scored)
            methods = study.tuned_methods(chosen)
            if not choose_only:
                reruns = study.tuned_runs(loaded, methods, smoke=options.smoke, variant=variant)
                executor.execute(reruns + study.runner_up_runs(loaded, scored, options.smoke, variant), wait_for_busy=True)
        chosen_path = results / study.group(loaded, variant) / loaded.name / "chosen.yaml"
        write_text_atomic(chosen_path, study.chosen_yaml(loaded, methods, command, options.smoke))
        with warnings_shown():
            report_path = write_tune_report(loaded, results, command, options.smoke, variant)
        for family, entry in chosen.items():
            setting = describe(loaded.config_for(entry.candidate.method, 0), loaded.defaults.batch_size)
            typer.echo(f"{family}-tuned: {setting} (score {-entry.key[0]:.2f}%)")
        if study.group(loaded, variant) == study.GROUP:
            for note in study.recipe_differences(loaded, methods):
                err.print(f"[yellow]note:[/] {note}; paste {chosen_path} into the recipe's methods to make them the recipe's.")
        typer.echo(f"wrote {report_path} and {chosen_path}")


@with_grid_options
def ablate(
    recipe: RecipeArgument,
    seeds: Annotated[
        Optional[int],
        typer.Option(min=1, max=MAX_SEEDS, help="Seeds per variant: the first N of the declaration's design seeds. Default: all of them.", show_default=False),
    ] = None,
    *,
    options: GridOptions,
) -> None:
    """Train every combination of the recipe's ablation grid (metric, direction, min_size, reduction, base).

    Results go to RESULTS/ablation/RECIPE/; RESULTS/ablation.md ranks the variants of every
    ablated recipe by validation accuracy. Finished variants are kept and skipped on a rerun.
    """
    from ..reports.ablation_report import write_ablation_table
    from ..studies.ablate import ablation_runs

    with user_errors():
        loaded = load(recipe, options)
        runs = ablation_runs(loaded, options.smoke, seeds)
        with executing(options, {loaded.defaults.dataset}, "ablation", runs) as executor:
            plan = executor.execute(runs, wait_for_busy=True)
        with warnings_shown():
            path, _ = write_ablation_table(options.results_dir)
        typer.echo(f"{loaded.name}: {len(plan.done)} ablation run(s) done, {len(plan.skipped)} already finished; wrote {path}")


@with_grid_options
def protocol(recipe: RecipeArgument, *, options: GridOptions) -> None:
    """Diagnostics: how a fresh subset per epoch, a best-on-test epoch, a uniform draw or another width move the tuned methods.

    Needs the recipe's tuned methods (see `dba tune`). Runs go to RESULTS/protocol/RECIPE/;
    RESULTS/protocol.md shows every recipe with protocol runs, our protocol's row marked as the only result.
    """
    from ..reports.protocol_report import recipes_for_table, write_protocol_table
    from ..studies.protocol import default_runs, protocol_runs

    with user_errors():
        loaded = load(recipe, options)
        runs = default_runs(loaded, options.smoke) + protocol_runs(loaded, options.smoke)
        with executing(options, {loaded.defaults.dataset}, "protocol", runs) as executor:
            plan = executor.execute(runs, wait_for_busy=True)
        with warnings_shown():
            recipes = recipes_for_table(options.results_dir, loaded, options.smoke)
            path, _ = write_protocol_table(options.results_dir, recipes, options.smoke)
        typer.echo(f"{loaded.name}: {len(plan.done)} run(s) done, {len(plan.skipped)} already finished; wrote {path}")


@with_grid_options
def converge(recipe: RecipeArgument, *, options: GridOptions) -> None:
    """Time to target: tune every method for steps to the recipe's validation targets, then time them on the reported seeds.

    Needs the recipe's `convergence:` section (targets, epoch budget, grids; see recipes/mnist-full.yaml).

    Every family gets the same budget of settings; candidates train on tuning seeds and are ranked by median steps to the last target, then each family's best run on the reported seeds.

    Writes RESULTS/convergence/RECIPE.md (the table, and DBA against the fastest baseline with unreached runs censored, a paired rank test, Holm over the targets) and RESULTS/convergence/RECIPE-tuning.md (every candidate); `dba plot` draws the figure. Finished runs are kept: rerunning continues where it stopped.
    """
    from ..reports.write import write_converge_reports
    from ..settings.run import describe
    from ..studies import converge as study
    from ..studies.candidates import choose

    with user_errors():
        loaded = load(recipe, options)
        study.convergence_spec(loaded)  # before any data is loaded: a recipe without the section is one line
        command = command_text("converge", recipe, options)
        tuning = study.tuning_runs(loaded, options.smoke)
        err.print(f"converge {loaded.name}: {study.convergence_spec(loaded).budget_text()}: {len(tuning)} tuning runs, edge "
                  "extensions where a best lies at an end, then the best settings of each family on the reported seeds",
                  highlight=False)
        with executing(options, {loaded.defaults.dataset}, "convergence", tuning) as executor:
            train_extended_grid(executor, lambda grid: study.runs_of(loaded, grid, options.smoke),
                                lambda: study.extended_grid(loaded, options.results_dir, options.smoke))
            scored = study.score(loaded, options.results_dir, options.smoke)
            chosen = choose(scored)
            executor.execute(study.reported_runs(loaded, scored, options.smoke), wait_for_busy=True)
        with warnings_shown():
            report_path, tuning_path = write_converge_reports(loaded, options.results_dir, command, options.smoke)
        for family, entry in chosen.items():
            typer.echo(f"{family}-tuned: {describe(loaded.config_for(entry.candidate.method, 0), loaded.defaults.batch_size)}")
        typer.echo(f"wrote {report_path} and {tuning_path}")
