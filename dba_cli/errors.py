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
