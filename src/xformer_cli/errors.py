"""The project's one exception family.

Every error a user can cause is an `XformerError`; the CLI prints its message as one line on
stderr and exits with status 1, without a traceback.
"""


class XformerError(Exception):
    """Base class of every user-facing error."""


class ConfigError(XformerError):
    """A bad preset, recipe key or option value."""


class ModelLoadError(XformerError):
    """A model bundle that is missing, corrupt, or does not match its config."""


class DataError(XformerError):
    """A corpus or input text that cannot be used (counts differ, not UTF-8, empty)."""


class RunError(XformerError):
    """A training run that cannot start or resume (locked, unwritable, changed config)."""


class Interrupted(XformerError):
    """Work stopped by Ctrl-C after saving what it had (the CLI exits with status 130)."""


class WorkerError(XformerError):
    """A translation worker process that ended before finishing its work (killed, out of memory)."""


class DocumentError(XformerError):
    """A file that cannot be translated as its format: malformed, not UTF-8, an unknown format.
    The message names the file and, where known, the line."""
