"""What a reproduction costs: CPU-minutes of training and of evaluation per recipe and phase, from the result files.

Every result records its training and evaluation seconds apart and the torch
threads it used; their product, summed, is the compute the committed results
took, whatever ran them side by side. `make paper-tables` also appends each
sitting's wall time to `paper-tables-sittings.jsonl`: the wall time a user
should expect on a machine like the one that made them.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
import warnings
from collections import defaultdict
from pathlib import Path

from ..errors import UnreadableFile
from ..files import read_bounded, write_text_atomic
from ..recipes.loading import recipe_order
from ..results.reading import finished_results
from .markdown import markdown_table

PHASES = ("reproduce", "tune", "ablate", "protocol", "converge", "foundation")
FOUNDATION_ROW = "`dba run` (make foundation)"  # `dba run --output` files name no recipe: theirs is "run"
SITTINGS = "paper-tables-sittings.jsonl"  # one JSON line per `make paper-tables` sitting (Makefile)
# Where each phase's runs are: (glob pattern under the results folder, how many parts lead to the recipe's name)
PATTERNS = {
    "reproduce": ["*/*/seed-*.json"],
    # candidates, the runners-up on the reported seeds, and reruns of a choice the recipe does not hold yet
    # (and the same of the holdout sensitivity variant, under tune-holdout/)
    "tune": [f"{group}/{place}" for group in ("tune", "tune-holdout")
             for place in ("*/*/*/seed-*.json", "*/top/*/*/seed-*.json", "*/reruns/*/*/seed-*.json")],
    "ablate": ["ablation/*/*/seed-*.json"],
    "protocol": ["protocol/*/*/*/seed-*.json"],
    "converge": ["convergence/tuning/*/*/*/seed-*.json", "convergence/*/*/seed-*.json"],
    "foundation": ["foundation/*.json"],
}


def collect(results_dir: Path) -> dict[tuple[str, str], dict[str, float]]:
    """(recipe, phase) -> {train, eval: CPU-seconds, runs}; damaged files are skipped with a warning naming them."""
    found: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: {"train": 0.0, "eval": 0.0, "runs": 0})
    seen: set[Path] = set()
    for phase, patterns in PATTERNS.items():
        for pattern in patterns:
            for path, document in finished_results(results_dir, pattern):
                if path in seen or (phase == "reproduce" and path.parts[-3] in ("tune", "tune-holdout", "ablation", "protocol",
                                                                                 "convergence")):
                    continue
                seen.add(path)
                threads = document.get("threads") or 1
                entry = found[str(document["recipe"]), phase]
                entry["train"] += float(document.get("train_seconds") or 0.0) * threads
                entry["eval"] += float(document.get("eval_seconds") or 0.0) * threads
                entry["runs"] += 1
    return found


def sittings(results_dir: Path) -> list[dict]:
    """The recorded `make paper-tables` sittings (started, finished, jobs, machine); unreadable lines are skipped."""
    try:
        text = read_bounded(Path(results_dir) / SITTINGS, 2**20, inside=results_dir).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except UnreadableFile as exc:
        warnings.warn(f"skipped: {exc}", stacklevel=2)
        return []
    found = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            if isinstance(entry, dict) and isinstance(entry.get("started"), int) and isinstance(entry.get("finished"), int):
                found.append(entry)
        except json.JSONDecodeError:
            continue
    return found


def minutes(seconds: float) -> str:
    return f"{seconds / 60:,.1f}" if seconds else "–"


def cost_markdown(results_dir: Path) -> str:
    found = collect(results_dir)
    recipes = sorted({recipe for recipe, _ in found}, key=recipe_order)
    rows, totals = [], defaultdict(float)
    for recipe in recipes:
        cells, train, evaluation = [FOUNDATION_ROW if recipe == "run" else recipe], 0.0, 0.0
        for phase in PHASES:
            entry = found.get((recipe, phase))
            cells.append(f"{minutes(entry['train'])} / {minutes(entry['eval'])}" if entry else "–")
            if entry:
                train, evaluation = train + entry["train"], evaluation + entry["eval"]
                totals[f"{phase}-train"] += entry["train"]
                totals[f"{phase}-eval"] += entry["eval"]
        share = evaluation / (train + evaluation) if train + evaluation else 0.0
        rows.append([*cells, f"{minutes(train)} / {minutes(evaluation)}", f"{100 * share:.0f}%"])
    all_train = sum(value for key, value in totals.items() if key.endswith("-train"))
    all_eval = sum(value for key, value in totals.items() if key.endswith("-eval"))
    rows.append(["**all**", *[f"{minutes(totals[f'{p}-train'])} / {minutes(totals[f'{p}-eval'])}" for p in PHASES],
                 f"**{minutes(all_train)} / {minutes(all_eval)}**",
                 f"{100 * all_eval / (all_train + all_eval):.0f}%" if all_train + all_eval else "–"])
    runs = sum(int(entry["runs"]) for entry in found.values())
    lines = [
        "# What reproducing costs",
        "",
        f"Generated by `dba table` from the {runs:,} result files under `{results_dir}`; do not edit by hand. "
        "Each cell: CPU-minutes of training / of evaluation (test set and validation split), summed over the runs "
        "of that recipe and phase, each run's recorded seconds times its torch threads. Phases: `dba reproduce`, "
        "`dba tune` (the candidates on the tuning seeds and each family's runners-up on the reported seeds; the chosen "
        "settings' runs are the recipe's `-tuned` methods, under reproduce), `dba ablate`, `dba protocol`, `dba converge` (tuning "
        "and reported runs), and `make foundation`. The last column is evaluation's share of the row's compute.",
        "",
        markdown_table(["recipe", *PHASES, "all phases", "evaluation's share"], rows, "l" + "r" * (len(PHASES) + 2)),
        "",
    ]
    recorded = sittings(results_dir)
    if recorded:
        wall = sum(entry["finished"] - entry["started"] for entry in recorded)
        machines = sorted({str(entry.get("machine", "?")) for entry in recorded})
        jobs = sorted({str(entry.get("jobs") or "default") for entry in recorded})
        lines.append(
            f"The sittings recorded here (`make paper-tables`, or one step of it by `make sitting STEP=...`) took "
            f"**{wall / 60:,.0f} minutes of wall time** ({wall:,} s) "
            f"in {len(recorded)} sitting(s) on {', '.join(machines)}, with JOBS={', '.join(jobs)}: the compute they "
            "trained, shared among the runs trained at once, plus loading, planning and the tail of each grid. A sitting "
            "stopped by a signal to its shell is not recorded unless added by hand with an `ended` note (its end taken from "
            "its log), nor are runs trained by commands outside these targets: then the compute above is more than "
            "these sittings trained."
        )
        lines += ["", *sitting_table(recorded)]
    else:
        lines.append("No `make paper-tables` sitting is recorded in this folder, so no wall time is known.")
    return "\n".join(lines) + "\n"


def sitting_table(recorded: list[dict]) -> list[str]:
    """One row per recorded sitting: what it ran (`make sitting STEP=...`; paper-tables otherwise), when, for how long."""
    rows = []
    for number, entry in enumerate(recorded, start=1):
        started = datetime.fromtimestamp(entry["started"], timezone.utc).strftime("%Y-%m-%d %H:%M")
        rows.append([str(number), str(entry.get("step") or "paper-tables"), f"{started} UTC",
                     f"{(entry['finished'] - entry['started']) / 60:,.1f}", str(entry.get("jobs") or "default"),
                     how_it_ended(entry)])
    return [markdown_table(["sitting", "step", "started", "wall minutes", "JOBS", "how it ended"], rows, "rllrrl")]


def how_it_ended(entry: dict) -> str:
    """`finished`, `stopped (exit N)`, or the line's own `ended` note (at most 120 characters): a sitting cut off
    without its shell recording it (the machine went away) is added by hand, its end taken from its log's last write."""
    note = entry.get("ended")
    if isinstance(note, str) and note.strip():
        return note[:120]  # markdown_table escapes '|' and line breaks
    status = entry.get("status")
    return "finished" if status in (None, 0) else f"stopped (exit {status})"


def write_cost(results_dir: Path) -> Path:
    path = Path(results_dir) / "cost.md"
    write_text_atomic(path, cost_markdown(results_dir))
    return path
