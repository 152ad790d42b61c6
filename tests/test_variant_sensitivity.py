"""The holdout variant's sensitivity ranks its own runners-up (tune-holdout/), never the k-fold tuning's (tune/).

Before the fix, results/tune-holdout/mnist-10-per-class.md paired the holdout's chosen settings with the k-fold
tuning's runners-up. Checked on the committed runs of the regeneration.
"""

import shutil
from pathlib import Path

import pytest

from dba_cli.reports.headline import ranked_runs
from dba_cli.results.reading import read_result

HOLDOUT = Path(__file__).resolve().parents[1] / "results" / "tune-holdout" / "mnist-10-per-class"


@pytest.mark.skipif(not (HOLDOUT / "top").is_dir(), reason="the holdout variant's runners-up are not committed")
def test_holdout_variant_ranks_its_own_runners_up(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(HOLDOUT / "top", results / "tune-holdout" / "mnist-10-per-class" / "top")
    found = ranked_runs(results, "mnist-10-per-class", "dba", [], group="tune-holdout")
    expected = {int(folder.name.removeprefix("dba-top")): folder
                for folder in (HOLDOUT / "top" / "mnist-10-per-class").glob("dba-top*")}
    assert set(found) == set(expected) and expected, found.keys()
    for rank, folder in expected.items():
        on_disk = sorted(read_result(path)["final_test_accuracy"] for path in folder.glob("seed-*.json"))
        assert sorted(d["final_test_accuracy"] for d in found[rank]) == on_disk and len(on_disk) == 20
    # The k-fold tuning's folder is empty here: read from there, the variant would have no runners-up at all.
    assert ranked_runs(results, "mnist-10-per-class", "dba", []) == {}
