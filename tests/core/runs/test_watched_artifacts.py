"""Files the supervisor sees change in a watched folder are replaced with a record, as `log_artifact`'s are:
the artifact's row keeps the sha256 and size of the bytes it replaced (its `replaced` list), and one
replacement that both the script and the supervisor see is listed once.

Real files, a real watchdog observer, a real store; the launched runs are real processes."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import textwrap
import time

from launching import kill_workspace_processes, output, wait_ended, wait_for
from mltui.core.launch import artifact_watch
from mltui.core.launch.artifact_watch import ArtifactWatcher, Root
from mltui.core.launch.commands import Command
from mltui.core.launch.launcher import Launch, launch
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.opening import open_store


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashed_rows(watcher: ArtifactWatcher, name: str) -> list[tuple]:
    """Poll until the watcher hands over the hashed row of `name`; all its hashed rows of that poll."""
    found: list[tuple] = []

    def hashed() -> bool:
        found[:] = [row for row in watcher.poll()[0] if row[0] == name and row[2]]
        return bool(found)

    wait_for(hashed, 10, what=f"the hash of {name}")
    return found


def rewrite(path, data: bytes, mtime: float) -> None:
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))  # a time of its own, whatever the filesystem's clock granularity


def test_the_watcher_says_what_new_bytes_replaced_and_nothing_for_the_same_bytes_or_a_new_file(tmp_path, monkeypatch):
    monkeypatch.setattr(artifact_watch, "STABLE_SECONDS", 0.0)  # hash at once rather than after 1s of quiet
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    ckpt = folder / "last.pt"
    first, second = b"epoch 1 weights", b"epoch 2 weights, longer"
    t = time.time()
    rewrite(ckpt, first, t - 30)
    watcher = ArtifactWatcher([Root(folder, "checkpoints")])
    watcher.start()
    try:
        (row,) = hashed_rows(watcher, "checkpoints/last.pt")
        assert row[1:3] == (len(first), sha(first)) and row[5] is None  # the first bytes replace nothing

        rewrite(ckpt, second, t - 20)
        watcher.mark(0, str(ckpt))
        (row,) = hashed_rows(watcher, "checkpoints/last.pt")
        assert row[1:3] == (len(second), sha(second))
        old_size, old_sha, when = row[5]
        assert (old_size, old_sha) == (len(first), sha(first)) and t - 1 <= when <= time.time()

        rewrite(ckpt, second, t - 10)  # touched: the same bytes at a new time
        watcher.mark(0, str(ckpt))
        (row,) = hashed_rows(watcher, "checkpoints/last.pt")
        assert row[2] == sha(second) and row[5] is None

        ckpt.unlink()  # gone, then a new file of that name: a new artifact, not a replacement
        watcher.mark(0, str(ckpt))
        wait_for(lambda: "checkpoints/last.pt" in watcher.poll()[1], 10, what="the removal")
        rewrite(ckpt, first, t)
        watcher.mark(0, str(ckpt))
        (row,) = hashed_rows(watcher, "checkpoints/last.pt")
        assert row[2] == sha(first) and row[5] is None
    finally:
        watcher.stop()


def replaced_of(ws, run_id: str) -> dict[str, tuple]:
    conn = sqlite3.connect(ws.db_path, timeout=10)
    try:
        return {path: (size, digest, location, json.loads(replaced) if replaced else [])
                for path, size, digest, location, replaced in conn.execute(
                    "SELECT path, size, sha256, location, replaced FROM artifacts WHERE run_id = ?", (run_id,))}
    finally:
        conn.close()


def test_one_replacement_recorded_by_two_writers_is_listed_once(ws):
    from mltui.core.runs.records import create_run

    run_id = create_run(ws, name="twice")
    conn = open_store(ws.db_path)
    try:
        with write_tx(conn, ws.db_path):
            run_store.record_artifact(conn, run_id, "artifacts/m.pt", 1, sha(b"a"), 1.0)
        for location in (run_store._KEEP, "/elsewhere/m.pt"):  # the script's record, then the supervisor's
            with write_tx(conn, ws.db_path):
                run_store.replace_artifact(conn, run_id, "artifacts/m.pt", 2, sha(b"bb"), 2.0, 1, sha(b"a"), 2.0,
                                           location=location)
        with write_tx(conn, ws.db_path):  # and bytes replaced later are a new entry
            run_store.replace_artifact(conn, run_id, "artifacts/m.pt", 1, sha(b"c"), 3.0, 2, sha(b"bb"), 3.0)
    finally:
        conn.close()
    size, digest, location, replaced = replaced_of(ws, run_id)["artifacts/m.pt"]
    assert (size, digest, location) == (1, sha(b"c"), "/elsewhere/m.pt")
    assert [(r["sha256"], r["size"]) for r in replaced] == [(sha(b"a"), 1), (sha(b"bb"), 2)]


# A training script, launched with checkpoints/ watched: it writes a checkpoint, waits until the
# supervisor has hashed it, and writes it again; and it overwrites one of its own artifacts with
# log_artifact(overwrite=True) once the supervisor has hashed that one too (both record that replacement).
SCRIPT = textwrap.dedent("""
    import os, sqlite3, time, mltui
    run = mltui.init()
    db = sqlite3.connect(os.path.join(os.environ["MLTUI_WORKSPACE"], "mltui.db"), timeout=10)

    def hashed_by_the_supervisor(path, data):
        import hashlib
        digest = hashlib.sha256(data).hexdigest()
        end = time.time() + 20
        while time.time() < end:
            row = db.execute("SELECT sha256, location FROM artifacts WHERE run_id = ? AND path = ?",
                             (run.id, path)).fetchone()
            if row and row[0] == digest and row[1]:  # a location: the supervisor's row
                return True
            time.sleep(0.05)
        return False

    os.makedirs("checkpoints", exist_ok=True)
    with open("checkpoints/last.pt", "wb") as fh:
        fh.write(b"epoch 1 weights")
    print("ckpt hashed" if hashed_by_the_supervisor("checkpoints/last.pt", b"epoch 1 weights") else "ckpt never", flush=True)
    with open("checkpoints/last.pt", "wb") as fh:
        fh.write(b"epoch 2 weights, longer")

    with open("model.pt", "wb") as fh:
        fh.write(b"first model")
    run.log_artifact("model.pt")
    print("model hashed" if hashed_by_the_supervisor("artifacts/model.pt", b"first model") else "model never", flush=True)
    with open("model.pt", "wb") as fh:
        fh.write(b"second model, better")
    run.log_artifact("model.pt", overwrite=True)
    run.finish()
""")


def test_a_launched_run_whose_watched_checkpoint_is_rewritten_keeps_what_it_replaced(ws, tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT)
    command = Command("train", "python train.py", {}, "train", ["checkpoints"], tmp_path)
    started = time.time()
    try:
        run_id = launch(ws, Launch(command=command))
        done = wait_ended(ws, run_id, timeout=60)
        assert done["status"] == "finished", (done["reason"], output(ws, run_id))
        assert output(ws, run_id) == "ckpt hashed\nmodel hashed\n", output(ws, run_id)
        rows = replaced_of(ws, run_id)

        size, digest, location, replaced = rows["checkpoints/last.pt"]
        assert (size, digest, location) == (len(b"epoch 2 weights, longer"), sha(b"epoch 2 weights, longer"),
                                            str(tmp_path / "checkpoints" / "last.pt"))
        (old,) = replaced  # the rewrite, with what it replaced
        assert (old["sha256"], old["size"]) == (sha(b"epoch 1 weights"), len(b"epoch 1 weights"))
        assert started <= old["replaced"] <= time.time()

        size, digest, _, replaced = rows["artifacts/model.pt"]
        assert (size, digest) == (len(b"second model, better"), sha(b"second model, better"))
        (old,) = replaced  # the script and the supervisor both saw it: listed once
        assert (old["sha256"], old["size"]) == (sha(b"first model"), len(b"first model"))
    finally:
        kill_workspace_processes(ws.root)
