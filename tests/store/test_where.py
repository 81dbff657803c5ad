"""The --where / --sort language (mltui.store.where), checked by running the compiled SQL on a real store."""

from __future__ import annotations

import re
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mltui.base.errors import UsageError
from mltui.core.runs.listing import list_runs
from mltui.core.workspace import init_workspace
from mltui.store import metrics as metric_store
from mltui.store.connection import write_tx
from mltui.store.opening import open_store
from mltui.store.where import compile_sort, compile_where

ALL = {
    "resnet-adam-1", "resnet-adam-2", "resnet-sgd", "vit-sgd", "vit-adamw", "nan-run", "inf-run",
    "running-1", "queued-1", "lost-run", "debug-run", "old-run",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory, populated_factory):
    """(connection, {name: id}) over the populated runs, plus one metric key with a space in it
    ('odd key', written straight to the store: the tracking API refuses such keys)."""
    project = tmp_path_factory.mktemp("where")
    ws, _ = init_workspace(project)
    ids = populated_factory(project)
    conn = open_store(ws.db_path)
    with write_tx(conn, ws.db_path):
        metric_store.write_batch(conn, ids["vit-adamw"], {"odd key": ([0], [7.0], [1.0])})
        metric_store.write_batch(conn, ids["resnet-sgd"], {"odd key": ([0], [3.0], [1.0])})
    yield conn, ids
    conn.close()


def names(store, where=None, sort=None) -> list[str]:
    conn, ids = store
    by_id = {v: k for k, v in ids.items()}
    return [by_id[r["id"]] for r in list_runs(conn, where=where, sort=sort, limit=0, details=False).runs]


def matching(store, where) -> set[str]:
    return set(names(store, where))


def run_count(store) -> int:
    return store[0].execute("SELECT count(*) FROM runs").fetchone()[0]


# -- each operator ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "where, expected",
    [
        ("params.lr > 0.01", {"resnet-sgd", "vit-sgd", "nan-run", "inf-run", "old-run"}),
        ("params.lr >= 0.01", {"resnet-adam-2", "resnet-sgd", "vit-sgd", "nan-run", "inf-run", "old-run"}),
        ("params.lr < 0.01", {"resnet-adam-1", "vit-adamw", "running-1", "lost-run"}),
        ("params.lr <= 0.01", {"resnet-adam-1", "resnet-adam-2", "vit-adamw", "running-1", "lost-run"}),
        ("params.lr = 0.01", {"resnet-adam-2"}),
        ("params.lr == 0.01", {"resnet-adam-2"}),
        ("params.lr = 1e-2", {"resnet-adam-2"}),
        ("params.lr>0.01", {"resnet-sgd", "vit-sgd", "nan-run", "inf-run", "old-run"}),
        ("params.optimizer != adam", {"resnet-sgd", "vit-sgd", "vit-adamw", "nan-run", "inf-run", "lost-run"}),
        ("params.optimizer <> adam", {"resnet-sgd", "vit-sgd", "vit-adamw", "nan-run", "inf-run", "lost-run"}),
        ("params.optimizer = 'adamw'", {"vit-adamw"}),
        ('params.optimizer = "lion"', {"lost-run"}),
        ("params.batch_size = 64", {"resnet-adam-2", "vit-sgd", "old-run"}),
        ("params.batch_size > 100", {"resnet-sgd", "vit-adamw", "lost-run"}),
        ("params.augment = true", {"resnet-adam-1", "resnet-sgd", "vit-adamw", "running-1", "old-run"}),
        ("params.augment = false", {"resnet-adam-2", "vit-sgd", "nan-run", "inf-run", "lost-run"}),
        ("tags.team = vision", {"resnet-adam-1", "resnet-adam-2", "nan-run", "inf-run", "old-run"}),
        ("tags.dataset = cifar10", {"resnet-adam-1", "resnet-sgd"}),
        ("tags.debug = true", {"debug-run"}),
        # metrics.X is the latest value; a NaN last value matches no comparison
        ("metrics.loss < 0.3", {"resnet-adam-2", "vit-adamw"}),
        ("metrics.loss > 1", {"inf-run", "debug-run"}),
        ("metrics.loss > 1e308", {"inf-run"}),
        ("metrics.loss = 0.9", {"resnet-sgd", "running-1"}),
        ("metrics.delta < -1e308", {"lost-run"}),
        ("metrics.val/acc >= 0.9", {"vit-sgd", "vit-adamw", "lost-run"}),
        ("status = failed", {"resnet-sgd", "nan-run"}),
        ("status = FAILED", {"resnet-sgd", "nan-run"}),
        ("status != finished", {"resnet-sgd", "vit-sgd", "nan-run", "running-1", "queued-1", "lost-run"}),
        ("kind = eval", {"debug-run"}),
        ("exit_code = 1", {"resnet-sgd", "nan-run"}),
        ("name = 'vit-sgd'", {"vit-sgd"}),
        ("name = vit-sgd", {"vit-sgd"}),
        ("note = 'loss went NaN'", {"nan-run"}),
    ],
)
def test_comparison_operators(store, where, expected):
    assert matching(store, where) == expected


def test_id_field(store):
    _, ids = store
    assert matching(store, f"id = '{ids['vit-sgd']}'") == {"vit-sgd"}
    assert matching(store, f"id like '{ids['vit-sgd']}%'") == {"vit-sgd"}
    assert matching(store, f"id in ('{ids['vit-sgd']}', '{ids['nan-run']}')") == {"vit-sgd", "nan-run"}


def test_unquoted_run_id(store):
    _, ids = store
    assert ids["vit-sgd"][0].isdigit()
    assert matching(store, f"id = {ids['vit-sgd']}") == {"vit-sgd"}


# -- and / or / not / parentheses ---------------------------------------------------------------

def test_and_binds_tighter_than_or(store):
    loose = matching(store, "tags.team = vision or tags.team = platform and params.optimizer = sgd")
    assert loose == {"resnet-adam-1", "resnet-adam-2", "nan-run", "inf-run", "old-run", "resnet-sgd", "vit-sgd"}
    # the same with the grouping written out
    assert loose == matching(store, "tags.team = vision or (tags.team = platform and params.optimizer = sgd)")
    grouped = matching(store, "(tags.team = vision or tags.team = platform) and params.optimizer = sgd")
    assert grouped == {"resnet-sgd", "vit-sgd", "nan-run", "inf-run"}


def test_and_before_or_on_the_left_too(store):
    got = matching(store, "params.optimizer = sgd and tags.team = platform or status = lost")
    assert got == {"resnet-sgd", "vit-sgd", "lost-run"}
    got = matching(store, "params.optimizer = sgd and (tags.team = platform or status = lost)")
    assert got == {"resnet-sgd", "vit-sgd"}


def test_keywords_are_case_insensitive(store):
    assert matching(store, "status = failed OR status = killed AND NOT exit_code IS NULL") == {"resnet-sgd", "nan-run"}


def test_not(store):
    # a run without the tag is "not team = vision"
    assert matching(store, "not tags.team = vision") == ALL - {"resnet-adam-1", "resnet-adam-2", "nan-run", "inf-run", "old-run"}
    assert matching(store, "not not status = finished") == matching(store, "status = finished")
    assert matching(store, "not (status = finished or status = failed)") == {"vit-sgd", "running-1", "queued-1", "lost-run"}
    # not binds tighter than and
    assert matching(store, "not status = finished and params.optimizer = sgd") == {"resnet-sgd", "vit-sgd", "nan-run"}


def test_nested_parentheses(store):
    got = matching(store, "((status = finished) and ((params.lr < 0.005) or (tags.debug = true)))")
    assert got == {"resnet-adam-1", "vit-adamw", "debug-run"}


# -- in / not in / like / is null --------------------------------------------------------------

def test_in_and_not_in(store):
    assert matching(store, "status in (failed, killed)") == {"resnet-sgd", "vit-sgd", "nan-run"}
    assert matching(store, "status in (failed)") == {"resnet-sgd", "nan-run"}
    assert matching(store, "status not in (finished, failed, killed)") == {"running-1", "queued-1", "lost-run"}
    assert matching(store, "params.optimizer in (sgd, 'adamw')") == {"resnet-sgd", "vit-sgd", "vit-adamw", "nan-run", "inf-run"}
    assert matching(store, "params.batch_size in (16, 512)") == {"inf-run", "lost-run"}
    # `not in` is the negation of `in`: runs without the param are in it
    assert matching(store, "params.optimizer not in (adam, sgd)") == {"vit-adamw", "lost-run", "debug-run"}


def test_like(store):
    assert matching(store, "name like 'resnet%'") == {"resnet-adam-1", "resnet-adam-2", "resnet-sgd"}
    assert matching(store, "name like 'RESNET%'") == {"resnet-adam-1", "resnet-adam-2", "resnet-sgd"}
    assert matching(store, "name like 'resnet_adam_1'") == {"resnet-adam-1"}
    assert matching(store, "name not like '%sgd'") == ALL - {"resnet-sgd", "vit-sgd"}
    assert matching(store, "params.optimizer like 'adam%'") == {
        "resnet-adam-1", "resnet-adam-2", "vit-adamw", "running-1", "queued-1", "old-run"}
    assert matching(store, "tags.dataset like '%net'") == {"resnet-adam-2", "vit-adamw"}


def test_like_takes_a_word_pattern(store):
    assert matching(store, "params.optimizer like adamw") == {"vit-adamw"}


def test_is_null_and_is_not_null(store):
    assert matching(store, "metrics.loss is null") == {"queued-1"}
    assert matching(store, "metrics.loss is not null") == ALL - {"queued-1"}
    assert matching(store, "params.lr is null") == {"queued-1", "debug-run"}
    assert matching(store, "tags.team is not null") == ALL - {"vit-adamw", "queued-1", "debug-run"}
    assert matching(store, "ended is null") == {"running-1", "queued-1"}
    assert matching(store, "note is not null") == {"resnet-sgd", "nan-run"}
    assert matching(store, "duration is null") == {"queued-1"}


# -- durations and dates ------------------------------------------------------------------------

def test_created_durations_mean_within_the_last(store):
    assert matching(store, "created > 2d") == ALL - {"debug-run", "old-run"}
    assert matching(store, "created > 12d") == ALL - {"old-run"}
    assert matching(store, "created < 7d") == {"debug-run", "old-run"}
    assert matching(store, "created > 90m") == {"resnet-adam-1"}
    assert matching(store, "created > 1.5h") == {"resnet-adam-1"}
    assert matching(store, "created > 2w") == ALL - {"old-run"}
    assert matching(store, "created >= 3600s") == set()


def test_created_against_dates(store):
    assert matching(store, "created > '2001-01-01'") == ALL
    assert matching(store, "created < '2001-01-01 12:30'") == set()
    assert matching(store, "created > '9999-01-01'") == set()


def test_duration(store):
    assert matching(store, "duration > 1h") == {"vit-sgd", "vit-adamw", "running-1", "old-run"}
    assert matching(store, "duration < 5m") == {"nan-run", "inf-run", "debug-run"}
    assert matching(store, "duration < 300") == {"nan-run", "inf-run", "debug-run"}
    assert matching(store, "duration > 7h and status = running") == {"running-1"}  # still going: measured to now
    assert matching(store, "duration >= 1d") == set()


# -- field names --------------------------------------------------------------------------------

def test_backquoted_keys(store):
    assert matching(store, "metrics.`odd key` > 5") == {"vit-adamw"}
    assert matching(store, "metrics.`odd key` is not null") == {"vit-adamw", "resnet-sgd"}
    assert matching(store, "metrics.`val/acc` >= 0.9") == matching(store, "metrics.val/acc >= 0.9")
    assert matching(store, "params.`lr` = 0.01") == {"resnet-adam-2"}


def test_keys_with_slashes_and_no_spaces(store):
    assert matching(store, "metrics.val/acc<0.6") == {"nan-run"}
    assert matching(store, "metrics.val/acc>0.9 and metrics.loss<0.3") == {"vit-adamw"}


def test_unknown_keys_match_nothing(store):
    assert matching(store, "params.nope = 1") == set()
    assert matching(store, "metrics.nope is null") == ALL


# -- sorting ------------------------------------------------------------------------------------

def test_default_order_is_newest_first(store):
    assert names(store) == [
        "resnet-adam-1", "resnet-adam-2", "resnet-sgd", "vit-sgd", "vit-adamw", "nan-run", "inf-run",
        "running-1", "queued-1", "lost-run", "debug-run", "old-run",
    ]


def test_sort_ascending_missing_last(store):
    # ties (resnet-sgd and running-1 both end at 0.9) fall back to newest first;
    # NaN is stored as no value, so nan-run sorts with queued-1 (no loss at all) at the end
    assert names(store, sort="metrics.loss") == [
        "vit-adamw", "resnet-adam-2", "resnet-adam-1", "lost-run", "old-run", "vit-sgd",
        "resnet-sgd", "running-1", "debug-run", "inf-run", "nan-run", "queued-1",
    ]
    assert names(store, sort="+metrics.loss") == names(store, sort="metrics.loss")


def test_sort_descending_missing_still_last(store):
    assert names(store, sort="-metrics.loss") == [
        "inf-run", "debug-run", "resnet-sgd", "running-1", "vit-sgd", "old-run", "lost-run",
        "resnet-adam-1", "resnet-adam-2", "vit-adamw", "nan-run", "queued-1",
    ]


def test_sort_by_param_and_attribute(store):
    assert names(store, sort="-params.lr")[:3] == ["inf-run", "nan-run", "resnet-sgd"]
    assert names(store, sort="params.lr")[-2:] == ["queued-1", "debug-run"]
    assert names(store, sort="name") == sorted(ALL)
    assert names(store, sort="-name") == sorted(ALL, reverse=True)
    assert names(store, sort="created") == list(reversed(names(store)))
    assert names(store, sort="duration")[:3] == ["debug-run", "inf-run", "nan-run"]
    assert names(store, sort="duration")[-1] == "queued-1"


def test_sort_by_several_keys(store):
    got = names(store, where="params.optimizer in (adam, sgd)", sort="params.optimizer, -params.lr")
    assert got == ["old-run", "resnet-adam-2", "resnet-adam-1", "running-1", "queued-1",
                   "inf-run", "nan-run", "resnet-sgd", "vit-sgd"]


def test_where_sort_and_limit_together(store):
    conn, ids = store
    result = list_runs(conn, where="status = finished", sort="-metrics.val/acc", limit=2)
    assert result.total == 6
    assert [r["id"] for r in result.runs] == [ids["vit-adamw"], ids["old-run"]]
    assert result.runs[0]["metrics"]["val/acc"]["last"] == 0.95


def test_sort_by_backquoted_key(store):
    assert names(store, sort="-metrics.`odd key`")[:2] == ["vit-adamw", "resnet-sgd"]


# -- errors point at the right column -----------------------------------------------------------

@pytest.mark.parametrize(
    "expr, column, near",
    [
        ("", 1, "the end"),
        ("   ", 4, "the end"),
        ("params.lr >", 12, "the end"),
        ("(status = running", 18, "the end"),
        ("status = bogus", 10, "bogus"),
        ("foo = 1", 1, "foo = 1"),
        ("params.lr > 0.1 and", 20, "the end"),
        ("params.lr ! 3", 11, "! 3"),
        ("name = 'unterminated", 8, "'unterminate"),
        ("params.lr 0.1", 11, "0.1"),
        ("status in running", 11, "running"),
        ("status in (running,", 20, "the end"),
        ("status in ()", 12, ")"),
        ("name not = x", 10, "= x"),
        ("name is nul", 9, "nul"),
        ("params.lr > 1 or or x", 18, "or x"),
        ("created > yesterday", 11, "yesterday"),
        ("params.lr > 0.1 params.x = 1", 17, "params.x = 1"),
        ("name like 5", 11, "5"),
        (")", 1, ")"),
        ("params. = 1", 1, "params. = 1"),
        ("name = 'x'' OR 1=1 --'", 11, "' OR 1=1 --'"),
        ("params.lr = 1 and #", 19, "#"),
        ("name like resnet%", 17, "%"),
        ("status = and", 10, "and"),
        ("12abc = 1", 1, "12abc = 1"),
        ("params.lr = 1 and and", 19, "and"),
    ],
)
def test_where_errors_name_the_column(expr, column, near):
    with pytest.raises(UsageError) as info:
        compile_where(expr, now=1_000_000.0)
    message = str(info.value)
    assert message.startswith(f"Bad --where at column {column} (near {near!r}): "), message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_error_mentions_the_opening_parenthesis():
    with pytest.raises(UsageError, match=r"column 31 \(near 'the end'\): expected '\)' to close the '\(' at column 14"):
        compile_where("name = x and (status = running")


def test_where_errors_through_list_runs(store):
    conn, _ = store
    with pytest.raises(UsageError, match=r"^Bad --where at column 5 "):
        list_runs(conn, where="name")
    with pytest.raises(UsageError, match=r"--limit"):
        list_runs(conn, limit=-1)


@pytest.mark.parametrize(
    "spec, column",
    [
        ("bogus", 1),
        ("name, bogus", 7),
        ("-bogus", 1),
        ("name,-metrics.loss, nope", 21),
    ],
)
def test_sort_errors_name_the_column(spec, column):
    with pytest.raises(UsageError) as info:
        compile_sort(spec)
    assert str(info.value).startswith(f"Bad --sort at column {column} "), str(info.value)


@pytest.mark.parametrize("spec, column", [("name,nam", 6), ("name,", 6), ("status,tatus", 8)])
def test_sort_error_column_for_repeated_text(spec, column):
    with pytest.raises(UsageError) as info:
        compile_sort(spec)
    assert str(info.value).startswith(f"Bad --sort at column {column} "), str(info.value)


def test_unquoted_date_from_the_hint_is_accepted(store):
    assert matching(store, "created > 2001-01-01") == ALL


def test_huge_integer_is_a_plain_comparison(store):
    """A number past 64-bit integers is compared as the float it is close to, not refused."""
    assert matching(store, "params.lr < 99999999999999999999") == ALL - {"queued-1", "debug-run"}
    assert matching(store, "params.lr > 99999999999999999999") == set()
    assert matching(store, "params.lr > -99999999999999999999") == ALL - {"queued-1", "debug-run"}


# -- SQL injection ------------------------------------------------------------------------------

INJECTIONS = [
    r"name = 'x\' OR 1=1 --'",
    "name = \"x\\\" OR \\\"1\\\"=\\\"1\"",
    "name = '; DROP TABLE runs; --'",
    "name in ('a', 'b'') OR 1=1 --')",
    "params.`lr' OR 1=1 --` > 0",
    "params.`x) OR 1=1 --` is not null",
    "metrics.`loss'; DROP TABLE runs; --` < 100",
    "tags.`team = vision OR 1` = 1",
    "name like '%'' OR ''1''=''1'",
]


@pytest.mark.parametrize("expr", INJECTIONS)
def test_sql_injection_matches_nothing_and_changes_nothing(store, expr):
    before = run_count(store)
    try:
        got = matching(store, expr)
    except UsageError:
        got = set()
    assert got == set()
    assert run_count(store) == before == 12
    assert store[0].execute("SELECT count(*) FROM params").fetchone()[0] > 0


def test_doubled_quote_is_not_an_escape():
    # 'x'' is two strings, not x': a parse error, never SQL
    with pytest.raises(UsageError, match="column 11"):
        compile_where("name = 'x'' OR 1=1 --'")


def test_injection_text_is_bound_not_spliced():
    sql, params = compile_where("name = 'x\\' OR 1=1 --' and params.`a'b` = \"c\"", now=0.0)
    assert "OR 1=1" not in sql and "a'b" not in sql and "--" not in sql
    assert params == ["x' OR 1=1 --", "a'b", "c"]


def test_sort_injection_is_bound(store):
    before = run_count(store)
    evil = "params.`x) DESC; DROP TABLE runs; --`"
    order_sql, params = compile_sort(evil)
    assert "DROP" not in order_sql and params == ["x) DESC; DROP TABLE runs; --"]
    assert set(names(store, sort=evil)) == ALL
    assert run_count(store) == before


def test_a_name_with_quotes_is_found_exactly(ws):
    import mltui

    run = mltui.init(name="it's \"quoted\" -- x", workspace=ws.project_dir, flush_interval=0)
    run.finish()
    conn = open_store(ws.db_path)
    try:
        got = list_runs(conn, where=r"name = 'it\'s \"quoted\" -- x'", limit=0).runs
        assert [r["id"] for r in got] == [run.id]
        got = list_runs(conn, where="name = \"it's \\\"quoted\\\" -- x\"", limit=0).runs
        assert [r["id"] for r in got] == [run.id]
    finally:
        conn.close()


# -- property: nothing but UsageError -----------------------------------------------------------

FRAGMENTS = [
    "params.lr", "metrics.loss", "metrics.val/acc", "tags.team", "metrics.`odd key`", "status", "name",
    "created", "duration", "ended", "note", "=", "==", "!=", "<>", "<", "<=", ">", ">=", "and", "or", "not",
    "in", "like", "is", "null", "true", "false", "(", ")", ",", "'a'", '"b"', "'%'", "1", "-2.5", "1e400",
    ".5", "2d", "3h", "0.5s", "'2026-01-01'", "running", "finished", "`", "\\", "'", '"', "x", "-", "é",
    "\x00", "nan", "inf", "12abc", "params.", "metrics.``",
]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_random_text_compiles_or_raises_usage_error(text):
    try:
        sql, params = compile_where(text, now=1_000_000.0)
    except UsageError as exc:
        assert str(exc).startswith("Bad --where at column ")
        column = int(re.match(r"Bad --where at column (\d+)", str(exc)).group(1))
        assert 1 <= column <= len(text) + 1
    else:
        assert isinstance(sql, str) and isinstance(params, list)


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8).map(" ".join))
def test_token_soup_runs_or_raises_usage_error(store, text):
    conn, _ = store
    try:
        list_runs(conn, where=text, sort=None, limit=0, details=False)
    except UsageError:
        pass
    try:
        list_runs(conn, sort=text.replace(" ", ","), limit=0, details=False)
    except UsageError:
        pass
    assert run_count(store) == 12


def test_compiled_sql_is_valid_sqlite(store):
    conn, _ = store
    sql, params = compile_where(
        "(params.lr > 0.01 or metrics.`odd key` is null) and not status in (failed, killed) "
        "and name not like 'x%' and created > 2d and duration < 1w and tags.team is not null",
        now=1_000_000.0,
    )
    conn.execute(f"SELECT count(*) FROM runs WHERE {sql}", params).fetchone()
    with pytest.raises(sqlite3.ProgrammingError):  # the parameters are really parameters
        conn.execute(f"SELECT count(*) FROM runs WHERE {sql}", params[:-1]).fetchone()
