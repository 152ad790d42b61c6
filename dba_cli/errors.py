"""User-facing errors.

Everything the user can fix (bad data, bad option, missing GPU) is raised as a
`DBAError` whose message names the culprit and says how to fix it. The CLI turns
these into one clear message and exit code 2 instead of a traceback; anything
else escaping is a bug in `dba` itself.
"""


class DBAError(Exception):
    """An error the user can act on; the message is shown as-is."""


class DataError(DBAError):
    """MNIST files missing, unreadable or failing their checksum."""


class ConfigError(DBAError):
    """An option or recipe value is invalid."""


class DeviceError(DBAError):
    """The requested device is not available."""


class ResultsNotWritable(DBAError):
    """The results folder cannot be created or written, or the disk is full."""


class UnreadableFile(DBAError, ValueError):
    """A file dba reads back (a result, a report, a checkpoint, a data file) is not what it can read: wrong kind, too
    large, nested too deep, or a link out of its folder. A ValueError too, so that callers that treat a damaged
    file as damaged (a result to rerun, a row to skip) treat this one alike."""

    def __init__(self, path, reason: str, too_large: bool = False) -> None:
        super().__init__(f"{path}: unreadable: {reason}")
        self.path = path
        self.reason = reason
        self.too_large = too_large  # over the size such a file can have (the rest: wrong kind, nesting, a link out)


def printable(text: str) -> str:
    """`text` with every control or non-printable character written as its escape (`\\x1b`, `\\n`, `\\x00`, `\\u200b`).

    The one helper behind every line dba prints that may quote its input (a
    recipe path, a key, a file's content): a recipe holding ESC sequences must
    not clear the screen or retitle the window, and a newline or NUL must not
    split or hide the line. Printable text, non-ASCII letters included, is kept as it is.
    """
    if text.isprintable():
        return text
    return "".join(character if character.isprintable() else escaped(character) for character in text)


def escaped(character: str) -> str:
    code = ord(character)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if character in named:
        return named[character]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
