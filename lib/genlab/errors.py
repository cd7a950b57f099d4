"""One exception type whose message is meant to be read by a person.

Every user-facing failure (missing data, bad checksum, unknown parameter,
NaN loss, failing notebook) raises `GenlabError` with a single line that says
what went wrong and how to fix it. Command-line entry points print that line
instead of a traceback.
"""


class GenlabError(Exception):
    """A failure with a one-line, actionable message."""


class DatasetNotFound(GenlabError):
    """A dataset is in none of the data folders searched (one that is there but partial or corrupt
    raises plain `GenlabError`: it must never be overwritten by a download)."""
