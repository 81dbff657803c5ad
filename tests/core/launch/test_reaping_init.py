"""The orphan cases hold under both kinds of init: one that leaves a killed orphan as a zombie until
someone waits for it (a plain container's PID 1), and one that reaps orphans at once (systemd, tini).

The tests about lost runs and their orphans run again in a child pytest, once plainly and once under a
subreaper (prctl PR_SET_CHILD_SUBREAPER, as `tini -s` sets) that reaps every orphan the moment it dies.
The wrapper first proves it is in effect: an orphan it did not start is handed to it and reaped."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ORPHAN_FILES = [str(HERE / "test_launcher.py"), str(HERE / "test_supervisor_parts.py")]
ORPHAN_TESTS = "lost or orphan or reused"  # a supervisor killed, its command left an orphan; pids reused
AT_LEAST = 7  # tests that match today

SUBREAPER = r'''
import ctypes, os, sys, time
PR_SET_CHILD_SUBREAPER = 36
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    print("no subreaper here", flush=True)
    sys.exit(77)
# proof: a grandchild whose parent exits is handed to us, and we reap it
r, w = os.pipe()
if os.fork() == 0:
    parent = os.getpid()
    if os.fork() == 0:
        os.close(r)
        end = time.monotonic() + 10
        while os.getppid() == parent and time.monotonic() < end:  # until its parent has gone
            time.sleep(0.01)
        os.write(w, str(os.getppid()).encode())  # whoever adopted it
        os._exit(0)
    os._exit(0)
os.close(w)
adopted_by = int(os.read(r, 32) or b"0")
reaped = 0
while True:
    try:
        os.waitpid(-1, 0)
        reaped += 1
    except ChildProcessError:
        break
print(f"subreaper {os.getpid()}: orphan adopted by {adopted_by}, reaped {reaped}", flush=True)
if adopted_by != os.getpid() or reaped != 2:
    sys.exit(78)
main = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
while True:  # reap every orphan at once, as tini does; end with the child pytest's exit code
    pid, status = os.waitpid(-1, 0)
    if pid == main:
        sys.exit(os.waitstatus_to_exitcode(status))
'''


@pytest.mark.parametrize("init", ["leaves zombies", "reaps orphans"])
def test_the_orphan_cases_pass_under_either_kind_of_init(init):
    pytest_argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", ORPHAN_TESTS, *ORPHAN_FILES]
    argv = pytest_argv if init == "leaves zombies" else [sys.executable, "-c", SUBREAPER, *pytest_argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode == 77:
        pytest.skip("this kernel refuses PR_SET_CHILD_SUBREAPER")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed.group(1)) >= AT_LEAST and "failed" not in done.stdout, done.stdout[-2000:]
    if init == "reaps orphans":
        assert "orphan adopted by" in done.stdout
