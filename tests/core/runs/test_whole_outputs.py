"""The SQL behind whole-result outputs (#18): the value types an export reads off the (key, value) index
instead of every row, and the JSON text SQLite writes for reals and run columns."""

from __future__ import annotations

import itertools
import json
import math
import random
import sqlite3
from contextlib import closing

from conftest import make_run
from mltui.core.runs.export import _PLAIN_TEXT, _dtype, runs_schema, value_types
from mltui.store import run_json
from mltui.store.opening import open_store
from mltui.store.runs import RUN_COLUMNS

# one run per kind of value; a key per mix of kinds holds, in run i, the value of kind i when its mix has it
KINDS = [None, True, 1, 7, 0.5, math.nan, "a", "[x", [1], 2**70, -3, False]


def _exact(conn: sqlite3.Connection, where_ids: list[str] | None = None) -> dict[str, set[str]]:
    """Every row's type, read row by row (what the export did before)."""
    scope = f" WHERE run_id IN ({', '.join('?' * len(where_ids))})" if where_ids else ""
    rows = conn.execute(f"SELECT key, group_concat(DISTINCT type) FROM params{scope} GROUP BY key", where_ids or [])
    return {key: set(types.split(",")) for key, types in rows}


def test_index_types_decide_every_mix_of_kinds_as_the_rows_do(ws):
    mixes = [mix for n in (1, 2, 3, 4, len(KINDS)) for mix in itertools.combinations(range(len(KINDS)), n)]
    ids = [make_run(ws.project_dir, f"kind{i}",
                    params={"k_" + "_".join(map(str, mix)): value for mix in mixes if i in mix})
           for i, value in enumerate(KINDS)]
    with closing(open_store(ws.db_path)) as conn:
        exact, fast = _exact(conn), value_types(conn, "params")
        assert set(fast) == set(exact) and len(exact) == len(mixes)
        for key in exact:  # the same column: its dtype, and whether its text needs Python
            assert (_dtype(fast[key]), fast[key] <= _PLAIN_TEXT) == (_dtype(exact[key]), exact[key] <= _PLAIN_TEXT), key
        # a filter that leaves runs out: the columns and types of the matching runs only
        names = ["kind1", "kind3", "kind4", "kind6"]
        types: dict[str, set[str]] = {}
        schema = runs_schema(conn, f"name in ({', '.join(names)})", types)
        scoped = _exact(conn, [ids[int(n[4:])] for n in names])
        assert {c.split(".", 1)[1] for c in schema if c.startswith("params.")} == set(scoped)
        for key in scoped:
            assert schema[f"params.{key}"] == _dtype(scoped[key]), key
            assert (types[f"params.{key}"] <= _PLAIN_TEXT) == (scoped[key] <= _PLAIN_TEXT), key


# SQLite reads these 15-digit texts back as the double they came from, though they are another one
MISREAD = [1.7624917436382601, 99.89951412684471, 0.009008535081462401, 9.474100321002341e-18,
           2.6716954984042003e27]


def test_real_writes_json_that_reads_back_as_the_same_double():
    rng = random.Random(18)
    values = MISREAD + [0.1, 1 / 3, -0.0, 5e-324, 2.2250738585072014e-308, 1e100, -1e100, 123456789.0, 1e16]
    values += [rng.uniform(1, 10) * 10.0 ** rng.randint(-320, 100) * rng.choice((1, -1)) for _ in range(20000)]
    values = [v for v in values if abs(v) <= 1e100]
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE t (v REAL)")
        conn.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values] + [(1e101,), (math.inf,), (None,)])
        out = [text for (text,) in conn.execute(f"SELECT {run_json.real('v')} FROM t ORDER BY rowid")]
    assert [json.loads(text) for text in out[:len(values)]] == values
    assert out[len(values):] == [run_json.BAD, '"inf"', "null"]  # past 1e100 Python writes the run


def test_run_json_knows_how_each_run_column_is_declared(ws):
    with closing(open_store(ws.db_path)) as conn:
        declared = {name: kind for _, name, kind, *_ in conn.execute("PRAGMA table_info(runs)")}
    assert set(RUN_COLUMNS) <= set(declared)
    special = run_json._JSON_COLUMNS | run_json._BOOL_COLUMNS
    assert {n for n in RUN_COLUMNS if declared[n] == "REAL"} == run_json._REAL_COLUMNS
    assert {n for n in RUN_COLUMNS if declared[n] == "INTEGER"} - special == run_json._INT_COLUMNS
    assert {n for n in RUN_COLUMNS if declared[n] == "TEXT"} - special == \
        set(RUN_COLUMNS) - special - run_json._REAL_COLUMNS - run_json._INT_COLUMNS


def test_json_of_a_few_runs_has_short_reals_and_many_runs_the_same_values(ws):
    """A usual `runs list --json` is encoded in Python (0.1, -0.0 keeps its sign); a whole result past
    PYTHON_JSON_UP_TO runs is written by SQLite with 17 digits, and decodes to the same values."""
    from mltui.core.runs.listing import iter_runs_json, select_ids

    for i in range(3):
        make_run(ws.root.parent, f"r{i}", {"acc": [0.98, 49 / 50 - i / 100], "zero": [-0.0]},
                 params={"lr": 0.1, "wd": -0.0, "n": i, "s": "x"})
    with closing(open_store(ws.db_path)) as conn:
        ids = select_ids(conn, None, None, False)
        few = [text for batch in iter_runs_json(conn, ids) for text in batch]
        many = [text for batch in iter_runs_json(conn, ids, batch=1, python_up_to=0) for text in batch]
    assert all('"lr":0.1,' in text and '"wd":-0.0}' in text and '"max":0.98,' in text for text in few)
    assert all('"lr":0.10000000000000001,' in text for text in many)  # SQLite's text: the same double
    decoded = [json.loads(text) for text in few]
    assert [json.loads(text) for text in many] == decoded
    assert [math.copysign(1, run["params"]["wd"]) for run in decoded] == [-1, -1, -1]
