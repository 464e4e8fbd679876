"""Exceptions a user can cause. Their messages say what was wrong and what to do."""


class GpsvizError(Exception):
    """Base class for errors caused by user input (bad config, missing data, bad checkpoint)."""


class ConfigError(GpsvizError, ValueError):
    """An option has an unknown name or an impossible value."""


class DataError(GpsvizError, ValueError):
    """A dataset, file or array cannot be used as given."""


class DownloadError(GpsvizError, RuntimeError):
    """A download failed (typically: no network). The message says which files to put where."""


class CheckpointError(GpsvizError, RuntimeError):
    """A checkpoint file is missing, truncated or not written by gpsviz."""


class WriteError(GpsvizError, OSError):
    """A file could not be written (disk full, read-only file system, name too long, no permission).

    Also an ``OSError`` (``errno`` is the cause's), so callers that tolerate a failed cache write keep doing so.
    The message names the file, the cause and what to do; an atomic write leaves the previous file untouched."""

    def __init__(self, message: str, errno_: int | None = None, filename: str | None = None) -> None:
        super().__init__(message)
        self.errno, self.filename = errno_, filename

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
