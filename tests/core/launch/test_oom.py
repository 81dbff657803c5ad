"""Out-of-memory told apart from a kill: a launched command in a real memory cgroup with a limit (made
here, as root; v1 or v2, whichever the machine has) that allocates past it, against one killed with
SIGKILL from outside and one stopped by `mltui runs kill`. Real supervisors, real kernel OOM kills."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from pathlib import Path

import pytest

from mltui.core.launch.launcher import Launch, launch
from mltui.core.launch.oom import MemoryWatch, gigabytes, kernel_says_oom, memory_cgroups, oom_kills, oom_reason
from mltui.core.launch.stop import kill_run
from launching import configure, kill_workspace_processes, row, wait_ended, wait_for, wait_output

LIMIT = 64 << 20


def _make_v1(name: str) -> tuple[str, Path] | None:
    root = Path("/sys/fs/cgroup/memory")
    if not (root / "memory.limit_in_bytes").exists():
        return None
    folder = root / name
    folder.mkdir()
    (folder / "memory.limit_in_bytes").write_text(str(LIMIT))
    try:  # no swap to hide in: past the limit is out of memory
        (folder / "memory.memsw.limit_in_bytes").write_text(str(LIMIT))
    except OSError:
        pass
    return "v1", folder


def _make_v2(name: str) -> tuple[str, Path] | None:
    root = Path("/sys/fs/cgroup")
    if not (root / "cgroup.controllers").exists() or "memory" not in (root / "cgroup.controllers").read_text().split():
        return None
    if "memory" not in (root / "cgroup.subtree_control").read_text().split():
        (root / "cgroup.subtree_control").write_text("+memory")
    folder = root / name
    folder.mkdir()
    (folder / "memory.max").write_text(str(LIMIT))
    try:
        (folder / "memory.swap.max").write_text("0")
    except OSError:
        pass
    return "v2", folder


@pytest.fixture
def memory_cgroup():
    """(kind, folder) of a fresh memory cgroup limited to 64 MB; removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("making a memory cgroup needs root")
    name = f"mltui-test-{os.getpid()}-{time.monotonic_ns()}"
    made = None
    errors = []
    for make in (_make_v1, _make_v2):
        try:
            made = make(name)
        except OSError as exc:
            errors.append(f"{make.__name__}: {exc}")
        if made:
            break
    if made is None:
        pytest.skip("no memory cgroup can be made here" + (f" ({'; '.join(errors)})" if errors else
                                                           " (no v1 memory hierarchy, no v2 memory controller)"))
    kind, folder = made
    try:
        yield kind, folder
    finally:
        for _ in range(100):
            try:
                pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
            except OSError:
                pids = []
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                folder.rmdir()
                break
            except OSError:
                time.sleep(0.05)


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    kill_workspace_processes(tmp_path / ".mltui")


def in_cgroup(folder: Path, code: str) -> list[str]:
    """argv that moves only the command (never its supervisor) into the cgroup, then runs Python code."""
    inner = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"
    return ["sh", "-c", f"echo $$ > {shlex.quote(str(folder / 'cgroup.procs'))} && exec {inner}"]


# Allocates (and touches) 4 MB at a time, slowly enough for the supervisor to see it move cgroups and to
# take a few RSS samples, up to 512 MB: far past the 64 MB limit.
GREEDY = """
import time
print("allocating", flush=True)
held = []
for i in range(128):
    held.append(b"x" * (4 << 20))
    time.sleep(0.05)
print("survived", flush=True)
"""

# Holds 16 MB, well under the limit, and waits to be killed; SIGTERM is ignored.
MODEST = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
held = b"x" * (16 << 20)
print("ready", flush=True)
time.sleep(120)
"""


def test_a_command_past_its_memory_limit_fails_as_out_of_memory_with_its_peak_rss(ws, memory_cgroup, cli):
    kind, folder = memory_cgroup
    configure(ws, heartbeat_seconds=0.2)
    run_id = launch(ws, Launch(in_cgroup(folder, GREEDY)))
    done = wait_ended(ws, run_id, timeout=60)
    out = (ws.run_dir(run_id) / "output.log").read_text()
    assert "allocating" in out and "survived" not in out, out
    assert done["status"] == "failed", (done["reason"], kind)
    assert done["exit_code"] == -signal.SIGKILL
    assert done["reason"].startswith("killed by the kernel's out-of-memory killer (RSS "), done["reason"]
    assert done["reason"].endswith(" GB at the last sample)"), done["reason"]
    assert done["peak_rss"] and 4 << 20 < done["peak_rss"] <= LIMIT + (16 << 20), done["peak_rss"]
    shown = cli("runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert f"peak RSS {gigabytes(done['peak_rss'])}" in shown.stdout
    assert "out-of-memory" in shown.stdout


def test_a_sigkill_from_outside_stays_killed_even_in_a_memory_cgroup(ws, memory_cgroup):
    kind, folder = memory_cgroup
    configure(ws, heartbeat_seconds=0.2)
    run_id = launch(ws, Launch(in_cgroup(folder, MODEST)))
    wait_output(ws, run_id, "ready")
    wait_for(lambda: (row(ws, run_id)["peak_rss"] or 0) >= 16 << 20, 10, what="an RSS sample after the 16 MB")
    os.kill(row(ws, run_id)["pid"], signal.SIGKILL)
    done = wait_ended(ws, run_id)
    assert done["status"] == "killed" and "SIGKILL" in done["reason"], done["reason"]
    assert "out-of-memory" not in done["reason"]
    assert oom_kills(kind, str(folder)) in (0, None)  # the kernel agrees: nothing ran out of memory


def test_a_kill_mltui_sends_is_never_taken_for_out_of_memory(ws, memory_cgroup):
    kind, folder = memory_cgroup
    configure(ws, heartbeat_seconds=0.2)
    run_id = launch(ws, Launch(in_cgroup(folder, MODEST)))
    wait_output(ws, run_id, "ready")
    assert kill_run(ws, run_id, grace=0.5) == "killed"  # SIGTERM is ignored: the supervisor's SIGKILL ends it
    done = row(ws, run_id)
    assert done["exit_code"] == -signal.SIGKILL and "runs kill" in done["reason"], done["reason"]


def test_the_memory_watch_follows_a_process_into_its_cgroup_and_reads_the_kernel(memory_cgroup):
    import subprocess

    kind, folder = memory_cgroup
    proc = subprocess.Popen(in_cgroup(folder, GREEDY), stdout=subprocess.PIPE, text=True, process_group=0)
    try:
        watch = MemoryWatch(proc.pid)
        assert proc.stdout.readline().strip() == "allocating"
        watch.follow()
        assert (kind, str(folder)) in memory_cgroups(proc.pid) and (kind, str(folder)) in watch.cgroups
        watch.sample()
        assert watch.last and watch.peak >= watch.last
        assert proc.wait(60) == -signal.SIGKILL
        assert watch.oom_killed()
        assert oom_kills(kind, str(folder)) >= 1 > watch.cgroups[(kind, str(folder))]  # the cgroup's own count
        if os.access("/dev/kmsg", os.R_OK):  # and, where the kernel log can be read, the log names the pid
            assert kernel_says_oom(proc.pid, watch.start_us)
            assert not kernel_says_oom(proc.pid, time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6 + 1e9)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_reason_reads_plainly():
    assert oom_reason(3 * 2**30 // 2) == "killed by the kernel's out-of-memory killer (RSS 1.50 GB at the last sample)"
    assert "no RSS sample" in oom_reason(None)
