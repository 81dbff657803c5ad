"""Dataset versions against real files and a real SQLite store: ids, the stat cache, checkout, verify,
gc, odd file names and links, files that change while hashed, history and lineage."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

import mltui
from mltui.core.data import versions as datasets_module
from mltui.core.data import hashing
from mltui.core.data.ops import checkout, gc, verify
from mltui.core.data.versions import (
    add,
    cache_of,
    current_id,
    files,
    list_datasets,
    resolve,
    versions,
)
from mltui.base.errors import MltuiError, NotFound, UsageError
from mltui.core.data.hashing import Entry, FileChanged, hash_file, manifest_id
from mltui.core.data.lineage import inputs_of, runs_using
from mltui.store.opening import open_store

BAD = b"bad\xffname"  # not UTF-8
BAD_BYTES = b"\xff\xfe not utf-8 \x00\n"  # what the file of that name holds


@pytest.fixture
def conn(ws):
    with closing(open_store(ws.db_path)) as c:
        yield c


def settle() -> None:
    """Wait until files just written are older than hashing.RACY_NS, so the stat cache may keep them."""
    time.sleep(hashing.RACY_NS / 1e9 + 0.1)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_raw(path: bytes, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_raw(path: bytes) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


BIG = bytes(range(256)) * 40  # 10 KiB


def build_tree(root: Path) -> Path:
    """Files (one duplicated, one empty, one with a non-UTF-8 name), links (inside, dangling) and empty folders."""
    root.mkdir()
    (root / "a.txt").write_bytes(b"alpha\n")
    (root / "sub").mkdir()
    (root / "sub" / "b.bin").write_bytes(BIG)
    (root / "sub" / "same.txt").write_bytes(b"alpha\n")  # same bytes as a.txt
    (root / "empty.dat").write_bytes(b"")
    (root / "hollow" / "deeper").mkdir(parents=True)  # only the innermost folder is empty
    (root / "nothing").mkdir()
    os.symlink("sub/b.bin", root / "to_b")
    os.symlink("../nowhere/at/all", root / "dangling")
    write_raw(os.fsencode(root) + b"/" + BAD, BAD_BYTES)
    return root


def tree(root: Path) -> dict[bytes, tuple]:
    """Everything under root, by relative bytes path: ("file", bytes), ("link", target) or ("dir",)."""
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
                assert stat.S_ISREG(st.st_mode), name
                out[name] = ("file", read_raw(entry.path))

    visit(os.fsencode(root), b"")
    return out


def leftovers(parent: Path) -> list[str]:
    """Half-built checkouts (`.NAME.mltui-XXXX`) beside a destination."""
    return [p.name for p in parent.iterdir() if ".mltui-" in p.name]


def objects(ws) -> dict[str, Path]:
    return dict(cache_of(ws).objects())


def by_path(entries: list[Entry]) -> dict[bytes, Entry]:
    return {e.path: e for e in entries}


# -- ids --------------------------------------------------------------------------------------------
def test_unchanged_data_gives_the_same_id_and_no_new_version(ws, conn, tmp_path):
    data = build_tree(tmp_path / "data")
    first = add(ws, conn, data, "ds", message="first")
    assert first.created and first.version.seq == 1 and first.version.parent is None
    assert first.version.files == 4 + 1  # a.txt, b.bin, same.txt, empty.dat, bad name
    assert first.version.bytes == 6 + len(BIG) + 6 + 0 + len(BAD_BYTES) == 10_267
    assert first.version.label == "ds@" + first.version.id[:12]

    again = add(ws, conn, data, "ds", message="again")
    assert not again.created
    assert again.version.id == first.version.id
    assert again.version.seq == 1 and again.version.message == "first"
    assert [v.id for v in versions(conn, "ds")] == [first.version.id]
    # the id is the manifest's: recomputed from the recorded entries it is the same
    assert manifest_id(files(conn, first.version.id)) == first.version.id


def test_touched_but_identical_file_keeps_the_id_and_is_rehashed(ws, conn, tmp_path):
    data = build_tree(tmp_path / "data")
    settle()
    first = add(ws, conn, data, "ds")
    assert first.hashed_files == 5
    st = os.stat(data / "a.txt")
    os.utime(data / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns - 5_000_000_000))  # touched, bytes unchanged
    again = add(ws, conn, data, "ds")
    assert not again.created
    assert again.version.id == first.version.id
    assert again.hashed_files == 1 and again.hashed_bytes == 6
    assert again.cached_files == 4


def test_one_byte_change_changes_the_id(ws, conn, tmp_path):
    data = build_tree(tmp_path / "data")
    settle()
    v1 = add(ws, conn, data, "ds").version
    content = bytearray(BIG)
    content[5000] ^= 0x01  # one bit of one byte, same size
    (data / "sub" / "b.bin").write_bytes(bytes(content))
    second = add(ws, conn, data, "ds")
    assert second.created
    assert second.version.id != v1.id
    assert second.hashed_files == 1  # only the changed file was read again
    assert second.version.seq == 2 and second.version.parent == v1.id
    assert by_path(files(conn, second.version.id))[b"sub/b.bin"].sha256 == sha(bytes(content))
    assert by_path(files(conn, v1.id))[b"sub/b.bin"].sha256 == sha(BIG)


def test_same_content_in_another_folder_has_the_same_id(ws, conn, tmp_path):
    data = build_tree(tmp_path / "data")
    elsewhere = tmp_path / "far" / "away"
    elsewhere.parent.mkdir()
    shutil.copytree(data, elsewhere, symlinks=True)
    os.utime(elsewhere / "a.txt", ns=(1, 1))  # timestamps are not content
    v = add(ws, conn, data, "ds").version
    same = add(ws, conn, elsewhere, "ds")
    assert not same.created and same.version.id == v.id
    other_name = add(ws, conn, elsewhere, "copy")
    assert other_name.created and other_name.version.id == v.id
    assert other_name.version.source == str(elsewhere.resolve())
    assert current_id(ws, conn, elsewhere) == v.id
    # and a renamed file is a different manifest
    (elsewhere / "a.txt").rename(elsewhere / "a2.txt")
    assert current_id(ws, conn, elsewhere) != v.id


def test_stat_cache_skips_unchanged_files(ws, conn, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        (data / f"f{i}.txt").write_bytes(f"file {i}\n".encode() * (i + 1))
    settle()
    first = add(ws, conn, data, "ds")
    assert (first.hashed_files, first.cached_files) == (6, 0)
    again = add(ws, conn, data, "ds")
    assert (again.hashed_files, again.hashed_bytes, again.cached_files) == (0, 0, 6)
    assert again.version.id == first.version.id

    (data / "f3.txt").write_bytes(b"changed, and longer than before\n")
    settle()
    third = add(ws, conn, data, "ds")
    assert (third.hashed_files, third.cached_files) == (1, 5) and third.created
    assert add(ws, conn, data, "ds").hashed_files == 0

    # a file whose mtime is not clearly in the past (here: in the future) is never trusted from the cache
    future = time.time_ns() + 3600 * 10**9
    os.utime(data / "f0.txt", ns=(future, future))
    settle()
    fourth = add(ws, conn, data, "ds")
    assert fourth.hashed_files == 1 and not fourth.created
    fifth = add(ws, conn, data, "ds")
    assert fifth.hashed_files == 1 and fifth.cached_files == 5


def test_stat_cache_is_not_fooled_by_a_file_replaced_with_the_same_size_and_mtime(ws, conn, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.txt").write_bytes(b"one\n")
    settle()
    v1 = add(ws, conn, data, "ds").version
    st = os.stat(data / "x.txt")
    # write-to-temp-then-rename, keeping the old timestamp (as rsync -t and many tools do)
    (data / "x.tmp").write_bytes(b"two\n")
    os.utime(data / "x.tmp", ns=(st.st_atime_ns, st.st_mtime_ns))
    (data / "x.tmp").rename(data / "x.txt")
    now = os.stat(data / "x.txt")
    assert (now.st_size, now.st_mtime_ns) == (st.st_size, st.st_mtime_ns) and now.st_ino != st.st_ino
    second = add(ws, conn, data, "ds")
    assert second.hashed_files == 1
    assert second.created and second.version.id != v1.id
    assert by_path(files(conn, second.version.id))[b"x.txt"].sha256 == sha(b"two\n")


def test_stat_cache_notices_an_in_place_rewrite_with_the_mtime_put_back(ws, conn, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_bytes(b"hello\n")
    settle()
    v1 = add(ws, conn, data, "ds").version
    st = os.stat(data / "f.txt")
    with open(data / "f.txt", "r+b") as fh:
        fh.write(b"J")  # "Jello\n": same size, same inode
    os.utime(data / "f.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    second = add(ws, conn, data, "ds")
    assert by_path(files(conn, second.version.id))[b"f.txt"].sha256 == sha(b"Jello\n")
    assert second.created and second.version.id != v1.id


# -- checkout ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("link", ["copy", "hardlink", "auto"])
def test_checkout_restores_a_byte_identical_tree(ws, conn, tmp_path, link):
    data = build_tree(tmp_path / "data")
    original = tree(data)
    v = add(ws, conn, data, "ds", store=True).version
    assert v.stored
    dest = tmp_path / "out" / "restored"
    result = checkout(ws, conn, v, dest, link=link)
    assert result.dest == dest and result.files == 5 and result.bytes == v.bytes
    assert sum(result.how.values()) == 5
    got = tree(dest)
    assert got == original
    assert got[b"to_b"] == ("link", b"sub/b.bin") and got[b"dangling"] == ("link", b"../nowhere/at/all")
    assert got[b"nothing"] == ("dir",) and got[b"hollow/deeper"] == ("dir",)
    assert got[BAD] == ("file", BAD_BYTES) and got[b"empty.dat"] == ("file", b"")
    cache = cache_of(ws)
    for path, kind in original.items():
        if kind[0] != "file":
            continue
        obj = os.stat(cache.path(sha(kind[1])))
        mine = os.stat(os.fsencode(dest) + b"/" + path)
        if link == "hardlink":
            assert mine.st_ino == obj.st_ino and mine.st_dev == obj.st_dev, path
            assert stat.S_IMODE(mine.st_mode) == 0o444
        else:
            assert mine.st_ino != obj.st_ino, path  # an independent file: editing it cannot damage the cache
    if link == "hardlink":
        assert result.how == {"hardlink": 5}
    elif link == "copy":
        assert result.how == {"copy": 5}
    else:
        assert set(result.how) <= {"reflink", "copy"}
    assert leftovers(dest.parent) == []
    assert verify(ws, conn, v) == []


def test_checkout_into_an_existing_empty_folder(ws, conn, tmp_path):
    data = build_tree(tmp_path / "data")
    v = add(ws, conn, data, "ds", store=True).version
    dest = tmp_path / "empty_dest"
    dest.mkdir()
    checkout(ws, conn, v, dest, link="copy")
    assert tree(dest) == tree(data)


def test_checkout_into_a_non_empty_folder_is_refused_and_leaves_it_alone(ws, conn, tmp_path):
    data = build_tree(tmp_path / "data")
    v = add(ws, conn, data, "ds", store=True).version
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_bytes(b"mine\n")
    before = tree(dest)
    with pytest.raises(UsageError, match="not an empty folder"):
        checkout(ws, conn, v, dest)
    assert tree(dest) == before
    a_file = tmp_path / "a_file"
    a_file.write_bytes(b"x")
    with pytest.raises(UsageError):
        checkout(ws, conn, v, a_file)
    assert a_file.read_bytes() == b"x"
    with pytest.raises(UsageError, match="--link"):
        checkout(ws, conn, v, tmp_path / "new", link="symlink")
    assert not (tmp_path / "new").exists()
    assert leftovers(tmp_path) == []


def test_checkout_of_a_single_file_version(ws, conn, tmp_path):
    single = tmp_path / "one.csv"
    single.write_bytes(b"a,b\n1,2\n")
    v = add(ws, conn, single, "one", store=True).version
    assert [(e.path, e.kind, e.size) for e in files(conn, v.id)] == [(b"one.csv", "file", 8)]
    checkout(ws, conn, v, tmp_path / "dest", link="copy")
    assert tree(tmp_path / "dest") == {b"one.csv": ("file", b"a,b\n1,2\n")}


# -- verify and damaged caches -----------------------------------------------------------------------
@pytest.mark.parametrize("same_size", [True, False])
def test_corrupted_object_is_reported_and_refused(ws, conn, tmp_path, same_size):
    data = build_tree(tmp_path / "data")
    v = add(ws, conn, data, "ds", store=True).version
    obj = cache_of(ws).path(sha(BIG))
    assert stat.S_IMODE(obj.stat().st_mode) == 0o444
    os.chmod(obj, 0o644)
    damaged = bytearray(BIG)
    damaged[100] ^= 0xFF
    obj.write_bytes(bytes(damaged) if same_size else BIG[:-1])

    problems = verify(ws, conn, v)
    assert [(p["path"], p["sha256"]) for p in problems] == [("sub/b.bin", sha(BIG))]
    if same_size:
        assert problems[0]["problem"] == "corrupt: its sha256 no longer matches"
    else:
        assert problems[0]["problem"].startswith("corrupt: 10,239 bytes where 10,240 were stored")

    for link in ("copy", "hardlink", "auto"):
        dest = tmp_path / f"out_{link}"
        with pytest.raises(MltuiError, match="sha256|damaged"):
            checkout(ws, conn, v, dest, link=link)
        assert not dest.exists()
    assert leftovers(tmp_path) == []


def test_deleted_object_is_reported_missing(ws, conn, tmp_path):
    data = build_tree(tmp_path / "data")
    v = add(ws, conn, data, "ds", store=True).version
    cache_of(ws).path(sha(BIG)).unlink()
    problems = verify(ws, conn, v)
    assert problems == [{"path": "sub/b.bin", "sha256": sha(BIG), "problem": "missing"}]

    # the source still holds the bytes: checkout takes them from there, verified
    dest = tmp_path / "from_source"
    result = checkout(ws, conn, v, dest, link="copy")
    assert result.how == {"copy": 4, "source": 1}
    assert tree(dest) == tree(data)

    # once the source has changed too, nothing can be restored and nothing is left behind
    (data / "sub" / "b.bin").write_bytes(b"other bytes")
    with pytest.raises(MltuiError, match="neither in the cache nor at the source"):
        checkout(ws, conn, v, tmp_path / "gone", link="copy")
    assert not (tmp_path / "gone").exists()
    # same size, other bytes at the source: the copy's hash check refuses it
    (data / "sub" / "b.bin").write_bytes(bytes(len(BIG)))
    with pytest.raises(MltuiError, match="sha256"):
        checkout(ws, conn, v, tmp_path / "gone", link="copy")
    assert not (tmp_path / "gone").exists()
    assert leftovers(tmp_path) == []


def test_version_added_without_store_is_all_missing(ws, conn, tmp_path):
    data = build_tree(tmp_path / "data")
    v = add(ws, conn, data, "ds").version
    assert not v.stored and objects(ws) == {}
    assert {p["path"]: p["problem"] for p in verify(ws, conn, v)} == {
        "a.txt": "missing", "sub/b.bin": "missing", "sub/same.txt": "missing", "empty.dat": "missing",
        "bad\\xffname": "missing"}
    # storing the same data later marks the version stored, without a new version
    again = add(ws, conn, data, "ds", store=True)
    assert not again.created and again.version.stored and again.version.id == v.id
    assert verify(ws, conn, again.version) == []


# -- names, empties and links -----------------------------------------------------------------------
def test_non_utf8_names_survive_add_and_checkout(ws, conn, tmp_path):
    top = os.fsencode(tmp_path) + b"/rawdata"
    os.mkdir(top)
    os.mkdir(top + b"/dir\xe9")
    write_raw(top + b"/" + BAD, b"payload \xff\n")
    write_raw(top + b"/dir\xe9/inner\x80.bin", b"\x80\x81")
    os.symlink(b"dir\xe9/inner\x80.bin", top + b"/lnk\xfa")
    settle()
    v = add(ws, conn, os.fsdecode(top), "raw", store=True).version
    entries = by_path(files(conn, v.id))
    assert set(entries) == {BAD, b"dir\xe9/inner\x80.bin", b"lnk\xfa"}
    assert entries[BAD].sha256 == sha(b"payload \xff\n")
    assert entries[b"lnk\xfa"].kind == "link" and entries[b"lnk\xfa"].target == b"dir\xe9/inner\x80.bin"
    assert add(ws, conn, os.fsdecode(top), "raw").hashed_files == 0  # the stat cache keys raw paths too
    dest = os.fsencode(tmp_path) + b"/out\xff"
    checkout(ws, conn, v, os.fsdecode(dest), link="copy")
    assert sorted(os.listdir(dest)) == sorted([BAD, b"dir\xe9", b"lnk\xfa"])
    assert read_raw(dest + b"/" + BAD) == b"payload \xff\n"
    assert read_raw(dest + b"/dir\xe9/inner\x80.bin") == b"\x80\x81"
    assert os.readlink(dest + b"/lnk\xfa") == b"dir\xe9/inner\x80.bin"
    assert tree(Path(os.fsdecode(dest))) == tree(Path(os.fsdecode(top)))
    assert verify(ws, conn, v) == []


def test_a_dataset_folder_whose_own_name_is_not_utf8_can_be_added(ws, conn, tmp_path):
    top = os.fsencode(tmp_path) + b"/raw\xfedata"
    os.mkdir(top)
    write_raw(top + b"/f.txt", b"f\n")
    v = add(ws, conn, os.fsdecode(top), "raw", store=True).version
    assert [e.path for e in files(conn, v.id)] == [b"f.txt"]
    checkout(ws, conn, v, tmp_path / "out")
    assert (tmp_path / "out" / "f.txt").read_bytes() == b"f\n"


def test_empty_files_and_empty_folders_are_recorded(ws, conn, tmp_path):
    data = tmp_path / "data"
    (data / "a" / "b" / "c").mkdir(parents=True)
    (data / "e").mkdir()
    (data / "zero").write_bytes(b"")
    (data / "e2").mkdir()
    (data / "e2" / "zero2").write_bytes(b"")
    v = add(ws, conn, data, "ds", store=True).version
    entries = [(e.path, e.kind, e.size, e.sha256) for e in files(conn, v.id)]
    assert entries == [(b"a/b/c", "dir", 0, None), (b"e", "dir", 0, None), (b"e2/zero2", "file", 0, sha(b"")),
                       (b"zero", "file", 0, sha(b""))]
    assert (v.files, v.bytes) == (2, 0)
    # an empty folder more is a different version
    (data / "e3").mkdir()
    assert add(ws, conn, data, "ds").version.id != v.id
    checkout(ws, conn, v, tmp_path / "out")
    assert tree(tmp_path / "out") == {b"a": ("dir",), b"a/b": ("dir",), b"a/b/c": ("dir",), b"e": ("dir",),
                                      b"e2": ("dir",), b"e2/zero2": ("file", b""), b"zero": ("file", b"")}


def test_links_are_recorded_and_never_followed_out_of_the_tree(ws, conn, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not part of the dataset\n")
    (outside / "deep").mkdir()
    (outside / "deep" / "more.txt").write_bytes(b"nor this\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "real.txt").write_bytes(b"real\n")
    os.symlink(outside, data / "out_dir")
    os.symlink(outside / "secret.txt", data / "out_file")
    os.symlink("real.txt", data / "in_file")
    v = add(ws, conn, data, "ds", store=True).version
    entries = by_path(files(conn, v.id))
    assert set(entries) == {b"real.txt", b"out_dir", b"out_file", b"in_file"}
    assert entries[b"out_dir"] == Entry(b"out_dir", "link", 0, None, os.fsencode(outside))
    assert entries[b"out_file"] == Entry(b"out_file", "link", 0, None, os.fsencode(outside / "secret.txt"))
    assert entries[b"in_file"] == Entry(b"in_file", "link", 0, None, b"real.txt")
    assert v.files == 1 and v.bytes == 5
    assert set(objects(ws)) == {sha(b"real\n")}  # nothing outside was read into the cache

    # a link's target is part of the version: changing it changes the id, the outside files do not
    (outside / "secret.txt").write_bytes(b"changed outside\n")
    assert current_id(ws, conn, data) == v.id
    os.unlink(data / "in_file")
    os.symlink("./real.txt", data / "in_file")
    assert current_id(ws, conn, data) != v.id

    dest = tmp_path / "out"
    checkout(ws, conn, v, dest)
    assert os.readlink(dest / "out_dir") == str(outside)
    assert os.readlink(dest / "in_file") == "real.txt"
    assert (dest / "real.txt").read_bytes() == b"real\n"


def test_a_symlink_loop_is_just_two_links(ws, conn, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    os.symlink("b", data / "a")
    os.symlink("a", data / "b")
    os.symlink(".", data / "self")
    os.symlink("..", data / "up")
    (data / "f").write_bytes(b"f\n")
    v = add(ws, conn, data, "loop", store=True).version
    assert [(e.path, e.kind, e.target) for e in files(conn, v.id)] == [
        (b"a", "link", b"b"), (b"b", "link", b"a"), (b"f", "file", None), (b"self", "link", b"."),
        (b"up", "link", b"..")]
    checkout(ws, conn, v, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(data)


def test_the_workspace_folder_is_never_part_of_a_dataset(ws, conn, tmp_path):
    (tmp_path / "x.txt").write_bytes(b"x\n")
    v = add(ws, conn, tmp_path, "project", store=True).version
    assert [e.path for e in files(conn, v.id)] == [b"x.txt"]
    with pytest.raises(UsageError, match="inside the workspace"):
        add(ws, conn, ws.root, "nope")
    with pytest.raises(UsageError, match="inside the workspace"):
        add(ws, conn, ws.db_path, "nope")


def test_a_fifo_in_the_tree_is_refused_and_nothing_is_recorded(ws, conn, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_bytes(b"f\n")
    os.mkfifo(data / "pipe")
    with pytest.raises(MltuiError, match="pipe is not a regular file, folder or link; nothing was recorded"):
        add(ws, conn, data, "ds", store=True)
    assert list_datasets(conn) == [] and objects(ws) == {}


def test_adding_a_path_that_is_a_link_loop_is_a_plain_error(ws, conn, tmp_path):
    loop = tmp_path / "loop"
    os.symlink("loop", loop)
    # the reason after the colon is Python's words for ELOOP ("Symlink loop from ..." in 3.11)
    with pytest.raises(MltuiError, match=rf"^Cannot follow {re.escape(str(loop))}: .*(?i:loop|levels of symbolic links)"):
        add(ws, conn, loop, "ds")
    assert list_datasets(conn) == []


def test_hardlink_checkout_onto_another_filesystem_is_a_plain_error(ws, conn, tmp_path):
    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second filesystem at /dev/shm")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"f\n")
    v = add(ws, conn, tmp_path / "d", "ds", store=True).version
    dest = other / f"mltui-test-{os.getpid()}-{time.time_ns()}"
    try:
        with pytest.raises(MltuiError, match=r"^Cannot hard-link from the cache into /dev/shm \(Invalid cross-device "
                                             r"link\); use --link copy\.$"):
            checkout(ws, conn, v, dest, link="hardlink")
    finally:
        assert not dest.exists() and leftovers(other) == []


def test_bad_names_and_missing_paths(ws, conn, tmp_path):
    (tmp_path / "d").mkdir()
    for bad in ("a b", "", "-x", "x@1", "a/b", "x" * 101):
        with pytest.raises(UsageError):
            add(ws, conn, tmp_path / "d", bad)
    with pytest.raises(NotFound):
        add(ws, conn, tmp_path / "missing", "ok")
    assert list_datasets(conn) == []


# -- files that change while they are hashed ------------------------------------------------------
def test_hash_file_detects_a_change_during_the_read(tmp_path):
    path = os.fsencode(tmp_path / "racy.bin")
    write_raw(path, b"x" * (3 * hashing.BLOCK + 5))
    blocks: list[int] = []

    def grow_on_first_block(block: memoryview) -> None:
        blocks.append(len(block))
        if len(blocks) == 1:  # the race, made deterministic: another writer appends mid-read
            with open(path, "ab") as fh:
                fh.write(b"late")

    with pytest.raises(FileChanged, match="changed while"):
        hash_file(path, sink=grow_on_first_block)
    assert blocks[0] == hashing.BLOCK
    # once it holds still, it hashes to the bytes it holds
    digest, st = hash_file(path)
    assert digest == sha(b"x" * (3 * hashing.BLOCK + 5) + b"late") and st.st_size == 3 * hashing.BLOCK + 9

    # an in-place rewrite of the same size mid-read (a new mtime) is a change too
    def rewrite_on_first_block(block: memoryview) -> None:
        if len(block) == hashing.BLOCK:
            time.sleep(0.02)  # past the filesystem's timestamp granularity
            with open(path, "r+b") as fh:
                fh.write(b"Y")

    with pytest.raises(FileChanged):
        hash_file(path, sink=rewrite_on_first_block)


def test_hash_file_retries_then_gives_up_on_a_file_that_never_holds_still(tmp_path):
    # /proc files claim a size of 0 and then yield bytes: every read disagrees with the stat
    proc = b"/proc/self/status"
    if not os.path.exists(proc) or os.stat(proc).st_size != 0:
        pytest.skip("needs Linux /proc")
    with pytest.raises(FileChanged, match=r"kept changing while it was being hashed \(3 tries\)"):
        hash_file(proc)


def _found(path: Path) -> hashing.Found:
    """The walk's view of one file."""
    return hashing.walk(path).files[0]


def test_hash_file_trusts_the_walks_stat_only_while_the_file_matches_it(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"first bytes")
    seen = _found(path)
    digest, st = hash_file(seen.abs, seen=seen)
    assert digest == sha(b"first bytes") and st.st_ino == seen.inode

    # replaced since the walk by another file of the same size and mtime: the inode tells, and the
    # new bytes are what gets hashed
    other = tmp_path / "b.bin"
    other.write_bytes(b"other bytes")
    os.utime(other, ns=(seen.mtime_ns, seen.mtime_ns))
    os.replace(other, path)
    digest, st = hash_file(seen.abs, seen=seen)
    assert digest == sha(b"other bytes") and st.st_ino != seen.inode

    # grown since the walk: read to the end, not cut at the size the walk saw
    seen = _found(path)
    with open(path, "ab") as fh:
        fh.write(b" and more")
    digest, st = hash_file(seen.abs, seen=seen)
    assert digest == sha(b"other bytes and more") and st.st_size == len(b"other bytes and more")

    # shrunk since the walk
    seen = _found(path)
    path.write_bytes(b"tiny")
    assert hash_file(seen.abs, seen=seen)[0] == sha(b"tiny")


@pytest.mark.parametrize("swap", ["fifo", "folder"])
def test_hash_file_refuses_a_file_swapped_for_a_fifo_or_folder_without_blocking(tmp_path, swap):
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 100)
    seen = _found(path)
    path.unlink()
    if swap == "fifo":
        os.mkfifo(path)  # no writer: a blocking open would wait forever
    else:
        path.mkdir()
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(hash_file(seen.abs, seen=seen))
        except Exception as exc:  # noqa: BLE001 - the test looks at what it was
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "hash_file blocked"
    assert isinstance(outcome[0], MltuiError) and "no longer a regular file" in str(outcome[0])


def test_a_failed_add_keeps_the_stat_cache_of_the_files_it_hashed(ws, conn, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        (data / f"steady{i}.bin").write_bytes(bytes([i]) * (24 << 20))
    log = data / "growing.log"
    # the smallest: with one thread, biggest first, it is hashed last; big enough that every read of
    # it takes long enough for the appender to write during it
    log.write_bytes(b"L" * (16 << 20))
    time.sleep(hashing.RACY_NS / 1e9 + 0.1)  # the steady files are old enough to be trusted from the cache
    proc = _appender(log)
    try:
        with pytest.raises(FileChanged, match="growing.log"):
            add(ws, conn, data, "ds", workers=1)
    finally:
        proc.kill()
        proc.wait()
    assert list_datasets(conn) == []  # no version
    root = os.fsencode(data.resolve())
    cached = {bytes(p) for (p,) in conn.execute("SELECT path FROM hash_cache")}
    assert cached == {root + b"/steady%d.bin" % i for i in range(3)}
    # so the next add hashes only what it had not
    result = add(ws, conn, data, "ds")
    assert (result.hashed_files, result.cached_files) == (1, 3)
    assert by_path(files(conn, result.version.id))[b"steady2.bin"].sha256 == sha(b"\x02" * (24 << 20))


def test_a_file_removed_between_the_walk_and_its_hashing_is_one_sentence(ws, conn, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "stays.txt").write_text("here\n")
    (data / "goes.txt").write_text("soon gone\n")
    walk = datasets_module.walk

    def walk_then_remove(*args, **kwargs):  # the race, made deterministic: removed right after the walk saw it
        tree = walk(*args, **kwargs)
        (data / "goes.txt").unlink()
        return tree

    monkeypatch.setattr(datasets_module, "walk", walk_then_remove)
    with pytest.raises(MltuiError, match=r"Could not add goes\.txt from .*: No such file or directory; "
                                         r"nothing was recorded\."):
        add(ws, conn, data, "ds")
    assert list_datasets(conn) == []
    monkeypatch.undo()
    assert add(ws, conn, data, "ds").version.files == 1


def _appender(path: Path) -> subprocess.Popen:
    """A process that appends to `path` for as long as it lives; returns once it has written."""
    size = path.stat().st_size
    code = "import os, sys\nfd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\nwhile True:\n    os.write(fd, b'z')\n"
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)])
    deadline = time.monotonic() + 20
    while path.stat().st_size == size:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.005)
    return proc


@pytest.mark.parametrize("store", [False, True])
def test_add_refuses_a_file_that_keeps_changing(ws, conn, tmp_path, store):
    data = tmp_path / "data"
    data.mkdir()
    (data / "steady1.txt").write_bytes(b"steady one\n")
    (data / "steady2.txt").write_bytes(b"steady two\n" * 1000)
    log = data / "growing.log"
    log.write_bytes(b"L" * (8 << 20))
    proc = _appender(log)
    try:
        with pytest.raises(FileChanged, match="growing.log"):
            add(ws, conn, data, "ds", store=store)
    finally:
        proc.kill()
        proc.wait()
    assert list_datasets(conn) == []  # nothing was recorded
    cache = cache_of(ws)
    assert not cache.tmp.exists() or os.listdir(cache.tmp) == []  # no partial copy left behind
    for digest, path in objects(ws).items():  # whatever was stored is whole and named by its bytes
        assert sha(path.read_bytes()) == digest
    # once it holds still, it is recorded with the bytes it ends up holding
    result = add(ws, conn, data, "ds", store=store)
    assert by_path(files(conn, result.version.id))[b"growing.log"].sha256 == sha(log.read_bytes())
    if store:
        assert verify(ws, conn, result.version) == []


# -- history ------------------------------------------------------------------------------------------
def test_history_parents_and_resolve(ws, conn, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    ids = []
    for i in range(3):
        (data / "f.txt").write_bytes(f"version {i}\n".encode())
        ids.append(add(ws, conn, data, "ds", message=f"m{i}").version.id)
    history = versions(conn, "ds")
    assert [v.id for v in history] == ids[::-1]
    assert [v.seq for v in history] == [3, 2, 1]
    assert [v.parent for v in history] == [ids[1], ids[0], None]
    assert [v.message for v in history] == ["m2", "m1", "m0"]
    assert len(set(ids)) == 3

    assert resolve(conn, "ds").id == ids[2]
    assert resolve(conn, "ds@latest").id == ids[2]
    assert resolve(conn, "ds@~1").id == ids[1]
    assert resolve(conn, "ds@~").id == ids[1]
    assert resolve(conn, "ds@~2").id == ids[0]
    assert resolve(conn, "ds@v1").id == ids[0]
    assert resolve(conn, "ds@v3").id == ids[2]
    assert len({i[:4] for i in ids}) == 3  # the data is fixed, so are the ids
    assert resolve(conn, "ds@" + ids[1][:4]).id == ids[1]
    assert resolve(conn, "ds@" + ids[1][:12]).id == ids[1]
    assert resolve(conn, "ds@" + ids[0]).id == ids[0]

    with pytest.raises(NotFound, match="only 3"):
        resolve(conn, "ds@~3")
    with pytest.raises(NotFound, match="no version 4"):
        resolve(conn, "ds@v4")
    with pytest.raises(NotFound, match="no dataset named 'nope'"):
        resolve(conn, "nope")
    with pytest.raises(NotFound, match="no dataset named 'nope'"):
        versions(conn, "nope")
    missing_prefix = next(p for p in ("0000", "ffff", "abcd", "1234") if not any(i.startswith(p) for i in ids))
    with pytest.raises(NotFound, match="starts with"):
        resolve(conn, "ds@" + missing_prefix)
    for bad in ("ds@zz", "ds@abc", "ds@ABCD", "ds@v", "ds@~x", "ds@latest1"):
        with pytest.raises(UsageError):
            resolve(conn, bad)

    listed = list_datasets(conn)
    assert [(d["name"], d["versions"], d["latest"].id) for d in listed] == [("ds", 3, ids[2])]


def test_an_ambiguous_id_prefix_is_refused(ws, conn, tmp_path):
    # find two one-file datasets whose ids share their first 4 hex digits (the id is the manifest's sha256)
    seen: dict[str, bytes] = {}
    for i in range(100_000):
        content = f"{i}\n".encode()
        vid = manifest_id([Entry(b"f.txt", "file", len(content), sha(content))])
        if vid[:4] in seen:
            first, second = seen[vid[:4]], content
            break
        seen[vid[:4]] = content
    data = tmp_path / "data"
    data.mkdir()
    made = []
    for content in (first, second):
        (data / "f.txt").write_bytes(content)
        made.append(add(ws, conn, data, "ds").version.id)
    prefix = made[0][:4]
    assert made[1][:4] == prefix and made[0] != made[1]
    with pytest.raises(UsageError, match="ambiguous"):
        resolve(conn, "ds@" + prefix)
    common = os.path.commonprefix(made)
    assert resolve(conn, "ds@" + made[0][:len(common) + 1]).id == made[0]
    assert resolve(conn, "ds@" + made[1][:len(common) + 1]).id == made[1]


# -- the cache: sharing, crash safety, gc ----------------------------------------------------------------
def test_store_keeps_each_object_once_and_only_by_rename(ws, conn, tmp_path):
    data = build_tree(tmp_path / "data")
    v1 = add(ws, conn, data, "ds", store=True).version
    (data / "a.txt").write_bytes(b"alpha, edited\n")
    v2 = add(ws, conn, data, "ds", store=True).version
    add(ws, conn, data, "twin", store=True)  # same bytes under another name: nothing new to store
    needed = {e.sha256 for v in (v1, v2) for e in files(conn, v.id) if e.kind == "file"}
    found = objects(ws)
    assert set(found) == needed
    assert len(found) == 5  # alpha (a.txt and same.txt in v1), edited alpha, BIG, empty, the bad name
    for digest, path in found.items():
        assert path == cache_of(ws).path(digest) == ws.root / "cache" / digest[:2] / digest[2:]
        assert sha(path.read_bytes()) == digest  # every object is whole
        assert stat.S_IMODE(path.stat().st_mode) == 0o444
        assert path.stat().st_nlink == 1
    assert os.listdir(cache_of(ws).tmp) == []  # every temporary copy was renamed or removed
    shared = cache_of(ws).path(sha(BIG))
    assert by_path(files(conn, v1.id))[b"sub/b.bin"].sha256 == by_path(files(conn, v2.id))[b"sub/b.bin"].sha256
    assert shared.is_file()


def test_gc_removes_only_what_no_version_needs(ws, conn, tmp_path):
    data = build_tree(tmp_path / "data")
    v1 = add(ws, conn, data, "ds", store=True).version
    (data / "sub" / "b.bin").write_bytes(b"new b\n")
    v2 = add(ws, conn, data, "ds", store=True).version
    cache = cache_of(ws)
    orphan_bytes = b"an object no version refers to (an add that died before it was recorded)\n"
    orphan = cache.path(sha(orphan_bytes))
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(orphan_bytes)
    old_temp, new_temp = cache.tmp / "dead.part", cache.tmp / "busy.part"
    old_temp.write_bytes(b"half an object")
    new_temp.write_bytes(b"an add in progress")
    two_hours_ago = time.time() - 7200
    os.utime(old_temp, (two_hours_ago, two_hours_ago))
    needed = set(objects(ws)) - {sha(orphan_bytes)}
    assert len(needed) == 5  # alpha, BIG, empty, the bad name's bytes; then "new b"

    dry = gc(ws, conn, dry_run=True)
    assert (dry.removed, dry.freed, dry.kept, dry.temps) == (1, len(orphan_bytes), 5, 1)
    assert orphan.exists() and old_temp.exists() and new_temp.exists()

    done = gc(ws, conn)
    assert (done.removed, done.freed, done.kept, done.temps) == (1, len(orphan_bytes), 5, 1)
    assert not orphan.exists() and not old_temp.exists()
    assert new_temp.exists()  # younger than an hour: maybe an add still writing it
    assert set(objects(ws)) == needed
    assert verify(ws, conn, v1) == [] and verify(ws, conn, v2) == []

    again = gc(ws, conn)
    assert (again.removed, again.freed, again.kept, again.temps) == (0, 0, 5, 0)


def test_gc_keeps_objects_of_versions_added_without_store(ws, conn, tmp_path):
    data = build_tree(tmp_path / "data")
    stored = add(ws, conn, data, "stored", store=True).version
    (data / "a.txt").write_bytes(b"only in the plain version\n")
    plain = add(ws, conn, data, "plain").version
    assert not plain.stored
    result = gc(ws, conn)
    assert result.removed == 0 and result.kept == 4
    assert verify(ws, conn, stored) == []
    assert [p["path"] for p in verify(ws, conn, plain)] == ["a.txt"]


# -- lineage through the tracking API -----------------------------------------------------------------------
def test_runs_record_the_version_they_use_and_whether_it_changed(ws, conn, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_bytes(b"x,y\n1,2\n")
    (data / "test.csv").write_bytes(b"x,y\n3,4\n")
    v1 = add(ws, conn, data, "ds").version

    steady = mltui.init(name="steady", workspace=tmp_path)
    assert steady.use_dataset("ds") == v1.id
    steady.finish()
    [got] = inputs_of(conn, steady.id)
    assert time.time() - 60 < got.pop("recorded") <= time.time()
    assert got == {"dataset": "ds", "version": v1.id, "seq": 1, "label": v1.label, "how": "explicit",
                   "path": str(data.resolve()), "changed": False}

    moving = mltui.init(name="moving", workspace=tmp_path)
    assert moving.use_dataset("ds") == v1.id
    (data / "train.csv").write_bytes(b"x,y\n1,2\n5,6\n")  # the data changes under the running run
    moving.finish()
    [got] = inputs_of(conn, moving.id)
    assert (got["version"], got["changed"]) == (v1.id, True)

    pinned = mltui.init(name="pinned", workspace=tmp_path)
    assert pinned.use_dataset("ds@v1") == v1.id
    pinned.finish()
    [got] = inputs_of(conn, pinned.id)
    assert (got["version"], got["path"], got["changed"]) == (v1.id, None, None)

    users = runs_using(conn, "ds", v1.id)
    assert {(r["id"], r["name"], r["changed"]) for r in users} == {
        (steady.id, "steady", False), (moving.id, "moving", True), (pinned.id, "pinned", None)}
    assert all(r["status"] == "finished" for r in users)

    # data that matches no version is recorded against the latest, flagged from the start
    late = mltui.init(name="late", workspace=tmp_path)
    assert late.use_dataset("ds") == v1.id
    late.finish()
    assert inputs_of(conn, late.id)[0]["changed"] is True
    # a path inside the dataset's folder names it too; once recorded, the current bytes match v2
    v2 = add(ws, conn, data, "ds").version
    by_path_run = mltui.init(name="by-path", workspace=tmp_path)
    assert by_path_run.use_dataset(str(data / "train.csv")) == v2.id
    by_path_run.finish()
    assert inputs_of(conn, by_path_run.id)[0]["changed"] is False
    assert [r["name"] for r in runs_using(conn, "ds", v2.id)] == ["by-path"]
    other = mltui.init(name="other", workspace=tmp_path)
    try:
        with pytest.raises(NotFound, match="neither a dataset name"):
            other.use_dataset("no-such-dataset")
    finally:
        other.finish()
    assert inputs_of(conn, other.id) == []

