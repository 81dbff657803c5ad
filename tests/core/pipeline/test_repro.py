"""Pipelines end to end: `mltui repro` and `mltui pipeline status` as subprocesses on a real store, with
the stages' commands really launched under their supervisors.

The sample pipeline (sample_projects/pipeline: prepare -> featurize -> train -> evaluate) walks the
judged story: first repro runs all, a second does nothing, a raw byte re-runs from prepare, a param
re-runs train and evaluate only, reverting it restores from the run cache with no train process, a
deleted out is restored. Small pipelines written here cover failure, --keep-going, a repro SIGKILLed
half-way, two repros at once, and the load-time errors.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from launching import configure, kill_workspace_processes, wait_for

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "sample_projects" / "pipeline"


@pytest.fixture
def project(ws):
    """The sample pipeline copied into the workspace's project folder."""
    for item in SAMPLE.iterdir():
        if item.name in ("__pycache__", ".mltui"):
            continue
        dest = ws.project_dir / item.name
        shutil.copytree(item, dest) if item.is_dir() else shutil.copy2(item, dest)
    yield ws
    kill_workspace_processes(ws.root)


def repro(cli, *args, ok=True):
    done = cli("repro", "--json", *args, timeout=120)
    assert (done.returncode == 0) == ok, done.stderr + done.stdout
    return {s["stage"]: s for s in json.loads(done.stdout)["stages"]}, done


def status(cli, *args):
    done = cli("pipeline", "status", "--json", *args)
    assert done.returncode == 0, done.stderr
    return {s["stage"]: s for s in json.loads(done.stdout)["stages"]}


def states(stages):
    return {name: s["state"] for name, s in stages.items()}


def db(ws):
    conn = sqlite3.connect(ws.db_path, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def runs_named(ws, stage):
    with db(ws) as conn:
        return [dict(r) for r in conn.execute(
            "SELECT r.* FROM runs r JOIN tags t ON t.run_id = r.id AND t.key = 'pipeline.stage' "
            "WHERE t.value = ? ORDER BY r.created", (stage,))]


def launched(ws, stage):
    """Runs of `stage` whose command really ran (a supervisor started it), not restored ones."""
    return [r for r in runs_named(ws, stage) if r["sup_pid"] is not None]


def test_the_sample_pipeline_reruns_exactly_what_changed_and_restores_from_the_run_cache(project, cli):
    ws = project
    first, _ = repro(cli)
    assert states(first) == dict.fromkeys(["prepare", "featurize", "train", "evaluate"], "done")
    assert all(s["why"] == ["it has never run"] or "upstream ran" in s["why"][-1] for s in first.values())

    # a second repro does nothing, and says so
    again, done = repro(cli)
    assert set(states(again).values()) == {"up to date"}
    assert json.loads(done.stdout)["nothing_to_do"] is True
    plain = cli("repro")
    assert plain.returncode == 0 and "Nothing to do: every stage is up to date." in plain.stdout

    # one raw file's bytes: status names the file, and repro re-runs from prepare
    with open(ws.project_dir / "data" / "raw" / "part1.csv", "a") as fh:
        fh.write("0.5000,0.5000,1\n")
    st = status(cli)
    assert st["prepare"]["state"] == "changed"
    dep = st["prepare"]["reasons"][0]
    assert dep["kind"] == "dep" and dep["dep"] == "data/raw" and dep["modified"] == ["part1.csv"]
    assert dep["added"] == [] and dep["removed"] == []
    assert {"kind": "upstream", "stages": ["prepare"]} in st["featurize"]["reasons"]
    after_raw, _ = repro(cli)
    assert after_raw["prepare"]["state"] == "done"
    assert all(after_raw[s]["state"] in ("done", "up to date") for s in after_raw)
    model_lr01 = (ws.project_dir / "models" / "model.json").read_bytes()

    # a param: train and evaluate only
    trains_before = len(launched(ws, "train"))
    st = status(cli, "-p", "train.lr=0.5")
    assert st["train"]["reasons"] == [{"kind": "param", "param": "lr", "from": 0.1, "to": 0.5}]
    assert [s for s, v in st.items() if v["state"] != "up to date"] == ["train", "evaluate"]
    changed, _ = repro(cli, "-p", "train.lr=0.5")
    assert states(changed) == {"prepare": "up to date", "featurize": "up to date", "train": "done",
                               "evaluate": "done"}
    assert len(launched(ws, "train")) == trains_before + 1

    # reverting the param: train's outs come back from the run cache; no train process starts
    st = status(cli)
    assert st["train"]["reasons"] == [{"kind": "param", "param": "lr", "from": 0.5, "to": 0.1}]
    model_lr05 = (ws.project_dir / "models" / "model.json").read_bytes()
    assert model_lr05 != model_lr01
    reverted, _ = repro(cli)
    assert reverted["train"]["state"] == "restored"
    assert reverted["evaluate"]["state"] in ("restored", "done")
    assert len(launched(ws, "train")) == trains_before + 1
    restored_run = runs_named(ws, "train")[-1]
    assert restored_run["sup_pid"] is None and restored_run["status"] == "finished"
    assert "restored from the run cache" in restored_run["reason"]
    assert (ws.project_dir / "models" / "model.json").read_bytes() == model_lr01  # the lr=0.1 model is back

    # deleting an out by hand restores it
    shutil.rmtree(ws.project_dir / "data" / "features")
    st = status(cli)
    assert {"kind": "outs", "out": "data/features", "change": "missing"} in st["featurize"]["reasons"]
    healed, _ = repro(cli)
    assert healed["featurize"]["state"] == "restored"
    assert (ws.project_dir / "data" / "features" / "train.jsonl").is_file()
    assert set(states(status(cli)).values()) == {"up to date"}


def test_each_stage_is_a_run_with_metrics_lineage_and_its_pipeline_as_parent(project, cli):
    ws = project
    result, done = repro(cli)
    pipeline_id = json.loads(done.stdout)["pipeline_id"]
    with db(ws) as conn:
        pipe = dict(conn.execute("SELECT * FROM runs WHERE id = ?", (pipeline_id,)).fetchone())
        assert pipe["kind"] == "pipeline" and pipe["status"] == "finished"
        children = {r["name"].rsplit("-", 1)[0]: dict(r) for r in conn.execute(
            "SELECT * FROM runs WHERE parent_id = ?", (pipeline_id,))}
        assert set(children) == {"prepare", "featurize", "train", "evaluate"}
        assert children["train"]["kind"] == "train" and children["evaluate"]["kind"] == "eval"
        evaluate = children["evaluate"]["id"]
        accuracy = conn.execute("SELECT last FROM metric_summary WHERE run_id = ? AND key = 'accuracy'",
                                (evaluate,)).fetchone()
        written = json.loads((ws.project_dir / "eval.json").read_text())
        assert accuracy is not None and accuracy[0] == pytest.approx(written["accuracy"])
        inputs = {r["dataset"]: dict(r) for r in conn.execute(
            "SELECT * FROM run_inputs WHERE run_id = ?", (children["train"]["id"],))}
        assert inputs["data/features"]["how"] == "out of stage featurize"
    shown = cli("runs", "show", children["train"]["id"], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["params"]["lr"] == 0.1
    log = cli("pipeline", "log", "--json")
    entry = json.loads(log.stdout)[0]
    assert entry["id"] == pipeline_id and [s["state"] for s in entry["stages"]] == ["done"] * 4


BRANCHES = """\
[stages.a]
run = "python step.py a out/a"
deps = ["step.py"]
outs = ["out/a"]

[stages.b]
run = "python fail.py"
deps = ["fail.py", "out/a"]
outs = ["out/b"]

[stages.c]
run = "python step.py c out/c"
deps = ["step.py", "out/b"]
outs = ["out/c"]

[stages.d]
run = "python step.py d out/d"
deps = ["step.py", "out/a"]
outs = ["out/d"]
"""

STEP = """\
import os, sys, time
name, out = sys.argv[1], sys.argv[2]
go = os.environ.get("HOLD_" + name.upper())
while go and not os.path.exists(go):
    time.sleep(0.05)
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as fh:
    fh.write(name + "\\n")
with open("ran.log", "a") as fh:
    fh.write(name + "\\n")
"""


def write(ws, toml: str, **files: str) -> None:
    (ws.project_dir / "mltui.toml").write_text(toml)
    (ws.project_dir / "step.py").write_text(STEP)
    (ws.project_dir / "fail.py").write_text("import sys\nprint('b breaks', flush=True)\nsys.exit(4)\n")
    for name, body in files.items():
        (ws.project_dir / name).write_text(textwrap.dedent(body))


def ran(ws) -> list[str]:
    path = ws.project_dir / "ran.log"
    return path.read_text().split() if path.exists() else []


def test_a_failed_stage_skips_its_descendants_and_stops_the_rest_without_keep_going(ws, cli):
    write(ws, BRANCHES)
    result, done = repro(cli, ok=False)
    assert result["b"]["state"] == "failed" and result["b"]["reason"].startswith("run ")
    assert " failed" in result["b"]["reason"]
    assert result["c"]["state"] == "skipped" and result["c"]["reason"] == "upstream stage b failed"
    assert result["d"]["state"] == "skipped" and "--keep-going" in result["d"]["reason"]
    assert ran(ws) == ["a"]
    assert "b: failed" in done.stderr
    # nothing of b was recorded, so it is still stale, and its outs were never cached
    st = status(cli)
    assert st["b"]["state"] == "never run"
    with db(ws) as conn:
        assert conn.execute("SELECT count(*) FROM pipeline_cache WHERE stage = 'b'").fetchone()[0] == 0
    kill_workspace_processes(ws.root)


def test_keep_going_finishes_the_independent_branch(ws, cli):
    write(ws, BRANCHES)
    result, done = repro(cli, "--keep-going", ok=False)
    assert states(result) == {"a": "done", "b": "failed", "c": "skipped", "d": "done"}
    assert sorted(ran(ws)) == ["a", "d"]
    assert json.loads(done.stdout)["ok"] is False
    kill_workspace_processes(ws.root)


CHAIN = """\
[stages.a]
run = "python step.py a out/a"
deps = ["step.py"]
outs = ["out/a"]

[stages.b]
run = "python step.py b out/b"
deps = ["step.py", "out/a"]
outs = ["out/b"]

[stages.c]
run = "python step.py c out/c"
deps = ["step.py", "out/b"]
outs = ["out/c"]
"""


def start_repro(ws, env=None) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    return subprocess.Popen([sys.executable, "-m", "mltui", "repro"], cwd=ws.project_dir,
                            env={**clean, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def step_state(ws, stage: str) -> str | None:
    with db(ws) as conn:
        row = conn.execute("SELECT state FROM pipeline_steps WHERE stage = ? ORDER BY started DESC LIMIT 1",
                           (stage,)).fetchone()
    return row[0] if row else None


def running_steps(ws, stage: str) -> int:
    with db(ws) as conn:
        return conn.execute("SELECT count(*) FROM pipeline_steps WHERE stage = ? AND state = 'running'",
                            (stage,)).fetchone()[0]


def test_a_sigkilled_repro_is_finished_by_the_next_with_no_stage_run_twice(ws, cli, tmp_path):
    write(ws, CHAIN)
    go = tmp_path / "go-b"
    first = start_repro(ws, {"HOLD_B": str(go)})
    try:
        wait_for(lambda: step_state(ws, "b") == "running", 30, what="stage b to start")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert ran(ws) == ["a"]  # b still waits, in its own supervisor
    second = start_repro(ws, {"HOLD_B": str(go)})
    try:
        wait_for(lambda: running_steps(ws, "b") == 2, 30, what="the second repro to adopt b")
        go.write_text("now")
        out, err = second.communicate(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, err
    assert "adopted run" in err and "a: up to date" in err
    assert ran(ws) == ["a", "b", "c"]  # every stage exactly once
    assert len(runs_named(ws, "b")) == 1
    assert set(states(status(cli)).values()) == {"up to date"}
    kill_workspace_processes(ws.root)


def test_a_stage_that_finished_while_no_repro_watched_is_recorded_not_rerun(ws, cli, tmp_path):
    write(ws, CHAIN)
    go = tmp_path / "go-b"
    first = start_repro(ws, {"HOLD_B": str(go)})
    try:
        wait_for(lambda: step_state(ws, "b") == "running", 30, what="stage b to start")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    go.write_text("now")
    wait_for(lambda: (ws.project_dir / "out" / "b").exists() and runs_named(ws, "b")[0]["status"] == "finished",
             30, what="b to finish on its own")
    result, _ = repro(cli)
    assert states(result) == {"a": "up to date", "b": "done", "c": "done"}
    assert ran(ws) == ["a", "b", "c"]
    kill_workspace_processes(ws.root)


def test_two_repros_at_once_the_second_says_it_is_busy(ws, cli, tmp_path):
    write(ws, CHAIN)
    go = tmp_path / "go-b"
    first = start_repro(ws, {"HOLD_B": str(go)})
    try:
        wait_for(lambda: step_state(ws, "b") == "running", 30, what="stage b to start")
        second = cli("repro")
        assert second.returncode == 1
        assert second.stderr.startswith("mltui: Another `mltui repro` (pid ") and len(second.stderr.splitlines()) == 1
        go.write_text("now")
        _, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    assert ran(ws) == ["a", "b", "c"]
    kill_workspace_processes(ws.root)


@pytest.mark.parametrize("toml, words", [
    ("""[stages.x]\nrun = "python step.py x out/x"\ndeps = ["out/y"]\nouts = ["out/x"]\n"""
     """[stages.y]\nrun = "python step.py y out/y"\ndeps = ["out/x"]\nouts = ["out/y"]\n""",
     "the stages form a cycle: x -> y -> x"),
    ("""[stages.x]\nrun = "python step.py x out/x"\ndeps = ["step.py"]\nouts = ["out/x"]\n"""
     """[stages.y]\nrun = "python step.py y out/x"\ndeps = ["step.py"]\nouts = ["out/x"]\n""",
     "stages 'x' and 'y' both write the same out 'out/x'"),
    ("""[stages.x]\nrun = "python step.py x out/x"\ndeps = ["nowhere.csv"]\nouts = ["out/x"]\n""",
     "depends on 'nowhere.csv', which does not exist and which no stage writes"),
    ("""[stages.x]\nrun = "python step.py x ../x"\ndeps = ["step.py"]\nouts = ["../x"]\n""",
     "is outside the project"),
    ("""[stages.x]\nrun = "python step.py x data/x"\ndeps = ["data"]\nouts = ["data/x"]\n""",
     "the out 'data/x' is inside its own dep 'data'"),
])
def test_a_broken_pipeline_is_one_sentence_and_exit_code_2(ws, cli, toml, words):
    write(ws, toml)
    (ws.project_dir / "data").mkdir(exist_ok=True)
    for args in (["repro"], ["pipeline", "status"]):
        if args == ["pipeline", "status"] and "does not exist" in words:
            continue  # status reports a missing dep as a reason rather than refusing to load
        done = cli(*args)
        assert done.returncode == 2, done.stderr
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert "Traceback" not in done.stderr
    assert ran(ws) == []


def test_unknown_stages_and_params_are_usage_errors(project, cli):
    for args, words in ((["repro", "nope"], "There is no stage 'nope'"),
                        (["repro", "-p", "train.nope=1"], "Stage train has no param 'nope'"),
                        (["repro", "-p", "lr"], "-p takes KEY=VALUE")):
        done = cli(*args)
        assert done.returncode == 2 and words in done.stderr, done.stderr


def test_dry_run_and_naming_a_stage_run_only_what_it_needs(project, cli):
    ws = project
    dry, done = repro(cli, "--dry-run")
    assert set(states(dry).values()) == {"would run"}
    assert launched(ws, "prepare") == [] and not (ws.project_dir / "data" / "prepared").exists()
    some, _ = repro(cli, "featurize")
    assert states(some) == {"prepare": "done", "featurize": "done"}
    assert status(cli)["train"]["state"] == "never run"
    forced, _ = repro(cli, "--force", "featurize")
    assert states(forced) == {"prepare": "up to date", "featurize": "done"}


PARALLEL = """\
[stages.left]
run = "python meet.py left right out/left"
deps = ["meet.py"]
outs = ["out/left"]

[stages.right]
run = "python meet.py right left out/right"
deps = ["meet.py"]
outs = ["out/right"]

[stages.join]
run = "python step.py join out/join"
deps = ["step.py", "out/left", "out/right"]
outs = ["out/join"]
"""

MEET = """\
import os, sys, time
me, other, out = sys.argv[1:4]
open(me + ".started", "w").close()
end = time.time() + 20
while not os.path.exists(other + ".started") and time.time() < end:
    time.sleep(0.05)
met = os.path.exists(other + ".started")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as fh:
    fh.write("met" if met else "alone")
"""


def test_independent_stages_run_in_parallel_within_max_parallel(ws, cli):
    write(ws, PARALLEL, **{"meet.py": MEET})
    configure(ws, max_parallel=2)
    result, _ = repro(cli)
    assert states(result) == {"left": "done", "right": "done", "join": "done"}
    # each side saw the other start before it ended: they ran at the same time
    assert (ws.project_dir / "out" / "left").read_text() == "met"
    assert (ws.project_dir / "out" / "right").read_text() == "met"
    assert ran(ws) == ["join"]


def test_with_max_parallel_1_independent_stages_run_one_after_the_other(ws, cli):
    write(ws, PARALLEL.replace("meet.py left right", "meet.py left nobody"), **{"meet.py": MEET.replace(
        "time.time() + 20", "time.time() + 0.5")})
    result, _ = repro(cli)
    assert states(result) == {"left": "done", "right": "done", "join": "done"}
    with db(ws) as conn:
        spans = {r[0]: (r[1], r[2]) for r in conn.execute(
            "SELECT stage, started, ended FROM pipeline_steps WHERE stage IN ('left', 'right')")}
    first, second = sorted(spans.values())
    assert first[1] <= second[0]  # the second started only after the first ended


def test_editing_a_restored_out_in_place_never_changes_what_the_run_cache_restores(project, cli):
    ws = project
    model = ws.project_dir / "models" / "model.json"
    repro(cli)
    made = model.read_bytes()
    repro(cli, "-p", "train.lr=0.5")
    restored, _ = repro(cli)  # back to lr=0.1: restored from the run cache
    assert restored["train"]["state"] == "restored" and model.read_bytes() == made
    with open(model, "r+b") as fh:  # edited in place, as root can even when the file is read-only
        fh.write(b"XXXX")
    assert status(cli)["train"]["reasons"] == [{"kind": "outs", "out": "models/model.json", "change": "modified"}]
    repro(cli, "-p", "train.lr=0.5")
    again, _ = repro(cli)
    assert again["train"]["state"] == "restored"
    assert model.read_bytes() == made
