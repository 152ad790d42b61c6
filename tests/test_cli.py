"""The CLI end to end through Typer's CliRunner, on real data."""

import json

import torch
from typer.testing import CliRunner

from dba_cli.cli import app

runner = CliRunner()


def test_help_lists_commands_and_explains_options():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "run" in result.output and "bench" in result.output
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--data", "--method", "--epochs", "--lr", "--hidden", "--seed", "--device", "--data-dir", "--json"):
        assert option in result.output


def test_run_prints_final_accuracy():
    result = runner.invoke(app, ["run", "--epochs", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "final test accuracy:" in result.stdout


def test_run_json_is_one_parseable_result(tmp_path):
    out = tmp_path / "run.json"
    args = ["run", "--data", "10-per-class", "--method", "adam", "--epochs", "3", "--lr", "0.002",
            "--hidden", "128,64", "--seed", "4", "--device", "cpu", "--json", "--output", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # the schema-2 document a results folder holds
    assert summary["schema_version"] == 2 and summary["recipe"] == "run"
    assert summary["config"]["method"] == "adam" and summary["config"]["hidden"] == [128, 64]
    assert summary["config"]["lr"] == 0.002 and summary["config"]["seed"] == 4
    assert len(summary["history"]["train_loss"]) == 3 and summary["history"]["evaluated"]["epoch"] == [1, 2, 3]
    assert summary["final_test_accuracy"] == summary["history"]["evaluated"]["test_accuracy"][-1] > 20
    assert summary["device"] == "cpu" and "subset_indices" not in summary
    saved = json.loads(out.read_text())
    assert len(saved["subset_indices"]) == 100 and saved["subset_hash"] == summary["subset_hash"]
    from dba_cli.results.reading import read_result

    assert read_result(out)["final_test_accuracy"] == summary["final_test_accuracy"]  # read back like any result


def test_cuda_without_gpu_is_a_clear_error_with_exit_code_2():
    if torch.cuda.is_available():
        return
    result = runner.invoke(app, ["run", "--device", "cuda", "--epochs", "1"])
    assert result.exit_code == 2
    assert "no CUDA GPU is available" in result.output and "--device cpu" in result.output
    assert "Traceback" not in result.output


def test_bad_values_give_one_message_naming_the_field_and_exit_2(tmp_path):
    for args, expected in [
        (["--data", "lots"], "--data:"),
        (["--method", "rmsprop"], "--method:"),
        (["--hidden", "512,abc"], "--hidden:"),
        (["--epochs", "0"], "--epochs:"),
        (["--data-dir", str(tmp_path / "missing")], "does not exist"),
        (["--device", "tpu"], "device:"),
    ]:
        result = runner.invoke(app, ["run", *args])
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_corrupted_data_dir_through_the_cli(tmp_path):
    from tests.test_mnist import copy_files

    folder = copy_files(tmp_path / "data", compress=False)
    target = folder / "train-labels-idx1-ubyte"
    target.write_bytes(target.read_bytes()[:-1] + b"\x09")
    result = runner.invoke(app, ["run", "--epochs", "1", "--device", "cpu"], env={"DBA_DATA_DIR": str(folder)})
    assert result.exit_code == 2
    assert "failed its checksum" in result.output and "train-labels-idx1-ubyte" in result.output


def test_run_dba_records_kept_subset_sizes_per_layer():
    args = ["run", "--method", "dba", "--epochs", "2", "--batch-size", "20", "--min-size", "10",
            "--metric", "snr", "--direction", "maximize", "--device", "cpu", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["config"]["dba"]["metric"] == "snr" and summary["config"]["base"] == "sgd"
    kept = {layer: {stat: values[-1] for stat, values in stats.items()} for layer, stats in summary["history"]["kept"].items()}
    assert set(kept) == {"0", "2"}  # the two Linear layers of the Sequential MLP
    assert all(10 <= sizes["min"] <= sizes["mean"] <= sizes["max"] <= 20 for sizes in kept.values())


def test_dba_options_without_method_dba_are_rejected():
    result = runner.invoke(app, ["run", "--metric", "snr", "--epochs", "1"])
    assert result.exit_code == 2 and "settings were given but method is 'sgd'" in result.output


def test_bench_step_prints_ratios_to_plain_sgd():
    args = ["bench", "step", "--batch-sizes", "8", "--hidden", "16", "--repeats", "2", "--naive-repeats", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| 8 | plain SGD step |" in result.stdout and "1.00x" in result.stdout
    assert "faster than the naive DBA" in result.stdout


def test_usage_errors_are_one_line_naming_the_help_and_exit_2():
    for args, expected in [
        (["run", "--bogus"], "error: No such option: --bogus"),
        (["run", "--epochs", "many"], "error: Invalid value for '--epochs'"),
        (["run", "--threads", "0"], "error: Invalid value for '--threads'"),
        (["reproduce"], "error: Missing argument 'recipe'."),
        (["nope"], "error: No such command 'nope'."),
    ]:
        result = runner.invoke(app, args, prog_name="dba")
        lines = result.output.splitlines()
        assert result.exit_code == 2 and len(lines) == 1, (args, result.output)
        assert lines[0].startswith(expected), (args, result.output)
        command = "dba" if args == ["nope"] else f"dba {args[0]}"
        assert lines[0].endswith(f"(see '{command} --help')"), (args, result.output)


def test_dba_or_a_group_alone_shows_its_help():
    for args, usage in [([], "Usage: dba [OPTIONS] COMMAND"), (["recipes"], "Usage: dba recipes [OPTIONS] COMMAND")]:
        result = runner.invoke(app, args, prog_name="dba")
        assert result.exit_code == 2 and usage in result.output and "error:" not in result.output, (args, result.output)


def test_a_reader_that_stops_early_is_not_an_internal_error():
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "dba_cli", "recipes", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # like `dba recipes list | head -0`: nobody reads
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 1
    assert "internal error" not in stderr and "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
