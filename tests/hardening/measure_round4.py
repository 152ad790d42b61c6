"""The hardening cases of round 4 (issue 26), measured: each command's exit code, seconds and one line of output, before and after.

    .venv/bin/python -m tests.hardening.measure_round4 --before-source /tmp/old   # as root: mknod, mount --bind

prints the table of docs/hardening-round-4.md (the page adds its intro and summary by hand).

"Before" is a checkout of the earlier commit (read only), run by this same
interpreter with PYTHONPATH=SOURCE, so that `python -m dba_cli` imports its
dba_cli first; "after" is this checkout, run without PYTHONPATH. Every command
runs in its own scratch folder (never in this checkout, where `python -m` would
import ROOT's dba_cli whatever the path says), through measure.py's `run`:
stopped at its TIMEOUT or MEMORY_CAP, no file above FILE_CAP. Each case checks
afterwards what its issue was about (is the device still a device, did raw ESC
bytes reach the terminal, which n did the table give, was a checkpoint left)
and says so before the command's own line. Not a test (pytest does not collect
it): the tests named in the last column check each case's new behaviour on
every commit; this records what the behaviour was and is.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import types
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tests.hardening import measure
from tests.hardening.measure import limit_file_size, run, tree_rss
from tests.hardening.test_folders import interrupt_once_loading
from tests.hardening.test_result_schema import RECIPE as SCHEMA_RECIPE

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
# The trained folder every result-file and folder case starts from: the same recipe as the tests'.
RECIPE = SCHEMA_RECIPE
QUICK_RUN = ["run", "--data", "5-per-class", "--hidden", "16", "--epochs", "1", "--device", "cpu", "--threads", "1"]
DIGITS = "9" * 5000
TRIES = 5  # of the SIGINT case, whose outcome depends on where the signal lands
LINE = 180  # characters of a command's line shown in the table
SCHEMA = "test_result_schema.py::test_a_result_file_of_the_wrong_type_or_range_is_skipped_by_table_and_plot_naming_the_file_and_field"


class KeepingPopen(subprocess.Popen):
    """measure.run keeps one line of a command's output; round 4's checks (raw ESC, line count) need all of it."""

    last_output = ""

    def communicate(self, *args, **kwargs):
        output, errors = super().communicate(*args, **kwargs)
        KeepingPopen.last_output = output or ""
        return output, errors


# measure.run, unchanged, spawning through KeepingPopen: only measure's own name `subprocess` is rebound.
measure.subprocess = types.SimpleNamespace(**{**vars(subprocess), "Popen": KeepingPopen})


@dataclass
class Spec:
    """What one version's command is: its arguments, its environment's changes (None removes), what to check after."""

    args: list[str]
    env: dict = field(default_factory=dict)
    check: Callable[[str], str] | None = None  # output -> a note on what the case is about
    cleanup: Callable[[], None] | None = None
    interrupt: bool = False  # SIGINT once matplotlib is mapped into the process (the plot case)


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def controls(text: str) -> bool:
    """Whether raw control characters other than newline reached the output (ESC, BEL, NUL...)."""
    return any(unicodedata.category(ch) == "Cc" and ch != "\n" for ch in text)


def printable(text: str) -> str:
    """A cell of the table: control characters as escapes, pipes escaped, so no case can steer the page."""
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(repr(ch)[1:-1] if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out).replace("|", "\\|").replace("`", "'")


def rows_of(results: Path) -> dict[str, list[str]]:
    """method -> the cells of its row in RESULTS/paper-tables.md (the tiny recipe's table)."""
    path = results / "paper-tables.md"
    if not path.is_file():
        return {}
    rows = {}
    for line in path.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) > 3 and cells[0] in ("sgd", "adam", "dba"):
            rows.setdefault(cells[0], cells)
    return rows


def row_n(results: Path, method: str) -> str:
    cells = rows_of(results).get(method)
    return f"{method} row n={cells[2]}" if cells else f"no {method} row"


def cases(base: Path) -> list[tuple[str, str, Callable[[Path, str], Spec]]]:
    """(label, test that reproduces it, setup(folder, version) -> Spec) for every case of the issue."""

    def trained(folder: Path, version: str) -> Path:
        return Path(shutil.copytree(base / f"trained-{version}", folder / "results"))

    def recipe_file(folder: Path, text: str = RECIPE) -> str:
        (folder / "r.yaml").write_text(text)
        return str(folder / "r.yaml")

    def reproduce(folder: Path, recipe: str, *extra: str) -> list[str]:
        return ["reproduce", recipe, "--results", str(folder / "res"), "--device", "cpu", "--threads", "1", *extra]

    def results_written(folder: Path) -> str:
        return f"result files written: {len(list((folder / 'res').rglob('seed-*.json')))}"

    def device(minor: int):
        def setup(folder: Path, version: str) -> Spec:
            target = folder / "dev"
            os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, minor))

            def check(output: str) -> str:
                now = os.lstat(target)
                kept = stat.S_ISCHR(now.st_mode) and now.st_rdev == os.makedev(1, minor)
                now_is = "a regular file" if stat.S_ISREG(now.st_mode) else "something else"
                return "still a character device: yes" if kept else f"still a character device: no (now {now_is})"
            return Spec([*QUICK_RUN, "--output", str(target)], check=check)
        return setup

    def escape_extends(folder: Path, version: str) -> Spec:
        recipe = recipe_file(folder, 'name: r\nextends: "\\e[2J\\e]0;pwned\\a"\n')
        return Spec(reproduce(folder, recipe), check=lambda output: f"raw ESC in output: {yes(chr(27) in output)}")

    def escape_path(folder: Path, version: str) -> Spec:
        def check(output: str) -> str:
            return f"raw control chars in output: {yes(controls(output))}, {len(output.strip().splitlines())} line(s)"
        return Spec(reproduce(folder, str(folder / "a\nb\x1b[31m.yaml")), check=check)

    def set_value(override: str):
        return lambda folder, version: Spec(reproduce(folder, recipe_file(folder), "--set", override),
                                            check=lambda output: results_written(folder))

    def seeds_in_recipe(folder: Path, version: str) -> Spec:
        recipe = recipe_file(folder, RECIPE.replace("seeds: 2", f"seeds: {DIGITS}"))
        return Spec(reproduce(folder, recipe), check=lambda output: results_written(folder))

    def big_lr(folder: Path, version: str) -> Spec:
        output_file = folder / "r.json"
        return Spec([*QUICK_RUN, "--lr", "1e39", "--output", str(output_file)],
                    check=lambda output: f"result written: {yes(output_file.exists())}")

    def edited(label: str, command: str):
        """A CASES edit of test_result_schema.py, then `dba table` or `dba plot` on the folder."""
        from tests.hardening.test_result_schema import CASES, set_path

        _, relative, path, value, _ = next(case for case in CASES if case[0] == label)

        def setup(folder: Path, version: str) -> Spec:
            results = trained(folder, version)
            document = json.loads((results / relative).read_text())
            set_path(document, path, value)
            (results / relative).write_text(json.dumps(document))
            method = relative.split("/")[1]

            def what_the_table_says() -> str:
                if label.startswith("method_name"):
                    return row_n(results, "adam")
                if label.startswith("diverged"):
                    cells = rows_of(results).get("sgd")
                    return f"sgd row says diverged: {yes(bool(cells) and 'diverged' in ' '.join(cells))}"
                return row_n(results, method)

            def check(output: str) -> str:
                if command == "plot":
                    return f"warning names the file: {yes(relative in output)}"
                said = what_the_table_says()
                if "mix runs of different code versions" not in output:
                    return said
                # The hand edit broke the file's digest, so it counts as another code version and the table is
                # refused; what it would have tabulated is what the same table says when told to mix them.
                again = subprocess.run([PYTHON, "-m", "dba_cli", "table", "--results", str(results), "--mixed-versions"],
                                       cwd=folder, env=environment(version, folder), capture_output=True, text=True)
                bug = next((line.split(": ")[1] for line in again.stdout.splitlines() + again.stderr.splitlines()
                            if line.startswith("internal error")), "")
                exit_code = f"exit {again.returncode}" + (f" ({bug})" if bug else "")
                return f"{said}; with --mixed-versions: {exit_code}, {what_the_table_says()}"
            return Spec([command, "--results", str(results)], check=check)
        return setup

    def huge_number(folder: Path, version: str) -> Spec:
        results = trained(folder, version)
        target = results / "tiny" / "adam" / "seed-1.json"
        target.write_text(target.read_text().replace('"threads":1', '"threads":' + DIGITS))
        relative = "tiny/adam/seed-1.json"
        return Spec(["table", "--results", str(results)],
                    check=lambda output: f"warning names the file: {yes(any(relative in line for line in output.splitlines() if line.startswith('warning')))}, {row_n(results, 'adam')}")

    def bind_read_only(folder: Path, source: Path) -> tuple[Path, Callable[[], None]]:
        mounted = folder / f"{source.name}-ro"
        mounted.mkdir()
        subprocess.run(["mount", "--bind", str(source), str(mounted)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], check=True)
        return mounted, lambda: subprocess.run(["umount", str(mounted)], check=True)

    def read_only_results(folder: Path, version: str) -> Spec:
        mounted, unmount = bind_read_only(folder, trained(folder, version))
        return Spec(["table", "--results", str(mounted)], cleanup=unmount)

    def cache_is_a_file(folder: Path, version: str) -> Spec:
        (folder / "cache-file").write_text("not a folder")
        output_file = folder / "r.json"
        return Spec([*QUICK_RUN, "--output", str(output_file)], env={"DBA_CACHE_DIR": str(folder / "cache-file")},
                    check=lambda output: f"result written: {yes(output_file.exists())}")

    def damaged_read_only_cache(folder: Path, version: str) -> Spec:
        cache = folder / "cache"
        good = folder / "good.json"
        subprocess.run([PYTHON, "-m", "dba_cli", *QUICK_RUN, "--output", str(good)], cwd=folder, capture_output=True,
                       env={**environment(version, folder), "DBA_CACHE_DIR": str(cache)}, check=True)
        entries = sorted((cache / "mnist").glob("*.idx"))
        entries[0].write_bytes(b"damaged")
        mounted, unmount = bind_read_only(folder, cache)
        again = folder / "again.json"

        def check(output: str) -> str:
            if not again.exists():
                return "result written: no"
            same = json.loads(again.read_text())["final_test_accuracy"] == json.loads(good.read_text())["final_test_accuracy"]
            return f"result written: yes, same accuracy as with the good cache: {yes(same)}"
        return Spec([*QUICK_RUN, "--output", str(again)], env={"DBA_CACHE_DIR": str(mounted)}, check=check, cleanup=unmount)

    def locks_file(folder: Path, version: str) -> Spec:
        results = trained(folder, version)
        shutil.rmtree(results / ".locks", ignore_errors=True)
        (results / ".locks").write_text("in the way")
        (results / "tiny" / "sgd" / "seed-0.json").unlink()
        return Spec(["reproduce", recipe_file(folder), "--results", str(results), "--device", "cpu", "--threads", "1"],
                    check=lambda output: f"deleted run retrained: {yes((results / 'tiny' / 'sgd' / 'seed-0.json').exists())}")

    def plot_out_file(folder: Path, version: str) -> Spec:
        results = trained(folder, version)
        out = folder / "figures.png"
        out.write_text("a file")
        return Spec(["plot", "--results", str(results), "--out", str(out)],
                    check=lambda output: f"the file unchanged: {yes(out.is_file() and out.read_text() == 'a file')}")

    def checkpoint_left(folder: Path, version: str) -> Spec:
        results = trained(folder, version)
        checkpoint = results / "tiny" / "sgd" / "seed-0.ckpt"
        checkpoint.write_bytes(os.urandom(850_000))
        return Spec(["reproduce", recipe_file(folder), "--results", str(results), "--device", "cpu", "--threads", "1"],
                    check=lambda output: f"checkpoint left: {yes(checkpoint.exists())}")

    def empty_home(folder: Path, version: str) -> Spec:
        root_cache, dot_cache = Path("/.cache/dba"), Path("/.cache")
        existed = root_cache.exists()
        dot_cache_existed = dot_cache.exists()

        def check(output: str) -> str:
            return "/.cache/dba was there already" if existed else f"/.cache/dba created: {yes(root_cache.exists())}"

        def cleanup() -> None:
            if not dot_cache_existed and dot_cache.exists():
                shutil.rmtree(dot_cache)
        return Spec([*QUICK_RUN, "--method", "dba", "--output", str(folder / "r.json")],
                    env={"HOME": "", "DBA_CACHE_DIR": None, "XDG_CACHE_HOME": None}, check=check, cleanup=cleanup)

    def protocol_copy(folder: Path, version: str) -> Spec:
        copy = folder / "results"
        subprocess.run(["cp", "-r", str(ROOT / "results"), str(copy)], check=True)

        def check(output: str) -> str:
            report = copy / "protocol.md"
            return f"'None%' in protocol.md: {report.read_text().count('None%')}" if report.is_file() else "no protocol.md"
        return Spec(["table", "--results", str(copy)], check=check)

    def sigint_plot(folder: Path, version: str) -> Spec:
        results = trained(folder, version)
        return Spec(["plot", "--results", str(results), "--out", str(folder / "figures")], interrupt=True)

    inputs = "test_inputs_round4.py::"
    folders = "test_folders.py::"
    schema = [
        ("config without method", "table"), ("threads 'abc'", "table"), ("train_seconds 'abc'", "table"),
        ("a list as role", "table"), ("hidden 'abc'", "plot"), ("batch_size 'abc'", "plot"),
        ("kept sizes as text", "plot"), ("method_name adam in sgd/", "table"), ("diverged_at_epoch 'abc'", "table"),
        ("seed -5", "table"),
    ]
    return [
        ("`dba run --output X`, X a mknod copy of /dev/null (char 1,3)",
         inputs + "test_run_output_onto_a_device_or_fifo_is_refused_before_training_and_the_device_stays", device(3)),
        ("`dba run --output X`, X a mknod copy of /dev/full (char 1,7)",
         inputs + "test_run_output_onto_a_device_or_fifo_is_refused_before_training_and_the_device_stays", device(7)),
        ("a recipe whose `extends:` holds ESC sequences (`\"\\e[2J\\e]0;pwned\\a\"`)",
         inputs + "test_an_extends_holding_escape_sequences_is_printed_escaped", escape_extends),
        ("a recipe path holding a newline and ESC (`a\\nb\\e[31m.yaml`, no such file)",
         inputs + "test_a_recipe_path_with_a_newline_and_escape_stays_one_escaped_line", escape_path),
        ("`dba reproduce RECIPE --set methods.sgd.lr=1e308`", inputs + "test_set_numbers_beyond_their_bounds_are_one_line",
         set_value("methods.sgd.lr=1e308")),
        ("`dba run --lr 1e39 --data 5-per-class --epochs 1`",
         inputs + "test_run_numbers_beyond_what_training_can_hold_are_one_line", big_lr),
        ("`dba reproduce RECIPE --set seeds=` 5,000 digits", inputs + "test_set_numbers_beyond_their_bounds_are_one_line",
         set_value(f"seeds={DIGITS}")),
        ("a recipe with `seeds:` 5,000 digits", inputs + "test_a_5000_digit_integer_in_a_recipe_file_is_one_line", seeds_in_recipe),
        *[(f"`dba {command}`, a result file with {label}", f"{SCHEMA}[{label}]", edited(label, command))
          for label, command in schema],
        ("`dba table`, a 5,000-digit number in a result file", "test_result_schema.py::test_a_5000_digit_number_is_named_with_its_file",
         huge_number),
        ("`dba table` on a read-only results folder (read-only bind mount)",
         folders + "test_table_on_a_read_only_results_folder_is_one_line", read_only_results),
        ("`DBA_CACHE_DIR` a regular file, `dba run --data 5-per-class --epochs 1 --hidden 16`",
         folders + "test_a_cache_that_is_a_regular_file_is_bypassed_with_a_warning", cache_is_a_file),
        ("a read-only cache (bind mount) holding a damaged `.idx` entry, `dba run`",
         folders + "test_a_read_only_cache_with_a_damaged_entry_is_bypassed_and_trains_the_same", damaged_read_only_cache),
        ("`results/.locks` a regular file, `dba reproduce` with one result deleted",
         folders + "test_a_locks_file_in_place_of_the_folder_is_one_line_naming_it", locks_file),
        ("`dba plot --out F`, F a regular file", folders + "test_plot_out_that_is_a_regular_file_is_one_line", plot_out_file),
        ("a checkpoint beside a finished result, then `dba reproduce`",
         folders + "test_a_rerun_removes_the_checkpoint_a_finished_run_left", checkpoint_left),
        ("`HOME=\"\"` (no DBA_CACHE_DIR, no XDG_CACHE_HOME), `dba run --method dba`",
         folders + "test_an_empty_home_means_no_cache_never_one_at_the_root", empty_home),
        ("`dba table` on a copy of results/: protocol.md", folders + "test_protocol_report_of_a_recipe_without_a_claim_says_so",
         protocol_copy),
        ("`dba plot` interrupted (SIGINT) while matplotlib loads", folders + "test_sigint_while_matplotlib_loads_says_interrupted",
         sigint_plot),
    ]


BEFORE_SOURCE = Path("/tmp/old")  # set from --before-source


def environment(version: str, folder: Path) -> dict:
    """The case's environment: one job, no colour, 200 columns, its own cache and temporary folder (crash reports)."""
    env = {**os.environ, "DBA_JOBS": "1", "NO_COLOR": "1", "COLUMNS": "200", "DBA_CACHE_DIR": str(folder / "cache"),
           "TMPDIR": str(folder)}
    env.pop("PYTHONPATH", None)
    if version == "before":
        env["PYTHONPATH"] = str(BEFORE_SOURCE)
    return env


def interrupted(args: list[str], cwd: Path, env: dict) -> dict:
    """`python -m dba_cli ARGS`, sent SIGINT once matplotlib's files are mapped into it (as the test does)."""
    started = time.monotonic()
    process = subprocess.Popen([PYTHON, "-m", "dba_cli", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True, preexec_fn=limit_file_size)
    peak = 0

    def sample() -> bool:
        nonlocal peak
        peak = max(peak, tree_rss(process.pid))
        return time.monotonic() - started < measure.TIMEOUT

    sent = interrupt_once_loading(process, "matplotlib", sample)
    try:
        output = process.communicate(timeout=measure.TIMEOUT)[0]
        code = f"exit {process.returncode}"
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, code = process.communicate()[0], f"hung: killed at {measure.TIMEOUT:.0f} s"
    note = "SIGINT sent mid-import" if sent else "ended before matplotlib was seen loading: not provoked"
    return {"code": code, "seconds": time.monotonic() - started, "peak_mb": peak / 2**20, "output": output, "note": note}


FIRST = ("internal error", "error", "failed", "warning", "skipped", "interrupted", "note")


def says(output: str) -> str:
    """The line that answers the case: a bug's, else an error's, a warning's, a note's (in that order), else the last."""
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith(("all:", "seed "))]
    for prefix in FIRST:
        for line in lines:
            if line.lower().startswith(prefix):
                return line
    return lines[-1] if lines else "(no output)"


def measure_case(spec: Spec, folder: Path, env: dict) -> dict:
    """One version's command, run and checked; its cleanup (an unmount) always runs.

    The exit and seconds are measure.run's; the line is chosen from the whole output (see `says`): measure.run's
    own choice takes a note over a later warning, and cuts the line before its paths could be shortened.
    """
    for name, value in spec.env.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    try:
        if spec.interrupt:  # where the signal lands varies from try to try: several tries, each outcome counted
            tries = [interrupted(spec.args, folder, env) for _ in range(TRIES)]
            for one in tries:
                one["said"] = says(one["output"]).replace(str(folder), "CASE")
                shutil.rmtree(folder / "figures", ignore_errors=True)
            kinds = Counter((one["code"], one["said"]) for one in tries)
            sent = sum(one["note"].startswith("SIGINT sent") for one in tries)
            return {"code": ", ".join(f"{code} ×{count}" for (code, _), count in kinds.most_common()),
                    "seconds": sorted(one["seconds"] for one in tries)[TRIES // 2], "output": "",
                    "note": f"{TRIES} tries, SIGINT sent mid-import in {sent}",
                    "said": " / ".join(f"{said} (×{count})" for (_, said), count in kinds.most_common())}
        else:
            KeepingPopen.last_output = ""
            outcome = run(PYTHON, spec.args, folder, env)
            outcome["output"] = KeepingPopen.last_output
            outcome["note"] = spec.check(outcome["output"]) if spec.check else ""
            outcome["said"] = says(outcome["output"]).replace(str(folder), "CASE")
    finally:
        if spec.cleanup:
            spec.cleanup()
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-source", required=True, help="a checkout of the code before (its dba_cli/ inside), read only")
    parser.add_argument("--only", default="", help="measure only the cases whose label contains this text")
    options = parser.parse_args()
    global BEFORE_SOURCE
    BEFORE_SOURCE = Path(options.before_source).resolve()
    rows = []
    with tempfile.TemporaryDirectory(prefix="dba-hardening-4-") as scratch:
        scratch = Path(scratch)
        base = scratch / "base"
        base.mkdir()
        (base / "r.yaml").write_text(RECIPE)
        for version in ("before", "after"):
            env = environment(version, base)
            where = subprocess.run([PYTHON, "-c", "import dba_cli; print(dba_cli.__file__)"], cwd=base, env=env,
                                   capture_output=True, text=True, check=True).stdout.strip()
            expected = (BEFORE_SOURCE if version == "before" else ROOT) / "dba_cli" / "__init__.py"
            if Path(where) != expected:
                sys.exit(f"{version}: python -m dba_cli would import {where}, not {expected}")
            subprocess.run([PYTHON, "-m", "dba_cli", "reproduce", "r.yaml", "--results", str(base / f"trained-{version}"),
                            "--device", "cpu", "--threads", "1"], cwd=base, env=env, check=True, capture_output=True)
        for number, (label, test, setup) in enumerate(cases(base), start=1):
            if options.only not in label:
                continue
            measured = []
            for version in ("before", "after"):
                folder = scratch / f"case-{number}-{version}"
                folder.mkdir()
                spec = setup(folder, version)
                outcome = measure_case(spec, folder, environment(version, folder))
                measured.append(outcome)
                shutil.rmtree(folder, ignore_errors=True)
            rows.append((number, label, test, *measured))
            print(f"measured: {number}. {label}", file=sys.stderr, flush=True)
    print("| # | case | before: exit, s | before: what it says | after: exit, s | after: what it says | test (tests/hardening/) |")
    print("|---:|---|---|---|---|---|---|")
    for number, label, test, before, after in rows:
        def cell(m: dict) -> str:
            return f"{m['code']}, {m['seconds']:.1f} s" + (" (median)" if "×" in m["code"] else "")

        def said(m: dict) -> str:
            line = m["said"] if len(m["said"]) <= LINE else m["said"][:LINE] + "…"
            return printable("; ".join(part for part in (m["note"], line) if part))
        print(f"| {number} | {label} | {cell(before)} | {said(before)} | {cell(after)} | {said(after)} | `{test}` |")


if __name__ == "__main__":
    main()
