"""Hardening, round 4: outputs never replace a device, messages never steer the terminal, numbers are bounded.

Each case of the issue, provoked for real: `dba run --output` onto a character
device (a copy of /dev/null and /dev/full made with mknod) and a FIFO, a device
put in place while the file is written; a recipe whose `extends:` holds ESC
sequences, a recipe path with a newline and ESC; learning rates above float32's
maximum; 5,000-digit integers in `--set`, a recipe and `--hidden`.
"""

from __future__ import annotations

import os
import stat

import pytest
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.errors import ResultsNotWritable, printable
from dba_cli.files import write_text_atomic
from tests.test_recipes import TINY, write

runner = CliRunner()
RUN = ["run", "--data", "5-per-class", "--hidden", "16", "--epochs", "1", "--device", "cpu"]


def special_files(folder):
    """A copy of /dev/null, one of /dev/full (as root: mknod) and a FIFO."""
    made = {}
    if os.geteuid() == 0:
        for name, minor in (("null", 3), ("full", 7)):
            os.mknod(folder / name, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
            made[name] = "a character device"
    os.mkfifo(folder / "fifo")
    made["fifo"] = "a FIFO"
    return made


def test_run_output_onto_a_device_or_fifo_is_refused_before_training_and_the_device_stays(tmp_path):
    for name, kind in special_files(tmp_path).items():
        target = tmp_path / name
        before = os.lstat(target)
        outcome = runner.invoke(app, [*RUN, "--output", str(target)])
        assert outcome.exit_code == 2, outcome.output
        assert f"--output {target} is {kind}, not a regular file" in outcome.output
        assert "final test accuracy" not in outcome.output  # refused before training
        after = os.lstat(target)
        assert (after.st_mode, after.st_rdev, after.st_ino) == (before.st_mode, before.st_rdev, before.st_ino)


def test_a_device_put_in_place_while_the_file_is_written_is_not_replaced(tmp_path):
    target = tmp_path / "report.md"

    def put_a_fifo_there(handle):
        handle.write(b"text")
        os.mkfifo(target)

    from dba_cli.files import write_atomic

    with pytest.raises(ResultsNotWritable, match="is a FIFO, not a regular file"):
        write_atomic(target, put_a_fifo_there)
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    assert [path.name for path in tmp_path.iterdir()] == ["report.md"]  # the temporary file is gone
    regular = tmp_path / "ok.md"
    write_text_atomic(regular, "a")
    write_text_atomic(regular, "b")  # a regular file is replaced as before
    assert regular.read_text() == "b"


def test_printable_escapes_control_characters_and_keeps_text():
    assert printable("plain, é, ü and 日本") == "plain, é, ü and 日本"
    assert printable("\x1b[2J\x1b]0;title\x07") == "\\x1b[2J\\x1b]0;title\\x07"
    assert printable("a\nb\rc\td\x00e\u200bf\x9b") == "a\\nb\\rc\\td\\x00e\\u200bf\\x9b"


def test_an_extends_holding_escape_sequences_is_printed_escaped(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text('name: r\nextends: "\\e[2J\\e]0;pwned\\a\\0x"\n')
    outcome = runner.invoke(app, ["reproduce", str(recipe), "--device", "cpu", "--results", str(tmp_path / "res")])
    assert outcome.exit_code == 2
    assert "\x1b" not in outcome.output and "\x07" not in outcome.output and "\x00" not in outcome.output
    assert "\\x1b[2J\\x1b]0;pwned\\x07\\x00x" in outcome.output
    assert len(outcome.output.strip().splitlines()) == 1


def test_a_recipe_path_with_a_newline_and_escape_stays_one_escaped_line(tmp_path):
    outcome = runner.invoke(app, ["reproduce", str(tmp_path / "a\nb\x1b[31m.yaml"), "--device", "cpu"])
    assert outcome.exit_code == 2
    assert outcome.output.count("\n") == 1 and "\x1b" not in outcome.output
    assert "a\\nb\\x1b[31m.yaml does not exist" in outcome.output


@pytest.mark.parametrize("args, message", [
    (["--lr", "1e39"], "--lr: is too large: training computes in float32, which holds at most 3.402823e+38"),
    (["--lr", "1e308"], "--lr: is too large"),
    (["--momentum", "1e39"], "--momentum: is too large"),
    (["--hidden", "9" * 5000], "must be comma-separated whole numbers, e.g. 512 or 512,256 (too large: 5,000 digits"),
    (["--epochs", "9" * 5000], "Invalid value for '--epochs'"),
])
def test_run_numbers_beyond_what_training_can_hold_are_one_line(args, message):
    outcome = runner.invoke(app, [*RUN, *args])
    assert outcome.exit_code == 2, outcome.output
    assert message in outcome.output and len(outcome.output) < 400


@pytest.mark.parametrize("override, message", [
    ("methods.sgd.lr=1e308", "methods.sgd.lr: is too large: training computes in float32"),
    ("methods.sgd.lr=1e39", "methods.sgd.lr: is too large"),
    ("seeds=" + "9" * 5000, "--set seeds: a whole number of 5,000 digits at line 1 is too large"),
    ("training.epochs=" + "9" * 5000, "a whole number of 5,000 digits"),
])
def test_set_numbers_beyond_their_bounds_are_one_line(tmp_path, override, message):
    outcome = runner.invoke(app, ["reproduce", write(tmp_path, TINY), "--set", override, "--device", "cpu",
                                  "--results", str(tmp_path / "res")])
    assert outcome.exit_code == 2, outcome.output
    assert message in outcome.output and len(outcome.output) < 400
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").rglob("*.json"))


def test_a_5000_digit_integer_in_a_recipe_file_is_one_line(tmp_path):
    recipe = write(tmp_path, TINY.replace("seeds: 2", "seeds: " + "9" * 5000))
    outcome = runner.invoke(app, ["reproduce", recipe, "--device", "cpu", "--results", str(tmp_path / "res")])
    assert outcome.exit_code == 2
    assert "a whole number of 5,000 digits at line" in outcome.output and len(outcome.output) < 400


def test_a_large_learning_rate_within_float32_still_trains_and_diverges_cleanly(tmp_path):
    outcome = runner.invoke(app, [*RUN, "--epochs", "3", "--lr", "1e30", "--output", str(tmp_path / "r.json")])
    assert outcome.exit_code == 0, outcome.output
    assert "diverged at epoch" in outcome.output.lower(), outcome.output
