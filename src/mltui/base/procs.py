"""Process helpers for the whole product: this host, its boot and user, /proc/<pid>/stat, liveness of a
pid, and the git state of a folder. Standard library only."""

from __future__ import annotations

import os
import socket
from pathlib import Path

host = socket.gethostname()  # this machine's name, as runs record it


def boot_id() -> str | None:
    """This boot of this machine (Linux's random boot id): a run recorded under another boot on this host
    was cut short by a reboot. None where the kernel does not say."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def proc_stat(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (state first, then ppid, pgrp, ...);
    None when the process is gone or /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def pid_alive(pid: int | None) -> bool:
    """Whether `pid` is a live (not zombie) process on this host."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    fields = proc_stat(pid)
    return not fields or fields[0] not in (b"Z", b"X")


def process_start(pid: int | None) -> int | None:
    """When `pid` started (clock ticks since boot, /proc/<pid>/stat field 22); None if unknown or gone."""
    fields = proc_stat(pid) if pid else None
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def same_process(pid: int | None, started: int | None) -> bool:
    """Whether `pid` is alive and still the process that started at `started` (not a reused pid)."""
    if not pid_alive(pid):
        return False
    return started is None or process_start(pid) in (None, started)


def git_state(cwd: str) -> tuple[str | None, bool | None]:
    import subprocess

    here = Path(cwd)
    if not any((p / ".git").exists() for p in (here, *here.parents)):
        return None, None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None, None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        return commit.stdout.strip() or None, bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def user() -> str:
    """The account of the real user id, from the password database. Never $USER, $LOGNAME or any other
    variable: anyone can set those, and who acts must be who is logged in."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no account (a container run with --user 12345)
        return str(os.getuid())


def home() -> Path:
    """The account's home folder from the password database ($HOME may be another user's under runuser)."""
    import pwd

    try:
        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        return Path(os.path.expanduser("~"))


def umask() -> int:
    """The process's umask, read without changing it where /proc says it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old
