"""The model registry, promotion gates, the audit trail and checkpoint reading at the core level: real
SQLite stores in tmp_path, real runs logged through the tracking API, real torch checkpoints, and
real concurrent writers (separate processes and threads with their own connections)."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from contextlib import closing
from pathlib import Path

import pytest
torch = pytest.importorskip("torch", reason="the model tests build .pt checkpoints with torch (installed by the test extra)")

import mltui
from mltui.core.models import audit, promotion, registry
from mltui.core.models.checkpoint import inspect
from mltui.core.data.versions import add as add_dataset
from mltui.base.errors import MltuiError, NotFound, UsageError
from mltui.core.models.policy import Policy, load_policy, parse_policy
from mltui.store.opening import open_store

GATES_ALL = """
[promotion]

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


# -- helpers --------------------------------------------------------------------------------------
@pytest.fixture
def conn(ws):
    with closing(open_store(ws.db_path)) as c:
        yield c


def raw(ws) -> sqlite3.Connection:
    """A plain sqlite3 connection to the store, as an outsider (or a checker) would open it."""
    return sqlite3.connect(ws.db_path, timeout=30)


def stages(ws, model: str) -> dict[int, str]:
    with closing(raw(ws)) as c:
        return dict(c.execute("SELECT version, stage FROM model_versions WHERE model = ?", (model,)))


def set_policy(ws, text: str) -> None:
    ws.config_path.write_text(ws.config_path.read_text(encoding="utf-8") + "\n" + textwrap.dedent(text),
                              encoding="utf-8")


def log_run(ws, name: str, *, kind: str = "train", params: dict | None = None, metrics: dict | None = None,
            artifact: bytes | None = None, datasets: tuple[str, ...] = (), status: str | None = None) -> str:
    run = mltui.init(name=name, params=params, kind=kind, workspace=ws.project_dir)
    if artifact is not None:
        src = ws.project_dir / f"{name}-{run.id}.bin"
        src.write_bytes(artifact)
        run.log_artifact(src, "model.pt")
    for spec in datasets:
        run.use_dataset(spec)
    for key, value in (metrics or {}).items():
        run.log({key: value}, step=1)
    run.finish(status)
    return run.id


def weights(seed: int) -> bytes:
    """A real torch checkpoint (a small state dict), as bytes."""
    import io

    gen = torch.Generator().manual_seed(seed)
    buf = io.BytesIO()
    torch.save({"fc.weight": torch.randn(4, 3, generator=gen), "fc.bias": torch.randn(4, generator=gen)}, buf)
    return buf.getvalue()


def new_version(ws, conn, model: str, seed: int, metrics: dict | None = None, who: str = "alice"):
    run_id = log_run(ws, f"train-{model}-{seed}", metrics=metrics, artifact=weights(seed))
    mv, created = registry.register(ws, conn, model, run_id, "artifacts/model.pt", who=who)
    assert created
    return mv


def evaluate_version(ws, label: str, metrics: dict | None = None, datasets: tuple[str, ...] = ()) -> str:
    return log_run(ws, f"eval-{label}", kind="eval", params={"model": label}, metrics=metrics, datasets=datasets)


def to_production(ws, conn, label: str, requester: str = "alice", reviewer: str = "bob") -> dict:
    req = promotion.request(ws, conn, label, "production", who=requester)
    return promotion.approve(ws, conn, req["id"], who=reviewer)


# -- concurrency ----------------------------------------------------------------------------------
APPROVER = """
import sys, time
from mltui.cli.main import main
import mltui.core.models.promotion, mltui.core.models.registry, mltui.cli.queue, mltui.cli.models  # loaded before the start
start = float(sys.argv[1])
while time.time() < start:
    time.sleep(0.0005)
sys.exit(main(["queue", "approve", sys.argv[2]]))
"""


def child_env(user: str) -> dict:
    """The environment of a child that acts as `user` through $MLTUI_USER (the workspace must trust it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLTUI_WORKSPACE", "MLTUI_RUN_ID", "MLTUI_DEBUG")}
    env["MLTUI_USER"] = user
    return env


def test_two_processes_approving_different_versions_at_once_leave_one_in_production(ws, conn):
    set_policy(ws, "[promotion]\ntrust_env_user = true\n")  # the children play bob and carol by $MLTUI_USER
    v1 = new_version(ws, conn, "clf", 1, {"val_acc": 0.9})
    v2 = new_version(ws, conn, "clf", 2, {"val_acc": 0.95})
    r1 = promotion.request(ws, conn, v1.label, "production", who="alice")
    r2 = promotion.request(ws, conn, v2.label, "production", who="alice")
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", APPROVER, repr(start), str(req["id"])], cwd=ws.project_dir,
                              env=child_env(user), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for req, user in ((r1, "bob"), (r2, "carol"))]
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "Traceback" not in err

    with closing(raw(ws)) as c:
        prod = c.execute("SELECT version FROM model_versions WHERE model = 'clf' AND stage = 'production'").fetchall()
        assert len(prod) == 1
        requests = dict(c.execute("SELECT id, status FROM promotion_requests"))
        assert requests == {r1["id"]: "approved", r2["id"]: "approved"}
        # the one approved last is in production; the other was archived by that same approval
        last = c.execute("SELECT version, reviewer FROM promotion_requests ORDER BY decided DESC LIMIT 1").fetchone()
        winner, loser = last[0], ({1, 2} - {last[0]}).pop()
        assert prod[0][0] == winner
        assert stages(ws, "clf") == {winner: "production", loser: "archived"}
        moves = c.execute("SELECT version, from_stage, to_stage, actor, reason FROM stage_moves WHERE model = 'clf' "
                          "ORDER BY id").fetchall()
        winner_user = last[1]
        loser_user = {"bob", "carol"}.difference({winner_user}).pop()
        assert moves[2:] == [
            (loser, "candidate", "production", loser_user, f"request #{r1['id'] if loser == 1 else r2['id']}"),
            (loser, "production", "archived", winner_user, f"replaced by version {winner}"),
            (winner, "candidate", "production", winner_user, f"request #{r1['id'] if winner == 1 else r2['id']}"),
        ]
        approvals = c.execute("SELECT actor FROM audit_log WHERE action = 'approve' ORDER BY seq").fetchall()
        assert [a for (a,) in approvals] == [loser_user, winner_user]
        seqs = [s for (s,) in c.execute("SELECT seq FROM audit_log ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))
    assert audit.verify(conn) == []


def test_threads_approving_at_once_keep_one_production_version_round_after_round(ws, conn):
    rounds = 3
    for r in range(rounds):
        a = new_version(ws, conn, "clf", 10 * r + 1)
        b = new_version(ws, conn, "clf", 10 * r + 2)
        ids = [promotion.request(ws, conn, mv.label, "production", who="alice")["id"] for mv in (a, b)]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def approve(request_id: int, user: str) -> None:
            with closing(open_store(ws.db_path)) as own:
                barrier.wait()
                try:
                    promotion.approve(ws, own, request_id, who=user)
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

        threads = [threading.Thread(target=approve, args=(i, u)) for i, u in zip(ids, ("bob", "carol"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        now = stages(ws, "clf")
        assert list(now.values()).count("production") == 1
        assert sorted(v for v, s in now.items() if s == "archived") == sorted(set(now) - {
            v for v, s in now.items() if s == "production"})
        assert len(now) == 2 * (r + 1)
    assert audit.verify(conn) == []


def test_two_reviewers_approving_the_same_request_at_once_approve_it_once(ws, conn):
    v1 = new_version(ws, conn, "clf", 1)
    req = promotion.request(ws, conn, v1.label, "production", who="alice")
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def approve(user: str) -> None:
        with closing(open_store(ws.db_path)) as own:
            barrier.wait()
            try:
                results[user] = promotion.approve(ws, own, req["id"], who=user)["reviewer"]
            except MltuiError as exc:
                results[user] = exc

    threads = [threading.Thread(target=approve, args=(u,)) for u in ("bob", "carol")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [u for u, r in results.items() if r == u]
    losers = [r for r in results.values() if isinstance(r, MltuiError)]
    assert len(winners) == 1 and len(losers) == 1
    assert f"already approved by {winners[0]}" in str(losers[0])
    with closing(raw(ws)) as c:
        assert c.execute("SELECT count(*) FROM audit_log WHERE action = 'approve'").fetchone()[0] == 1
        assert c.execute("SELECT count(*) FROM stage_moves WHERE to_stage = 'production'").fetchone()[0] == 1
    assert audit.verify(conn) == []


def test_the_unique_index_refuses_a_second_production_row_written_directly(ws, conn):
    v1 = new_version(ws, conn, "clf", 1)
    new_version(ws, conn, "clf", 2)
    to_production(ws, conn, v1.label)
    with closing(raw(ws)) as c:
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            c.execute("UPDATE model_versions SET stage = 'production' WHERE model = 'clf' AND version = 2")
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            c.execute("INSERT INTO model_versions(model, version, sha256, size, run_id, path, stage, user, created) "
                      "VALUES ('clf', 3, 'ab', 1, NULL, 'x', 'production', 'eve', 0)")
        c.commit()
    assert stages(ws, "clf") == {1: "production", 2: "candidate"}
    # the index is per model: another model has its own production version
    other = new_version(ws, conn, "other", 3)
    with closing(raw(ws)) as c:
        c.execute("UPDATE model_versions SET stage = 'production' WHERE model = 'other' AND version = ?",
                  (other.version,))
        c.commit()
    assert stages(ws, "other") == {1: "production"}


# -- the policy -----------------------------------------------------------------------------------
def policy_of(text: str) -> Policy:
    return parse_policy(tomllib.loads(textwrap.dedent(text)))


BAD_POLICIES = {
    "unknown kind": ('[[promotion.gates]]\nkind = "accuracy"\n', "gate 1 has an unknown kind 'accuracy'"),
    "no kind": ('[[promotion.gates]]\nmetric = "val_acc"\n', "gate 1 has an unknown kind None"),
    "bad op": ('[[promotion.gates]]\nkind = "metric"\nmetric = "a"\nop = "=>"\nvalue = 1\n', "op must be one of"),
    "missing metric": ('[[promotion.gates]]\nkind = "metric"\nop = ">="\nvalue = 1\n', "(metric) needs 'metric'"),
    "missing value": ('[[promotion.gates]]\nkind = "metric"\nmetric = "a"\nop = ">="\n', "(metric) needs 'value'"),
    "beats without metric": ('[[promotion.gates]]\nkind = "beats_production"\n',
                             "(beats_production) needs 'metric'"),
    "targets not stages": ('[[promotion.gates]]\nkind = "eval_run"\ntargets = ["prod"]\n',
                           'targets must be a list of "staging" and/or "production"'),
    "targets a string": ('[[promotion.gates]]\nkind = "eval_run"\ntargets = "production"\n',
                         'targets must be a list of "staging" and/or "production"'),
    "targets empty": ('[[promotion.gates]]\nkind = "eval_run"\ntargets = []\n',
                      'targets must be a list of "staging" and/or "production"'),
    "targets candidate": ('[[promotion.gates]]\nkind = "eval_run"\ntargets = ["candidate"]\n',
                          'targets must be a list of "staging" and/or "production"'),
    "unknown gate setting": ('[[promotion.gates]]\nkind = "metric"\nmetric = "a"\nop = ">="\nvalue = 1\n'
                             'threshold = 2\n', "unknown setting 'threshold' (known: metric, op, value)"),
    "setting on a gate that takes none": ('[[promotion.gates]]\nkind = "eval_run"\nmetric = "a"\n',
                                          "unknown setting 'metric' (it takes none)"),
    "value a string": ('[[promotion.gates]]\nkind = "metric"\nmetric = "a"\nop = ">="\nvalue = "0.9"\n',
                       "value has the wrong type"),
    "value a bool": ('[[promotion.gates]]\nkind = "metric"\nmetric = "a"\nop = ">="\nvalue = true\n',
                     "value has the wrong type"),
    "bad direction": ('[[promotion.gates]]\nkind = "beats_production"\nmetric = "a"\ndirection = "up"\n',
                      'direction must be "max" or "min"'),
    "unknown promotion setting": ('[promotion]\nallow_self_aproval = true\n',
                                  "[promotion] has an unknown setting 'allow_self_aproval'"),
    "self approval not a bool": ('[promotion]\nallow_self_approval = "yes"\n', "must be true or false"),
    "gates a single table": ('[promotion.gates]\nkind = "eval_run"\n', "written as [[promotion.gates]] tables"),
}


@pytest.mark.parametrize("case", list(BAD_POLICIES))
def test_a_bad_policy_is_refused_with_one_sentence_naming_the_problem(case):
    text, expected = BAD_POLICIES[case]
    with pytest.raises(MltuiError) as err:
        policy_of(text)
    assert expected in str(err.value)
    assert str(err.value).startswith("config.toml: ")
    assert "\n" not in str(err.value)


def test_promotion_that_is_not_a_table_and_the_failing_gate_number():
    with pytest.raises(MltuiError, match=r"\[promotion\] must be a table"):
        parse_policy({"promotion": 3})
    with pytest.raises(MltuiError, match="gate 2 has an unknown kind 'bogus'"):
        policy_of('[[promotion.gates]]\nkind = "eval_run"\n[[promotion.gates]]\nkind = "bogus"\n')


def test_a_good_policy_parses_with_defaults_and_targets():
    policy = policy_of(GATES_ALL + '\n[[promotion.gates]]\nkind = "metric"\nmetric = "loss"\nop = "<"\nvalue = 1\n'
                       'targets = ["staging"]\n')
    assert policy.allow_self_approval is False
    assert [g.kind for g in policy.gates] == ["metric", "beats_production", "eval_run", "same_eval_data", "metric"]
    assert policy.gates[0].targets == ("staging", "production")
    assert [g.kind for g in policy.gates_for("production")] == ["metric", "beats_production", "eval_run",
                                                                  "same_eval_data"]
    assert [g.describe() for g in policy.gates_for("staging")][-1] == "loss < 1"
    assert policy_of("").gates == [] and policy_of("[promotion]\nallow_self_approval = true\n").allow_self_approval


def test_a_bad_policy_file_stops_a_request_before_anything_is_written(ws, conn):
    v1 = new_version(ws, conn, "clf", 1)
    set_policy(ws, '[[promotion.gates]]\nkind = "accuracy"\n')
    with pytest.raises(MltuiError, match="config.toml: gate 1 has an unknown kind 'accuracy'"):
        load_policy(ws)
    with closing(raw(ws)) as c:
        before = c.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    with pytest.raises(MltuiError, match="unknown kind 'accuracy'"):
        promotion.request(ws, conn, v1.label, "production", who="alice")
    with closing(raw(ws)) as c:
        assert c.execute("SELECT count(*) FROM promotion_requests").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM audit_log").fetchone()[0] == before


# -- reviewing ------------------------------------------------------------------------------------
def test_self_approval_is_refused_unless_the_policy_allows_it(ws, conn):
    v1 = new_version(ws, conn, "clf", 1)
    req = promotion.request(ws, conn, v1.label, "production", who="alice")
    with pytest.raises(MltuiError, match=r"You \(alice\) filed request #1; another reviewer must approve it"):
        promotion.approve(ws, conn, req["id"], who="alice")
    assert stages(ws, "clf") == {1: "candidate"}

    set_policy(ws, "[promotion]\nallow_self_approval = true\n")
    done = promotion.approve(ws, conn, req["id"], who="alice")
    assert (done["status"], done["requester"], done["reviewer"]) == ("approved", "alice", "alice")
    assert stages(ws, "clf") == {1: "production"}
    with closing(raw(ws)) as c:
        assert c.execute("SELECT status, reviewer FROM promotion_requests WHERE id = ?",
                         (req["id"],)).fetchone() == ("approved", "alice")


def test_gate_results_are_stored_with_the_request_and_checked_again_on_approval(ws, conn):
    add_dataset(ws, conn, _dataset(ws, "v1"), "evalset", user="alice")
    set_policy(ws, GATES_ALL)
    v1 = new_version(ws, conn, "clf", 1, {"val_acc": 0.8})  # the training run's metric is below the bar
    req = promotion.request(ws, conn, v1.label, "production", message="first", who="alice")
    with closing(raw(ws)) as c:
        gates = json.loads(c.execute("SELECT gates FROM promotion_requests WHERE id = ?", (req["id"],)).fetchone()[0])
        details = json.loads(c.execute("SELECT details FROM audit_log WHERE action = 'request'").fetchone()[0])
    assert [(g["kind"], g["ok"]) for g in gates] == [("metric", False), ("beats_production", True),
                                                    ("eval_run", False), ("same_eval_data", True)]
    assert gates[0]["gate"] == "val_acc >= 0.9" and gates[0]["value"] == 0.8
    assert f"no finished eval run names {v1.label}" in gates[2]["detail"]
    assert details["gates"] == gates and details["message"] == "first"
    assert req["failed"] == ["val_acc >= 0.9", "an eval run on a registered dataset version"]

    with pytest.raises(MltuiError, match=r"fails 2 gate\(s\): val_acc >= 0.9 .*--override REASON"):
        promotion.approve(ws, conn, req["id"], who="bob")
    # fixing it: an eval run on the registered data with a good score
    eval_id = evaluate_version(ws, v1.label, {"val_acc": 0.93}, datasets=("evalset",))
    done = promotion.approve(ws, conn, req["id"], who="bob")
    with closing(raw(ws)) as c:
        row = c.execute("SELECT status, reviewer, override, gates FROM promotion_requests WHERE id = ?",
                        (req["id"],)).fetchone()
    assert row[:3] == ("approved", "bob", None)
    stored = json.loads(row[3])
    assert all(g["ok"] for g in stored) and stored == done["gates"]
    assert stored[0]["detail"] == f"val_acc = 0.93 (run {eval_id})"
    assert stored[2]["detail"] == f"eval run {eval_id}"


def test_a_gate_that_starts_failing_after_the_request_blocks_the_approval(ws, conn):
    set_policy(ws, '[[promotion.gates]]\nkind = "beats_production"\nmetric = "val_acc"\n')
    v1 = new_version(ws, conn, "clf", 1, {"val_acc": 0.90})
    v2 = new_version(ws, conn, "clf", 2, {"val_acc": 0.95})
    req1 = promotion.request(ws, conn, v1.label, "production", who="alice")
    assert req1["failed"] == []
    to_production(ws, conn, v2.label)
    with pytest.raises(MltuiError, match=r"val_acc beats production \(0.9 against 0.95 \(clf@2\)\)"):
        promotion.approve(ws, conn, req1["id"], who="bob")
    assert stages(ws, "clf") == {1: "candidate", 2: "production"}
    over = promotion.approve(ws, conn, req1["id"], override="customer asked for the old one", who="bob")
    assert over["override"] == "customer asked for the old one" and over["failed"] == ["val_acc beats production"]
    assert stages(ws, "clf") == {1: "production", 2: "archived"}


def test_an_override_needs_a_reason_and_is_only_recorded_when_a_gate_failed(ws, conn):
    v1 = new_version(ws, conn, "clf", 1)
    req = promotion.request(ws, conn, v1.label, "production", who="alice")
    with pytest.raises(UsageError, match="needs a written reason"):
        promotion.approve(ws, conn, req["id"], override="  ", who="bob")
    done = promotion.approve(ws, conn, req["id"], override="just in case", who="bob")
    assert done["override"] is None  # nothing failed, so nothing was overridden


def test_beats_production_lower_is_better_with_a_margin(ws, conn):
    set_policy(ws, '[[promotion.gates]]\nkind = "beats_production"\nmetric = "val_loss"\ndirection = "min"\n'
                   'margin = 0.25\n')
    v1 = new_version(ws, conn, "clf", 1, {"val_loss": 0.5})
    to_production(ws, conn, v1.label)
    policy = load_policy(ws)
    assert policy.gates[0].describe() == "val_loss beats production by 0.25 (lower is better)"
    results = {}
    for seed, loss in ((2, 0.375), (3, 0.25), (4, 0.125), (5, 0.75)):
        mv = new_version(ws, conn, "clf", seed, {"val_loss": loss})
        (gate,) = promotion.evaluate(conn, policy, mv, "production")
        results[loss] = gate["ok"]
        assert gate["detail"] == f"{loss:g} against 0.5 (clf@1)"
    # must be at most 0.5 - 0.25: 0.375 is lower but not by the margin
    assert results == {0.375: False, 0.25: True, 0.125: True, 0.75: False}
    no_metric = new_version(ws, conn, "clf", 6, {"other": 1.0})
    (gate,) = promotion.evaluate(conn, policy, no_metric, "production")
    assert not gate["ok"] and gate["detail"] == "clf@6 has no val_loss to compare"
    # an eval run's value wins over the training run's
    evaluate_version(ws, "clf@2", {"val_loss": 0.125})
    (gate,) = promotion.evaluate(conn, policy, registry.resolve(conn, "clf@2"), "production")
    assert gate["ok"] and gate["detail"] == "0.125 against 0.5 (clf@1)"


def test_beats_production_higher_is_better_with_a_margin(ws, conn):
    set_policy(ws, '[[promotion.gates]]\nkind = "beats_production"\nmetric = "val_acc"\nmargin = 0.125\n')
    v1 = new_version(ws, conn, "clf", 1, {"val_acc": 0.5})
    to_production(ws, conn, v1.label)
    policy = load_policy(ws)
    got = {acc: promotion.evaluate(conn, policy, new_version(ws, conn, "clf", seed, {"val_acc": acc}),
                                   "production")[0]["ok"]
           for seed, acc in ((2, 0.5), (3, 0.6), (4, 0.625), (5, 0.75))}
    assert got == {0.5: False, 0.6: False, 0.625: True, 0.75: True}


def _dataset(ws, content: str) -> Path:
    folder = ws.project_dir / "data" / "evalset"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rows.csv").write_text(f"x,y\n{content},1\n")
    return folder


def test_same_eval_data_fails_when_the_candidate_was_judged_on_another_dataset_version(ws, conn):
    set_policy(ws, '[[promotion.gates]]\nkind = "same_eval_data"\n[[promotion.gates]]\nkind = "eval_run"\n')
    first = add_dataset(ws, conn, _dataset(ws, "one"), "evalset", user="alice").version
    v1 = new_version(ws, conn, "clf", 1)
    evaluate_version(ws, v1.label, {"val_acc": 0.9}, datasets=("evalset",))
    to_production(ws, conn, v1.label)

    second = add_dataset(ws, conn, _dataset(ws, "two"), "evalset", user="alice").version
    assert second.id != first.id
    v2 = new_version(ws, conn, "clf", 2)
    evaluate_version(ws, v2.label, {"val_acc": 0.95}, datasets=("evalset",))  # the folder now holds version 2
    req = promotion.request(ws, conn, v2.label, "production", who="alice")
    same, has_eval = req["gates"]
    assert has_eval["ok"]
    assert not same["ok"]
    assert same["detail"] == f"production was judged on evalset@{first.id[:12]}; clf@2 was not"
    with pytest.raises(MltuiError, match="evaluated on the data production was judged on"):
        promotion.approve(ws, conn, req["id"], who="bob")

    # evaluated again on the version production was judged on: the newest eval with data counts
    time.sleep(0.01)
    evaluate_version(ws, v2.label, {"val_acc": 0.95}, datasets=(f"evalset@{first.id}",))
    done = promotion.approve(ws, conn, req["id"], who="bob")
    assert done["gates"][0] == {"gate": "evaluated on the data production was judged on", "kind": "same_eval_data",
                                "ok": True, "detail": f"evalset@{first.id[:12]}"}
    assert stages(ws, "clf") == {1: "archived", 2: "production"}


def test_eval_run_gate_counts_only_finished_eval_runs_on_recorded_data(ws, conn):
    set_policy(ws, '[[promotion.gates]]\nkind = "eval_run"\n')
    add_dataset(ws, conn, _dataset(ws, "one"), "evalset", user="alice")
    v1 = new_version(ws, conn, "clf", 1)
    policy = load_policy(ws)

    def gate():
        return promotion.evaluate(conn, policy, registry.resolve(conn, "clf@1"), "production")[0]

    log_run(ws, "train-named", kind="train", params={"model": "clf@1"}, datasets=("evalset",))
    log_run(ws, "eval-failed", kind="eval", params={"model": "clf@1"}, datasets=("evalset",), status="failed")
    log_run(ws, "eval-other", kind="eval", params={"model": "clf@2"}, datasets=("evalset",))
    assert not gate()["ok"] and "no finished eval run names clf@1" in gate()["detail"]
    evaluate_version(ws, "clf@1")
    assert not gate()["ok"] and gate()["detail"] == "its eval runs recorded no dataset version"
    good = evaluate_version(ws, "clf@v1", datasets=("evalset",))  # NAME@vN names it too
    assert gate() == {"gate": "an eval run on a registered dataset version", "kind": "eval_run", "ok": True,
                      "detail": f"eval run {good}"}
    assert v1.version == 1


def test_gates_with_targets_apply_only_to_those_stages(ws, conn):
    set_policy(ws, '[[promotion.gates]]\nkind = "eval_run"\ntargets = ["production"]\n')
    v1 = new_version(ws, conn, "clf", 1)
    staging = promotion.request(ws, conn, v1.label, "staging", who="alice")
    assert staging["gates"] == []
    promotion.approve(ws, conn, staging["id"], who="bob")
    assert stages(ws, "clf") == {1: "staging"}
    prod = promotion.request(ws, conn, "clf@staging", "production", who="alice")
    assert prod["failed"] == ["an eval run on a registered dataset version"]
    with pytest.raises(UsageError, match="--to takes staging or production"):
        promotion.request(ws, conn, v1.label, "archived", who="alice")


def test_reject_and_comment_are_recorded(ws, conn):
    v1 = new_version(ws, conn, "clf", 1)
    req = promotion.request(ws, conn, v1.label, "production", who="alice")
    with pytest.raises(MltuiError, match="already has an open request for production"):
        promotion.request(ws, conn, v1.label, "production", who="carol")
    promotion.comment(ws, conn, req["id"], "please add an eval", who="bob")
    with pytest.raises(UsageError):
        promotion.reject(ws, conn, req["id"], "   ", who="bob")
    out = promotion.reject(ws, conn, req["id"], "no eval run", who="bob")
    assert (out["status"], out["reviewer"], out["decision"]) == ("rejected", "bob", "no eval run")
    assert out["comments"][0]["actor"] == "bob" and out["comments"][0]["text"] == "please add an eval"
    with pytest.raises(MltuiError, match="already rejected by bob"):
        promotion.approve(ws, conn, req["id"], who="carol")
    assert stages(ws, "clf") == {1: "candidate"}
    with pytest.raises(NotFound):
        promotion.get_request(conn, 99)
    with pytest.raises(UsageError):
        promotion.get_request(conn, "abc")
    assert [e["action"] for e in audit.entries(conn)] == ["register", "request", "comment", "reject"]


# -- the registry ---------------------------------------------------------------------------------
def test_registering_the_same_bytes_gives_the_same_version(ws, conn):
    blob = weights(1)
    a = log_run(ws, "a", artifact=blob)
    b = log_run(ws, "b", artifact=blob)
    v1, created1 = registry.register(ws, conn, "clf", a, "artifacts/model.pt", who="alice")
    again, created2 = registry.register(ws, conn, "clf", a, "artifacts/model.pt", who="alice")
    other_run, created3 = registry.register(ws, conn, "clf", b, "artifacts/model.pt", who="bob")
    assert (created1, created2, created3) == (True, False, False)
    assert again.version == other_run.version == v1.version == 1 and other_run.run_id == a
    import hashlib

    assert v1.sha256 == hashlib.sha256(blob).hexdigest() and v1.size == len(blob)
    v2, created = registry.register(ws, conn, "clf", log_run(ws, "c", artifact=weights(2)), "artifacts/model.pt")
    assert created and v2.version == 2
    # the same bytes under another model are that model's own version 1
    w1, created = registry.register(ws, conn, "other", b, "artifacts/model.pt")
    assert created and w1.version == 1
    with closing(raw(ws)) as c:
        assert c.execute("SELECT count(*) FROM model_versions WHERE model = 'clf'").fetchone()[0] == 2
        assert c.execute("SELECT count(*) FROM audit_log WHERE action = 'register'").fetchone()[0] == 3


def test_register_refuses_paths_outside_the_run_folder_and_missing_files(ws, conn):
    run_id = log_run(ws, "a", artifact=weights(1))
    run_dir = ws.run_dir(run_id)
    (run_dir.parent / "x").write_bytes(b"outside")  # exists, but outside the run's folder
    secret = ws.project_dir / "secret.pt"
    secret.write_bytes(b"not yours")
    os.symlink(secret, run_dir / "artifacts" / "link.pt")
    (run_dir / "artifacts" / "sub").mkdir()
    with pytest.raises(UsageError, match="is outside run"):
        registry.register(ws, conn, "clf", run_id, "../x")
    with pytest.raises(UsageError, match="is outside run"):
        registry.register(ws, conn, "clf", run_id, str(secret))
    with pytest.raises(UsageError, match="is outside run"):
        registry.register(ws, conn, "clf", run_id, "artifacts/link.pt")
    with pytest.raises(NotFound, match="has no file 'artifacts/nope.pt'"):
        registry.register(ws, conn, "clf", run_id, "artifacts/nope.pt")
    with pytest.raises(UsageError, match="is not a file"):
        registry.register(ws, conn, "clf", run_id, "artifacts/sub")
    for bad in ("production", "12", "-x", "a b", ""):
        with pytest.raises(UsageError, match="not a usable model name"):
            registry.register(ws, conn, bad, run_id, "artifacts/model.pt")
    with closing(raw(ws)) as c:
        assert c.execute("SELECT count(*) FROM model_versions").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 0


def test_resolve_numbers_stages_aliases_and_latest(ws, conn):
    for seed in (1, 2, 3):
        new_version(ws, conn, "clf", seed)
    to_production(ws, conn, "clf@2")
    registry.set_alias(ws, conn, "clf@1", "champion", who="alice")
    assert [registry.resolve(conn, s).version for s in
            ("clf", "clf@latest", "clf@3", "clf@v3", "clf@production", "clf@champion", "clf@candidate")] == \
        [3, 3, 3, 3, 2, 1, 3]
    moved = registry.set_alias(ws, conn, "clf@production", "champion", who="bob")
    assert moved.version == 2 and moved.aliases == ["champion"]
    assert registry.resolve(conn, "clf@champion").version == 2
    assert registry.resolve(conn, "clf@1").aliases == []
    details = [e["details"] for e in audit.entries(conn) if e["action"] == "alias"]
    assert details == [{"alias": "champion", "version": 1, "from": None},
                       {"alias": "champion", "version": 2, "from": 1}]
    for spec, message in (("clf@9", "has no version 9"), ("clf@staging", "no version in staging"),
                          ("clf@nobody", "no version, stage or alias called 'nobody'"),
                          ("nope@1", "There is no model named 'nope'")):
        with pytest.raises(NotFound, match=message):
            registry.resolve(conn, spec)
    for bad in ("latest", "production", "7"):
        with pytest.raises(UsageError):
            registry.set_alias(ws, conn, "clf@1", bad)


def test_an_alias_shaped_like_a_version_number_is_refused(ws, conn):
    for seed in (1, 2):
        new_version(ws, conn, "clf", seed)
    with pytest.raises(UsageError, match=r"^'v2' is not a usable alias: .* not a stage name, a number or v<number>\)\.$"):
        registry.set_alias(ws, conn, "clf@1", "v2", who="alice")
    assert registry.resolve(conn, "clf@v2").version == 2  # v2 still means version 2
    assert registry.resolve(conn, "clf@1").aliases == []
    assert [e for e in audit.entries(conn) if e["action"] == "alias"] == []


def test_rollback_goes_back_once_per_step_and_never_to_a_rolled_back_version(ws, conn):
    for seed in (1, 2, 3):
        new_version(ws, conn, "clf", seed)
    with pytest.raises(MltuiError, match="has no version in production to roll back"):
        registry.rollback(ws, conn, "clf", "why", who="alice")
    with pytest.raises(NotFound):
        registry.rollback(ws, conn, "nope", "why", who="alice")
    to_production(ws, conn, "clf@1")
    with pytest.raises(MltuiError, match="is the first version of 'clf' in production"):
        registry.rollback(ws, conn, "clf", "why", who="alice")
    with pytest.raises(UsageError, match="needs a reason"):
        registry.rollback(ws, conn, "clf", " ", who="alice")
    to_production(ws, conn, "clf@2")
    old, new = registry.rollback(ws, conn, "clf", "v2 is slow", who="carol")
    assert (old.version, new.version, new.stage) == (2, 1, "production")
    assert stages(ws, "clf") == {1: "production", 2: "archived", 3: "candidate"}
    # a second rollback does not bounce back to the version just rolled back
    with pytest.raises(MltuiError, match="nothing to roll back to"):
        registry.rollback(ws, conn, "clf", "again", who="carol")
    assert stages(ws, "clf") == {1: "production", 2: "archived", 3: "candidate"}
    to_production(ws, conn, "clf@3")
    old, new = registry.rollback(ws, conn, "clf", "v3 is wrong", who="carol")
    assert (old.version, new.version) == (3, 1)
    moves = registry.history(conn, "clf")[-2:]
    assert [(m["version"], m["from"], m["to"], m["actor"], m["reason"]) for m in moves] == [
        (3, "production", "archived", "carol", "rolled back: v3 is wrong"),
        (1, "archived", "production", "carol", "rollback from version 3: v3 is wrong")]
    rb = [e for e in audit.entries(conn) if e["action"] == "rollback"]
    assert [(e["actor"], e["details"]) for e in rb] == [
        ("carol", {"from": 2, "to": 1, "reason": "v2 is slow"}), ("carol", {"from": 3, "to": 1, "reason": "v3 is wrong"})]
    assert audit.verify(conn) == []


def test_a_third_rollback_does_not_bring_back_a_rolled_back_version(ws, conn):
    for seed in (1, 2, 3):
        new_version(ws, conn, "clf", seed)
        to_production(ws, conn, f"clf@{seed}")
    assert registry.rollback(ws, conn, "clf", "v3 bad", who="carol")[1].version == 2
    assert registry.rollback(ws, conn, "clf", "v2 bad too", who="carol")[1].version == 1
    try:
        registry.rollback(ws, conn, "clf", "and again", who="carol")
    except MltuiError:
        pass
    assert stages(ws, "clf") == {1: "production", 2: "archived", 3: "archived"}


def test_the_audit_chain_links_every_row_and_the_head(ws, conn):
    v1 = new_version(ws, conn, "clf", 1)
    to_production(ws, conn, v1.label)
    rows = audit.entries(conn)
    assert [r["action"] for r in rows] == ["register", "request", "stage", "approve"]
    with closing(raw(ws)) as c:
        chain = c.execute("SELECT seq, prev_hash, hash FROM audit_log ORDER BY seq").fetchall()
        head = c.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()[0]
    assert chain[0][1] == audit.GENESIS
    assert all(chain[i][1] == chain[i - 1][2] for i in range(1, len(chain)))
    assert head == f"{chain[-1][0]}:{chain[-1][2]}"
    assert audit.verify(conn) == []
    assert [r["seq"] for r in audit.entries(conn, "clf", limit=2)] == [3, 4]
    assert audit.entries(conn, "nope") == []
    # the head record itself removed
    with closing(raw(ws)) as c:
        c.execute("DELETE FROM meta WHERE key = 'audit_head'")
        c.commit()
    assert audit.verify(conn) == ["the log's head record is missing"]


# -- checkpoints ----------------------------------------------------------------------------------
def test_inspect_a_nested_state_dict(tmp_path):
    gen = torch.Generator().manual_seed(0)
    state = {
        "layer": [{"weight": torch.randn(3, 2, generator=gen), "bias": torch.zeros(3)},
                  {"weight": torch.randn(1, 3, generator=gen), "bias": torch.zeros(1)}],
        "head": (torch.zeros(2, 5, dtype=torch.float16), torch.arange(4)),
        "norm": {"inner": {"scale": torch.ones(7, dtype=torch.bfloat16)}},
        "step": torch.tensor(1.0),
        "epoch": 3, "note": "plain values are skipped",
    }
    path = tmp_path / "nested.pt"
    torch.save(state, path)
    info = inspect(path)
    assert info["format"] == "torch" and info["size"] == path.stat().st_size
    assert [(t["name"], t["shape"], t["dtype"], t["numel"]) for t in info["tensors"]] == [
        ("layer.0.weight", [3, 2], "float32", 6), ("layer.0.bias", [3], "float32", 3),
        ("layer.1.weight", [1, 3], "float32", 3), ("layer.1.bias", [1], "float32", 1),
        ("head.0", [2, 5], "float16", 10), ("head.1", [4], "int64", 4),
        ("norm.inner.scale", [7], "bfloat16", 7), ("step", [], "float32", 1)]
    assert info["parameters"] == 6 + 3 + 3 + 1 + 10 + 4 + 7 + 1


def test_inspect_a_module_state_dict_counts_its_parameters(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    path = tmp_path / "seq.pth"
    torch.save(model.state_dict(), path)
    info = inspect(path)
    assert [t["name"] for t in info["tensors"]] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert info["parameters"] == sum(p.numel() for p in model.parameters()) == 34


class Bomb:
    """Unpickling this runs `touch MARKER`."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["pickle-0", "pickle-2", "pickle-default", "pickle-5", "torch-2", "torch-default",
                                 "torch-legacy-2", "torch-legacy-default"])
def test_a_pickle_bomb_is_refused_and_never_run(tmp_path, how):
    marker = tmp_path / "BOOM"
    path = tmp_path / "bomb.pt"
    payload = {"weight": torch.zeros(2), "evil": Bomb(marker)}
    kind, _, proto = how.partition("-")
    if kind == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=None if proto == "default" else int(proto)))
    else:
        legacy = proto.startswith("legacy")
        proto = proto.removeprefix("legacy-")
        kwargs = {} if proto == "default" else {"pickle_protocol": int(proto)}
        torch.save(payload, path, _use_new_zipfile_serialization=not legacy, **kwargs)
    # it would run: the bytes really hold the call
    assert b"system" in path.read_bytes()
    with pytest.raises(MltuiError) as err:
        inspect(path)
    assert str(err.value).startswith("Refused to load bomb.pt: it is not a plain weights file")
    assert not marker.exists()


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "trunc.pt").write_bytes(weights(1)[:100])
    with pytest.raises(MltuiError, match="trunc.pt is not a readable checkpoint"):
        inspect(tmp_path / "trunc.pt")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(MltuiError, match="is not a checkpoint mltui can read"):
        inspect(tmp_path / "notes.txt")
    with pytest.raises(MltuiError, match="Cannot read missing.pt"):
        inspect(tmp_path / "missing.pt")


def safetensors_bytes(tensors: dict[str, tuple[str, list[int], int]], metadata: bool = True) -> bytes:
    """A safetensors file written by hand: 8-byte little-endian header length, JSON header, data."""
    header: dict = {"__metadata__": {"format": "pt"}} if metadata else {}
    offset = 0
    for name, (dtype, shape, itemsize) in tensors.items():
        n = itemsize
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + bytes(offset)


def test_a_hand_written_safetensors_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes({"enc.weight": ("F32", [8, 4], 4), "enc.bias": ("F32", [8], 4),
                                        "emb": ("F16", [10, 3], 2), "scale": ("F32", [], 4)}))
    info = inspect(path)
    assert info["format"] == "safetensors" and info["size"] == path.stat().st_size
    assert [(t["name"], t["shape"], t["dtype"], t["numel"]) for t in info["tensors"]] == [
        ("emb", [10, 3], "F16", 30), ("enc.bias", [8], "F32", 8), ("enc.weight", [8, 4], "F32", 32),
        ("scale", [], "F32", 1)]
    assert info["parameters"] == 71


@pytest.mark.parametrize("blob, message", [
    (b"\x01\x02", "too short to be a safetensors file"),
    (struct.pack("<Q", 16) + b"not json at all!", "is not a readable safetensors file"),
    (struct.pack("<Q", 2 ** 40) + b"{}", "claims a 1,099,511,627,776-byte header"),
    (struct.pack("<Q", 4) + b"[1] ", "malformed safetensors header"),
    (struct.pack("<Q", 3) + b"\xff\xfe\xfd", "is not a readable safetensors file"),
])
def test_a_corrupt_safetensors_file_is_refused(tmp_path, blob, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    with pytest.raises(MltuiError, match=message):
        inspect(path)


def test_a_safetensors_header_with_a_malformed_shape(tmp_path):
    text = json.dumps({"a": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "shape.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(8))
    with pytest.raises(MltuiError, match="tensor 'a' has a malformed shape"):
        inspect(path)


@pytest.mark.parametrize("cut, said", [
    ("data", "cut.safetensors: tensor 'enc.weight' lies outside the file (it is cut short or malformed)."),
    ("header", "cut.safetensors is not a readable safetensors file: it is cut short (its header should be 1,075 bytes)."),
])
def test_a_truncated_safetensors_file_is_refused(tmp_path, cut, said):
    whole = safetensors_bytes({"enc.weight": ("F32", [8, 4], 4)}, metadata=False)
    path = tmp_path / "cut.safetensors"
    if cut == "data":
        path.write_bytes(whole[:-100])  # 28 of the 128 data bytes are left
    else:
        (length,) = struct.unpack("<Q", whole[:8])
        path.write_bytes(struct.pack("<Q", length + 1000) + whole[8:8 + length])  # claims more header than there is
    with pytest.raises(MltuiError) as info:
        inspect(path)
    assert str(info.value) == said
