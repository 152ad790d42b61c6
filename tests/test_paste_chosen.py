"""tests/paste_chosen.py (step 3 of a regeneration): chosen.yaml's methods land in the recipe in family order."""

import shutil
from pathlib import Path

import yaml

from dba_cli.recipes.loading import load_recipe
from tests.paste_chosen import paste

PACKAGED = Path(__file__).resolve().parents[1] / "dba_cli" / "recipe_files"


def is_tuned_row(line: str) -> bool:
    """A `NAME-tuned:` line under the recipe's `methods:`."""
    return line.startswith("  ") and line.split(":")[0].strip().endswith("-tuned")


def test_choices_listed_by_score_are_pasted_in_the_recipes_family_order(tmp_path, monkeypatch):
    recipes = Path(shutil.copytree(PACKAGED, tmp_path / "recipes"))
    monkeypatch.setenv("DBA_RECIPES_DIR", str(recipes))
    packaged = load_recipe("fashion-1pct")
    chosen = {  # as dba tune writes them: best score first, so dba before sgd
        "dba-tuned": {"role": "tuned", "method": "dba", "base": "sgd", "lr": 0.05, "dba": {"min_size": 7}},
        "adam-tuned": {"role": "tuned-baseline", "method": "adam", "lr": 0.002},
        "sgd-tuned": {"role": "tuned-baseline", "method": "sgd", "lr": 0.2},
    }
    folder = tmp_path / "results" / "tune" / "fashion-1pct"
    folder.mkdir(parents=True)
    (folder / "chosen.yaml").write_text(f"# chosen under declaration 4b8803281c78916f\n{yaml.safe_dump(chosen, sort_keys=False)}")

    paste("fashion-1pct", tmp_path / "results")

    lines = (recipes / "fashion-1pct.yaml").read_text().splitlines()
    tuned = [line.split(":")[0].strip() for line in lines if is_tuned_row(line)]
    families = [f"{family}-tuned" for family in packaged.tune.families]
    assert families == ["sgd-tuned", "adam-tuned", "dba-tuned"]
    assert tuned == [*families, "ordered-tuned", "small-loss-tuned", "online-tuned", "importance-tuned", "dba-random-tuned"]
    pasted = load_recipe("fashion-1pct")
    assert pasted.methods["dba-tuned"].lr == 0.05 and pasted.methods["sgd-tuned"].lr == 0.2
    assert "ordered-tuned" not in pasted.methods  # the peers, not tuned here, stay null, after the tuned families
    untouched = [line for line in lines if not is_tuned_row(line)]
    assert untouched == [line for line in (PACKAGED / "fashion-1pct.yaml").read_text().splitlines() if not is_tuned_row(line)]
