"""The Models pane (key 5) and the review screen, driven by real keys on a real store.

The whole promotion flow, by keys in the TUI pilot: training runs and an eval run (logged in the test through
the tracking API) -> register two versions (R) -> request production for version 1 (p) -> review and
approve it as a second user (enter, a) -> request production for version 2, whose gates fail -> the
approval asks for an override reason -> version 2 in production, version 1 archived -> reject and
comment on another request -> roll back (b) -> inspect (i). After every step the store is read with a
fresh SQLite connection: stages, requests, stage moves and the hash-chained audit trail.

Who acts is `$MLTUI_USER` (the workspace's policy says trust_env_user = true), read at each action, so
`monkeypatch.setenv("MLTUI_USER", ...)` between key presses switches the user. Every wait polls with a deadline (`until`), never a fixed sleep.
"""

from __future__ import annotations

import io
import json
import sqlite3

import pytest
torch = pytest.importorskip("torch", reason="the model tests build .pt checkpoints with torch (installed by the test extra)")
from launching import until
from rich.console import Console
from textual.widgets import DataTable, Input, Static, TabbedContent

import mltui
from mltui.core.models import audit
from mltui.core.data.versions import add
from mltui.store.opening import open_store
from mltui.tui.app import MltuiApp, create_app
from mltui.tui.screens.main import MainScreen
from mltui.tui.panes.models import ModelsPane
from mltui.tui.modals.prompt import PromptScreen
from mltui.tui.screens.review import ReviewScreen

BIG = (160, 50)
SMALL = (80, 24)

GATES = """
[promotion]
trust_env_user = true


[[promotion.gates]]
kind = "metric"
metric = "val_acc"
op = ">="
value = 0.9

[[promotion.gates]]
kind = "beats_production"
metric = "val_acc"
direction = "max"
margin = 0.01

[[promotion.gates]]
kind = "eval_run"

[[promotion.gates]]
kind = "same_eval_data"
"""

# tensors of the checkpoint each training run saves: 3*4 + 4 = 16 parameters
PARAMETERS = 16


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    """No user themes from ~/.config, no attached run, alice acts unless a test says otherwise."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in ("MLTUI_RUN_ID", "MLTUI_WORKSPACE", "MLTUI_RUN_DIR", "MLTUI_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLTUI_USER", "alice")


@pytest.fixture
def setup(ws, tmp_path):
    """`ws` polling every 0.5 s with the four gates in config.toml, a dataset `evalset`, two training
    runs (val_acc 0.92 and 0.95) with a checkpoint each, and an eval run of clf@1 on evalset
    (val_acc 0.93). Returns {"train1", "train2", "eval1": run id, "data": dataset version id}."""
    text = ws.config_path.read_text()
    assert "refresh_seconds = 1.0" in text
    ws.config_path.write_text(text.replace("refresh_seconds = 1.0", "refresh_seconds = 0.5") + GATES)

    folder = tmp_path / "evalset"
    folder.mkdir()
    (folder / "test.csv").write_text("x,y\n1,0\n2,1\n3,0\n")
    conn = open_store(ws.db_path)
    try:
        data = add(ws, conn, folder, "evalset", "held-out split").version.id
    finally:
        conn.close()

    ids = {}
    for n, acc in ((1, 0.92), (2, 0.95)):
        ckpt = tmp_path / f"ckpt{n}.pt"
        torch.save({"layer.weight": torch.full((3, 4), float(n)), "layer.bias": torch.zeros(4)}, ckpt)
        run = mltui.init(name=f"train-{n}", params={"lr": 0.01 * n}, workspace=tmp_path)
        run.log({"val_acc": acc - 0.1}, step=0)
        run.log({"val_acc": acc}, step=1)
        run.log_artifact(ckpt, "model.pt")
        run.finish()
        ids[f"train{n}"] = run.id
    ev = mltui.init(name="eval-1", params={"model": "clf@1"}, kind="eval", workspace=tmp_path)
    assert ev.use_dataset("evalset") == data
    ev.log({"val_acc": 0.93}, step=1)
    ev.finish()
    ids["eval1"] = ev.id
    ids["data"] = data
    return ids


def app_for(ws) -> MltuiApp:
    app = create_app(ws)
    app.animation_level = "none"
    return app


def db(ws) -> sqlite3.Connection:
    return sqlite3.connect(ws.db_path, timeout=10)


def stages(ws) -> dict[int, str]:
    conn = db(ws)
    try:
        return dict(conn.execute("SELECT version, stage FROM model_versions WHERE model = 'clf'").fetchall())
    finally:
        conn.close()


def request_row(ws, number: int) -> dict | None:
    conn = db(ws)
    try:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM promotion_requests WHERE id = ?", (number,)).fetchone()
        return dict(row) if row else None
    finally:
        conn.close()


def audit_rows(ws) -> list[tuple]:
    """(seq, actor, action, details) of every audit row, oldest first."""
    conn = db(ws)
    try:
        return [(s, a, act, json.loads(d)) for s, a, act, d in
                conn.execute("SELECT seq, actor, action, details FROM audit_log ORDER BY seq")]
    finally:
        conn.close()


def verify(ws) -> list[str]:
    conn = db(ws)
    try:
        return audit.verify(conn)
    finally:
        conn.close()


def snapshot(ws) -> tuple:
    """Everything a model action could change."""
    conn = db(ws)
    try:
        return tuple(conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in (
            "models", "model_versions", "model_aliases", "stage_moves", "promotion_requests", "request_comments",
            "audit_log"))
    finally:
        conn.close()


def rich_text(renderable, width: int = 200) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue()


def text_of(app, selector: str) -> str:
    return rich_text(app.screen.query_one(selector, Static).content)


def table(app, selector: str) -> DataTable:
    return app.screen.query_one(selector, DataTable)


def column(app, selector: str, index: int) -> list[str]:
    t = table(app, selector)
    return [str(getattr(t.get_row_at(i)[index], "plain", t.get_row_at(i)[index])) for i in range(t.row_count)]


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]


def errors(app) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "error"]


def pane(app) -> ModelsPane:
    return app.screen.query_one(ModelsPane)


async def open_models(pilot) -> ModelsPane:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, MainScreen), what="the main screen")
    await pilot.press("5")
    await until(pilot, lambda: app.screen.query_one(TabbedContent).active == "models", what="the Models tab")
    p = pane(app)
    await until(pilot, lambda: p.snapshot is not None, what="the Models pane's first poll")
    return p


async def focus(pilot, widget) -> None:
    """Tab (keys only) until `widget` has the focus."""
    for _ in range(12):
        if pilot.app.focused is widget:
            return
        await pilot.press("tab")
    assert pilot.app.focused is widget, f"tab never reached {widget!r} (focused: {pilot.app.focused!r})"


async def prompt(pilot, title_part: str) -> PromptScreen:
    screen = await until(pilot, lambda: isinstance(pilot.app.screen, PromptScreen) and pilot.app.screen,
                         what=f"the prompt {title_part!r}")
    assert title_part in screen.title_text
    return screen


async def fill(pilot, key: str, text: str) -> None:
    """Tab to the prompt's field `key`, clear it, type `text` key by key."""
    field = pilot.app.screen.query_one(f"#prompt-{key}", Input)
    await focus(pilot, field)
    await pilot.press("ctrl+shift+a", "backspace")
    assert field.value == ""
    if text:
        await pilot.press(*text)
    assert field.value == text


def prompt_error(app) -> str:
    return str(app.screen.query_one("#launch-error", Static).render())


async def back_to_main(pilot) -> None:
    await until(pilot, lambda: isinstance(pilot.app.screen, MainScreen), what="the main screen again")


async def highlight_version(pilot, number: int) -> None:
    """Move the versions table's cursor onto version `number` with up/down."""
    app = pilot.app
    versions = table(app, "#model-versions")
    await focus(pilot, versions)
    await until(pilot, lambda: f"v{number}" in column(app, "#model-versions", 0), what=f"v{number} listed")
    for _ in range(10):
        v = pane(app).highlighted_version()
        if v is not None and v.version == number:
            return
        want = column(app, "#model-versions", 0).index(f"v{number}")
        await pilot.press("down" if want > versions.cursor_row else "up")
    v = pane(app).highlighted_version()
    assert v is not None and v.version == number


async def register(pilot, ws, run_id: str, expect: int) -> None:
    app = pilot.app
    await pilot.press("R")
    await prompt(pilot, "Register")
    await fill(pilot, "name", "clf")
    await fill(pilot, "run", run_id)
    assert app.screen.query_one("#prompt-path", Input).value == "artifacts/model.pt"  # the default
    await pilot.press("enter")
    await back_to_main(pilot)
    await until(pilot, lambda: f"v{expect}" in column(app, "#model-versions", 0), what=f"v{expect} in the table")
    assert stages(ws)[expect] == "candidate"


async def promote(pilot, number: int, to: str = "production", why: str = "") -> None:
    await highlight_version(pilot, number)
    await pilot.press("p")
    screen = await prompt(pilot, f"Ask to promote clf@{number}")
    assert screen.query_one("#prompt-to", Input).value in ("staging", "production")
    await fill(pilot, "to", to)
    if why:
        await fill(pilot, "why", why)
    await pilot.press("enter")
    await back_to_main(pilot)


async def open_request(pilot, number: int) -> ReviewScreen:
    """Focus the promotion queue, walk to request `number`, enter: its review."""
    app = pilot.app
    requests = table(app, "#model-requests")
    await until(pilot, lambda: f"#{number}" in column(app, "#model-requests", 0), what=f"request #{number} queued")
    await focus(pilot, requests)
    for _ in range(10):
        if column(app, "#model-requests", 0)[requests.cursor_row] == f"#{number}":
            break
        want = column(app, "#model-requests", 0).index(f"#{number}")
        await pilot.press("down" if want > requests.cursor_row else "up")
    await pilot.press("enter")
    screen = await until(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen, what="the review")
    assert screen.request_id == number
    await until(pilot, lambda: screen.request is not None, what="the review loaded")
    return screen


def request_cells(app, number: int) -> list[str]:
    t = table(app, "#model-requests")
    index = column(app, "#model-requests", 0).index(f"#{number}")
    return [c.plain for c in t.get_row_at(index)]


# -- 1. the whole flow ---------------------------------------------------------------------------


async def test_train_eval_register_request_review_override_rollback_by_keys(setup, ws, monkeypatch):
    ids = setup
    app = app_for(ws)
    async with app.run_test(size=BIG) as pilot:
        await open_models(pilot)
        assert app.screen.query_one("#models-empty").display  # nothing registered yet

        # esc cancels the register prompt: nothing is written
        before = snapshot(ws)
        await pilot.press("R")
        await prompt(pilot, "Register")
        await fill(pilot, "name", "clf")
        await fill(pilot, "run", ids["train1"])
        await pilot.press("escape")
        await back_to_main(pilot)
        assert snapshot(ws) == before

        # R: register version 1 from train-1 and version 2 from train-2
        await register(pilot, ws, ids["train1"], 1)
        assert app.screen.query_one("#models-body").display and not app.screen.query_one("#models-empty").display
        await register(pilot, ws, ids["train2"], 2)
        await until(pilot, lambda: column(app, "#model-versions", 0) == ["v2", "v1"], what="both versions")
        assert column(app, "#model-versions", 1) == ["candidate", "candidate"]
        assert column(app, "#model-versions", 4) == [ids["train2"], ids["train1"]]
        assert column(app, "#models-list", 0) == ["clf"] and column(app, "#models-list", 1) == ["2"]
        conn = db(ws)
        try:
            rows = conn.execute("SELECT version, run_id, path, user FROM model_versions ORDER BY version").fetchall()
        finally:
            conn.close()
        assert rows == [(1, ids["train1"], "artifacts/model.pt", "alice"), (2, ids["train2"], "artifacts/model.pt", "alice")]
        assert [(a, act, d["version"]) for _, a, act, d in audit_rows(ws)] == [("alice", "register", 1),
                                                                               ("alice", "register", 2)]

        # i: inspect version 1's checkpoint
        await highlight_version(pilot, 1)
        await pilot.press("i")
        await until(pilot, lambda: f"{PARAMETERS} parameters" in text_of(app, "#models-info"), timeout=30,
                    what="the parameter count")
        info = text_of(app, "#models-info")
        assert "clf@1" in info and "in 2 tensors" in info and "layer.weight" in info and "3x4" in info

        # esc cancels the promote prompt: nothing is filed
        before = snapshot(ws)
        await pilot.press("p")
        await prompt(pilot, "Ask to promote clf@1")
        await pilot.press("escape")
        await back_to_main(pilot)
        assert snapshot(ws) == before

        # p on version 1, to production (alice files it): request #1, every gate passes
        await promote(pilot, 1, "production", "best so far")
        await until(pilot, lambda: column(app, "#model-requests", 0) == ["#1"], what="request #1 in the queue")
        assert request_cells(app, 1)[1:5] == ["clf@1", "production", "alice", "pass"]
        req = request_row(ws, 1)
        assert (req["status"], req["requester"], req["target"], req["message"]) == ("open", "alice", "production",
                                                                                   "best so far")
        assert all(g["ok"] for g in json.loads(req["gates"])) and len(json.loads(req["gates"])) == 4
        assert stages(ws) == {1: "candidate", 2: "candidate"}  # nothing moves when a request is filed

        # alice opens her own request and tries to approve it: an error, nothing changes
        review = await open_request(pilot, 1)
        header = text_of(app, "#review-header")
        assert "Request #1" in header and "clf@1 → production" in header and "by alice" in header and "open" in header
        compare = text_of(app, "#review-compare")
        assert "clf@1 (candidate)" in compare and "nothing in production" in compare
        assert "0.93" in compare  # the eval run's val_acc wins over the training run's
        gates = text_of(app, "#review-gates")
        assert gates.count("pass ") == 4 and "FAIL" not in gates
        before = snapshot(ws)
        await pilot.press("a")
        screen = await prompt(pilot, "Approve request #1")
        assert not screen.query("#prompt-override")  # no gate fails: no override is asked for
        await pilot.press("enter")
        await until(pilot, lambda: any("another reviewer must approve" in m for m in errors(app)),
                    what="the self-approval error")
        assert app.screen is review
        assert snapshot(ws) == before
        assert request_row(ws, 1)["status"] == "open" and stages(ws)[1] == "candidate"

        # c: alice comments; the comment appears in the review
        await pilot.press("c")
        await prompt(pilot, "Comment on request #1")
        await pilot.press(*"please review", "enter")
        await until(pilot, lambda: app.screen is review and "alice: please review" in text_of(app, "#review-comments"),
                    what="the comment in the review")
        await pilot.press("escape")
        await back_to_main(pilot)

        # bob opens it and approves: version 1 is in production
        monkeypatch.setenv("MLTUI_USER", "bob")
        review = await open_request(pilot, 1)
        assert "alice: please review" in text_of(app, "#review-comments")
        seq_before = audit_rows(ws)[-1][0]
        await pilot.press("a")
        await prompt(pilot, "Approve request #1")
        await pilot.press(*"looks good", "enter")
        await until(pilot, lambda: request_row(ws, 1)["status"] == "approved", what="request #1 approved")
        req = request_row(ws, 1)
        assert (req["reviewer"], req["decision"], req["override"]) == ("bob", "looks good", None)
        assert stages(ws) == {1: "production", 2: "candidate"}
        new = [(a, act, d) for s, a, act, d in audit_rows(ws) if s > seq_before]
        assert [(a, act) for a, act, _ in new] == [("bob", "stage"), ("bob", "approve")]
        assert new[0][2]["from"] == "candidate" and new[0][2]["to"] == "production"
        assert new[1][2]["request"] == 1 and new[1][2]["failed_gates"] == []
        await until(pilot, lambda: "approved by bob" in text_of(app, "#review-header"), what="the decided header")
        assert "esc back" in text_of(app, "#review-gates") and "a approve" not in text_of(app, "#review-gates")
        await pilot.press("escape")
        await back_to_main(pilot)
        await until(pilot, lambda: column(app, "#model-versions", 1) == ["candidate", "production"],
                    what="v1 shown in production")
        assert column(app, "#models-list", 2) == ["v1"]
        assert table(app, "#model-requests").row_count == 0  # the queue holds open requests only

        # p on version 2, to production (alice): request #2 fails two gates
        monkeypatch.setenv("MLTUI_USER", "alice")
        await promote(pilot, 2, "production")
        await until(pilot, lambda: column(app, "#model-requests", 0) == ["#2"], what="request #2 in the queue")
        assert request_cells(app, 2)[1:5] == ["clf@2", "production", "alice", "2 failing"]
        gates2 = {g["kind"]: g for g in json.loads(request_row(ws, 2)["gates"])}
        assert gates2["metric"]["ok"] and gates2["beats_production"]["ok"]  # 0.95 against 0.93 (+0.01)
        assert not gates2["eval_run"]["ok"] and not gates2["same_eval_data"]["ok"]

        # bob reviews: production beside the candidate, the failing gates; a asks for an override reason
        monkeypatch.setenv("MLTUI_USER", "bob")
        review = await open_request(pilot, 2)
        compare = text_of(app, "#review-compare")
        assert "clf@2 (candidate)" in compare and "clf@1 (production)" in compare
        assert "evalset" in compare and ids["data"][:12] in compare  # production's eval data
        gates = text_of(app, "#review-gates")
        assert gates.count("FAIL ") == 2 and gates.count("pass ") == 2
        assert "no finished eval run names clf@2" in gates and "production was judged on evalset@" in gates
        before = snapshot(ws)
        await pilot.press("a")  # esc first: the approval is cancelled
        screen = await prompt(pilot, "Approve request #2")
        assert "2 gate(s) fail" in rich_text(screen.note)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is review, what="the review again")
        assert snapshot(ws) == before
        await pilot.press("a")
        screen = await prompt(pilot, "Approve request #2")
        override = screen.query_one("#prompt-override", Input)
        await focus(pilot, override)
        await pilot.press("enter")  # the override reason is required: the prompt stays, saying so
        await until(pilot, lambda: "override is needed" in prompt_error(app), what="the missing-override error")
        assert app.screen is screen and snapshot(ws) == before
        await pilot.press(*"hotfix, eval queued", "enter")
        await until(pilot, lambda: request_row(ws, 2)["status"] == "approved", what="request #2 approved")
        req = request_row(ws, 2)
        assert (req["reviewer"], req["override"]) == ("bob", "hotfix, eval queued")
        assert stages(ws) == {1: "archived", 2: "production"}
        approve_row = audit_rows(ws)[-1]
        assert approve_row[1:3] == ("bob", "approve")
        assert approve_row[3]["override"] == "hotfix, eval queued"
        assert sorted(approve_row[3]["failed_gates"]) == sorted([gates2["eval_run"]["gate"],
                                                                  gates2["same_eval_data"]["gate"]])
        await until(pilot, lambda: "overridden: hotfix, eval queued" in text_of(app, "#review-gates"),
                    what="the override in the review")
        await pilot.press("escape")
        await back_to_main(pilot)
        await until(pilot, lambda: column(app, "#model-versions", 1) == ["production", "archived"],
                    what="v2 in production, v1 archived")

        # a request to reject: version 1 to staging; r asks for a reason (required), then rejects
        monkeypatch.setenv("MLTUI_USER", "alice")
        await promote(pilot, 1, "staging")
        await until(pilot, lambda: column(app, "#model-requests", 0) == ["#3"], what="request #3 in the queue")
        monkeypatch.setenv("MLTUI_USER", "bob")
        review = await open_request(pilot, 3)
        before = snapshot(ws)
        await pilot.press("r")
        screen = await prompt(pilot, "Reject request #3")
        await pilot.press("enter")
        await until(pilot, lambda: "why is needed" in prompt_error(app), what="the missing-reason error")
        assert app.screen is screen and snapshot(ws) == before
        await pilot.press(*"worse than v2", "enter")
        await until(pilot, lambda: request_row(ws, 3)["status"] == "rejected", what="request #3 rejected")
        req = request_row(ws, 3)
        assert (req["reviewer"], req["decision"]) == ("bob", "worse than v2")
        assert stages(ws) == {1: "archived", 2: "production"}
        assert audit_rows(ws)[-1][1:3] == ("bob", "reject")
        await until(pilot, lambda: "rejected by bob" in text_of(app, "#review-header"), what="the rejected header")
        # a decided request cannot be approved
        before = snapshot(ws)
        await pilot.press("a")
        await until(pilot, lambda: any("already decided" in m for m in messages(app)), what="the already-decided hint")
        assert app.screen is review and snapshot(ws) == before
        await pilot.press("escape")
        await back_to_main(pilot)
        await until(pilot, lambda: table(app, "#model-requests").row_count == 0, what="an empty queue")

        # b: roll back (esc first cancels it); the reason is required; production is version 1 again
        await focus(pilot, table(app, "#model-versions"))
        before = snapshot(ws)
        await pilot.press("b")
        await prompt(pilot, "Roll clf back")
        await pilot.press("escape")
        await back_to_main(pilot)
        assert snapshot(ws) == before
        await pilot.press("b")
        screen = await prompt(pilot, "Roll clf back")
        await pilot.press("enter")
        await until(pilot, lambda: "why is needed" in prompt_error(app), what="the missing-reason error")
        assert app.screen is screen and snapshot(ws) == before
        seq_before = audit_rows(ws)[-1][0]
        await pilot.press(*"latency regression", "enter")
        await back_to_main(pilot)
        await until(pilot, lambda: stages(ws) == {1: "production", 2: "archived"}, what="the rollback in the store")
        new = [(a, act, d) for s, a, act, d in audit_rows(ws) if s > seq_before]
        assert [(a, act) for a, act, _ in new] == [("bob", "stage"), ("bob", "stage"), ("bob", "rollback")]
        assert new[-1][2] == {"from": 2, "to": 1, "reason": "latency regression"}
        await until(pilot, lambda: column(app, "#model-versions", 1) == ["archived", "production"],
                    what="the rollback in the table")
        await until(pilot, lambda: column(app, "#models-list", 2) == ["v1"], what="v1 in production in the list")
        assert any("Production is version 1 again" in m for m in messages(app))
        assert not errors(app) or all("another reviewer" in m for m in errors(app))
        assert app.is_running

    conn = db(ws)
    try:
        moves = conn.execute("SELECT version, from_stage, to_stage, actor FROM stage_moves ORDER BY id").fetchall()
    finally:
        conn.close()
    assert moves == [(1, None, "candidate", "alice"), (2, None, "candidate", "alice"),
                     (1, "candidate", "production", "bob"),
                     (1, "production", "archived", "bob"), (2, "candidate", "production", "bob"),
                     (2, "production", "archived", "bob"), (1, "archived", "production", "bob")]
    actions = [act for _, _, act, _ in audit_rows(ws)]
    assert actions == ["register", "register", "request", "comment", "stage", "approve",
                       "request", "stage", "stage", "approve", "request", "reject",
                       "stage", "stage", "rollback"]
    assert verify(ws) == []


# -- 2. a small terminal -------------------------------------------------------------------------


async def test_pane_and_review_draw_at_80x24_and_keys_work(setup, ws, monkeypatch):
    ids = setup
    app = app_for(ws)
    async with app.run_test(size=SMALL) as pilot:
        await open_models(pilot)
        empty = app.screen.query_one("#models-empty", Static)
        await until(pilot, lambda: empty.display and "No models yet" in text_of(app, "#models-empty"),
                    what="the empty state")
        assert empty.region.height > 0 and empty.region.bottom <= SMALL[1]
        await pilot.press("p", "b", "i")  # nothing to act on: a hint, no prompt, no crash, nothing written
        await until(pilot, lambda: "Highlight a version first." in messages(app), what="the highlight hint")
        assert isinstance(app.screen, MainScreen) and stages(ws) == {}

        await register(pilot, ws, ids["train1"], 1)
        versions = table(app, "#model-versions")
        assert versions.region.width > 0 and versions.region.bottom <= SMALL[1]
        await promote(pilot, 1, "production")
        await until(pilot, lambda: column(app, "#model-requests", 0) == ["#1"], what="request #1 in the queue")
        requests = table(app, "#model-requests")
        assert requests.region.width > 0 and requests.region.bottom <= SMALL[1]

        monkeypatch.setenv("MLTUI_USER", "bob")
        review = await open_request(pilot, 1)
        header = review.query_one("#review-header", Static)
        assert header.region.width > 0 and header.region.bottom <= SMALL[1]
        assert "Request #1" in text_of(app, "#review-header")
        await until(pilot, lambda: "signing:" in text_of(app, "#review-gates"), what="the signing line")
        assert "signing: not signed (bob: the identity is asserted, not the OS account's)" in \
            " ".join(text_of(app, "#review-gates").split())  # bob is only named by $MLTUI_USER: nothing to sign
        await pilot.press("a")
        await prompt(pilot, "Approve request #1")
        await pilot.press("enter")
        await until(pilot, lambda: request_row(ws, 1)["status"] == "approved", what="request #1 approved")
        assert stages(ws) == {1: "production"}
        await pilot.press("escape")
        await back_to_main(pilot)
        await until(pilot, lambda: column(app, "#model-versions", 1) == ["production"], what="v1 in production")
        assert app.is_running and not errors(app)
    assert verify(ws) == []


# -- 3. gates that changed between the request and the review ---------------------------------------


def eval_run(tmp_path, label: str, acc: float) -> str:
    """A finished eval run of `label` on the version evalset's folder holds now."""
    run = mltui.init(name=f"eval-{label}", params={"model": label}, kind="eval", workspace=tmp_path)
    run.use_dataset("evalset")
    run.log({"val_acc": acc}, step=1)
    run.finish()
    return run.id


def core(ws, fn, *args, who: str):
    """A registry/promotion call on a fresh connection, as `who` (set-up, not by keys)."""
    conn = open_store(ws.db_path)
    try:
        return fn(ws, conn, *args, who=who)
    finally:
        conn.close()


async def test_after_the_gates_are_fixed_approving_needs_no_override(setup, ws, tmp_path, monkeypatch):
    from mltui.core.models.promotion import approve, request
    from mltui.core.models.registry import register

    ids = setup
    core(ws, register, "clf", ids["train1"], "artifacts/model.pt", who="alice")
    core(ws, register, "clf", ids["train2"], "artifacts/model.pt", who="alice")
    core(ws, request, "clf@1", "production", who="alice")
    core(ws, approve, 1, who="bob")
    assert core(ws, request, "clf@2", "production", who="alice")["failed"]  # eval_run and same_eval_data fail
    eval_run(tmp_path, "clf@2", 0.96)  # the fix: clf@2 evaluated on the data production was judged on
    monkeypatch.setenv("MLTUI_USER", "bob")
    app = app_for(ws)
    async with app.run_test(size=BIG) as pilot:
        await open_models(pilot)
        review = await open_request(pilot, 2)
        await pilot.press("a")
        await prompt(pilot, "Approve request #2")
        await pilot.press("enter")  # every gate passes now: no override should be needed
        await until(pilot, lambda: app.screen is review or prompt_error(app), what="the prompt to close or complain")
        assert app.screen is review, f"the prompt stayed open: {prompt_error(app)!r}"
        await until(pilot, lambda: request_row(ws, 2)["status"] != "open" or errors(app), what="a decision")
        assert request_row(ws, 2)["status"] == "approved" and not errors(app)
        assert stages(ws) == {1: "archived", 2: "production"}


async def test_a_gate_that_fails_only_at_approval_can_be_overridden_by_keys(setup, ws, tmp_path, monkeypatch):
    from mltui.core.models.promotion import approve, request
    from mltui.core.models.registry import register

    ids = setup
    (tmp_path / "evalset" / "test.csv").write_text("x,y\n1,1\n2,1\n3,0\n4,0\n")  # a newer eval split
    conn = open_store(ws.db_path)
    try:
        newer = add(ws, conn, tmp_path / "evalset", "evalset", "relabelled").version.id
    finally:
        conn.close()
    assert newer != ids["data"]
    core(ws, register, "clf", ids["train1"], "artifacts/model.pt", who="alice")
    core(ws, register, "clf", ids["train2"], "artifacts/model.pt", who="alice")
    eval_run(tmp_path, "clf@2", 0.96)  # clf@2 was evaluated on the newer split
    core(ws, request, "clf@1", "production", who="alice")
    assert core(ws, request, "clf@2", "production", who="alice")["failed"] == []  # nothing in production yet
    core(ws, approve, 1, who="bob")  # now production (clf@1) was judged on the older split: same_eval_data fails
    monkeypatch.setenv("MLTUI_USER", "bob")
    app = app_for(ws)
    async with app.run_test(size=BIG) as pilot:
        await open_models(pilot)
        review = await open_request(pilot, 2)
        await pilot.press("a")
        screen = await prompt(pilot, "Approve request #2")
        assert screen.query("#prompt-override"), "no way to give an override reason for the gate that fails now"
        await fill(pilot, "override", "newer split is the right one")
        await pilot.press("enter")
        await until(pilot, lambda: request_row(ws, 2)["status"] != "open" or errors(app), what="a decision")
        assert app.screen is review and not errors(app)
        assert request_row(ws, 2)["override"] == "newer split is the right one"
        assert stages(ws) == {1: "archived", 2: "production"}


# -- 4. a signed decision, and the audit view ------------------------------------------------------


async def test_a_decision_by_keys_is_signed_and_the_audit_view_shows_each_rows_signature(setup, ws, tmp_path,
                                                                                         monkeypatch):
    """This account (the workspace's owner) adds its own SSH key, approves by keys, and the review says
    beforehand that it will sign and with which key; the audit view (A) then shows the approval signed
    and verified, and, after the row is edited in SQLite, bad."""
    import shutil
    import subprocess

    from mltui.core.models import keys, promotion, registry
    from mltui.core.models.identity import account
    from mltui.core.models.signing import fingerprint
    from mltui.tui.screens.audit import AuditScreen

    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen is not installed; .ci/run installs Debian's openssh-client")
    ids = setup
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me", "-f", str(key)], check=True)
    fp = fingerprint(key.with_suffix(".pub").read_text().split()[1])
    ws.config_path.write_text(ws.config_path.read_text() + f'\n[signing]\nkey = "{key}"\n')
    me = account()
    core(ws, registry.register, "clf", ids["train1"], "artifacts/model.pt", who="alice")
    core(ws, promotion.request, "clf@1", "production", who="alice")
    conn = open_store(ws.db_path)
    try:
        keys.add(ws, conn, me, key.with_suffix(".pub"))
    finally:
        conn.close()
    monkeypatch.delenv("MLTUI_USER")  # from here on this account acts as itself

    app = app_for(ws)
    async with app.run_test(size=BIG) as pilot:
        await open_models(pilot)
        await open_request(pilot, 1)
        await until(pilot, lambda: "signing:" in text_of(app, "#review-gates"), what="the signing line")
        assert f"signing: signed as {me} with {fp} ({key})" in " ".join(text_of(app, "#review-gates").split())
        await pilot.press("a")
        await prompt(pilot, "Approve request #1")
        await pilot.press("enter")
        await until(pilot, lambda: request_row(ws, 1)["status"] == "approved", what="request #1 approved")
        await pilot.press("escape")
        await back_to_main(pilot)

        await pilot.press("A")
        screen = await until(pilot, lambda: isinstance(app.screen, AuditScreen) and app.screen, what="the audit view")
        await until(pilot, lambda: "intact" in text_of(app, "#audit-verdict"), what="the verdict")
        rows = {r[0]: r for r in zip(column(app, "#audit-rows", 0), column(app, "#audit-rows", 3),
                                     column(app, "#audit-rows", 5))}
        conn = db(ws)
        try:
            approve_seq = conn.execute("SELECT seq, signer_key FROM audit_log WHERE action = 'approve'").fetchone()
        finally:
            conn.close()
        assert approve_seq[1] == fp
        seq = str(approve_seq[0])
        assert rows[seq][1] == "approve" and rows[seq][2] == f"✓ signed {me}'s key {fp}"
        assert rows["1"][2] == "asserted"  # alice registered by name only
        # the key (added by this account, never by a name), the stage move and the approval; alice's two rows
        assert "5 rows · 3 signed and verified · 2 asserted" in text_of(app, "#audit-verdict")

        conn = db(ws)
        try:
            conn.execute("UPDATE audit_log SET details = replace(details, '\"target\"', '\"targ\"') WHERE seq = ?",
                         (int(seq),))
            conn.commit()
        finally:
            conn.close()
        await pilot.press("ctrl+r")
        await until(pilot, lambda: "tampered" in text_of(app, "#audit-verdict"), what="the tampered verdict")
        assert f"row {seq} (approve by {me}) has a bad signature" in " ".join(text_of(app, "#audit-verdict").split())
        await until(pilot, lambda: dict(zip(column(app, "#audit-rows", 0), column(app, "#audit-rows", 5)))[seq]
                    == "✗ BAD bad signature", what="the row marked bad")
        assert screen is app.screen and app.is_running and not errors(app)
