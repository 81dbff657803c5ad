"""Out-of-memory kills told apart from a SIGKILL someone sent, and the command's memory use.

The supervisor follows its command with a `MemoryWatch`: at each heartbeat the resident memory of the
command's process group (the peak goes on the run), and at each tick the memory cgroups the command's
process is in (read from /proc/<pid>/cgroup while it lives: after its death the kernel no longer says),
with each cgroup's out-of-memory kill count when first seen. When the command dies of a SIGKILL that
mltui did not send, `oom_killed()` asks the kernel's own records: a rise of `oom_kill` in one of those
cgroups (cgroup v2 `memory.events`, v1 `memory.oom_control`), or a kernel log line (/dev/kmsg, where
readable) that names the process as killed for want of memory after it started.
"""

from __future__ import annotations

import errno
import os

from mltui.base.procs import proc_stat
from mltui.base.text import gigabytes

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_KMSG_RECORDS = 200_000  # reading the kernel log stops there (it is a ring of a few MB at most)


def group_rss(pgid: int) -> int:
    """Resident bytes of the live processes in group `pgid` (shared pages are counted in each)."""
    total = 0
    key = str(pgid).encode()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = proc_stat(entry)
        if fields and len(fields) > 21 and fields[2] == key and fields[0] not in (b"Z", b"X"):
            try:
                total += int(fields[21]) * _PAGE
            except ValueError:
                pass
    return total


def _mounts() -> list[tuple[str, str, str]]:
    """(kind, root inside the hierarchy, mount point) of the memory cgroup mounts: kind 'v1' or 'v2'."""
    found = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return found
    for line in lines:
        head, sep, tail = line.partition(" - ")
        if not sep:
            continue
        fields, extra = head.split(), tail.split()
        if len(fields) < 5 or len(extra) < 3:
            continue
        root, point = _unescape(fields[3]), _unescape(fields[4])
        if extra[0] == "cgroup2":
            found.append(("v2", root, point))
        elif extra[0] == "cgroup" and "memory" in extra[2].split(","):
            found.append(("v1", root, point))
    return found


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash in octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def memory_cgroups(pid: int, mounts: list[tuple[str, str, str]] | None = None) -> list[tuple[str, str]]:
    """(kind, folder) of the memory cgroups `pid` is in now: the v1 memory hierarchy's, and the v2 one's
    where its memory controller is on. Empty when the process is gone or no memory cgroup is mounted."""
    mounts = _mounts() if mounts is None else mounts
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hid == "0" and controllers == "":
            kind = "v2"
        elif "memory" in controllers.split(","):
            kind = "v1"
        else:
            continue
        for mkind, root, point in mounts:
            if mkind != kind:
                continue
            rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
            if rel == ".." or rel.startswith("../"):
                continue
            folder = os.path.normpath(os.path.join(point, rel))
            if kind == "v1" or os.path.exists(os.path.join(folder, "memory.events")):
                out.append((kind, folder))
            break
    return out


def oom_kills(kind: str, folder: str) -> int | None:
    """The cgroup's count of out-of-memory kills (None where the kernel does not keep one)."""
    name = "memory.events" if kind == "v2" else "memory.oom_control"
    try:
        with open(os.path.join(folder, name), encoding="ascii") as fh:
            for line in fh:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return None
    return None


def kernel_says_oom(pid: int, since_us: float | None = None) -> bool:
    """Whether the kernel log (/dev/kmsg, where this process may read it) names `pid` as killed for want
    of memory at or after `since_us` (microseconds since boot)."""
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    killed = f"Killed process {pid} (".encode()
    task = f",pid={pid},".encode()
    try:
        for _ in range(_KMSG_RECORDS):
            try:
                record = os.read(fd, 8192)
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten while reading: go on from the next
                    continue
                return False  # EAGAIN: the end of the log
            if not record:
                return False
            prefix, _, message = record.partition(b";")
            if killed not in message and not (message.startswith(b"oom-kill:") and task in message):
                continue
            try:
                stamp = int(prefix.split(b",")[2])
            except (IndexError, ValueError):
                stamp = None
            if since_us is None or stamp is None or stamp >= since_us:
                return True
        return False
    finally:
        os.close(fd)


class MemoryWatch:
    """One command's memory: RSS samples of its process group, and what the kernel says of its death."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.last: int | None = None
        self.cgroups: dict[tuple[str, str], int | None] = {}  # (kind, folder) -> oom_kill count first seen
        self._mounts: list[tuple[str, str, str]] | None = None
        fields = proc_stat(pid)
        try:
            self.start_us: float | None = int(fields[19]) * 1e6 / _TICKS if fields else None
        except (IndexError, ValueError):
            self.start_us = None

    def sample(self) -> int:
        """The group's RSS now (bytes); keeps the last and the peak."""
        rss = group_rss(self.pid)
        if rss:
            self.last = rss
            self.peak = max(self.peak, rss)
        return rss

    def follow(self) -> None:
        """Note the memory cgroups the command is in now, with their OOM kill counts when first seen."""
        if self._mounts is None:
            self._mounts = _mounts()
        if not self._mounts:
            return
        for where in memory_cgroups(self.pid, self._mounts):
            if where not in self.cgroups:
                self.cgroups[where] = oom_kills(*where)

    def oom_killed(self) -> bool:
        """Whether the kernel's out-of-memory killer ended the command (ask only once it died of SIGKILL)."""
        for (kind, folder), before in self.cgroups.items():
            now = oom_kills(kind, folder)
            if now is not None and now > (before or 0):
                return True
        return kernel_says_oom(self.pid, self.start_us)


def oom_reason(last_rss: int | None) -> str:
    """The reason a run killed by the out-of-memory killer ends with."""
    if not last_rss:
        return "killed by the kernel's out-of-memory killer (no RSS sample was taken)"
    return f"killed by the kernel's out-of-memory killer (RSS {gigabytes(last_rss)} at the last sample)"

