"""The hardening cases of round 3, measured: each command's exit code, seconds and peak memory, before and after.

    python -m tests.hardening.measure --before OLD/.venv/bin/python --after .venv/bin/python > docs/hardening-round-3.md

Each case sets up its hostile input in a fresh folder, runs `python -m dba_cli ...`
with each interpreter (the same checkout's code, or another's), kills it after
TIMEOUT seconds or once its process tree holds more than MEMORY_CAP of memory
(the machine has 24 GB: a case that would read 23.6 GB must not take it down). Each runs in its
own folder, so that `python -m dba_cli` imports the interpreter's own installed dba_cli, not this checkout's,
and prints one markdown table. Not a test (pytest does not collect it): the
tests in tests/hardening/ check each case's new behaviour; this records what
the behaviour was and is.
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

TIMEOUT = 90.0  # a download given up after its 30 s read timeout or 30 s rate window finishes well within
MEMORY_CAP = 8 * 2**30
FILE_CAP = 4 * 2**30
ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "hardening" / "tiny.yaml"


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            for line in (Path("/proc") / str(current) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        stack.extend(children.get(current, []))
    return total


def limit_file_size() -> None:
    """No file larger than FILE_CAP: the old `--mirror file:///dev/zero#` copied until the disk was full."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_CAP, FILE_CAP))


def run(python: str, args: list[str], cwd: Path, env: dict) -> dict:
    """Run `python -m dba_cli ARGS`; its exit code (or how it was stopped), seconds and peak memory."""
    started = time.monotonic()
    process = subprocess.Popen([python, "-m", "dba_cli", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True, text=True, preexec_fn=limit_file_size)
    peak, stopped = 0, None
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        elapsed = time.monotonic() - started
        if elapsed > TIMEOUT:
            stopped = f"hung: killed at {TIMEOUT:.0f} s"
        elif peak > MEMORY_CAP:
            stopped = f"killed at {MEMORY_CAP / 2**30:.0f} GB"
        if stopped:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    output = process.communicate()[0]
    seconds = time.monotonic() - started
    lines = [line for line in output.splitlines() if line.strip() and not line.startswith(("all:", "seed "))]
    # What it says about the bad input: its first warning or error, else its last line.
    flagged = [line for line in lines if line.lstrip().lower().startswith(("warning", "error", "skipped", "note"))]
    return {"code": stopped or f"exit {process.returncode}", "seconds": seconds, "peak_mb": peak / 2**20,
            "said": (flagged or lines[-1:] or [""])[0][:160]}


class Server:
    """A loopback HTTP server: 'silent' accepts and never answers, 'drip' sends a byte every 5 s, 'endless' never stops."""

    def __init__(self, behaviour: str) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                try:
                    if behaviour == "silent":
                        time.sleep(3600)
                        return
                    self.send_response(200)
                    self.end_headers()
                    block = os.urandom(2**16)
                    while True:
                        self.wfile.write(b"\x1f" if behaviour == "drip" else block)
                        self.wfile.flush()
                        if behaviour == "drip":
                            time.sleep(5)
                except OSError:
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def cases(base: Path, servers: dict[str, Server]) -> list[tuple[str, str, callable]]:
    """(label, test that reproduces it, setup(folder) -> (args, note)) for every case of the issue."""
    twenty = "9" * 20
    long_name = "x" * 300

    def results_with(folder: Path, kind: str):
        results = folder / "results"
        source = base / "trained"
        shutil.copytree(source, results, symlinks=True)
        target = results / "tiny" / "adam" / "seed-1.json"
        target.unlink()
        if kind == "fifo":
            os.mkfifo(target)
        elif kind == "dev-zero":
            target.symlink_to("/dev/zero")
        elif kind == "deep":
            target.write_text("[" * 10_000_000 + "]" * 10_000_000)
        elif kind == "deep-small":  # under the size cap: the nesting limit must catch it
            target.write_text("[" * 1_000_000 + "]" * 1_000_000)
        return results

    def table(kind):
        return lambda folder: (["table", "--results", str(results_with(folder, kind))], "")

    def plot_outside(folder: Path):
        results = folder / "results"
        shutil.copytree(base / "trained", results)
        escape = folder / "elsewhere"
        for path in results.rglob("seed-*.json"):
            document = json.loads(path.read_text())
            document["recipe"] = str(escape / "x")  # no valid digest needed
            path.write_text(json.dumps(document))
        escape.mkdir()
        return ["plot", "--results", str(results)], f"wrote outside: check {escape}"

    def data_folder(folder: Path, how: str):
        data = folder / "data"
        data.mkdir()
        for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            shutil.copy(base / "mnist" / f"{name}.gz", data / f"{name}.gz")
        target = data / "train-images-idx3-ubyte.gz"
        target.unlink()
        if how == "bomb":
            shutil.copy(base / "bomb.gz", target)
        elif how == "sparse":
            with open(data / "train-images-idx3-ubyte", "wb") as handle:
                handle.truncate(100 * 2**30)
        return ["data", "check", "--data-dir", str(data)], ""

    def fetch(url: str):
        return lambda folder: (["data", "fetch", "fashion-mnist", "--mirror", url, "--to", str(folder / "to")], "")

    def fetch_after_kill(folder: Path):
        stale = folder / "to" / ".fetch-abandoned"
        stale.mkdir(parents=True)
        (stale / "train-images-idx3-ubyte.gz").write_bytes(os.urandom(2**20))
        empty = folder / "mirror"
        empty.mkdir()
        return ["data", "fetch", "fashion-mnist", "--mirror", empty.as_uri() + "/", "--to", str(folder / "to")], f"staging left: check {stale}"

    def empty_check(folder: Path):
        (folder / "empty").mkdir()
        return ["data", "check", "--data-dir", str(folder / "empty")], ""

    def recipe(text: str):
        def setup(folder: Path):
            (folder / "r.yaml").write_text(text)
            return ["reproduce", str(folder / "r.yaml"), "--results", str(folder / "res")], ""
        return setup

    tiny = TINY.read_text()
    # The convergence section as each version reads it: lr_points (before) or a family's list of learning rates (after).
    before_section = ("convergence: {validation_size: VAL, targets: [90], epochs: 1, lr_points: POINTS, lr_range: "
                      "{sgd: [0.1, 1], sgd-momentum: [0.01, 0.1], adam: [0.001, 0.01]}, dba_variants: [{metric: snr}]}\n")
    after_section = "convergence: {validation_size: VAL, targets: [90], epochs: 1, budget: 1, families: {sgd: {lr: LRS}}}\n"

    def converge_case(val: int, points: int):
        def setup(folder: Path):
            after = folder.name.endswith("after")
            section = (after_section.replace("LRS", "[" + ", ".join(["0.1"] * points) + "]") if after
                       else before_section.replace("POINTS", str(points)))
            (folder / "c.yaml").write_text((tiny + section).replace("data: 5-per-class", "data: full").replace("VAL", str(val)))
            return ["converge", str(folder / "c.yaml"), "--results", str(folder / "res"), "--jobs", "1"], ""
        return setup

    def plain(*args):
        return lambda folder: ([a.replace("FOLDER", str(folder)) for a in args], "")

    return [
        ("`dba plot` with `\"recipe\": \"/elsewhere/x\"` in a result file", "test_read_back: figures_folder", plot_outside),
        ("`dba table`, a result file that is a FIFO", "test_read_back: [fifo]", table("fifo")),
        ("`dba table`, a result file linked to /dev/zero", "test_read_back: [dev-zero]", table("dev-zero")),
        ("`dba table`, a result file of a 10^7-deep list", "test_read_back: [deep]", table("deep")),
        ("`dba table`, a result file of a 10^6-deep list (2 MB, under the size cap)", "test_read_back: [deep-small]", table("deep-small")),
        ("`dba data check`, a 9 MB gzip expanding to 2 GiB", "test_data_bounds: decompression_bomb", lambda f: data_folder(f, "bomb")),
        ("`dba data check`, a 100 GB sparse IDX file", "test_data_bounds: sparse", lambda f: data_folder(f, "sparse")),
        ("`dba data fetch`, a mirror that never answers", "test_data_bounds: [silent]", fetch(servers["silent"].url)),
        ("`dba data fetch`, a mirror sending a byte every 5 s", "test_data_bounds: [drip]", fetch(servers["drip"].url)),
        ("`dba data fetch`, a mirror with an endless body", "test_data_bounds: [endless]", fetch(servers["endless"].url)),
        ("`dba data fetch --mirror file:///dev/zero#`", "test_data_bounds: dev_zero", fetch("file:///dev/zero#")),
        ("`dba data fetch` after a killed fetch left `.fetch-*/`", "test_data_bounds: staging_folder", fetch_after_kill),
        ("`dba data check --data-dir EMPTY` (cache full)", "test_data_bounds: data_check_reads", empty_check),
        ("`dba data check fashion-mnist --data-dir` MNIST's files", "test_data_bounds: data_check_reads",
         plain("data", "check", "fashion-mnist", "--data-dir", str(ROOT / "dba_cli" / "data" / "mnist"))),
        ("`dba reproduce --seeds 1000000000`", "test_bounds: billion_seeds", plain("reproduce", str(TINY), "--seeds", "1000000000", "--results", "FOLDER/res")),
        ("`dba reproduce`, a recipe with `seeds: 1000000000`", "test_bounds: billion_seeds", recipe(tiny.replace("seeds: 2", "seeds: 1000000000"))),
        ("`dba converge`, a million learning rates (`lr_points: 1000000`; after: a list of 10^6)", "test_bounds: billion_seeds", converge_case(5000, 1000000)),
        ("`dba reproduce --jobs 1000` on a 4-run grid", "test_bounds: jobs_beyond", plain("reproduce", str(TINY), "--jobs", "1000", "--results", "FOLDER/res", "--device", "cpu")),
        ("`--data-dir` of 300 characters", "test_bounds: folder_name_too_long", plain("reproduce", str(TINY), "--data-dir", f"FOLDER/{long_name}", "--results", "FOLDER/res")),
        ("`--results` of 300 characters", "test_bounds: folder_name_too_long", plain("reproduce", str(TINY), "--results", f"FOLDER/{long_name}")),
        ("`dba data fetch --to` of 300 characters", "test_bounds: fetch_target", plain("data", "fetch", "fashion-mnist", "--to", f"FOLDER/{long_name}")),
        ("`dba run --hidden` (20 digits)", "test_bounds: out_of_range", plain("run", "--hidden", twenty)),
        ("`dba run --architecture cnn --channels 8,` (20 digits)", "test_bounds: out_of_range", plain("run", "--architecture", "cnn", "--channels", f"8,{twenty}")),
        ("`dba run --method dba --min-size` (20 digits)", "test_bounds: out_of_range", plain("run", "--method", "dba", "--min-size", twenty)),
        ("`dba run --method dba --max-removals` (20 digits)", "test_bounds: out_of_range", plain("run", "--method", "dba", "--max-removals", twenty)),
        ("`dba run --threads` (20 digits)", "test_bounds: out_of_range", plain("run", "--threads", twenty)),
        ("a recipe with `hidden: [` 20 digits `]`", "test_bounds: in_a_recipe", recipe(tiny.replace("hidden: [32]", f"hidden: [{twenty}]"))),
        ("`dba run --epochs 10^20`", "test_bounds: out_of_range", plain("run", "--epochs", str(10**20))),
        ("`--ray` with a 70-character host label", "test_bounds: ray_address", plain("reproduce", str(TINY), "--ray", "a" * 70 + ".example:6379", "--results", "FOLDER/res")),
        ("`dba converge`, `validation_size` = the whole training set", "test_bounds: validation_split", converge_case(60000, 1)),
        ("`--ray 127.0.0.1:99999`", "test_bounds: ray_address", plain("reproduce", str(TINY), "--ray", "127.0.0.1:99999", "--results", "FOLDER/res")),
    ]


def prepare(base: Path, python: str, before: str, env: dict) -> None:
    """What the cases start from: a trained tiny recipe, MNIST's gzip files, a 2 GiB gzip bomb, warm caches."""
    (base / "mnist").mkdir()
    for path in (ROOT / "dba_cli" / "data" / "mnist").glob("*.gz"):
        shutil.copy(path, base / "mnist" / path.name)
    with gzip.open(base / "bomb.gz", "wb", compresslevel=9) as out:
        block = bytes(2**24)
        for _ in range(128):
            out.write(block)
    subprocess.run([python, "-m", "dba_cli", "reproduce", str(TINY), "--results", str(base / "trained"), "--device", "cpu"],
                   env=env, check=True, capture_output=True, cwd=base)
    for dataset in ("mnist", "fashion-mnist"):  # the cache as a user's would be (each version keeps its own entries)
        for interpreter in (before, python):
            subprocess.run([interpreter, "-m", "dba_cli", "data", "check", dataset], env=env, capture_output=True, cwd=base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the interpreter of the code before (its dba_cli importable)")
    parser.add_argument("--after", required=True, help="the interpreter of the code after")
    parser.add_argument("--only", default="", help="measure only the cases whose label contains this text")
    options = parser.parse_args()
    servers = {name: Server(name) for name in ("silent", "drip", "endless")}
    rows = []
    with tempfile.TemporaryDirectory(prefix="dba-hardening-") as scratch:
        scratch = Path(scratch)
        env = {**os.environ, "DBA_JOBS": "1", "NO_COLOR": "1", "COLUMNS": "200", "DBA_CACHE_DIR": str(scratch / "cache")}
        base = scratch / "base"
        base.mkdir()
        prepare(base, options.after, options.before, env)
        for label, test, setup in cases(base, servers):
            if options.only not in label:
                continue
            measured = []
            for version, python in (("before", options.before), ("after", options.after)):
                folder = scratch / f"case-{len(rows)}-{version}"
                folder.mkdir()
                args, note = setup(folder)
                # A fresh, empty cache for every case but the one about the cache: a warm one would hide what a
                # data file does to a first load.
                cache = env["DBA_CACHE_DIR"] if "cache full" in label else str(folder / "cache")
                outcome = run(python, args, folder, {**env, "DBA_CACHE_DIR": cache})  # folder: python -m would import ROOT's dba_cli
                if note.startswith("wrote outside"):
                    outcome["said"] = f"wrote outside: {sorted(p.name for p in (folder / 'elsewhere').iterdir()) or 'nothing'}; " + outcome["said"]
                elif note.startswith("staging left"):
                    stale = folder / "to" / ".fetch-abandoned"
                    outcome["said"] = f"old staging folder {'still there' if stale.exists() else 'removed'}; " + outcome["said"]
                measured.append(outcome)
                shutil.rmtree(folder, ignore_errors=True)
            rows.append((label, test, *measured))
            print(f"measured: {label}", file=__import__("sys").stderr, flush=True)
    print("| case | before: exit, s, peak MB | after: exit, s, peak MB | after: what it says | test |")
    print("|---|---|---|---|---|")
    for label, test, before, after in rows:
        cell = lambda m: f"{m['code']}, {m['seconds']:.1f} s, {m['peak_mb']:.0f} MB"  # noqa: E731
        said = after["said"].replace("|", "\\|")
        print(f"| {label} | {cell(before)} | {cell(after)} | {said} | `{test}` |")


if __name__ == "__main__":
    main()
