"""Paste `dba tune`'s choices into their recipes: step 3 of a regeneration (docs/protocol.md#order-of-a-regeneration).

    .venv/bin/python tests/paste_chosen.py RECIPE... [--results results]

`dba tune RECIPE --choose-only` writes RESULTS/tune/RECIPE/chosen.yaml; a
choice becomes the recipe's (its reported runs shared with `dba reproduce`,
its diagnostics planned by `dba protocol`) once it stands under the recipe's
`methods:`. This writes every chosen method there as one line, in the run of
`NAME-tuned:` lines after the recipe's `# --- tuned rows` marker, replacing
the line of that name (a `null` that keeps the parent's row out, or an older
choice); the other lines of the run stay (a family this recipe does not tune
stays `null`); the run is then put in the recipe's family order.
The recipe file is rewritten atomically; nothing else in it changes. Not a
test (pytest collects no function here).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import yaml

from dba_cli.files import write_text_atomic
from dba_cli.recipes.loading import load_recipe, recipes_dir

MARKER = "  # --- tuned rows"


def tuned_lines(chosen: dict, digest: str) -> list[str]:
    """One flow-style line per chosen method, in the order given."""
    return [f"  {name}: {json.dumps(values, separators=(', ', ': '))}   # chosen under declaration {digest}"
            for name, values in chosen.items()]


def in_family_order(chosen: dict, families: list[str]) -> dict:
    """chosen.yaml lists its methods by score; a table reads better with every recipe's tuned rows in one order,
    the recipe's `tune.families` order (sgd, adam, dba, then the peers), names of no family last."""
    rank = {f"{family}-tuned": i for i, family in enumerate(families)}
    return dict(sorted(chosen.items(), key=lambda item: rank.get(item[0], len(rank))))


def paste(recipe: str, results: Path) -> Path:
    source = results / "tune" / recipe / "chosen.yaml"
    text = source.read_text()
    chosen = yaml.safe_load(text)
    if not isinstance(chosen, dict) or not all(name.endswith("-tuned") for name in chosen):
        raise SystemExit(f"{source}: not a chosen.yaml of dba tune (a mapping of FAMILY-tuned methods)")
    digest = next((word for word in text.split() if len(word) == 16 and all(c in "0123456789abcdef" for c in word)), "?")
    path = recipes_dir() / f"{recipe}.yaml"
    tune = load_recipe(recipe).tune
    lines = path.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(MARKER)]
    if len(starts) != 1:
        raise SystemExit(f"{path}: needs exactly one line starting {MARKER.strip()!r} under `methods:` (found {len(starts)})")
    start = starts[0] + 1
    while start < len(lines) and lines[start].startswith("  #"):  # the marker's comment continues
        start += 1
    end = start
    while end < len(lines) and re.match(r"^  [A-Za-z0-9_.-]+-tuned:", lines[end]):
        end += 1
    pasted = dict(zip(chosen, tuned_lines(chosen, digest)))
    run = {line.split(":")[0].strip(): line for line in lines[start:end]}  # e.g. `online-tuned: null` stays
    ordered = list(in_family_order({**run, **pasted}, list(tune.families) if tune else []).values())
    new = lines[:start] + ordered + lines[end:]
    write_text_atomic(path, "\n".join(new) + "\n")
    loaded = load_recipe(recipe)  # the pasted recipe must load, with every chosen method as chosen
    missing = [name for name in chosen if name not in loaded.methods]
    if missing:
        raise SystemExit(f"{path}: pasted, but {', '.join(missing)} did not load as methods")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+")
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args()
    for recipe in args.recipes:
        print(f"pasted {len(yaml.safe_load((args.results / 'tune' / recipe / 'chosen.yaml').read_text()))} tuned "
              f"methods into {paste(recipe, args.results)}")


if __name__ == "__main__":
    main()
