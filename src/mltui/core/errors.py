"""Errors meant for people: each carries one plain sentence and an exit code."""


class MltuiError(Exception):
    """A failure the user should read as one sentence (exit code 1)."""

    exit_code = 1


class UsageError(MltuiError):
    """The user asked for something malformed (exit code 2)."""

    exit_code = 2


class WorkspaceNotFound(UsageError):
    """No `.mltui/` folder above the current directory."""


class StoreError(MltuiError):
    """The SQLite store cannot be opened or used as asked."""


class NotFound(MltuiError):
    """A run, key or object that was named does not exist."""
