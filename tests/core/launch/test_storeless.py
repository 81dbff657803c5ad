"""A job whose node cannot reach the store still runs its command, and the run folder carries its end
to the next poll from a machine with the store."""

from __future__ import annotations

import json
import shutil
import sys

from mltui.core.launch.launcher import Launch
from mltui.core.runs.records import create_run
from mltui.core.launch.storeless import EXIT_FILE, ingest, read_exit, run_without_store, write_job
from mltui.core.launch.supervisor import main as supervisor_main
from mltui.core.workspace import Workspace
from mltui.store.opening import open_store

SCRIPT = ("import json, os, sys\n"
          "path = os.path.join(os.environ['MLTUI_RUN_DIR'], 'metrics.jsonl')\n"
          "with open(path, 'a') as f:\n"
          "    for s in range(5):\n"
          "        f.write(json.dumps({'step': s, 'loss': 1.0 / (s + 1)}) + '\\n')\n"
          "print('hello from a node', flush=True)\n"
          "sys.exit(int(sys.argv[1]))\n")


def _queued_run(ws, tmp_path, code: int) -> str:
    spec = Launch([sys.executable, "-c", SCRIPT, str(code)], cwd=str(tmp_path))
    run_id = create_run(ws, name="far", kind="train", status="queued", command=spec.argv, cwd=spec.cwd, git=False,
                        fields={"executor": "slurm", "job_id": "4242", "spec": json.dumps(spec.spec())})
    run_dir = ws.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_job(run_dir, spec.argv, spec.cwd)
    return run_id


def _node_without_store(ws, tmp_path, run_id) -> Workspace:
    """The same workspace as a node sees it when the store there is unusable (a broken file)."""
    far = tmp_path / "node" / ".mltui"
    shutil.copytree(ws.root, far)
    (far / "mltui.db").write_bytes(b"not a database at all")
    for extra in ("mltui.db-wal", "mltui.db-shm"):
        (far / extra).unlink(missing_ok=True)
    return Workspace(far)


def test_the_command_runs_without_the_store_and_its_end_is_ingested_later(ws, tmp_path):
    run_id = _queued_run(ws, tmp_path, 3)
    node = _node_without_store(ws, tmp_path, run_id)
    assert supervisor_main([str(node.root), run_id]) == 3  # the supervisor fell back, ran it, passed its code on
    far_dir = node.run_dir(run_id)
    assert read_exit(far_dir)[0] == 3
    assert "hello from a node" in (far_dir / "output.log").read_text()
    assert len((far_dir / "metrics.jsonl").read_text().splitlines()) == 5
    # the shared filesystem: what the node wrote is in the run folder the store's machine sees
    for name in (EXIT_FILE, "metrics.jsonl", "output.log"):
        shutil.copy(far_dir / name, ws.run_dir(run_id) / name)
    conn = open_store(ws.db_path)
    try:
        status, reason, code, _ = ingest(ws, conn, run_id)
        assert (status, code) == ("failed", 3) and "exited with code 3" in reason
        points = conn.execute("SELECT count, last FROM metric_summary WHERE run_id = ? AND key = 'loss'",
                              (run_id,)).fetchone()
        assert points == (5, 0.2)
    finally:
        conn.close()


def test_without_a_job_file_there_is_nothing_to_run(ws, tmp_path):
    node = Workspace(tmp_path / "elsewhere" / ".mltui")
    node.run_dir("1ng7000000").mkdir(parents=True)
    assert run_without_store(node, "1ng7000000", "no store") == 1
    assert read_exit(node.run_dir("1ng7000000")) is None


def test_a_command_that_cannot_start_leaves_exit_code_127(ws, tmp_path):
    run_dir = ws.run_dir("1ng7000001")
    run_dir.mkdir(parents=True)
    write_job(run_dir, ["/nonexistent/program"], str(tmp_path))
    assert run_without_store(ws, "1ng7000001", "no store") == 127
    assert read_exit(run_dir)[0] == 127
    assert "cannot start" in (run_dir / "output.log").read_text()
