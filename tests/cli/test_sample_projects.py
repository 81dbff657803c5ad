"""The sample projects under sample_projects/: their mltui.toml files and their scripts, run for real.

Each script runs as a subprocess (sys.executable) in a copy of its project in tmp_path, with the
command line built from the project's own mltui.toml (shlex-split, then each {param} substituted
per argument, as the launcher does) and small overrides so the whole module stays fast.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_projects"
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
PROJECTS = ["classifier", "jsonl_counter", "serving"]
KINDS = {"train", "eval", "other"}


def load_commands(project: str | Path) -> dict:
    path = project if isinstance(project, Path) else SAMPLES / project
    with open(path / "mltui.toml", "rb") as fh:
        return tomllib.load(fh)["commands"]


def command_argv(project_dir: Path, name: str, **overrides) -> list[str]:
    """The argv the launcher would run for command `name`, with `python` as this interpreter."""
    spec = load_commands(project_dir)[name]
    params = {**spec["params"], **overrides}
    argv = [PLACEHOLDER.sub(lambda m: str(params[m.group(1)]), arg) for arg in shlex.split(spec["run"])]
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def clean_env(**extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    for key, value in extra.items():
        if value is not None:
            env[key] = value
    return env


def copy_project(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(
        SAMPLES / name, dest,
        ignore=shutil.ignore_patterns("data", "checkpoints", "__pycache__", "metrics.jsonl", "artifacts", ".mltui"),
    )
    return dest


def make_run_dir(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    (run_dir / "artifacts").mkdir(parents=True)
    return run_dir


def no_workspace_above(path: Path) -> None:
    if any((p / ".mltui").exists() for p in (path, *path.parents)):
        pytest.skip(f"a .mltui workspace exists above {path}; the plain-run tests need none")


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# -- mltui.toml ---------------------------------------------------------------------------------
@pytest.mark.parametrize("project", PROJECTS)
def test_mltui_toml_is_complete(project):
    commands = load_commands(project)
    assert commands
    for name, spec in commands.items():
        assert set(spec) <= {"run", "params", "kind", "watch"}, name
        assert spec["kind"] in KINDS, name
        params = spec.get("params", {})
        used = set(PLACEHOLDER.findall(spec["run"]))
        missing = used - set(params)
        assert not missing, f"{project}: command {name!r} has no default for {sorted(missing)}"
        assert not set(params) - used, f"{project}: command {name!r} has params its run line never uses"
        for value in params.values():
            assert isinstance(value, (str, int, float)) and not isinstance(value, bool)
        argv = shlex.split(spec["run"])
        assert argv[0] == "python" and (SAMPLES / project / argv[1]).is_file(), spec["run"]
        for folder in spec.get("watch", []):
            assert isinstance(folder, str) and not Path(folder).is_absolute() and ".." not in Path(folder).parts


def test_classifier_toml_commands():
    commands = load_commands("classifier")
    assert commands["train"]["kind"] == "train" and commands["train"]["watch"] == ["checkpoints"]
    assert set(commands["train"]["params"]) >= {"lr", "epochs", "batch_size", "hidden", "seed", "data"}
    assert commands["eval"]["kind"] == "eval"
    assert commands["eval"]["params"]["model"] == "checkpoints/last.pt"


def test_jsonl_counter_toml_commands():
    commands = load_commands("jsonl_counter")
    assert commands["count"]["params"]["steps"] == 60 and commands["count"]["params"]["sleep"] > 0
    assert commands["quick"]["params"]["steps"] == 10 and commands["quick"]["params"]["sleep"] == 0


# -- jsonl_counter ------------------------------------------------------------------------------
def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_count_imports_only_the_standard_library():
    tree = ast.parse((SAMPLES / "jsonl_counter" / "count.py").read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module.split(".")[0])
    assert "mltui" not in modules
    assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)


@pytest.mark.parametrize("command", ["quick", "count"])
def test_count_writes_metrics_and_artifact(tmp_path, command):
    project = copy_project("jsonl_counter", tmp_path)
    run_dir = make_run_dir(tmp_path)
    argv = command_argv(project, command, sleep=0, steps=12)
    proc = run(argv, project, clean_env(MLTUI_RUN_DIR=str(run_dir)))
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [row["step"] for row in rows] == list(range(1, 13))
    for row in rows:
        assert set(row) == {"step", "loss", "acc"}
        assert math.isfinite(row["loss"]) and 0.0 <= row["acc"] <= 1.0
    assert rows[-1]["loss"] < rows[0]["loss"] and rows[-1]["acc"] > rows[0]["acc"]
    assert len(re.findall(r"^step +\d+/12 ", proc.stdout, re.M)) == 12
    assert "steps: 12" in (run_dir / "artifacts" / "summary.txt").read_text()
    assert not (project / "metrics.jsonl").exists()


def test_count_fail_at_exits_3(tmp_path):
    project = copy_project("jsonl_counter", tmp_path)
    run_dir = make_run_dir(tmp_path)
    argv = command_argv(project, "fail", sleep=0, steps=8, fail_at=5)
    proc = run(argv, project, clean_env(MLTUI_RUN_DIR=str(run_dir)))
    assert proc.returncode == 3
    assert "simulated failure" in proc.stderr
    assert [row["step"] for row in read_jsonl(run_dir / "metrics.jsonl")] == [1, 2, 3, 4]
    assert not (run_dir / "artifacts" / "summary.txt").exists()


def test_count_without_run_dir_writes_here(tmp_path):
    project = copy_project("jsonl_counter", tmp_path)
    argv = [sys.executable, "count.py", "--steps", "3", "--sleep", "0", "--noise", "0"]
    proc = run(argv, project, clean_env())
    assert proc.returncode == 0, proc.stderr
    assert [row["step"] for row in read_jsonl(project / "metrics.jsonl")] == [1, 2, 3]
    assert (project / "artifacts" / "summary.txt").is_file()


# -- classifier (torch) -------------------------------------------------------------------------
def test_classifier_plain_train_and_eval(tmp_path):
    pytest.importorskip("torch")
    project = copy_project("classifier", tmp_path)
    no_workspace_above(project)
    run_dir = make_run_dir(tmp_path)
    env = clean_env(MLTUI_RUN_DIR=str(run_dir))

    proc = run(command_argv(project, "train", epochs=2), project, env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for name in ("epoch_1.pt", "epoch_2.pt", "last.pt"):
        assert (project / "checkpoints" / name).is_file(), name
    assert {p.name for p in (project / "data").glob("*.csv")} == {"train.csv", "val.csv", "test.csv"}
    assert len(re.findall(r"^epoch +\d+/2 ", proc.stdout, re.M)) == 2
    summary = json.loads((run_dir / "artifacts" / "metrics_summary.json").read_text())
    assert summary["epochs"] == 2 and summary["final"]["epoch"] == 2
    assert 0.0 <= summary["best_val_acc"] <= 1.0 and summary["best_epoch"] in (1, 2)

    proc = run(command_argv(project, "eval"), project, env)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"test acc \d\.\d{3}", proc.stdout)
    result = json.loads((run_dir / "artifacts" / "eval_summary.json").read_text())
    assert result["epoch"] == 2 and 0.0 <= result["test/acc"] <= 1.0 and math.isfinite(result["test/loss"])


def test_classifier_attaches_to_a_launched_run(tmp_path):
    """Launched by mltui (MLTUI_RUN_ID, MLTUI_WORKSPACE, MLTUI_RUN_DIR set), train.py logs into that run."""
    pytest.importorskip("torch")
    from mltui.core.runs.tracking import create_run
    from mltui.core.workspace import init_workspace

    project = copy_project("classifier", tmp_path)
    ws, _ = init_workspace(project)
    run_id = create_run(ws, name="launched-train", kind="train", command=["python", "train.py"])
    env = clean_env(MLTUI_RUN_ID=run_id, MLTUI_WORKSPACE=str(ws.root), MLTUI_RUN_DIR=str(ws.run_dir(run_id)))
    proc = run(command_argv(project, "train", epochs=1, batch_size=100), project, env)
    assert proc.returncode == 0, proc.stderr
    assert f"attached to run {run_id}" in proc.stdout
    assert (ws.run_dir(run_id) / "artifacts" / "metrics_summary.json").is_file()

    conn = sqlite3.connect(ws.db_path)
    try:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1  # no second run was made
        summary = {key: (last_step, count) for key, last_step, count in conn.execute(
            "SELECT key, last_step, count FROM metric_summary WHERE run_id = ?", (run_id,))}
        assert summary["train/step_loss"] == (29, 30)  # 3000 rows / batch 100: steps 0..29
        for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
            assert summary[key] == (1, 1), key
        params = dict(conn.execute("SELECT key, value FROM params WHERE run_id = ?", (run_id,)))
        assert params["lr"] == 0.003 and params["batch_size"] == 100 and params["epochs"] == 1
        artifacts = {row[0] for row in conn.execute("SELECT path FROM artifacts WHERE run_id = ?", (run_id,))}
        assert "artifacts/metrics_summary.json" in artifacts
        status = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        assert status == "running"  # an attached run's final status is the supervisor's to set
    finally:
        conn.close()
