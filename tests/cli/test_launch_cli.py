"""`mltui run`, `mltui sweep`, `mltui runs log|kill|rerun` and `mltui queue`, through the real CLI.

Every call is `python -m mltui ...` in a subprocess (the `cli` fixture, which also fails a test whose
call printed a traceback); the runs they start are real detached supervisors and commands. The
store is polled with a deadline, never slept on for a fixed time. The autouse fixture kills every
process that belongs to the test's workspace at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from launching import (all_runs, configure, kill_workspace_processes, output, params_of, row, status,  # noqa: E402
                       wait_ended, wait_for, wait_queue_idle)

# -- shared helpers ---------------------------------------------------------------------------

ID = re.compile(r"^[0-9a-z]{10}$")


def run_count(ws) -> int:
    conn = sqlite3.connect(ws.db_path, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    finally:
        conn.close()


def unique_prefix(ws, run_id: str) -> str:
    """The shortest prefix of `run_id` that no other run's id starts with (at least 8 characters)."""
    conn = sqlite3.connect(ws.db_path, timeout=10)
    try:
        others = [r[0] for r in conn.execute("SELECT id FROM runs WHERE id != ?", (run_id,))]
    finally:
        conn.close()
    for n in range(8, len(run_id)):
        if not any(o.startswith(run_id[:n]) for o in others):
            return run_id[:n]
    return run_id


def one_line_error(result, *codes: int) -> str:
    """`result` failed with one of `codes`, printing exactly one `mltui: ` line on stderr and no traceback."""
    assert result.returncode in codes, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith("mltui: "), result.stderr
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return result.stderr.rstrip("\n")


def run_id_of(result) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    run_id = result.stdout.strip()
    assert ID.match(run_id), result.stdout
    return run_id


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    kill_workspace_processes(tmp_path / ".mltui")


ECHO = """\
import json, os, sys
for i in range(5):
    print(f"line {i}")
print(json.dumps(sys.argv[1:]))
with open(f"argv-{os.environ['MLTUI_RUN_ID']}.json", "w") as fh:
    json.dump(sys.argv[1:], fh)
"""

MLTUI_TOML = """\
[commands.echo]
run = "python echo_args.py --msg {msg} --n {n}"
params = { msg = "hi", n = 1 }
kind = "train"

[commands.glued]
run = "python echo_args.py --msg={msg}"
params = { msg = "x" }

[commands.fail]
run = 'python -c "import sys; print(\\"bye\\", flush=True); sys.exit({code})"'
params = { code = 3 }

[commands.sleepy]
run = 'python -c "import time; print(\\"up\\", flush=True); time.sleep({secs})"'
params = { secs = 20 }

[commands.needs]
run = "python echo_args.py {x}"
"""


@pytest.fixture
def project(ws, tmp_path):
    """`ws` with an mltui.toml of named commands and the echo_args.py they run."""
    (tmp_path / "mltui.toml").write_text(MLTUI_TOML)
    (tmp_path / "echo_args.py").write_text(ECHO)
    return ws


def argv_seen(tmp_path: Path, run_id: str) -> list[str]:
    return json.loads((tmp_path / f"argv-{run_id}.json").read_text())


# -- mltui run ------------------------------------------------------------------------------------


def test_run_prints_only_the_id_and_returns_at_once(project, cli):
    result = cli("run", "sleepy")
    run_id = run_id_of(result)
    assert result.stdout == run_id + "\n"
    assert result.stderr == ""
    assert status(project, run_id) == "running", "`mltui run` must not wait for the 20 s command"
    wait_for(lambda: "up" in output(project, run_id), 10, what="the command to start")
    r = row(project, run_id)
    assert r["status"] == "running"
    assert r["name"].startswith("sleepy-") and r["kind"] == "other"
    killed = cli("runs", "kill", run_id, "--grace", "1")
    assert killed.returncode == 0, killed.stderr
    assert killed.stdout == f"{run_id} killed\n"
    assert status(project, run_id) == "killed"


def test_run_json_and_params_typed(project, cli, tmp_path):
    result = cli("run", "echo", "-p", "msg=hello", "-p", "n=7", "--name", "mine", "--note", "a note", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert set(data) == {"id", "status", "command", "params"}
    assert ID.match(data["id"])
    assert data["status"] == "running"
    assert data["command"] == [sys.executable, "echo_args.py", "--msg", "hello", "--n", "7"]
    assert data["params"] == {"msg": "hello", "n": 7}
    done = wait_ended(project, data["id"])
    assert done["status"] == "finished"
    assert done["name"] == "mine" and done["note"] == "a note" and done["kind"] == "train"
    assert params_of(project, data["id"]) == {"msg": "hello", "n": 7}
    assert argv_seen(tmp_path, data["id"]) == ["--msg", "hello", "--n", "7"]

    queued = json.loads(cli("run", "echo", "--queue", "--json").stdout)
    assert queued["status"] == "queued"
    wait_ended(project, queued["id"])


def test_run_wait_streams_the_output_and_returns_the_exit_code(project, cli):
    ok = cli("run", "echo", "--wait")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "".join(f"line {i}\n" for i in range(5)) + '["--msg", "hi", "--n", "1"]\n'
    assert ok.stderr == ""

    failed = cli("run", "fail", "--wait")
    assert failed.returncode == 3
    assert failed.stdout == "bye\n"
    line = one_line_error(type(failed)(failed.args, 3, "", failed.stderr), 3)
    assert "failed" in line and "code 3" in line

    zero = cli("run", "fail", "-p", "code=0", "--wait")
    assert zero.returncode == 0 and zero.stdout == "bye\n" and zero.stderr == ""

    as_json = cli("run", "fail", "--wait", "--json")
    assert as_json.returncode == 3
    data = json.loads(as_json.stdout)
    assert data["status"] == "failed" and data["exit_code"] == 3 and ID.match(data["id"])


def test_run_wait_on_a_run_killed_by_a_signal_exits_128_plus_n(project, cli):
    code = "import os, signal; print('x', flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    result = cli("run", "--wait", "--", "python", "-c", code)
    assert result.returncode == 128 + signal.SIGKILL
    assert result.stdout == "x\n"
    assert "SIGKILL" in result.stderr


def test_run_an_arbitrary_command_after_dashes(ws, cli, tmp_path):
    result = cli("run", "--", "python", "-c", "import sys; print('adhoc', sys.argv[1:])", "a b", "--flag")
    run_id = run_id_of(result)
    done = wait_ended(ws, run_id)
    assert done["status"] == "finished"
    assert done["command"] == [sys.executable, "-c", "import sys; print('adhoc', sys.argv[1:])", "a b", "--flag"]
    assert output(ws, run_id) == "adhoc ['a b', '--flag']\n"
    assert done["cwd"] == str(tmp_path)

    missing = cli("run", "--", "no-such-program-mltui-test")
    assert "not on PATH" in one_line_error(missing, 1)
    both = cli("run", "echo", "--", "python", "-c", "pass")
    one_line_error(both, 2)
    nothing = cli("run")
    one_line_error(nothing, 2)
    empty = cli("run", "--")
    one_line_error(empty, 2)
    assert run_count(ws) == 1


# -- errors: one line, exit 1 or 2, nothing recorded ------------------------------------------------


def test_unknown_command_param_or_missing_value(project, cli):
    unknown = one_line_error(cli("run", "nope"), 2)
    assert "no command 'nope'" in unknown and "echo" in unknown
    param = one_line_error(cli("run", "echo", "-p", "zz=1"), 2)
    assert "'zz'" in param and "msg" in param
    missing = one_line_error(cli("run", "needs"), 2)
    assert "{x}" in missing and "-p x=" in missing
    malformed = one_line_error(cli("run", "echo", "-p", "novalue"), 2)
    assert "KEY=VALUE" in malformed
    twice = one_line_error(cli("run", "echo", "-p", "n=1", "-p", "n=2"), 2)
    assert "twice" in twice
    assert run_count(project) == 0


@pytest.mark.parametrize("text, words", [
    ("[commands.train\nrun = 'python x.py'\n", "not valid TOML"),
    ("[commands.train]\nrun = \"python x.py --lr {lr\"\n", "stray brace"),
    ("[commands.train]\nrun = \"python x.py } \"\n", "stray brace"),
    ("[commands.train]\nparams = { lr = 1 }\n", "needs a 'run' template"),
    ("[commands.train]\nrun = \"python x.py\"\nkind = \"deploy\"\n", "'kind'"),
    ("[commands.train]\nrun = \"python x.py\"\nwatch = [\"../up\"]\n", "watched folder"),
    ("[commands.train]\nrun = \"python 'x.py\"\n", "cannot be split"),
    ("[commands.train]\nrun = \"python x.py\"\nrnu = 1\n", "unknown settings"),
])
def test_a_broken_mltui_toml_is_one_line(ws, cli, tmp_path, text, words):
    (tmp_path / "mltui.toml").write_text(text)
    line = one_line_error(cli("run", "train"), 1, 2)
    assert words in line
    assert "mltui.toml" in line
    assert run_count(ws) == 0


def test_no_mltui_toml(ws, cli):
    line = one_line_error(cli("run", "train"), 1, 2)
    assert "no mltui.toml" in line and "mltui run --" in line
    sweep = one_line_error(cli("sweep", "train", "-p", "lr=1,2"), 1, 2)
    assert "no mltui.toml" in sweep


def test_outside_a_workspace(tmp_path, cli):
    outside = tmp_path / "nowhere"
    outside.mkdir()
    if any((p / ".mltui").exists() for p in (outside, *outside.parents)):
        pytest.skip("a workspace exists above tmp_path")
    line = one_line_error(cli("run", "--", "python", "-c", "pass", cwd=outside), 1, 2)
    assert "mltui init" in line


# -- params never meet a shell ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    '"; touch PWNED"',
    "$(touch PWNED)",
    "`touch PWNED`",
    "; touch PWNED",
    "a b  c",
    "*",
    "{n}",
    "'",
    "x && touch PWNED || touch PWNED",
])
def test_a_param_value_reaches_the_child_as_one_literal_argument(project, cli, tmp_path, value):
    result = cli("run", "echo", "-p", f"msg={value}", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["id"]
    assert argv_seen(tmp_path, run_id) == ["--msg", value, "--n", "1"]
    glued = cli("run", "glued", "-p", f"msg={value}", "--wait", "--json")
    assert glued.returncode == 0, glued.stderr
    glued_id = json.loads(glued.stdout)["id"]
    assert argv_seen(tmp_path, glued_id) == [f"--msg={value}"]
    assert not (tmp_path / "PWNED").exists()
    assert not list(tmp_path.rglob("PWNED"))


def test_a_command_after_dashes_is_not_given_to_a_shell(ws, cli, tmp_path):
    (tmp_path / "echo_args.py").write_text(ECHO)
    result = cli("run", "--wait", "--", "python", "echo_args.py", "; touch PWNED", "$(touch PWNED)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(json.dumps(["; touch PWNED", "$(touch PWNED)"]) + "\n")
    assert not list(tmp_path.rglob("PWNED"))


def test_a_value_with_leading_zeros_reaches_the_child_as_typed(project, cli, tmp_path):
    result = cli("run", "echo", "-p", "n=007", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["id"]
    assert argv_seen(tmp_path, run_id) == ["--msg", "hi", "--n", "007"]


# -- runs log / kill / rerun ----------------------------------------------------------------------


def test_runs_log_and_tail(project, cli):
    run_id = run_id_of(cli("run", "echo"))
    wait_ended(project, run_id)
    whole = cli("runs", "log", run_id)
    assert whole.returncode == 0 and whole.stderr == ""
    assert whole.stdout == output(project, run_id)
    assert whole.stdout.startswith("line 0\nline 1\n")
    tail = cli("runs", "log", unique_prefix(project, run_id), "--tail", "2")
    assert tail.returncode == 0, tail.stderr
    assert tail.stdout == 'line 4\n["--msg", "hi", "--n", "1"]\n'
    none = cli("runs", "log", run_id, "--tail", "0")
    assert none.returncode == 0 and none.stdout == ""
    assert "--tail" in one_line_error(cli("runs", "log", run_id, "--tail", "-1"), 2)
    assert "0000000zz" in one_line_error(cli("runs", "log", "0000000zz"), 1, 2)


def test_runs_log_follow_prints_until_the_end(project, cli):
    code = "import time\nfor i in range(4):\n    print(f'tick {i}', flush=True); time.sleep(0.3)\n"
    run_id = run_id_of(cli("run", "--", "python", "-c", code))
    followed = cli("runs", "log", run_id, "-f", timeout=20)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "".join(f"tick {i}\n" for i in range(4))
    assert status(project, run_id) == "finished"


def test_runs_kill(project, cli):
    finished = run_id_of(cli("run", "echo"))
    wait_ended(project, finished)
    line = one_line_error(cli("runs", "kill", finished), 1)
    assert finished in line and "finished" in line and "nothing to kill" in line

    running = run_id_of(cli("run", "sleepy"))
    wait_for(lambda: "up" in output(project, running), 10, what="the command to start")
    pgid = row(project, running)["pgid"]
    result = cli("runs", "kill", running, "--grace", "2", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"id": running, "status": "killed"}]
    done = row(project, running)
    assert done["status"] == "killed" and "runs kill" in done["reason"]
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    assert "--grace" in one_line_error(cli("runs", "kill", running, "--grace", "-1"), 2)

    assert cli("queue", "pause").returncode == 0
    queued_run = run_id_of(cli("run", "sleepy", "--queue"))
    another = run_id_of(cli("run", "sleepy"))
    wait_for(lambda: "up" in output(project, another), 10, what="the command to start")
    both = cli("runs", "kill", another, queued_run, "--no-wait")
    assert both.returncode == 0, both.stderr
    lines = both.stdout.splitlines()
    assert lines[0].startswith(f"{another} running") and "signalled" in lines[0]
    assert lines[1] == f"{queued_run} killed"
    assert wait_ended(project, another)["status"] == "killed"
    assert row(project, queued_run)["started"] is None


def test_runs_rerun(project, cli, tmp_path):
    first = run_id_of(cli("run", "echo", "-p", "msg=one", "-p", "n=2"))
    wait_ended(project, first)

    again = run_id_of(cli("runs", "rerun", first))
    changed = cli("runs", "rerun", unique_prefix(project, first), "-p", "msg=two", "--json")
    assert changed.returncode == 0, changed.stderr
    data = json.loads(changed.stdout)
    assert set(data) == {"id", "rerun_of", "command", "params"}
    assert data["rerun_of"] == first
    assert data["params"] == {"msg": "two", "n": 2}
    assert data["command"] == [sys.executable, "echo_args.py", "--msg", "two", "--n", "2"]
    for run_id in (again, data["id"]):
        assert wait_ended(project, run_id)["status"] == "finished"
        assert row(project, run_id)["rerun_of"] == first
    assert argv_seen(tmp_path, again) == ["--msg", "one", "--n", "2"]
    assert argv_seen(tmp_path, data["id"]) == ["--msg", "two", "--n", "2"]
    assert params_of(project, again) == {"msg": "one", "n": 2}

    waited = cli("runs", "rerun", first, "-p", "n=5", "--wait")
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.endswith('["--msg", "one", "--n", "5"]\n')

    unknown = one_line_error(cli("runs", "rerun", first, "-p", "nope=1"), 2)
    assert "'nope'" in unknown
    shown = cli("runs", "show", data["id"])
    assert f"rerun of {first}" in shown.stdout


# -- queue and sweep ------------------------------------------------------------------------------


def test_queue_list_pause_resume_rm(project, cli):
    paused = cli("queue", "pause")
    assert paused.returncode == 0 and paused.stdout == "Queue paused.\n"
    first = run_id_of(cli("run", "echo", "--queue", "-p", "msg=q1"))
    second = run_id_of(cli("run", "echo", "--queue", "-p", "msg=q2", "--gpus", "0"))
    wait_queue_idle(project.root)  # the workers both calls woke have seen the pause and left
    assert "Traceback" not in (project.root / "queue.log").read_text()  # left, not crashed
    listed = cli("queue", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert data["paused"] is True and data["running"] == 0
    assert [q["id"] for q in data["queued"]] == [first, second]
    assert data["queued"][0]["params"] == {"msg": "q1", "n": 1}
    assert data["queued"][0]["command"] == "echo"
    assert set(data["queued"][0]) >= {"id", "name", "created", "gpus", "gpu_mem", "command", "params"}
    text = cli("queue", "list")
    assert text.stdout.startswith("queue paused: 2 queued")
    assert first in text.stdout and "msg=q1" in text.stdout

    removed = cli("queue", "rm", second, "--json")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout) == {"removed": [second]}
    assert status(project, second) is None

    resumed = cli("queue", "resume", "--json")
    assert resumed.returncode == 0 and json.loads(resumed.stdout) == {"paused": False}
    assert wait_ended(project, first)["status"] == "finished"
    assert json.loads(cli("queue", "list", "--json").stdout)["queued"] == []
    line = one_line_error(cli("queue", "rm", first), 1)
    assert "not queued" in line


def test_sweep_2x2_queues_four_runs(project, cli, tmp_path):
    configure(project, max_parallel=2)
    cli("queue", "pause")
    swept = cli("sweep", "echo", "-p", "msg=a,b", "-p", "n=1,2")
    assert swept.returncode == 0, swept.stderr
    lines = swept.stdout.splitlines()
    assert len(lines) == 4
    ids = [line.split()[0] for line in lines]
    assert all(ID.match(i) for i in ids) and len(set(ids)) == 4
    assert [line.split()[1:] for line in lines] == [["msg=a", "n=1"], ["msg=a", "n=2"], ["msg=b", "n=1"],
                                                    ["msg=b", "n=2"]]
    data = json.loads(cli("queue", "list", "--json").stdout)
    assert sorted(q["id"] for q in data["queued"]) == sorted(ids)
    assert {(q["params"]["msg"], q["params"]["n"]) for q in data["queued"]} == {
        ("a", 1), ("a", 2), ("b", 1), ("b", 2)}

    as_json = cli("sweep", "echo", "-p", "msg=c", "-p", "n=3,4", "--json")
    assert as_json.returncode == 0, as_json.stderr
    extra = json.loads(as_json.stdout)
    assert [e["params"] for e in extra] == [{"msg": "c", "n": 3}, {"msg": "c", "n": 4}]

    assert cli("queue", "resume").returncode == 0
    for run_id, (msg, n) in zip(ids + [e["id"] for e in extra],
                                [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("c", 3), ("c", 4)]):
        assert wait_ended(project, run_id, timeout=30)["status"] == "finished"
        assert argv_seen(tmp_path, run_id) == ["--msg", msg, "--n", str(n)]

    assert "'zz'" in one_line_error(cli("sweep", "echo", "-p", "zz=1,2"), 2)
    assert "empty choice" in one_line_error(cli("sweep", "echo", "-p", "msg=a,,b"), 2)
    assert run_count(project) == 6  # refused sweeps queue nothing


def test_waiting_on_a_queued_run_that_is_removed_says_so(project, cli, tmp_path):
    assert cli("queue", "pause").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    waiter = subprocess.Popen([sys.executable, "-m", "mltui", "run", "echo", "--queue", "--wait"], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id = wait_for(lambda: next(iter(json.loads(cli("queue", "list", "--json").stdout)["queued"]), None),
                          10, what="the run to be queued")["id"]
        assert cli("queue", "rm", run_id).returncode == 0
        out, err = waiter.communicate(timeout=10)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()
    assert waiter.returncode != 0
    assert err.startswith("mltui: ") and err.count("\n") == 1, err
    assert "unexpected error" not in err, err


def test_rerun_of_a_run_logged_by_a_script(ws, cli, tmp_path):
    (tmp_path / "train.py").write_text(
        "import sys, mltui\nrun = mltui.init(params={'lr': 0.1})\nprint('trained', sys.argv[1:])\nrun.finish()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    subprocess.run([sys.executable, "train.py", "--lr", "1"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    (original,) = [r["id"] for r in all_runs(ws)]
    result = cli("runs", "rerun", original)  # sys.argv had no python in it: the rerun puts it back
    done = wait_ended(ws, run_id_of(result))
    assert done["status"] == "finished" and "trained ['--lr', '1']" in output(ws, done["id"])
    assert done["rerun_of"] == original
    assert done["command"] == [sys.executable, "train.py", "--lr", "1"]
