"""The console's error policy: every problem a user can fix is one line and exit 2, never a traceback.

Usage errors (unknown option, bad value) are one line too (`OneLineErrors`);
Ctrl-C and SIGTERM exit 130 after saying what was kept; a bug in dba is exit 1
with its traceback saved to a file. stdout stays clean for `--json` and tables:
everything here goes to stderr (`err`, from display.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.markup import escape
from typer.core import TyperGroup

from ..errors import DBAError
from .display import err


def is_click_error(exc: BaseException) -> bool:
    """A usage error from the parser (unknown option, bad value, missing argument, ...).

    Recognised by what it can do, not by its class: Click's exceptions moved
    between Typer releases (the `click` package, then vendored inside Typer),
    and only their behaviour, an exit code and `format_message()`, is shared.
    """
    return isinstance(getattr(exc, "exit_code", None), int) and callable(getattr(exc, "format_message", None))


def is_help_request(exc: BaseException) -> bool:
    """Click's NoArgsIsHelpError (`dba` or `dba recipes` alone): its message is the help text itself."""
    return any(cls.__name__ == "NoArgsIsHelpError" for cls in type(exc).__mro__) and callable(getattr(exc, "show", None))


class OneLineErrors(TyperGroup):
    """Usage errors (unknown option, bad value, missing argument) as one line, like every other dba error.

    Typer draws these in a multi-line box; a reproducer that is scripted and
    logged is better served by `error: <what> (see 'dba CMD --help')`, exit 2.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            err.print("Aborted.")
            sys.exit(1)
        except Exception as exc:
            if is_help_request(exc):
                exc.show()
                sys.exit(exc.exit_code)
            if not is_click_error(exc):
                raise
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = " ".join(exc.format_message().split())  # err escapes the control characters left in a value
            err.print(f"error: {message}{hint}", highlight=False, soft_wrap=True, markup=False)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


@contextmanager
def user_errors() -> Iterator[None]:
    """Never a traceback: user-fixable errors exit 2, Ctrl-C 130, a bug 1 with its traceback saved to a file."""
    try:
        yield
    except DBAError as exc:
        message = str(exc)  # one line: err escapes any newline or control character it quotes (errors.printable)
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        err.print("[yellow]Interrupted.[/]")
        raise typer.Exit(code=130) from None
    except BrokenPipeError:  # `dba recipes list | head`: the reader has gone, nothing is wrong with dba
        silence_stdout()
        raise typer.Exit(code=1) from None
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if type(exc).__name__ == "RunsFailed":  # run.execute.RunsFailed (not imported here: it would load torch)
            err.print(f"[bold red]failed:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from None
        from ..training.devices import out_of_memory_message

        message = out_of_memory_message(exc)
        if message is not None:
            err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        report = save_crash_report(exc)
        err.print(
            f"[bold red]internal error[/] (a bug in dba, not in your input): {type(exc).__name__}: {exc}. "
            f"Traceback saved to {report}; please attach it to a bug report. Finished runs are kept; "
            "rerunning the same command continues.",
            highlight=False, soft_wrap=True,
        )
        raise typer.Exit(code=1) from None


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's last flush at exit does not hit the closed pipe again."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. under a test runner)
        pass


def save_crash_report(exc: BaseException) -> str:
    """Write the traceback to a file (the user sees one line, a maintainer gets everything)."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    try:
        handle, path = tempfile.mkstemp(prefix="dba-crash-", suffix=".log")
        with open(handle, "w", encoding="utf-8") as out:
            out.write(" ".join(sys.argv) + "\n\n" + text)
        return path
    except OSError:
        return "(could not be saved)"


def show_notes(notes: list[str]) -> None:
    """Each distinct note once, before anything trains."""
    for note in dict.fromkeys(notes):
        err.print(f"[cyan]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


@contextmanager
def warnings_shown() -> Iterator[None]:
    """Show library warnings (e.g. a skipped damaged result file) as one yellow line each."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                err.print(f"[yellow]warning:[/] {escape(str(warning.message))}", highlight=False)


def stop_on_signal(signum, frame) -> None:
    """SIGTERM (and SIGINT, even where a shell started us with it ignored) stop like Ctrl-C."""
    raise KeyboardInterrupt


def flags_show_no_type() -> None:
    """`--help` without a `<bool>` after plain flags (`--smoke`, `--overwrite`, `--help` itself).

    Typer 0.29's help shows every option's type; for a flag, which takes no
    value, "<bool>" only suggests that it does. Options that take a value keep theirs.
    """
    from typer.core import TyperOption

    original = TyperOption.display_type_rich
    if getattr(original, "dba_flags_show_no_type", False):
        return

    def display_type_rich(self, ctx):
        if self.is_flag and not self.count:
            return None
        return original(self, ctx)

    display_type_rich.dba_flags_show_no_type = True
    TyperOption.display_type_rich = display_type_rich
