"""Lost runs say why when they can: a supervisor that died (its command still running or not), a
machine that rebooted under the run (its boot id is not this boot's). Real processes, a real store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import mltui  # noqa: F401  (the tracking API the script uses)
from mltui.base.procs import pid_alive
from mltui.core.launch.launcher import Launch, launch
from mltui.core.launch.liveness import reap_lost
from mltui.base.procs import boot_id
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.opening import open_store
from launching import kill_workspace_processes, row, wait_for, wait_output

SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"


def reap(ws) -> list[str]:
    conn = open_store(ws.db_path)
    try:
        return reap_lost(ws, conn)
    finally:
        conn.close()


def test_runs_record_the_boot_they_run_in(ws):
    run = mltui.init(name="booted")
    run.finish()
    assert boot_id() and row(ws, run.id)["boot_id"] == boot_id()


def test_a_run_from_before_a_reboot_is_lost_because_the_machine_rebooted(ws, tmp_path):
    script = tmp_path / "tracked.py"
    script.write_text(textwrap.dedent(f"""
        import time, mltui
        run = mltui.init(name="before-reboot", workspace={str(tmp_path)!r})
        print(run.id, flush=True)
        time.sleep(60)
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        run_id = proc.stdout.readline().strip()
        assert reap(ws) == []  # alive, this boot
        # the row as a run from an earlier boot of this host leaves it (its pid may well be alive again)
        conn = open_store(ws.db_path)
        try:
            with write_tx(conn, ws.db_path):
                run_store.update_run(conn, run_id, boot_id="00000000-0000-0000-0000-000000000000")
        finally:
            conn.close()
        assert pid_alive(row(ws, run_id)["pid"])
        assert reap(ws) == [run_id]
        lost = row(ws, run_id)
        assert lost["status"] == "lost" and "rebooted" in lost["reason"], lost["reason"]
    finally:
        proc.kill()
        proc.wait(5)


def test_a_supervisor_that_died_is_told_apart_and_says_its_command_still_runs(ws):
    run_id = launch(ws, Launch(["python", "-c", SLEEPER]))
    try:
        wait_output(ws, run_id, "ready")
        running = row(ws, run_id)
        os.kill(running["sup_pid"], signal.SIGKILL)
        wait_for(lambda: not pid_alive(running["sup_pid"]), 5, what="the supervisor to die")
        assert reap(ws) == [run_id]
        lost = row(ws, run_id)
        assert lost["status"] == "lost"
        assert f"supervisor (pid {running['sup_pid']}) is gone" in lost["reason"], lost["reason"]
        assert f"its command (pid {running['pid']}) still runs" in lost["reason"], lost["reason"]
    finally:
        kill_workspace_processes(ws.root)
