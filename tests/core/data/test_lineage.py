"""Lineage of launched runs: which dataset versions a run's command names, recorded by its supervisor.

Every run here is real: `launch()` starts the detached supervisor, which starts the command and, off
the start's critical path, records the datasets the command's params and arguments name (hashing
what is on disk through the stat cache) and checks them again when the command ends. Datasets are
recorded with `mltui.core.data.versions.add` from a real folder in the project. The store is polled with
deadlines; the autouse fixture kills whatever a test left running.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest
from launching import (
    configure,
    kill_workspace_processes,
    row,
    status,
    wait_ended,
    wait_for,
)

from mltui.core.data.versions import add
from mltui.core.launch.launcher import Launch, launch
from mltui.core.data.lineage import inputs_of
from mltui.base.procs import pid_alive
from mltui.store.opening import open_store

# waits for the file `go` in its cwd (the test says when), then does what it was asked
GATED = """
import os, sys, time
end = time.time() + 30
while not os.path.exists("go") and time.time() < end:
    time.sleep(0.02)
"""
CHANGE_DATA = GATED + "open('data/labels.txt', 'a').write('a label added by the run\\n')\n"
QUICK = "import sys; print('args', sys.argv[1:], flush=True)"


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path, monkeypatch):
    for var in ("MLTUI_RUN_ID", "MLTUI_WORKSPACE", "MLTUI_RUN_DIR", "MLTUI_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    yield
    kill_workspace_processes(tmp_path / ".mltui")


@pytest.fixture
def project(ws):
    """`ws` with fast heartbeats and a folder `data/` in the project (two files, one a CSV)."""
    configure(ws, heartbeat_seconds=0.2)
    data = ws.project_dir / "data"
    data.mkdir()
    (data / "train.csv").write_text("x,y\n1,2\n3,4\n")
    (data / "labels.txt").write_text("cat\ndog\n")
    return ws


def add_version(ws, message: str, store: bool = True):
    conn = open_store(ws.db_path)
    try:
        return add(ws, conn, ws.project_dir / "data", "mnist", message, store=store).version
    finally:
        conn.close()


def inputs(ws, run_id: str) -> list[dict]:
    conn = sqlite3.connect(ws.db_path, timeout=10)
    try:
        return inputs_of(conn, run_id)
    finally:
        conn.close()


def settled(ws, run_id: str) -> dict:
    """The run once it has ended and its supervisor has exited (after its last check of the data)."""
    wait_ended(ws, run_id, timeout=20)
    sup = wait_for(lambda: row(ws, run_id)["sup_pid"], what="the supervisor's pid")
    wait_for(lambda: not pid_alive(sup), timeout=40, what=f"the supervisor of {run_id} to exit")
    return row(ws, run_id)


def start(ws, code: str, *args: str, params: dict | None = None) -> str:
    return launch(ws, Launch(["python", "-c", code, *args], cwd=str(ws.project_dir), params=params))


def source(ws) -> str:
    return str((ws.project_dir / "data").resolve())


def shown(cli, run_id: str) -> dict:
    result = cli("runs", "show", run_id, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- what a command names ------------------------------------------------------------------------


def test_a_folder_given_as_an_argument_is_recorded(project, cli):
    v1 = add_version(project, "first")
    run_id = start(project, QUICK, "data", "data/train.csv", "--epochs", "3")
    done = settled(project, run_id)
    assert done["status"] == "finished"
    got = inputs(project, run_id)
    assert len(got) == 1  # the folder and a file inside it are one dataset
    assert {k: got[0][k] for k in ("dataset", "version", "seq", "how", "path", "changed")} == {
        "dataset": "mnist", "version": v1.id, "seq": 1, "how": "argument", "path": source(project),
        "changed": False}

    data = shown(cli, run_id)["data"]
    assert [(d["dataset"], d["version"], d["how"], d["changed"]) for d in data] == [
        ("mnist", v1.id, "argument", False)]
    text = cli("runs", "show", run_id)
    assert text.returncode == 0 and "\ndata\n" in text.stdout and f"v1 {v1.id[:12]}" in text.stdout
    assert "changed on disk" not in text.stdout
    used = json.loads(cli("data", "show", "mnist@v1", "--json").stdout)
    assert [(r["id"], r["how"], r["changed"]) for r in used["runs"]] == [(run_id, "argument", False)]


def test_a_param_of_a_named_command_pointing_at_the_folder(project, cli):
    v1 = add_version(project, "first")
    (project.project_dir / "mltui.toml").write_text(textwrap.dedent("""
        [commands.train]
        run = "python -c \\"import sys; print(sys.argv)\\" --data {data}"
        params = { data = "nowhere" }
    """))
    result = cli("run", "train", "-p", "data=data/")
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    settled(project, run_id)
    got = inputs(project, run_id)
    assert [(d["dataset"], d["version"], d["how"], d["path"], d["changed"]) for d in got] == [
        ("mnist", v1.id, "param data", source(project), False)]
    assert [(d["version"], d["how"]) for d in shown(cli, run_id)["data"]] == [(v1.id, "param data")]


def test_a_param_of_a_plain_command_pointing_at_the_folder(project):
    v1 = add_version(project, "first")
    run_id = start(project, QUICK, params={"data": "data"})
    settled(project, run_id)
    got = inputs(project, run_id)
    assert [(d["dataset"], d["version"], d["how"], d["changed"]) for d in got] == [
        ("mnist", v1.id, "param data", False)]


def test_a_pinned_version_param_records_that_version(project, cli):
    v1 = add_version(project, "first")
    (project.project_dir / "data" / "more.txt").write_text("more\n")
    v2 = add_version(project, "second")
    # the folder holds v2, but the params pin v1 (by number) and v2 (by id prefix)
    run_id = start(project, QUICK, params={"data": "mnist@v1", "ref": f"mnist@{v2.id[:8]}", "lr": "0.1"})
    settled(project, run_id)
    got = {d["version"]: d for d in inputs(project, run_id)}
    assert set(got) == {v1.id, v2.id}
    assert (got[v1.id]["seq"], got[v1.id]["how"], got[v1.id]["path"], got[v1.id]["changed"]) == (
        1, "param data", None, None)
    assert (got[v2.id]["seq"], got[v2.id]["how"]) == (2, "param ref")
    assert {d["version"] for d in shown(cli, run_id)["data"]} == {v1.id, v2.id}


def test_a_command_naming_no_dataset_records_nothing(project, cli):
    add_version(project, "first")
    (project.project_dir / "other").mkdir()
    (project.project_dir / "other" / "f.txt").write_text("not a dataset\n")
    run_id = start(project, QUICK, "other", "other/f.txt", "mnist", "--lr", "0.1",
                   params={"data": "other", "name": "mnist", "steps": 3})
    done = settled(project, run_id)
    assert done["status"] == "finished"
    assert done["python"]  # the fingerprint (after which inputs are recorded) has been written
    assert inputs(project, run_id) == []
    assert shown(cli, run_id)["data"] == []
    assert "\ndata\n" not in cli("runs", "show", run_id).stdout


# -- what is on disk ----------------------------------------------------------------------------


def test_data_changed_during_the_run_is_flagged_at_the_end(project, cli):
    v1 = add_version(project, "first")
    run_id = start(project, CHANGE_DATA, "data")
    # recorded while the run goes on: the version on disk, unchanged so far
    wait_for(lambda: inputs(project, run_id), timeout=20, what="the run's data to be recorded")
    assert status(project, run_id) == "running"
    first = inputs(project, run_id)
    assert [(d["version"], d["changed"]) for d in first] == [(v1.id, False)]
    (project.project_dir / "go").write_text("")
    done = settled(project, run_id)
    assert done["status"] == "finished"
    assert "a label added by the run" in (project.project_dir / "data" / "labels.txt").read_text()
    assert [(d["version"], d["how"], d["changed"]) for d in inputs(project, run_id)] == [(v1.id, "argument", True)]

    text = cli("data", "show", "mnist@v1")
    assert text.returncode == 0, text.stderr
    line = next(line for line in text.stdout.splitlines() if line.startswith(run_id))
    assert "changed on disk during the run" in line
    assert [d["changed"] for d in shown(cli, run_id)["data"]] == [True]
    assert "changed on disk during the run" in cli("runs", "show", run_id).stdout


def test_data_matching_no_version_is_recorded_against_the_latest_and_flagged(project, cli):
    add_version(project, "first")
    (project.project_dir / "data" / "more.txt").write_text("more\n")
    v2 = add_version(project, "second")
    (project.project_dir / "data" / "train.csv").write_text("x,y\n1,2\n3,4\n5,6\n")  # never added
    run_id = start(project, GATED, "data")
    wait_for(lambda: inputs(project, run_id), timeout=20, what="the run's data to be recorded")
    assert status(project, run_id) == "running"
    assert [(d["version"], d["seq"], d["changed"]) for d in inputs(project, run_id)] == [(v2.id, 2, True)]
    (project.project_dir / "go").write_text("")
    settled(project, run_id)
    assert [(d["version"], d["changed"]) for d in inputs(project, run_id)] == [(v2.id, True)]
    assert "changed on disk during the run" in cli("data", "show", "mnist").stdout


def test_data_matching_an_older_version_records_that_version(project):
    v1 = add_version(project, "first")
    more = project.project_dir / "data" / "more.txt"
    more.write_text("more\n")
    add_version(project, "second")
    more.unlink()  # the folder holds v1's bytes again
    run_id = start(project, QUICK, "data/")
    settled(project, run_id)
    assert [(d["version"], d["seq"], d["changed"]) for d in inputs(project, run_id)] == [(v1.id, 1, False)]


def test_a_folder_added_without_store_is_still_matched(project):
    v1 = add_version(project, "first", store=False)
    run_id = start(project, QUICK, str(Path("data") / "labels.txt"))
    settled(project, run_id)
    assert [(d["version"], d["how"], d["changed"]) for d in inputs(project, run_id)] == [(v1.id, "argument", False)]


# -- bugs ---------------------------------------------------------------------------------------

CHANGE_AT_ONCE = "open('data/labels.txt', 'a').write('changed as soon as the run started\\n')\n" + GATED


def test_data_changed_as_soon_as_the_run_starts_keeps_the_version_it_started_on(project):
    v1 = add_version(project, "first")
    more = project.project_dir / "data" / "more.txt"
    more.write_text("more\n")
    v2 = add_version(project, "second")
    more.unlink()  # the folder holds v1's bytes when the run is launched
    run_id = start(project, CHANGE_AT_ONCE, "data")
    wait_for(lambda: inputs(project, run_id), timeout=20, what="the run's data to be recorded")
    (project.project_dir / "go").write_text("")
    settled(project, run_id)
    got = [(d["version"], d["changed"]) for d in inputs(project, run_id)]
    assert v2.id not in [v for v, _ in got]
    assert got == [(v1.id, True)]  # started on v1, changed under it


def test_bytes_of_a_version_added_from_another_folder_are_matched(project):
    v1 = add_version(project, "from data/")  # v1's source is data/
    copy = project.project_dir / "data2"
    copy.mkdir()
    for f in ("train.csv", "labels.txt"):
        (copy / f).write_bytes((project.project_dir / "data" / f).read_bytes())
    (copy / "extra.txt").write_text("only in v2\n")
    conn = open_store(project.db_path)
    try:
        v2 = add(project, conn, copy, "mnist", "from data2/", store=True).version  # v2's source is data2/
    finally:
        conn.close()
    (copy / "extra.txt").unlink()  # data2/ now holds exactly v1's bytes
    run_id = start(project, QUICK, "data2")
    settled(project, run_id)
    got = [(d["version"], d["changed"]) for d in inputs(project, run_id)]
    assert got == [(v1.id, False)], (got, v2.id)
