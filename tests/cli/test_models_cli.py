"""`mltui models`, `mltui promote`, `mltui queue approve|reject|comment|show` and `mltui audit` end to end:
real subprocesses (the `cli` fixture) against a real workspace, with the SQLite store read directly after
each step. Runs, artifacts and metrics come from the tracking API in this process; checkpoints are real
torch files."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import sqlite3
import struct
import textwrap
from contextlib import closing
from pathlib import Path

import pytest
torch = pytest.importorskip("torch", reason="the model tests build .pt checkpoints with torch (installed by the test extra)")

import mltui

POLICY = """
allow_self_approval = false

[[promotion.gates]]
kind = "metric"
metric = "val_acc"
op = ">="
value = 0.9

[[promotion.gates]]
kind = "beats_production"
metric = "val_acc"

[[promotion.gates]]
kind = "eval_run"

[[promotion.gates]]
kind = "same_eval_data"
"""

EVAL_GATE = "an eval run on a registered dataset version"
SAME_DATA_GATE = "evaluated on the data production was judged on"


# -- helpers --------------------------------------------------------------------------------------
def ok(result, code: int = 0):
    assert result.returncode == code, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def as_json(result):
    return json.loads(ok(result).stdout)


def failed(result, code: int) -> str:
    """The one-line error of a failed command."""
    assert result.returncode == code, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mltui: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.fixture(autouse=True)
def _trust_env_user(ws):
    """These tests play several people from one account through $MLTUI_USER, which the workspace must
    say it trusts; the policy a test adds goes on in the same [promotion] table."""
    ws.config_path.write_text(ws.config_path.read_text(encoding="utf-8") + "\n[promotion]\ntrust_env_user = true\n",
                              encoding="utf-8")


def as_user(cli, user: str):
    return lambda *args: cli(*args, env={"MLTUI_USER": user})


def q(ws, sql: str, args: tuple = ()) -> list[tuple]:
    with closing(sqlite3.connect(ws.db_path, timeout=30)) as c:
        return c.execute(sql, args).fetchall()


def execute(ws, sql: str, args: tuple = ()) -> None:
    with closing(sqlite3.connect(ws.db_path, timeout=30)) as c:
        c.execute(sql, args)
        c.commit()


def stages(ws, model: str = "clf") -> dict[int, str]:
    return dict(q(ws, "SELECT version, stage FROM model_versions WHERE model = ?", (model,)))


def production_rows(ws, model: str = "clf") -> list[int]:
    return [v for (v,) in q(ws, "SELECT version FROM model_versions WHERE model = ? AND stage = 'production'",
                            (model,))]


def request_row(ws, number: int) -> dict:
    cols = ("status", "requester", "reviewer", "decision", "override", "gates", "target", "version")
    row = q(ws, f"SELECT {', '.join(cols)} FROM promotion_requests WHERE id = ?", (number,))
    assert row, f"no request #{number}"
    d = dict(zip(cols, row[0]))
    d["gates"] = json.loads(d["gates"])
    return d


def last_moves(ws, n: int, model: str = "clf") -> list[tuple]:
    rows = q(ws, "SELECT version, from_stage, to_stage, actor, reason FROM stage_moves WHERE model = ? "
                 "ORDER BY id DESC LIMIT ?", (model, n))
    return rows[::-1]


def audit_rows(ws) -> list[tuple]:
    return q(ws, "SELECT seq, actor, action, model FROM audit_log ORDER BY seq")


def set_policy(ws, text: str) -> None:
    ws.config_path.write_text(ws.config_path.read_text(encoding="utf-8") + "\n" + textwrap.dedent(text),
                              encoding="utf-8")


def train(ws, seed: int, val_acc: float, name: str | None = None) -> str:
    """A train run that saved a small torch state dict as artifacts/model.pt and logged val_acc."""
    gen = torch.Generator().manual_seed(seed)
    src = ws.project_dir / f"weights-{seed}.pt"
    torch.save({"fc.weight": torch.randn(4, 3, generator=gen), "fc.bias": torch.randn(4, generator=gen)}, src)
    run = mltui.init(name=name or f"train-{seed}", params={"lr": 0.1, "seed": seed}, kind="train",
                     workspace=ws.project_dir)
    run.log_artifact(src, "model.pt")
    run.log({"val_acc": val_acc}, step=1)
    run.finish()
    return run.id


def evaluate(ws, label: str, val_acc: float, dataset: str | None = "evalset") -> str:
    """An eval run of a model version: kind eval, param model=NAME@N, on a registered dataset."""
    run = mltui.init(name=f"eval-{label}", params={"model": label}, kind="eval", workspace=ws.project_dir)
    if dataset:
        run.use_dataset(dataset)
    run.log({"val_acc": val_acc}, step=1)
    run.finish()
    return run.id


def add_evalset(ws, cli) -> None:
    data = ws.project_dir / "evalset"
    data.mkdir()
    (data / "rows.csv").write_text("x,y\n1,0\n2,1\n")
    ok(cli("data", "add", data, "--name", "evalset"))


# -- the whole flow -------------------------------------------------------------------------------
def test_full_flow_register_promote_review_rollback_and_audit(ws, cli):
    alice, bob, carol = as_user(cli, "alice"), as_user(cli, "bob"), as_user(cli, "carol")
    add_evalset(ws, cli)
    set_policy(ws, POLICY)

    # 1. a train run and an eval run of what it made
    run1 = train(ws, 1, 0.91)
    out = ok(alice("models", "register", "clf", "--run", run1, "--path", "artifacts/model.pt")).stdout
    assert out.startswith(f"artifacts/model.pt of run {run1} registered as clf@1 (candidate, ")
    assert stages(ws) == {1: "candidate"}
    assert q(ws, "SELECT user, run_id, path FROM model_versions WHERE model = 'clf'") == [
        ("alice", run1, "artifacts/model.pt")]
    assert last_moves(ws, 1) == [(1, None, "candidate", "alice", "registered")]
    assert audit_rows(ws) == [(1, "alice", "register", "clf")]
    eval1 = evaluate(ws, "clf@1", 0.92)

    # 2. the request: gates evaluated and stored, nothing moves
    out = ok(alice("promote", "clf", "1", "--to", "production", "-m", "first release")).stdout
    assert out.splitlines()[0] == "Request #1: clf@1 to production, by alice."
    assert out.count("  pass  ") == 4 and "FAIL" not in out
    assert f"val_acc >= 0.9: val_acc = 0.92 (run {eval1})" in out
    assert "Another user approves it with `mltui queue approve 1`." in out
    req = request_row(ws, 1)
    assert (req["status"], req["requester"], req["reviewer"], req["override"]) == ("open", "alice", None, None)
    assert [g["ok"] for g in req["gates"]] == [True, True, True, True]
    assert stages(ws) == {1: "candidate"}

    listing = ok(cli("queue", "list")).stdout
    assert "1 promotion request waiting for review:" in listing
    assert re.search(r"^#1\s+clf@1\s+production\s+alice\s+.*all pass\s*$", listing, re.M), listing
    queued = as_json(cli("queue", "list", "--json"))
    assert [(r["id"], r["label"], r["target"], r["requester"], r["status"]) for r in queued["requests"]] == [
        (1, "clf@1", "production", "alice", "open")]

    # 3. the requester cannot approve it; another user can, once
    err = failed(alice("queue", "approve", "1"), 1)
    assert "You (alice) filed request #1; another reviewer must approve it" in err
    assert request_row(ws, 1)["status"] == "open" and stages(ws) == {1: "candidate"}
    out = ok(bob("queue", "approve", "1")).stdout
    assert out.splitlines()[0] == "Request #1: clf@1 to production, by alice: approved by bob."
    req = request_row(ws, 1)
    assert (req["status"], req["reviewer"], req["override"]) == ("approved", "bob", None)
    assert stages(ws) == {1: "production"}
    assert last_moves(ws, 1) == [(1, "candidate", "production", "bob", "request #1")]
    assert "already approved by bob" in failed(carol("queue", "approve", "1"), 1)
    assert as_json(cli("queue", "list", "--json"))["requests"] == []

    # 4. version 2 with no eval run: its gates fail, so approval is refused
    run2 = train(ws, 2, 0.95)
    ok(alice("models", "register", "clf", "--run", run2, "--path", "artifacts/model.pt"))
    out = ok(alice("promote", "clf", "2", "--to", "production")).stdout
    assert f"  FAIL  {EVAL_GATE}: no finished eval run names clf@2" in out
    assert f"  FAIL  {SAME_DATA_GATE}: production was judged on evalset@" in out
    assert "2 gate(s) fail: a reviewer can only approve it with --override REASON." in out
    assert re.search(r"^#2\s+clf@2\s+production\s+alice\s+.*2 failing\s*$", ok(cli("queue", "list")).stdout, re.M)
    err = failed(bob("queue", "approve", "2"), 1)
    assert err.startswith("mltui: Request #2 fails 2 gate(s): ")
    assert EVAL_GATE in err and SAME_DATA_GATE in err and "--override REASON" in err
    assert request_row(ws, 2)["status"] == "open"
    assert stages(ws) == {1: "production", 2: "candidate"}

    # 5. ... unless a second user overrides them with a reason
    out = ok(bob("queue", "approve", "2", "--override", "hotfix for incident 42")).stdout
    assert "  gates overridden: hotfix for incident 42" in out
    req = request_row(ws, 2)
    assert (req["status"], req["reviewer"], req["override"]) == ("approved", "bob", "hotfix for incident 42")
    assert [g["ok"] for g in req["gates"]] == [True, True, False, False]
    assert stages(ws) == {1: "archived", 2: "production"}
    assert production_rows(ws) == [2]
    assert last_moves(ws, 2) == [(1, "production", "archived", "bob", "replaced by version 2"),
                                 (2, "candidate", "production", "bob", "request #2")]

    # 6. version 3 fails a gate at request time, is fixed with an eval run, then approved by carol
    run3 = train(ws, 3, 0.97)
    ok(alice("models", "register", "clf", "--run", run3, "--path", "artifacts/model.pt"))
    out = ok(alice("promote", "clf", "3", "--to", "production", "-m", "better")).stdout
    assert f"FAIL  {EVAL_GATE}" in out
    assert request_row(ws, 3)["gates"][2]["ok"] is False
    eval3 = evaluate(ws, "clf@3", 0.97)
    out = ok(carol("queue", "approve", "3", "-m", "eval added")).stdout
    assert "approved by carol" in out and "FAIL" not in out and "overridden" not in out
    req = request_row(ws, 3)
    assert (req["status"], req["reviewer"], req["decision"], req["override"]) == (
        "approved", "carol", "eval added", None)
    assert req["gates"][2] == {"gate": EVAL_GATE, "kind": "eval_run", "ok": True, "detail": f"eval run {eval3}"}
    assert stages(ws) == {1: "archived", 2: "archived", 3: "production"}
    assert production_rows(ws) == [3]
    assert last_moves(ws, 2) == [(2, "production", "archived", "carol", "replaced by version 3"),
                                 (3, "candidate", "production", "carol", "request #3: eval added")]

    # 7. a request that is shown, commented on and rejected (a reason is required)
    run4 = train(ws, 4, 0.5)
    ok(alice("models", "register", "clf", "--run", run4, "--path", "artifacts/model.pt"))
    ok(alice("promote", "clf", "4", "--to", "staging", "-m", "try it"))
    out = ok(carol("queue", "comment", "4", "-m", "val_acc is low")).stdout
    assert "  carol: val_acc is low" in out
    shown = ok(cli("queue", "show", "4")).stdout
    assert shown.splitlines()[0] == "Request #4: clf@4 to staging, by alice: open."
    assert "  why: try it" in shown and "  FAIL  val_acc >= 0.9: val_acc = 0.5" in shown
    assert "  carol: val_acc is low" in shown
    assert "required: -m/--message" in failed(carol("queue", "reject", "4"), 2)
    assert request_row(ws, 4)["status"] == "open"
    out = ok(carol("queue", "reject", "4", "-m", "too weak")).stdout
    assert out.splitlines()[0] == "Request #4: clf@4 to staging, by alice: rejected by carol."
    assert "  decision: too weak" in out
    req = request_row(ws, 4)
    assert (req["status"], req["reviewer"], req["decision"]) == ("rejected", "carol", "too weak")
    assert "already rejected by carol" in failed(bob("queue", "approve", "4"), 1)
    assert stages(ws)[4] == "candidate"
    detail = as_json(cli("queue", "show", "4", "--json"))
    assert detail["comments"][0]["actor"] == "carol" and detail["status"] == "rejected"

    # 8. rollback: production back to the previous version; a second one does not bounce back
    out = ok(alice("models", "rollback", "clf", "-m", "v3 doubles latency")).stdout
    assert out.strip() == "clf: production is version 2 again (version 3 archived)."
    assert stages(ws) == {1: "archived", 2: "production", 3: "archived", 4: "candidate"}
    assert last_moves(ws, 2) == [
        (3, "production", "archived", "alice", "rolled back: v3 doubles latency"),
        (2, "archived", "production", "alice", "rollback from version 3: v3 doubles latency")]
    out = ok(alice("models", "rollback", "clf", "-m", "v2 too")).stdout
    assert out.strip() == "clf: production is version 1 again (version 2 archived)."
    assert stages(ws) == {1: "production", 2: "archived", 3: "archived", 4: "candidate"}
    assert production_rows(ws) == [1]
    shown = as_json(cli("models", "show", "clf", "--json"))
    assert [(m["version"], m["to"], m["actor"]) for m in shown["moves"][-2:]] == [
        (2, "archived", "alice"), (1, "production", "alice")]

    # another model, so --model has something to leave out
    ok(bob("models", "register", "other", "--run", run1, "--path", "artifacts/model.pt"))

    # 9. the audit trail lists every step with who did it
    expected = [
        ("alice", "register", "clf"), ("alice", "request", "clf"), ("bob", "stage", "clf"),
        ("bob", "approve", "clf"),
        ("alice", "register", "clf"), ("alice", "request", "clf"), ("bob", "stage", "clf"), ("bob", "stage", "clf"),
        ("bob", "approve", "clf"),
        ("alice", "register", "clf"), ("alice", "request", "clf"), ("carol", "stage", "clf"),
        ("carol", "stage", "clf"), ("carol", "approve", "clf"),
        ("alice", "register", "clf"), ("alice", "request", "clf"), ("carol", "comment", "clf"),
        ("carol", "reject", "clf"),
        ("alice", "stage", "clf"), ("alice", "stage", "clf"), ("alice", "rollback", "clf"),
        ("alice", "stage", "clf"), ("alice", "stage", "clf"), ("alice", "rollback", "clf"),
        ("bob", "register", "other"),
    ]
    rows = audit_rows(ws)
    assert [r[1:] for r in rows] == expected
    assert [r[0] for r in rows] == list(range(1, len(expected) + 1))
    text = ok(cli("audit")).stdout
    lines = text.splitlines()
    assert re.match(r"#\s+WHEN\s+WHO\s+ACTION\s+MODEL\s+DETAILS", lines[0])
    assert len(lines) == len(expected) + 1
    for line, (seq, who, action, model) in zip(lines[1:], rows):
        assert re.match(rf"{seq}\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\s+{who}\s+{action}\s+{model}\s", line), line
    assert "reason=v3 doubles latency" in lines[21]
    js = as_json(cli("audit", "--json"))
    assert [(r["seq"], r["actor"], r["action"], r["model"]) for r in js] == rows
    assert js[8]["details"]["override"] == "hotfix for incident 42"
    assert js[8]["details"]["failed_gates"] == [EVAL_GATE, SAME_DATA_GATE]
    assert js[1]["details"]["gates"] == request_row(ws, 1)["gates"]
    assert js[1]["details"]["message"] == "first release"
    assert js[20]["details"] == {"from": 3, "to": 2, "reason": "v3 doubles latency"}
    only_clf = as_json(cli("audit", "--model", "clf", "--json"))
    assert [r["seq"] for r in only_clf] == list(range(1, len(expected)))
    only_other = ok(cli("audit", "--model", "other")).stdout.splitlines()
    assert len(only_other) == 2 and re.match(rf"{len(expected)}\s.*\bbob\s+register\s+other\s", only_other[1])
    assert [r["seq"] for r in as_json(cli("audit", "-n", "2", "--json"))] == [len(expected) - 1, len(expected)]

    # 10. verify: intact, then broken by an edit, a removal, and a cut at the end
    # everyone here was played through $MLTUI_USER: intact, and every row says its identity was only asserted
    assert ok(cli("audit", "verify")).stdout.splitlines() == [
        f"The audit trail is intact: {len(expected)} rows, each linked to the one before.",
        f"  {len(expected)} row(s) by an identity only asserted ($MLTUI_USER under trust_env_user, or named by a "
        "caller), not verified."]
    assert as_json(cli("audit", "verify", "--json")) == {"ok": True, "rows": len(expected), "problems": [],
                                                         "first_bad": None, "signed": 0, "asserted": len(expected),
                                                         "notes": []}

    execute(ws, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 9")
    res = ok(cli("audit", "verify"), 1)
    assert res.stdout.splitlines() == ["The audit trail was tampered with (1 problem(s)):",
                                       "  row 9 (approve by mallory) was changed after it was written"]
    verdict = json.loads(ok(cli("audit", "verify", "--json"), 1).stdout)
    assert verdict["ok"] is False and verdict["problems"] == [
        "row 9 (approve by mallory) was changed after it was written"]
    execute(ws, "UPDATE audit_log SET actor = 'bob' WHERE seq = 9")
    ok(cli("audit", "verify"))
    execute(ws, "UPDATE audit_log SET details = replace(details, 'hotfix', 'planned') WHERE seq = 9")
    assert "row 9 (approve by bob) was changed after it was written" in ok(cli("audit", "verify"), 1).stdout
    execute(ws, "UPDATE audit_log SET details = replace(details, 'planned', 'hotfix') WHERE seq = 9")
    ok(cli("audit", "verify"))

    saved = q(ws, "SELECT * FROM audit_log WHERE seq = 12")[0]
    execute(ws, "DELETE FROM audit_log WHERE seq = 12")
    res = ok(cli("audit", "verify"), 1)
    assert "  row 12 is missing" in res.stdout.splitlines()
    assert "  row 13 does not follow the row before it (a row before it was changed or removed)" in \
        res.stdout.splitlines()
    execute(ws, f"INSERT INTO audit_log VALUES ({', '.join('?' * len(saved))})", saved)
    ok(cli("audit", "verify"))

    last = len(expected)
    execute(ws, "DELETE FROM audit_log WHERE seq = ?", (last,))
    res = ok(cli("audit", "verify"), 1)
    assert res.stdout.splitlines()[1:] == [
        f"  the log ends at row {last - 1}, but row {last} was the last one written "
        "(rows were removed from the end, or the log was rewritten)"]


# -- versions by alias, stage and number; the store keeps the bytes ------------------------------
def test_aliases_stages_and_numbers_resolve_everywhere(ws, cli):
    alice, bob = as_user(cli, "alice"), as_user(cli, "bob")
    runs = [train(ws, seed, 0.9) for seed in (1, 2, 3)]
    for run_id in runs:
        ok(alice("models", "register", "clf", "--run", run_id, "--path", "artifacts/model.pt"))

    assert ok(alice("models", "alias", "clf@2", "champion")).stdout.strip() == "clf@champion -> version 2"
    shown = as_json(cli("models", "show", "clf@champion", "--json"))
    assert (shown["version"], shown["aliases"], shown["label"]) == (2, ["champion"], "clf@2")
    assert re.search(r"^2\s+candidate\s+champion\s", ok(cli("models", "show", "clf")).stdout, re.M)
    assert [e["details"] for e in as_json(cli("audit", "--json")) if e["action"] == "alias"] == [
        {"alias": "champion", "version": 2, "from": None}]

    # promote by alias: the request is for the version the alias names
    out = ok(alice("promote", "clf", "champion", "--to", "production")).stdout
    assert out.startswith("Request #1: clf@2 to production, by alice.")
    ok(bob("queue", "approve", "1"))
    assert stages(ws) == {1: "candidate", 2: "production", 3: "candidate"}
    assert as_json(cli("models", "show", "clf@production", "--json"))["version"] == 2
    assert as_json(cli("models", "show", "clf@3", "--json"))["version"] == 3
    assert as_json(cli("models", "show", "clf@v1", "--json"))["version"] == 1
    assert as_json(cli("models", "show", "clf", "--json"))["versions"][0]["version"] == 3
    listed = as_json(cli("models", "list", "--json"))
    assert listed == [{"name": "clf", "versions": 3, "production": 2, "latest": 3}]

    # moving the alias
    assert ok(bob("models", "alias", "clf@3", "champion")).stdout.strip() == "clf@champion -> version 3"
    assert as_json(cli("models", "show", "clf@champion", "--json"))["version"] == 3
    assert as_json(cli("models", "show", "clf@2", "--json"))["aliases"] == []
    assert q(ws, "SELECT model, alias, version FROM model_aliases") == [("clf", "champion", 3)]
    out = ok(alice("promote", "clf", "champion", "--to", "staging")).stdout
    assert out.startswith("Request #2: clf@3 to staging, by alice.")

    # the artifact lives in the store: the run folder can go
    shutil.rmtree(ws.run_dir(runs[2]))
    shutil.rmtree(ws.run_dir(runs[0]))
    info = as_json(cli("models", "inspect", "clf@champion", "--json"))
    assert info["format"] == "torch" and info["parameters"] == 16
    assert [(t["name"], t["shape"]) for t in info["tensors"]] == [("fc.weight", [4, 3]), ("fc.bias", [4])]
    out = ok(cli("models", "inspect", "clf@1")).stdout
    assert out.splitlines()[0].startswith("clf@1 (artifacts/model.pt): torch, ")
    assert "16 parameters in 2 tensors" in out.splitlines()[0]
    assert re.search(r"^fc\.weight\s+4x3\s+float32\s+12\s*$", out, re.M)

    # errors about specs
    assert "no version, stage or alias called 'nobody'" in failed(cli("models", "show", "clf@nobody"), 1)
    assert "'clf' has no version in archived" in failed(cli("models", "show", "clf@archived"), 1)
    for bad in ("production", "latest", "42", "bad name"):
        failed(alice("models", "alias", "clf@1", bad), 2)
    assert "no model named 'nope'" in failed(alice("models", "alias", "nope@1", "x"), 1)
    assert q(ws, "SELECT alias, version FROM model_aliases") == [("champion", 3)]


def test_registering_the_same_bytes_twice_gives_the_same_version(ws, cli):
    run1 = train(ws, 1, 0.9)
    first = as_json(cli("models", "register", "clf", "--run", run1, "--path", "artifacts/model.pt", "--json"))
    assert first["created"] is True and first["version"]["version"] == 1
    out = ok(cli("models", "register", "clf", "--run", run1, "--path", "artifacts/model.pt")).stdout
    assert out.startswith(f"artifacts/model.pt of run {run1} is already clf@1 (candidate, ")
    # another run that wrote the very same bytes
    twin = mltui.init(name="twin", workspace=ws.project_dir)
    twin.log_artifact(ws.run_dir(run1) / "artifacts" / "model.pt", "model.pt")
    twin.finish()
    again = as_json(cli("models", "register", "clf", "--run", twin.id, "--path", "artifacts/model.pt", "--json"))
    assert again["created"] is False and again["version"]["version"] == 1 and again["version"]["run_id"] == run1
    assert again["version"]["sha256"] == first["version"]["sha256"]
    assert q(ws, "SELECT count(*) FROM model_versions") == [(1,)]
    assert q(ws, "SELECT count(*) FROM audit_log WHERE action = 'register'") == [(1,)]
    cached = ws.root / "cache" / first["version"]["sha256"][:2] / first["version"]["sha256"][2:]
    assert cached.read_bytes() == (ws.run_dir(run1) / "artifacts" / "model.pt").read_bytes()


# -- bad input ------------------------------------------------------------------------------------
def test_promoting_and_reviewing_what_does_not_exist(ws, cli):
    alice, bob = as_user(cli, "alice"), as_user(cli, "bob")
    run1 = train(ws, 1, 0.9)
    ok(alice("models", "register", "clf", "--run", run1, "--path", "artifacts/model.pt"))
    assert "'clf' has no version 9 (it has 1 to 1)" in failed(alice("promote", "clf", "9", "--to", "production"), 1)
    assert "There is no model named 'nope'" in failed(alice("promote", "nope", "1", "--to", "production"), 1)
    assert "invalid choice: 'archived'" in failed(alice("promote", "clf", "1", "--to", "archived"), 2)
    assert "There is no promotion request #99" in failed(bob("queue", "approve", "99"), 1)
    assert "'abc' is not a request number" in failed(bob("queue", "approve", "abc"), 2)
    assert "There is no promotion request #7" in failed(bob("queue", "show", "#7"), 1)
    assert "required: -m/--message" in failed(alice("models", "rollback", "clf"), 2)
    assert "has no version in production to roll back" in failed(alice("models", "rollback", "clf", "-m", "x"), 1)
    assert q(ws, "SELECT count(*) FROM promotion_requests") == [(0,)]

    ok(alice("promote", "clf", "1", "--to", "production"))
    assert "already has an open request for production" in failed(
        bob("promote", "clf", "1", "--to", "production"), 1)
    assert "You (alice) filed request #1" in failed(alice("queue", "approve", "1"), 1)
    assert "needs a written reason" in failed(bob("queue", "approve", "1", "--override", " "), 2)
    ok(bob("queue", "approve", "1"))
    assert "already approved by bob" in failed(bob("queue", "approve", "1"), 1)
    assert "already approved by bob" in failed(bob("queue", "reject", "1", "-m", "late"), 1)
    assert "clf@1 is already in production" in failed(alice("promote", "clf", "1", "--to", "production"), 1)
    assert "is the first version of 'clf' in production" in failed(alice("models", "rollback", "clf", "-m", "x"), 1)
    assert q(ws, "SELECT status, reviewer FROM promotion_requests") == [("approved", "bob")]
    assert production_rows(ws) == [1]


@pytest.mark.parametrize("gate, message", [
    ('kind = "accuracy"\n',
     "config.toml: gate 1 has an unknown kind 'accuracy' (known: metric, beats_production, eval_run, "
     "same_eval_data)."),
    ('kind = "metric"\nmetric = "val_acc"\nop = ">="\nvalue = 0.9\nthreshold = 1\n',
     "config.toml: gate 1 (metric) has an unknown setting 'threshold' (known: metric, op, value)."),
    ('kind = "eval_run"\nmetric = "val_acc"\n',
     "config.toml: gate 1 (eval_run) has an unknown setting 'metric' (it takes none)."),
    ('kind = "metric"\nmetric = "val_acc"\nop = "=>"\nvalue = 0.9\n',
     "config.toml: gate 1: op must be one of >= > <= < ==."),
])
def test_a_bad_policy_is_named_on_promote_and_approve(ws, cli, gate, message):
    alice, bob = as_user(cli, "alice"), as_user(cli, "bob")
    run1 = train(ws, 1, 0.95)
    ok(alice("models", "register", "clf", "--run", run1, "--path", "artifacts/model.pt"))
    ok(alice("promote", "clf", "1", "--to", "production"))  # filed while the policy was fine (none)
    set_policy(ws, "[[promotion.gates]]\n" + gate)
    assert failed(alice("promote", "clf", "1", "--to", "staging"), 1) == f"mltui: {message}"
    assert failed(bob("queue", "approve", "1"), 1) == f"mltui: {message}"
    assert q(ws, "SELECT id, status FROM promotion_requests") == [(1, "open")]
    assert stages(ws) == {1: "candidate"}


def test_register_refuses_paths_outside_the_run_and_missing_files(ws, cli):
    run1 = train(ws, 1, 0.9)
    (ws.runs_dir / "x").write_bytes(b"beside the run, not in it")
    err = failed(cli("models", "register", "clf", "--run", run1, "--path", "../x"), 2)
    assert err == f"mltui: '../x' is outside run {run1}'s folder; register a file the run wrote."
    err = failed(cli("models", "register", "clf", "--run", run1, "--path", str(ws.runs_dir / "x")), 2)
    assert "is outside run" in err
    err = failed(cli("models", "register", "clf", "--run", run1, "--path", "artifacts/missing.pt"), 1)
    assert err.startswith(f"mltui: Run {run1} has no file 'artifacts/missing.pt'")
    assert "is not a file" in failed(cli("models", "register", "clf", "--run", run1, "--path", "artifacts"), 2)
    assert "No run has an id starting with 'zzz'" in failed(
        cli("models", "register", "clf", "--run", "zzz", "--path", "artifacts/model.pt"), 1)
    assert "not a usable model name" in failed(
        cli("models", "register", "production", "--run", run1, "--path", "artifacts/model.pt"), 2)
    assert q(ws, "SELECT count(*) FROM model_versions") == [(0,)]
    assert q(ws, "SELECT count(*) FROM audit_log") == [(0,)]


class Bomb:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_bomb_checkpoint_is_refused_and_never_run(ws, cli, tmp_path):
    marker = tmp_path / "PWNED"
    p2 = tmp_path / "bomb2.pt"
    torch.save({"w": torch.zeros(3), "x": Bomb(marker)}, p2, pickle_protocol=2)
    default = tmp_path / "bomb.pt"
    with open(default, "wb") as fh:
        pickle.dump({"w": torch.zeros(3), "x": Bomb(marker)}, fh)  # a plain pickle, default protocol
    for path in (p2, default):
        err = failed(cli("models", "inspect", path), 1)
        assert err.startswith(f"mltui: Refused to load {path.name}: it is not a plain weights file")
        assert not marker.exists()

    # registered as a model version, then inspected by its spec
    run = mltui.init(name="evil", workspace=ws.project_dir)
    run.log_artifact(p2, "model.pt")
    run.finish()
    ok(cli("models", "register", "evil", "--run", run.id, "--path", "artifacts/model.pt"))
    err = failed(cli("models", "inspect", "evil@1"), 1)
    assert err.startswith("mltui: Refused to load artifacts/model.pt: it is not a plain weights file")
    assert not marker.exists()


def _safetensors(tensors: dict[str, tuple[str, list[int], int]]) -> bytes:
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (dtype, shape, itemsize) in tensors.items():
        n = itemsize
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + bytes(offset)


def test_safetensors_files_written_by_hand_and_corrupt_ones(ws, cli, tmp_path):
    good = tmp_path / "model.safetensors"
    good.write_bytes(_safetensors({"enc.weight": ("F32", [8, 4], 4), "enc.bias": ("F32", [8], 4),
                                   "emb": ("BF16", [10, 3], 2)}))
    out = ok(cli("models", "inspect", good)).stdout.splitlines()
    assert out[0] == f"{good}: safetensors, {good.stat().st_size} B, 70 parameters in 3 tensors"
    assert re.match(r"TENSOR\s+SHAPE\s+DTYPE\s+PARAMETERS", out[1])
    assert [line.split() for line in out[2:]] == [["emb", "10x3", "BF16", "30"], ["enc.bias", "8", "F32", "8"],
                                                  ["enc.weight", "8x4", "F32", "32"]]
    assert as_json(cli("models", "inspect", good, "--json"))["parameters"] == 70

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(struct.pack("<Q", 20) + b"\x00garbage, not json\x00")
    assert "is not a readable safetensors file" in failed(cli("models", "inspect", corrupt), 1)
    corrupt.write_bytes(b"\x07")
    assert "too short to be a safetensors file" in failed(cli("models", "inspect", corrupt), 1)
    corrupt.write_bytes(struct.pack("<Q", 10 ** 12) + b"{}")
    assert "it is not a sane safetensors file" in failed(cli("models", "inspect", corrupt), 1)

    # registered, a corrupt one fails by spec too
    run = mltui.init(name="st", workspace=ws.project_dir)
    corrupt.write_bytes(struct.pack("<Q", 20) + b"\x00garbage, not json\x00")
    run.log_artifact(good, "model.safetensors")
    run.log_artifact(corrupt, "broken.safetensors")
    run.finish()
    ok(cli("models", "register", "st", "--run", run.id, "--path", "artifacts/model.safetensors"))
    ok(cli("models", "register", "st", "--run", run.id, "--path", "artifacts/broken.safetensors"))
    assert ok(cli("models", "inspect", "st@1")).stdout.splitlines()[0].endswith("70 parameters in 3 tensors")
    assert "artifacts/broken.safetensors is not a readable safetensors file" in failed(
        cli("models", "inspect", "st@2"), 1)


# -- known bugs -----------------------------------------------------------------------------------
def test_a_row_cut_off_the_end_is_still_caught_after_the_next_action(ws, cli):
    alice, bob = as_user(cli, "alice"), as_user(cli, "bob")
    run1 = train(ws, 1, 0.9)
    ok(alice("models", "register", "clf", "--run", run1, "--path", "artifacts/model.pt"))
    ok(alice("promote", "clf", "1", "--to", "production"))
    ok(bob("queue", "approve", "1"))
    ok(cli("audit", "verify"))
    last = q(ws, "SELECT max(seq) FROM audit_log")[0][0]
    assert q(ws, "SELECT action, actor FROM audit_log WHERE seq = ?", (last,)) == [("approve", "bob")]
    execute(ws, "DELETE FROM audit_log WHERE seq = ?", (last,))  # hide who approved it
    ok(cli("audit", "verify"), 1)
    ok(alice("queue", "comment", "1", "-m", "a later, ordinary action"))
    ok(cli("audit", "verify"), 1)


def test_audit_with_a_limit_of_zero_shows_no_rows(ws, cli):
    run1 = train(ws, 1, 0.9)
    ok(cli("models", "register", "clf", "--run", run1, "--path", "artifacts/model.pt"))
    ok(cli("models", "alias", "clf@1", "champion"))
    assert as_json(cli("audit", "-n", "0", "--json")) == []  # zero rows asked, zero shown (not "no limit")
    assert [e["action"] for e in as_json(cli("audit", "-n", "1", "--json"))] == ["alias"]  # the newest one
    assert len(as_json(cli("audit", "--json"))) == 2
