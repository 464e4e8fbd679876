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
