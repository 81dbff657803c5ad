"""`mltui data ...` end to end: real subprocesses against a real workspace (the `cli` fixture)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import time
from pathlib import Path

import pytest

import mltui
from mltui.core.data.hashing import RACY_NS

HEX12 = r"[0-9a-f]{12}"
BAD = b"bad\xffname"
BIG = bytes(range(256)) * 16  # 4 KiB
RAW = b"\xff raw\n"  # the bytes in the file named BAD


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ok(result, code: int = 0):
    assert result.returncode == code, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def as_json(result):
    ok(result)
    return json.loads(result.stdout)


def failed(result, code: int) -> str:
    """The one-line error of a failed command."""
    assert result.returncode == code, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mltui: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def build(root: Path) -> Path:
    root.mkdir()
    (root / "train.csv").write_text("x,c\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(1, 11)))
    (root / "sub").mkdir()
    (root / "sub" / "b.bin").write_bytes(BIG)
    (root / "empty").mkdir()
    os.symlink("train.csv", root / "link")
    fd = os.open(os.fsencode(root) + b"/" + BAD, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, RAW)
    os.close(fd)
    return root


def tree(root: Path) -> dict[bytes, tuple]:
    out: dict[bytes, tuple] = {}

    def visit(folder: bytes, rel: bytes) -> None:
        for entry in os.scandir(folder):
            name = rel + b"/" + entry.name if rel else entry.name
            st = os.lstat(entry.path)
            if stat.S_ISLNK(st.st_mode):
                out[name] = ("link", os.readlink(entry.path))
            elif stat.S_ISDIR(st.st_mode):
                out[name] = ("dir",)
                visit(entry.path, name)
            else:
                with open(entry.path, "rb") as fh:
                    out[name] = ("file", fh.read())

    visit(os.fsencode(root), b"")
    return out


@pytest.fixture
def data(ws, tmp_path) -> Path:
    return build(tmp_path / "data")


@pytest.fixture
def stored(cli, data) -> dict:
    """`data` added with --store as dataset ds; returns the version (from --json)."""
    return as_json(cli("data", "add", "data", "--name", "ds", "--store", "-m", "first", "--json"))["version"]


def test_data_help(cli, ws):
    out = ok(cli("data", "--help")).stdout
    for verb in ("add", "list", "log", "show", "files", "diff", "profile", "drift", "checkout", "verify", "gc"):
        assert re.search(rf"^\s+{verb}\s", out, re.MULTILINE), verb
    assert "NAME@~1" in out
    assert "--store" in ok(cli("data", "add", "--help")).stdout
    assert "--link" in ok(cli("data", "checkout", "--help")).stdout
    missing_verb = cli("data")
    assert missing_verb.returncode == 2 and "Traceback" not in missing_verb.stderr


def test_add_text_then_json(cli, data):
    first = ok(cli("data", "add", "data", "--name", "ds", "-m", "first"))
    lines = first.stdout.splitlines()
    assert re.fullmatch(rf"ds@({HEX12})  \(new version 1\): 3 files, [0-9.]+ [KkM]?i?B", lines[0]), lines[0]
    label_id = re.match(rf"ds@({HEX12})", lines[0]).group(1)
    assert re.fullmatch(r"hashed 3 files \(.+\), 0 unchanged, in [0-9.]+ s", lines[1]), lines[1]

    again = as_json(cli("data", "add", "data", "--name", "ds", "--json"))
    assert again["created"] is False
    v = again["version"]
    assert v["id"].startswith(label_id) and len(v["id"]) == 64 and v["label"] == f"ds@{label_id}"
    assert (v["dataset"], v["seq"], v["parent"], v["message"], v["files"]) == ("ds", 1, None, "first", 3)
    assert v["bytes"] == 4 + sum(len(f"{i},{'ab'[i % 2]}\n") for i in range(1, 11)) + len(BIG) + len(RAW)
    assert v["source"] == str(data.resolve()) and v["stored"] is False
    assert again["hashed_files"] + again["unchanged_files"] == 3
    text_again = ok(cli("data", "add", "data", "--name", "ds"))
    assert f"ds@{label_id}  (unchanged; already version 1)" in text_again.stdout


def test_list_and_log(cli, data):
    assert "No datasets yet" in ok(cli("data", "list")).stdout
    assert as_json(cli("data", "list", "--json")) == []
    v1 = as_json(cli("data", "add", "data", "--name", "ds", "-m", "first", "--json"))["version"]
    (data / "train.csv").write_text("x,c\n1,a\n")
    v2 = as_json(cli("data", "add", "data", "--name", "ds", "--store", "-m", "second", "--json"))["version"]
    as_json(cli("data", "add", "data/sub", "--name", "other", "--json"))

    listed = as_json(cli("data", "list", "--json"))
    assert [(d["name"], d["versions"], d["latest"]["id"]) for d in listed] == [
        ("ds", 2, v2["id"]), ("other", 1, listed[1]["latest"]["id"])]
    text = ok(cli("data", "list")).stdout.splitlines()
    assert text[0].split() == ["NAME", "VERSIONS", "LATEST", "FILES", "SIZE", "ADDED", "MESSAGE"]
    assert text[1].split()[:4] == ["ds", "2", "v2", v2["id"][:12]] and text[1].endswith("second")
    assert text[2].split()[:3] == ["other", "1", "v1"]

    log = as_json(cli("data", "log", "ds", "--json"))
    assert [(v["seq"], v["id"], v["parent"], v["message"], v["stored"]) for v in log] == [
        (2, v2["id"], v1["id"], "second", True), (1, v1["id"], None, "first", False)]
    rows = ok(cli("data", "log", "ds")).stdout.splitlines()
    assert rows[0].split()[:5] == ["VERSION", "ID", "FILES", "SIZE", "STORED"]
    assert rows[1].split()[:2] == ["v2", v2["id"][:12]] and " yes " in rows[1] and rows[1].endswith("second")
    assert rows[2].split()[:2] == ["v1", v1["id"][:12]] and " no " in rows[2] and rows[2].endswith("first")
    assert len(rows) == 3


def test_show_lists_the_runs_that_used_a_version(cli, ws, data, stored, tmp_path):
    shown = ok(cli("data", "show", "ds")).stdout
    assert shown.startswith(f"ds@{stored['id'][:12]}  version 1 of ds\n")
    assert f"  id       {stored['id']}" in shown
    assert "stored in the cache" in shown and "tables   train.csv" in shown
    assert "No run has used this version." in shown

    run = mltui.init(name="trainer", workspace=tmp_path)
    assert run.use_dataset("ds") == stored["id"]
    run.finish()
    moving = mltui.init(name="mover", workspace=tmp_path)
    moving.use_dataset("ds")
    (data / "train.csv").write_text("x,c\n99,z\n")
    moving.finish()

    shown = ok(cli("data", "show", f"ds@{stored['id'][:8]}")).stdout
    assert "Used by 2 runs:" in shown
    trainer_row = next(line for line in shown.splitlines() if line.startswith(run.id))
    mover_row = next(line for line in shown.splitlines() if line.startswith(moving.id))
    assert trainer_row.split()[1:4] == ["trainer", "finished", "explicit"] and trainer_row.rstrip().endswith("-")
    assert "changed on disk during the run" in mover_row
    got = as_json(cli("data", "show", "ds@v1", "--json"))
    assert got["version"]["id"] == stored["id"] and got["tables"] == ["train.csv"]
    assert {(r["id"], r["name"], r["how"], r["changed"]) for r in got["runs"]} == {
        (run.id, "trainer", "explicit", False), (moving.id, "mover", "explicit", True)}


def test_files_json_with_a_non_utf8_name(cli, data, stored):
    entries = as_json(cli("data", "files", "ds", "--json"))
    assert [(e["path"], e["kind"]) for e in entries] == [
        ("bad\\xffname", "file"), ("empty", "dir"), ("link", "link"), ("sub/b.bin", "file"), ("train.csv", "file")]
    by = {e["path"]: e for e in entries}
    assert by["bad\\xffname"]["sha256"] == sha(RAW) and by["bad\\xffname"]["size"] == len(RAW)
    assert by["link"]["target"] == "train.csv" and by["link"]["sha256"] is None
    assert by["sub/b.bin"]["sha256"] == sha(BIG)
    text = ok(cli("data", "files", "ds")).stdout
    assert "bad\\xffname" in text and "link -> train.csv" in text and "empty/" in text


def test_diff_finds_a_renamed_file_by_its_bytes(cli, data, stored):
    (data / "moved").mkdir()
    (data / "sub" / "b.bin").rename(data / "moved" / "b.bin")
    (data / "train.csv").write_text("x,c\n1,a\n")
    (data / "new.txt").write_text("new\n")
    os.unlink(data / "link")
    as_json(cli("data", "add", "data", "--name", "ds", "--json"))
    d = as_json(cli("data", "diff", "ds@v1", "ds", "--json"))
    assert d["renamed"] == [{"from": "sub/b.bin", "to": "moved/b.bin", "size": len(BIG)}]
    assert [(e["path"], e["kind"]) for e in d["added"]] == [("new.txt", "file"), ("sub", "dir")]  # sub is empty now
    assert [e["path"] for e in d["removed"]] == ["link"] and d["removed"][0]["target"] == "train.csv"
    assert [(m["path"], m["size_b"]) for m in d["modified"]] == [("train.csv", 8)]
    text = ok(cli("data", "diff", "ds@~1", "ds@latest")).stdout.splitlines()
    assert text[0] == f"ds@{stored['id'][:12]} -> ds@{d['b']['id'][:12]}: 2 added, 1 removed, 1 modified, 1 renamed"
    assert any(line.startswith("  R sub/b.bin -> moved/b.bin  (") for line in text)
    assert any(line.startswith("  + new.txt") for line in text)
    assert any(line.startswith("  - link") for line in text)
    assert any(line.startswith("  M train.csv") for line in text)
    same = as_json(cli("data", "diff", "ds", "ds", "--json"))
    assert (same["added"], same["removed"], same["modified"], same["renamed"]) == ([], [], [], [])


def test_profile(cli, data, stored):
    got = as_json(cli("data", "profile", "ds", "--json"))
    assert (got["path"], got["rows"], got["version"]["id"]) == ("train.csv", 10, stored["id"])
    x, c = got["columns"]
    assert (x["name"], x["min"], x["max"], x["mean"]) == ("x", 1.0, 10.0, 5.5)
    assert x["std"] == pytest.approx(math.sqrt(82.5 / 9))
    assert c["top"] == [["a", 5], ["b", 5]]
    text = ok(cli("data", "profile", "ds", "--file", "train.csv")).stdout
    assert "train.csv: 10 rows, 2 columns" in text
    x_row = r"^x\s+Int64\s+0\s+min 1\s+p25 3\.25\s+p50 5\.5\s+p75 7\.75\s+max 10\s+mean 5\.5"
    assert re.search(x_row, text, re.MULTILINE), text
    assert re.search(r"^c\s+String\s+0\s+a: 5\s+b: 5", text, re.MULTILINE)
    assert failed(cli("data", "profile", "ds", "--file", "nope.csv"), 1).startswith("mltui: ")


def test_drift_json(cli, ws, tmp_path):
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "t.csv").write_text("x,c\n" + "".join(f"{i},a\n" for i in range(1, 11)))
    ok(cli("data", "add", "tables", "--name", "tb", "--store"))
    (tables / "t.csv").write_text("x,c\n" + "".join(f"{i},{'a' if i <= 15 else 'b'}\n" for i in range(11, 21)))
    ok(cli("data", "add", "tables", "--name", "tb", "--store"))
    got = as_json(cli("data", "drift", "tb@v1", "tb@v2", "--json"))
    [t] = got["tables"]
    assert (t["path_a"], t["path_b"], t["rows_a"], t["rows_b"], t["same_bytes"]) == ("t.csv", "t.csv", 10, 10, False)
    x, c = t["columns"]
    # A's deciles are 1.9 .. 9.1; every B value (11..20) is in the last bin: nine empty bins and 0.1 -> 1.0
    assert x["name"] == "x"
    assert x["shares_b"] == pytest.approx([0.0] * 9 + [1.0])
    assert x["psi"] == pytest.approx(9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1) + 0.9 * math.log(10))
    assert x["ks"] == 1.0  # every A value is below every B value
    # c: a 1.0 -> 0.5, b 0 -> 0.5
    assert c["psi"] == pytest.approx((0.5 - 1.0) * math.log(0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4))
    # equal moves (0.5 each) keep the order of the categories by overall share: a (1.5) before b (0.5)
    assert [(ch["value"], ch["a"], ch["b"], ch["change"]) for ch in c["changes"]] == [
        ("a", 1.0, 0.5, -0.5), ("b", 0.0, 0.5, 0.5)]
    text = ok(cli("data", "drift", "tb@~1", "tb")).stdout
    assert "t.csv: 10 -> 10 rows" in text
    assert re.search(r"^x\s+number\s+8\.283\s", text, re.MULTILINE), text


def test_checkout_then_compare_bytes(cli, data, stored, tmp_path):
    got = as_json(cli("data", "checkout", "ds", "out", "--json"))
    assert got["dest"] == str(tmp_path / "out") and got["files"] == 3
    assert tree(tmp_path / "out") == tree(data)
    text = ok(cli("data", "checkout", "ds@v1", "out2", "--link", "hardlink")).stdout
    assert re.fullmatch(rf"ds@{stored['id'][:12]} -> {re.escape(str(tmp_path / 'out2'))}: 3 files, .+ verified "
                        r"\(3 hardlink\)\n", text), text
    assert tree(tmp_path / "out2") == tree(data)


def test_verify_reports_a_corrupted_object(cli, ws, data, stored):
    assert "all 3 files are in the cache and intact" in ok(cli("data", "verify", "ds")).stdout
    obj = ws.root / "cache" / sha(BIG)[:2] / sha(BIG)[2:]
    os.chmod(obj, 0o644)
    obj.write_bytes(BIG[::-1])  # same size, other bytes
    bad = cli("data", "verify", "ds")
    assert bad.returncode == 1
    assert "1 of 3 files are damaged or missing" in bad.stdout
    row = next(line for line in bad.stdout.splitlines() if line.startswith("sub/b.bin"))
    assert sha(BIG)[:12] in row and "corrupt" in row
    got = json.loads(ok(cli("data", "verify", "ds", "--json"), 1).stdout)
    assert got["ok"] is False
    assert got["problems"] == [
        {"path": "sub/b.bin", "sha256": sha(BIG), "problem": "corrupt: its sha256 no longer matches"}]
    # and checkout refuses it, leaving nothing
    failed(cli("data", "checkout", "ds", "restored"), 1)
    assert not (data.parent / "restored").exists()


def test_verify_repair_puts_back_what_the_source_still_holds(cli, ws, data, stored):
    def obj(content: bytes) -> Path:
        return ws.root / "cache" / sha(content)[:2] / sha(content)[2:]

    big, raw = obj(BIG), obj(RAW)
    os.chmod(big, 0o644)
    big.write_bytes(BIG[::-1])  # damaged
    raw.unlink()  # missing (its file's name is not UTF-8)
    csv = (data / "train.csv").read_bytes()
    obj(csv).unlink()
    (data / "train.csv").write_bytes(csv.replace(b"1,b", b"1,a", 1))  # the source changed: same size, other bytes

    plain = cli("data", "verify", "ds")
    assert plain.returncode == 1 and "verify --repair" in plain.stdout
    fixed = cli("data", "verify", "ds", "--repair")
    assert fixed.returncode == 1, fixed.stderr
    assert "put back 2 damaged or missing file(s) from " in fixed.stdout
    assert "1 of 3 files are damaged or missing" in fixed.stdout
    row = next(line for line in fixed.stdout.splitlines() if line.startswith("train.csv"))
    assert "missing; the source holds other bytes now" in row
    for path, content in ((big, BIG), (raw, RAW)):  # whole again, read-only like every object
        assert path.read_bytes() == content and stat.S_IMODE(path.stat().st_mode) == 0o444

    again = json.loads(ok(cli("data", "verify", "ds", "--repair", "--json"), 1).stdout)
    assert again["ok"] is False and again["repaired"] == []
    assert again["problems"] == [{"path": "train.csv", "sha256": sha(csv),
                                  "problem": "missing; the source holds other bytes now"}]
    (data / "train.csv").write_bytes(csv)  # the source holds the recorded bytes again
    done = as_json(cli("data", "verify", "ds", "--repair", "--json"))
    assert done["ok"] is True and [p["path"] for p in done["repaired"]] == ["train.csv"]
    assert ok(cli("data", "verify", "ds")).returncode == 0
    ok(cli("data", "checkout", "ds", "restored", "--link", "copy"))
    assert tree(data.parent / "restored") == tree(data)


def test_gc_dry_run_then_gc(cli, ws, data, stored):
    orphan = b"bytes no version refers to\n"
    obj = ws.root / "cache" / sha(orphan)[:2] / sha(orphan)[2:]
    obj.parent.mkdir(exist_ok=True)
    obj.write_bytes(orphan)
    temp = ws.root / "cache" / "tmp" / "leftover.part"
    temp.write_bytes(b"half")
    old = time.time() - 2 * 3600
    os.utime(temp, (old, old))

    dry = as_json(cli("data", "gc", "--dry-run", "--json"))
    assert dry == {"dry_run": True, "removed": 1, "freed": len(orphan), "kept": 3, "temporary_files": 1}
    assert obj.exists() and temp.exists()
    text = ok(cli("data", "gc", "--dry-run")).stdout
    assert text.startswith("would remove 1 objects (")
    assert "1 leftover temporary files; 3 objects are still needed" in text

    text = ok(cli("data", "gc")).stdout
    assert text.startswith("removed 1 objects (")
    assert not obj.exists() and not temp.exists()
    assert as_json(cli("data", "gc", "--json")) == {"dry_run": False, "removed": 0, "freed": 0, "kept": 3,
                                                     "temporary_files": 0}
    assert ok(cli("data", "verify", "ds")).returncode == 0


BAD_INPUTS = [
    (("data", "show", "nope"), 1, "no dataset named 'nope'"),
    (("data", "log", "nope"), 1, "no dataset named 'nope'"),
    (("data", "files", "nope@v1"), 1, "no dataset named 'nope'"),
    (("data", "show", "ds@zz"), 2, "after @ give latest, ~N, vN or at least 4 hex digits"),
    (("data", "show", "ds@ABCD"), 2, "after @"),
    (("data", "show", "ds@v9"), 1, "no version 9"),
    (("data", "show", "ds@~5"), 1, "goes back 5 versions"),
    (("data", "diff", "ds", "ds@0000000000"), 1, "starts with 0000000000"),
    (("data", "add", "data", "--name", "a b"), 2, "'a b' is not a usable dataset name"),
    (("data", "add", "missing", "--name", "q"), 1, "There is no file or folder"),
    (("data", "add", ".mltui", "--name", "q"), 2, "inside the workspace folder"),
    (("data", "checkout", "ds", "busy"), 2, "already exists and is not an empty folder"),
    (("data", "profile", "ds", "--file", "nope.csv"), 1, "no table 'nope.csv'"),
]


def test_bad_inputs(cli, data, stored, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep me\n")
    for args, code, words in BAD_INPUTS:
        line = failed(cli(*args), code)
        assert words in line, (args, line)
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["mine.txt"]
    assert (tmp_path / "busy" / "mine.txt").read_text() == "keep me\n"
    assert [p.name for p in tmp_path.iterdir() if ".mltui-" in p.name] == []
    bad_link = cli("data", "checkout", "ds", "x", "--link", "symlink")  # argparse's own usage error
    assert bad_link.returncode == 2 and "invalid choice" in bad_link.stderr and not (tmp_path / "x").exists()
    assert [v["seq"] for v in as_json(cli("data", "log", "ds", "--json"))] == [1]  # nothing was recorded


def test_a_malformed_spec_is_bad_usage_even_for_an_unknown_dataset(cli, ws):
    result = cli("data", "show", "x@zz")
    line = failed(result, 2)
    assert "zz" in line


def test_commands_outside_a_workspace_fail_cleanly(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("data", "list")
    assert result.returncode == 2 and result.stderr.startswith("mltui: ")


def test_the_stat_cache_speeds_up_a_second_add(cli, data):
    time.sleep(RACY_NS / 1e9 + 0.1)
    first = as_json(cli("data", "add", "data", "--name", "ds", "--json"))
    assert (first["hashed_files"], first["unchanged_files"]) == (3, 0)
    second = as_json(cli("data", "add", "data", "--name", "ds", "--json"))
    assert (second["hashed_files"], second["hashed_bytes"], second["unchanged_files"]) == (0, 0, 3)
