"""`run.log_artifact`: every file keeps its place and its bytes, nothing is replaced without a record.

Real files in tmp_path, a real store, real processes for the script and the launched run."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

import mltui


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rows(ws, run_id) -> dict[str, tuple]:
    conn = sqlite3.connect(ws.db_path)
    try:
        return {path: (size, digest, json.loads(replaced) if replaced else [])
                for path, size, digest, replaced in conn.execute(
                    "SELECT path, size, sha256, replaced FROM artifacts WHERE run_id = ?", (run_id,))}
    finally:
        conn.close()


def files(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def make(tmp_path, layout: dict[str, bytes]) -> None:
    for rel, data in layout.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


LAYOUT = {
    "best/model.pt": b"best weights",
    "last/model.pt": b"last weights, longer",
    "checkpoints/epoch1/model.pt": b"epoch 1",
    "checkpoints/epoch2/model.pt": b"epoch 2",
    "checkpoints/opt.bin": b"optimizer",
}


def check_every_file(ws, run, layout: dict[str, bytes]) -> None:
    stored = files(run.dir / "artifacts")
    assert stored == layout
    recorded = rows(ws, run.id)
    assert {p: r[:2] for p, r in recorded.items()} == {
        f"artifacts/{rel}": (len(data), sha(data)) for rel, data in layout.items()}


def test_same_named_files_in_different_folders_and_a_folder_keep_every_file(ws, tmp_path):
    make(tmp_path, LAYOUT)
    run = mltui.init(name="arts")
    assert run.log_artifact("best/model.pt") == run.dir / "artifacts" / "best" / "model.pt"
    run.log_artifact("last/model.pt")
    assert run.log_artifact("checkpoints/") == run.dir / "artifacts" / "checkpoints"
    run.finish()
    check_every_file(ws, run, LAYOUT)


def test_the_same_scene_again_with_overwrite_replaces_and_records_what_it_replaced(ws, tmp_path):
    make(tmp_path, LAYOUT)
    run = mltui.init(name="arts-again")
    for path in ("best/model.pt", "last/model.pt", "checkpoints/"):
        run.log_artifact(path)
    newer = {rel: data + b" (later epoch)" for rel, data in LAYOUT.items()}
    make(tmp_path, newer)
    for path in ("best/model.pt", "last/model.pt", "checkpoints/"):
        run.log_artifact(path, overwrite=True)
    run.finish()
    check_every_file(ws, run, newer)  # no model.1.pt: each was replaced in its place
    recorded = rows(ws, run.id)
    for rel, data in LAYOUT.items():
        (old,) = recorded[f"artifacts/{rel}"][2]
        assert old["sha256"] == sha(data) and old["size"] == len(data) and old["replaced"] > 0


def test_a_second_file_with_other_bytes_is_kept_beside_the_first_with_a_warning(ws, tmp_path, capsys):
    make(tmp_path, {"a/model.pt": b"from a", "b/model.pt": b"from b", "c/model.pt": b"from c"})
    run = mltui.init(name="beside")
    capsys.readouterr()
    first = run.log_artifact("a/model.pt", name="model.pt")
    second = run.log_artifact("b/model.pt", name="model.pt")
    warning = capsys.readouterr().err
    third = run.log_artifact("c/model.pt", name="model.pt")
    again = run.log_artifact("b/model.pt", name="model.pt")  # the same bytes as one already there: no new copy
    run.finish()
    assert (first.name, second.name, third.name, again) == ("model.pt", "model.1.pt", "model.2.pt", second)
    assert warning.count("\n") == 1 and "artifacts/model.pt" in warning and "artifacts/model.1.pt" in warning
    assert files(run.dir / "artifacts") == {"model.pt": b"from a", "model.1.pt": b"from b", "model.2.pt": b"from c"}
    recorded = rows(ws, run.id)
    assert recorded["artifacts/model.pt"][1] == sha(b"from a")
    assert recorded["artifacts/model.1.pt"][1] == sha(b"from b")
    assert recorded["artifacts/model.2.pt"][1] == sha(b"from c")
    assert all(not r[2] for r in recorded.values())  # nothing was replaced


def test_the_same_bytes_twice_are_one_artifact_and_no_warning(ws, tmp_path, capsys):
    make(tmp_path, {"model.pt": b"weights"})
    run = mltui.init(name="twice")
    capsys.readouterr()
    run.log_artifact("model.pt")
    run.log_artifact("model.pt")
    run.finish()
    assert "mltui:" not in capsys.readouterr().err
    assert files(run.dir / "artifacts") == {"model.pt": b"weights"}
    assert list(rows(ws, run.id)) == ["artifacts/model.pt"]


def test_a_file_outside_the_working_folder_keeps_its_base_name(ws, tmp_path, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "deep").mkdir()
    (elsewhere / "deep" / "vocab.txt").write_bytes(b"a b c")
    run = mltui.init(name="outside")
    dest = run.log_artifact(elsewhere / "deep" / "vocab.txt")
    run.finish()
    assert dest == run.dir / "artifacts" / "vocab.txt" and dest.read_bytes() == b"a b c"


def test_names_are_data_and_must_stay_inside(ws, tmp_path):
    make(tmp_path, {"m.bin": b"m"})
    run = mltui.init(name="names")
    odd = "it's; $(rm -rf x) `x`.bin"
    assert run.log_artifact("m.bin", name=f"odd/{odd}").name == odd
    for bad in ("../escape.bin", "/abs.bin", "a/../../b.bin"):
        with pytest.raises(ValueError, match="inside"):
            run.log_artifact("m.bin", name=bad)
    with pytest.raises(ValueError, match="not a file or a folder"):
        run.log_artifact("missing.bin")
    run.finish()
    assert f"artifacts/odd/{odd}" in rows(ws, run.id)


def test_logging_the_working_folder_never_copies_the_workspace(ws, tmp_path):
    make(tmp_path, {"src/a.py": b"print(1)", "b.txt": b"b"})
    run = mltui.init(name="whole")
    run.log_artifact(".")
    run.finish()
    assert files(run.dir / "artifacts") == {f"{tmp_path.name}/src/a.py": b"print(1)", f"{tmp_path.name}/b.txt": b"b"}


def test_a_file_already_in_the_run_folder_is_recorded_in_place(ws, tmp_path):
    run = mltui.init(name="in-place")
    target = run.dir / "artifacts" / "sub" / "made.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"made here")
    assert run.log_artifact(target) == target
    run.finish()
    assert rows(ws, run.id) == {"artifacts/sub/made.bin": (9, sha(b"made here"), [])}
    assert files(run.dir / "artifacts") == {"sub/made.bin": b"made here"}


def test_a_training_script_and_a_launched_run_keep_every_file(ws, tmp_path):
    """The same scene from a real script launched by mltui: the supervisor also watches artifacts/, and
    both agree on every file."""
    from launching import kill_workspace_processes, wait_ended
    from mltui.core.launch.launcher import Launch, launch

    make(tmp_path, LAYOUT)
    (tmp_path / "train.py").write_text(textwrap.dedent("""
        import mltui
        run = mltui.init()
        run.log_artifact("best/model.pt")
        run.log_artifact("last/model.pt")
        run.log_artifact("checkpoints/")
        run.log({"loss": 1.0})
        run.finish()
    """))
    try:
        run_id = launch(ws, Launch(["python", "train.py"], cwd=str(tmp_path)))
        done = wait_ended(ws, run_id, timeout=60)
        assert done["status"] == "finished", (done["reason"], (ws.run_dir(run_id) / "output.log").read_text())
        assert files(ws.run_dir(run_id) / "artifacts") == LAYOUT
        recorded = rows(ws, run_id)
        assert {p: r[:2] for p, r in recorded.items()} == {
            f"artifacts/{rel}": (len(data), sha(data)) for rel, data in LAYOUT.items()}
    finally:
        kill_workspace_processes(ws.root)


def test_a_script_with_no_workspace_change_sees_plain_paths(ws, tmp_path):
    """Through a real subprocess with its own cwd: paths are relative to where the script runs."""
    make(tmp_path / "proj", {"out/best/model.pt": b"x", "out/last/model.pt": b"y"})
    script = tmp_path / "proj" / "s.py"
    script.write_text("import mltui\nrun = mltui.init(name='sub')\nrun.log_artifact('out')\nrun.finish()\nprint(run.id)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path / "proj", env=env, capture_output=True,
                         text=True, check=True)
    run_id = out.stdout.strip()
    assert files(ws.run_dir(run_id) / "artifacts") == {"out/best/model.pt": b"x", "out/last/model.pt": b"y"}
