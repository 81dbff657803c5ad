"""Which mltui run owns a GPU process: by the run id in its environment, its process group, or an ancestor
that is a run's command or supervisor. A pid NVML reports from another PID namespace is mapped through
the `NSpid` lines of /proc/*/status where this machine can see both."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable

from mltui.core.workspace import Workspace


def _status(pid: int) -> dict[str, str]:
    out = {}
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                out[key] = value.strip()
    except OSError:
        pass
    return out


def _run_id_in_env(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            for item in fh.read().split(b"\0"):
                if item.startswith(b"MLTUI_RUN_ID="):
                    return item.split(b"=", 1)[1].decode(errors="replace")
    except OSError:
        pass
    return None


def _pgrp(pid: int) -> int | None:
    from mltui.base.procs import proc_stat

    fields = proc_stat(pid)
    try:
        return int(fields[2]) if fields else None
    except (IndexError, ValueError):
        return None


def local_pid(pid: int) -> int:
    """`pid` as this machine's /proc names it: itself, or the process whose NSpid chain ends in it."""
    if os.path.exists(f"/proc/{pid}"):
        return pid
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ns = _status(int(entry)).get("NSpid", "").split()
            if len(ns) > 1 and ns[-1] == str(pid):
                return int(entry)
    return pid


def owners(ws: Workspace, pids: Iterable[int]) -> dict[int, dict]:
    """{reported pid: run row} for the pids some run owns; the others are left out."""
    from mltui.core.reader import open_readonly
    from mltui.store.runs import get_runs

    try:
        conn = open_readonly(ws)
    except Exception:
        return {}
    try:
        rows = conn.execute("SELECT id, pid, pgid, sup_pid FROM runs WHERE status IN ('running', 'lost')").fetchall()
        by_pid = {p: rid for rid, pid, _, sup in rows for p in (pid, sup) if p}
        by_group = {pgid: rid for rid, _, pgid, _ in rows if pgid}
        found: dict[int, str] = {}
        for reported in pids:
            pid = local_pid(reported)
            run_id = _run_id_in_env(pid) or by_group.get(_pgrp(pid) or -1)
            seen = 0
            walk = pid
            while run_id is None and walk > 1 and seen < 64:  # ancestry: a worker forked by the command
                run_id = by_pid.get(walk)
                walk = int(_status(walk).get("PPid", "0") or 0)
                seen += 1
            if run_id:
                found[reported] = run_id
        runs = {r["id"]: r for r in get_runs(conn, sorted(set(found.values())))}
        return {pid: runs[rid] for pid, rid in found.items() if rid in runs}
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
