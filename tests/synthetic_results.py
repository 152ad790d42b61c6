"""Synthetic result documents for report tests: the fields a test cares about, the rest as dba writes them.

Every result file read back is checked against the schema (dba_cli/results/schema.py),
so a synthetic document must be complete: `complete` fills in the provenance a test
does not care about and puts its config in the canonical form of a real run.
"""

from dba_cli.recipes.protocol import declaration
from dba_cli.results.format import SCHEMA_VERSION
from dba_cli.settings.run import run_config


def complete(document: dict) -> dict:
    """`document` (recipe, method_name, role, seed, config, history, final_test_accuracy) as a whole result document."""
    history = document["history"]
    config = run_config(**{"seed": document["seed"], **document["config"]})
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "finished",
        "device": "cpu",
        "subset_size": 100,
        "subset_hash": "0123456789abcdef",
        "versions": {"python": "3.11.7"},
        "threads": 1,
        "train_seconds": sum(record["train_seconds"] for record in history),
        "eval_seconds": sum(record.get("eval_seconds") or 0.0 for record in history),
        "device_name": "x86_64, 1 threads",
        "code": {"hash": "0123456789abcdef", "commit": None, "dirty": False},
        "protocol": declaration().digest,  # made under the declaration in force (a test may say otherwise)
        "finished_at": "2026-12-02T00:00:00+00:00",
        **document,
        "config": config.to_dict(),
    }
