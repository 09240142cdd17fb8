"""Typed errors: each says what was wrong, where, and how to fix it."""


class RevsegError(Exception):
    """Base class for errors that revseg reports to the user in one line."""


class ConfigError(RevsegError):
    """The configuration (a YAML file or a --set override) is invalid."""


class SourceError(RevsegError):
    """The transaction source cannot be read or lacks a required column."""


class TableError(RevsegError):
    """An output table exists with a shape revseg would not safely write into."""


class RunError(RevsegError):
    """A run was refused or failed before anything was committed."""


class ConcurrentWriteError(RevsegError):
    """Another run committed to the same periods first; retrying is safe."""
