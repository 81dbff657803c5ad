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
    """The SQLite store cannot be opened or used as asked. `unwritable`: it cannot be written here (a
    read-only file, disk or folder), so a reader may still open it read-only."""

    def __init__(self, message: str, unwritable: bool = False) -> None:
        super().__init__(message)
        self.unwritable = unwritable


class NotFound(MltuiError):
    """A run, key or object that was named does not exist."""
