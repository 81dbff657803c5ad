"""The run-log index and line cleaning (`mltui.core.runs.logfile`), on real files in tmp_path."""

from __future__ import annotations

import os
import random

import pytest

from mltui.core.runs import logfile
from mltui.core.runs.logfile import STEP, LogIndex, clean, tail


def expected_lines(data: bytes) -> list[str]:
    """What a line index must find: split on "\\n" only, a final unterminated line counts."""
    return data.decode("utf-8", errors="replace").splitlines()


def random_content(rng: random.Random, lines: int) -> bytes:
    """Lines of mixed lengths, many empty, some multi-byte UTF-8; no separators but "\\n"."""
    words = ["", "", "a", "loss=0.25", "épock", "日本語", "x" * 300, "tab\there", "[bold]x[/]"]
    out = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 4))) for _ in range(lines)]
    return "\n".join(out).encode() + (b"\n" if rng.random() < 0.5 else b"")


def all_lines(index: LogIndex) -> list[str]:
    return index.lines(0, index.line_count + 5)


class CountingFile:
    """A file opened by the logfile module, noting (offset, length) of each read into `log`."""

    def __init__(self, f, log: list[tuple[int, int]]) -> None:
        self._f = f
        self._log = log

    def read(self, size: int = -1) -> bytes:
        offset = self._f.tell()
        data = self._f.read(size)
        self._log.append((offset, len(data)))
        return data

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)

    def __getattr__(self, name):  # seek, tell, fileno, close
        return getattr(self._f, name)


@pytest.fixture
def reads(monkeypatch) -> list[tuple[int, int]]:
    """(offset, length) of every read the logfile module makes from a file, from now on."""
    log: list[tuple[int, int]] = []
    monkeypatch.setattr(logfile, "open", lambda *args, **kwargs: CountingFile(open(*args, **kwargs), log),
                        raising=False)
    return log


# -- LogIndex ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_index_matches_splitlines_on_random_content(tmp_path, seed, monkeypatch):
    monkeypatch.setattr(logfile, "SCAN_CHUNK", 997)  # chunk edges fall everywhere, lines span chunks
    monkeypatch.setattr(logfile, "READ_BLOCK", 61)
    rng = random.Random(seed)
    data = random_content(rng, rng.randrange(STEP * 3, STEP * 9))
    path = tmp_path / "output.log"
    path.write_bytes(data)
    index = LogIndex(path)
    assert index.refresh() is True
    want = expected_lines(data)
    assert index.line_count == len(want)
    assert all_lines(index) == want
    for _ in range(50):  # random windows, across checkpoints
        start = rng.randrange(len(want) + 3)
        count = rng.randrange(1, 2 * STEP)
        assert index.lines(start, count) == want[start:start + count]
    assert index.refresh() is False  # nothing new


@pytest.mark.parametrize("data,want", [
    (b"", []),
    (b"\n", [""]),
    (b"\n\n\n", ["", "", ""]),
    (b"one", ["one"]),
    (b"one\ntwo", ["one", "two"]),
    (b"one\ntwo\n", ["one", "two"]),
    (b"a\r\nb\r\n", ["a\r", "b\r"]),  # only "\n" ends a line; clean() drops the "\r"
    (b"bad \xff\xfe byte\n", ["bad \ufffd\ufffd byte"]),
])
def test_edge_contents(tmp_path, data, want):
    path = tmp_path / "output.log"
    path.write_bytes(data)
    index = LogIndex(path)
    index.refresh()
    assert index.line_count == len(want)
    assert all_lines(index) == want


def test_growing_file_completes_its_last_line(tmp_path, monkeypatch):
    monkeypatch.setattr(logfile, "SCAN_CHUNK", 4096)
    path = tmp_path / "output.log"
    index = LogIndex(path)
    assert index.refresh() is False and index.line_count == 0  # not there yet: an empty log
    rng = random.Random(7)
    data = random_content(rng, STEP * 5).rstrip(b"\n") + b"\n"
    written = 0
    with open(path, "ab") as f:
        while written < len(data):  # appended in odd pieces that cut lines (and characters) in two
            piece = data[written:written + rng.randrange(1, 3000)]
            f.write(piece)
            f.flush()
            written += len(piece)
            assert index.refresh() is True
            want = expected_lines(data[:written])
            assert index.line_count == len(want)
            assert index.lines(len(want) - 3, 3) == want[-3:]  # the unfinished line read as it is now
    assert all_lines(index) == expected_lines(data)


def test_unfinished_line_is_reread_once_completed(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(b"epoch 1\nepoch 2: lo")
    index = LogIndex(path)
    index.refresh()
    assert index.lines(0, 10) == ["epoch 1", "epoch 2: lo"]
    with open(path, "ab") as f:
        f.write(b"ss=0.5\nepoch 3\n")
    assert index.refresh() is True
    assert index.line_count == 3
    assert index.lines(1, 10) == ["epoch 2: loss=0.5", "epoch 3"]


def test_truncated_file_is_indexed_again(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(b"".join(b"old line %d\n" % i for i in range(1000)))
    index = LogIndex(path)
    index.refresh()
    generation = index.generation
    path.write_bytes(b"new\n")  # truncated in place (same inode)
    assert index.refresh() is True
    assert index.generation > generation
    assert index.line_count == 1 and index.lines(0, 5) == ["new"]


def test_rewritten_file_of_the_same_size_is_indexed_again(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(b"aaaa\nbbbb\n")
    index = LogIndex(path)
    index.refresh()
    with open(path, "r+b") as f:  # rewritten in place: same inode, same size, new content
        f.write(b"cc\ndd\nee\nf")
    assert index.refresh() is True
    assert index.lines(0, 10) == ["cc", "dd", "ee", "f"]


def test_replaced_and_deleted_file(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(b"first\nfile\n")
    index = LogIndex(path)
    index.refresh()
    other = tmp_path / "other.log"
    other.write_bytes(b"0123456789\nsecond file\n")  # longer, and its byte 10 is "\n" as well
    os.replace(other, path)  # a new inode under the same name: only the inode tells
    assert index.refresh() is True
    assert index.line_count == 2 and index.lines(0, 10) == ["0123456789", "second file"]
    path.unlink()
    assert index.refresh() is True
    assert index.line_count == 0 and index.lines(0, 10) == []
    assert index.refresh() is False


def test_missing_file_and_out_of_range_requests(tmp_path):
    index = LogIndex(tmp_path / "nope" / "output.log")
    assert index.refresh() is False
    assert index.line_count == 0 and index.lines(0, 10) == [] and index.backlog() == 0
    (tmp_path / "nope").mkdir()
    (tmp_path / "nope" / "output.log").write_bytes(b"a\nb\n")
    assert index.refresh() is True
    assert index.lines(-5, 1) == ["a"]
    assert index.lines(2, 10) == [] and index.lines(1, 0) == []


def test_max_bytes_indexes_in_steps(tmp_path):
    path = tmp_path / "output.log"
    data = b"".join(b"line %05d\n" % i for i in range(3000))  # 11 bytes a line
    path.write_bytes(data)
    index = LogIndex(path)
    assert index.backlog() == len(data)
    index.refresh(max_bytes=11 * 1000 + 5)
    assert index.line_count == 1001  # 1000 lines and the start of the next one
    assert index.pending == len(data) - (11 * 1000 + 5)
    steps = 1
    while index.pending:
        index.refresh(max_bytes=11 * 1000 + 5)
        steps += 1
    assert steps == 3 and index.backlog() == 0
    assert index.lines(2995, 10) == [f"line {i:05d}" for i in range(2995, 3000)]


def test_overlong_line_keeps_its_head_and_tail(tmp_path, monkeypatch):
    monkeypatch.setattr(logfile, "LINE_BYTES_MAX", 1000)
    monkeypatch.setattr(logfile, "READ_BLOCK", 128)
    path = tmp_path / "output.log"
    path.write_bytes(b"short\n" + b"H" * 600 + b"m" * 5000 + b"\r99%" + b"\nafter\n")
    index = LogIndex(path)
    index.refresh()
    short, long, after = index.lines(0, 3)
    assert (short, after) == ("short", "after")
    assert len(long) == 1000 and long.startswith("H" * 500) and long.endswith("m\r99%")
    assert clean(long) == "99%"


def offset_of(line: int) -> int:
    """Where line `line` starts in a file of the lines "0", "1", "2", ... each ended by a newline."""
    total, digits, first = 0, 1, 0
    while first < line:
        last = min(line, 10 ** digits)
        total += (last - first) * (digits + 1)
        first, digits = last, digits + 1
    return total


def test_two_million_lines_are_indexed_once_and_read_through_a_bounded_window(tmp_path, reads):
    """The mechanism behind fast random access (timings: bench/logfile.py): one pass over the file
    builds the index, a look at an unchanged file reads nothing new, and any window of lines is one
    seek to the checkpoint at or before it and one read of at most READ_BLOCK bytes."""
    path = tmp_path / "big.log"
    n = 2_000_000
    with open(path, "wb") as f:
        for block in range(0, n, 100_000):
            f.write("".join(f"{i}\n" for i in range(block, block + 100_000)).encode())
    size = path.stat().st_size
    assert offset_of(n) == size
    index = LogIndex(path)
    index.refresh()
    assert index.line_count == n
    assert sum(length for _, length in reads) == size  # every byte read once, in order
    assert [offset for offset, _ in reads] == list(range(0, size, logfile.SCAN_CHUNK))
    reads.clear()
    assert index.refresh() is False
    assert sum(length for _, length in reads) <= 1  # unchanged: the last indexed byte is looked at, no more
    rng = random.Random(3)
    for start in [0, n - 1, n - 40, STEP - 1, STEP, *(rng.randrange(n) for _ in range(300))]:
        reads.clear()
        got = index.lines(start, 40)
        assert got == [str(i) for i in range(start, min(n, start + 40))]
        assert len(reads) == 1, (start, reads)  # one read...
        offset, length = reads[0]
        assert offset == offset_of(start // STEP * STEP)  # ...from the checkpoint at or before the window
        assert length <= logfile.READ_BLOCK  # ...of a bounded size, wherever the window is


# -- clean -------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw,shown", [
    ("plain text", "plain text"),
    ("[bold]x[/] [red]boom[/red]", "[bold]x[/] [red]boom[/red]"),  # markup is just text
    ("\x1b[31mred\x1b[0m normal", "red normal"),  # SGR colours
    ("\x1b[2J\x1b[Hcleared", "cleared"),  # erase screen, cursor home
    ("\x1b[?25lhidden cursor\x1b[?25h", "hidden cursor"),  # private CSI
    ("\x1b]0;window title\x07after", "after"),  # OSC ended by BEL
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink ended by ST
    ("\x1b7saved\x1b8 \x1b(Bcharset \x1bcreset", "saved charset reset"),  # two-byte and nF
    (" 10%|█         |\r 20%|██        |\r 30%|███       |", " 30%|███       |"),  # tqdm
    ("10%\r20%\r30%", "30%"),
    ("done\r", "done"),  # CRLF endings, or a bar that ends with \r
    ("\r\rdone\r\r", "done"),
    ("\x1b[A\x1b[2K\r epoch 2", " epoch 2"),  # multi-bar redraw
    ("a\tb", "a       b"),
    ("bell\x07 back\x08 nul\x00 del\x7f", "bell\\x07 back\\x08 nul\\x00 del\\x7f"),
    ("c1 \x9b31m", "c1 \\x9b31m"),  # an 8-bit CSI is shown, not obeyed
    ("lone escape \x1b", "lone escape \\x1b"),
    ("", ""),
])
def test_clean(raw, shown):
    assert clean(raw) == shown


def test_clean_output_has_no_control_characters():
    rng = random.Random(11)
    alphabet = "ab[]/\x1b\r\t\x07\x00\x9b;?0123456789m]\\ é"
    for _ in range(2000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randrange(30)))
        shown = clean(raw)
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in shown), (raw, shown)


def test_clean_caps_very_long_lines():
    shown = clean("x" * 50_000)
    assert shown.startswith("x" * logfile.SHOW_CHARS_MAX)
    assert "30,000 more characters" in shown
    assert len(shown) < logfile.SHOW_CHARS_MAX + 40
    assert clean("x" * 20, limit=5) == "xxxxx … [15 more characters]"
    assert clean("x" * 5, limit=5) == "xxxxx"


# -- tail --------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\n", b"a", b"a\n", b"a\nb", b"\n\nx\n\n", b"1\n2\n3\n4\n5\n"])
@pytest.mark.parametrize("n", [1, 2, 3, 10])
def test_tail_matches_the_last_lines(tmp_path, data, n):
    path = tmp_path / "output.log"
    path.write_bytes(data)
    assert tail(path, n) == expected_lines(data)[-n:]


def test_tail_reads_backwards_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(logfile, "READ_BLOCK", 7)
    data = random_content(random.Random(5), 500)
    path = tmp_path / "output.log"
    path.write_bytes(data)
    want = expected_lines(data)
    for n in (1, 5, 37, 499, 500, 800):
        assert tail(path, n) == want[-n:]


def test_tail_of_a_big_file_reads_only_its_end(tmp_path, reads):
    path = tmp_path / "big.log"
    path.write_bytes(b"".join(b"row %d\n" % i for i in range(500_000)))
    size = path.stat().st_size
    assert tail(path, 3) == ["row 499997", "row 499998", "row 499999"]
    assert reads == [(size - logfile.READ_BLOCK, logfile.READ_BLOCK)]  # one block, the last one
    assert tail(path, 0) == [] and tail(tmp_path / "missing.log", 5) == []
