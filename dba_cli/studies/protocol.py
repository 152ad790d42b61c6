"""`dba protocol` as a plan: how far each protocol choice moves the reported accuracy (diagnostics, not results).

Our protocol (docs/dba-method.md) trains on one stratified subset per seed,
reports the final epoch and uses a 512-unit hidden layer. The paper does not
state its protocol, so this study measures how much the tuned SGD, Adam and
DBA settings move when one choice changes: a fresh subset every epoch, the best
epoch picked on the test set (among the epochs the recipe's `evaluation:`
schedule evaluated: only they have a test accuracy), a uniform (unstratified)
draw, other hidden widths. If no row brings DBA near the paper's numbers, no
such protocol difference explains them (reports/protocol_report.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..recipes.planned import PlannedRun
from ..recipes.protocol import declaration
from ..recipes.recipe import Recipe
from ..settings.evaluation import FINAL_ONLY

GROUP = "protocol"


@dataclass(frozen=True)
class Variant:
    name: str  # folder name
    label: str  # what the table says
    overrides: dict


def protocol_variants(recipe: Recipe) -> list[Variant]:
    """The diagnostics that need their own runs (the best-epoch row reuses the reported runs)."""
    found = [
        Variant("every-epoch", "fresh subset drawn every epoch", {"resample": "every_epoch"}),
        Variant("uniform", "uniform (unstratified) subset draw", {"subset_draw": "uniform"}),
    ]
    if recipe.defaults.architecture == "mlp":  # the CNN has no hidden width to vary
        found += [Variant(f"width-{w}", f"hidden width {w}", {"hidden": [w]}) for w in recipe.protocol.widths]
    return [variant for variant in found if admits(recipe, variant)]


def admits(recipe: Recipe, variant: Variant) -> bool:
    """Whether the recipe's data allow the variant at all, by the run settings' own rule: labels made noisy once over
    the subset, or a long tail drawn once per class, rule out a fresh subset every epoch (and the tail a uniform draw).

    The recipe's own setting is built first, so an error of the recipe itself is raised, never taken for a variant
    that does not apply.
    """
    method, seed = next(iter(recipe.methods.values())), design_seeds(recipe)[0]
    recipe.config_for(method, seed, False, label=f"protocol {variant.name}")
    try:
        recipe.config_for(method, seed, False, label=f"protocol {variant.name}", **variant.overrides)
    except ConfigError:
        return False
    return True


def protocol_methods(recipe: Recipe) -> list[str]:
    missing = [name for name in recipe.protocol.methods if name not in recipe.methods]
    if missing:
        raise ConfigError(
            f"recipe {recipe.name}: protocol.methods names {', '.join(missing)}, which the recipe does not define. "
            f"Fix: run `dba tune {recipe.name}` and paste results/tune/{recipe.name}/chosen.yaml under `methods:`, "
            "or list existing methods under protocol.methods."
        )
    return list(recipe.protocol.methods)


def design_seeds(recipe: Recipe, smoke: bool = False) -> range:
    """The declaration's design seeds (diagnostics never train on a reported seed)."""
    design = declaration().seeds.design.seeds
    return design[: recipe.smoke.seeds if smoke else None]


def default_runs(recipe: Recipe, smoke: bool = False) -> list[PlannedRun]:
    """Our protocol's rows: the tuned methods as the recipe sets them, on the design seeds."""
    runs = []
    for name in protocol_methods(recipe):
        method = recipe.methods[name]
        for seed in design_seeds(recipe, smoke):
            config = recipe.config_for(method, seed, smoke, label=f"protocol {name}")
            runs.append(PlannedRun(recipe.name, f"{name}/ours", method.role, config, GROUP, evaluation=recipe.evaluation))
    return runs


def protocol_runs(recipe: Recipe, smoke: bool = False) -> list[PlannedRun]:
    runs = []
    for name in protocol_methods(recipe):
        method = recipe.methods[name]
        for variant in protocol_variants(recipe):
            for seed in design_seeds(recipe, smoke):
                config = recipe.config_for(method, seed, smoke, label=f"protocol {name} {variant.name}", **variant.overrides)
                runs.append(PlannedRun(recipe.name, f"{name}/{variant.name}", method.role, config, GROUP, evaluation=FINAL_ONLY))
    return runs
