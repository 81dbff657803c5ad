"""TensorBoard event files: the reader's framing (a record cut short waits, a CRC mismatch is counted and
skipped, a damaged length is got past) and `mltui import tensorboard` through the real CLI."""

from __future__ import annotations

import json
import os

import pytest

from conftest import write_events  # noqa: E402  (tests/integrations/conftest.py)
from mltui.core.runs.tb_files import EventSet
from mltui.core.runs.tfevents import EventFile


LOSS = [(s, 1.0 / (s + 1)) for s in range(10)]
ACC = [(s, 0.5 + s / 100) for s in range(0, 10, 2)]


def read_all(path, final=False) -> tuple[dict, EventFile]:
    events = EventFile(path)
    batch = events.read(final=final)
    return batch, events


def record_starts(data: bytes) -> list[int]:
    """Where each TFRecord starts (its 8-byte length, 4-byte CRC, body, 4-byte CRC)."""
    import struct

    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        pos += 16 + struct.unpack_from("<Q", data, pos)[0]
    return starts


def test_scalars_hparams_and_times_come_back_as_written(tmp_path):
    path = write_events(tmp_path / "run", {"train/loss": LOSS, "val/acc": ACC}, hparams={"lr": 0.1, "opt": "adam",
                                                                                         "layers": 3, "aug": True})
    batch, events = read_all(path)
    steps, values, times = batch.columns["train/loss"]
    assert list(zip(steps, values)) == [(s, pytest.approx(v, rel=1e-6)) for s, v in LOSS]
    assert times == [1_700_000_000.0 + s for s in steps]
    assert list(batch.columns["val/acc"][0]) == [0, 2, 4, 6, 8]
    assert batch.params == {"lr": 0.1, "opt": "adam", "layers": 3, "aug": True}
    assert batch.bad == 0 and batch.truncated == 0 and events.waiting == 0
    assert events.offset == os.path.getsize(path)


def test_tf2_style_tensor_scalars_are_read_too(tmp_path):
    path = write_events(tmp_path / "run", {"loss": LOSS}, tensor_style=True)
    batch, _ = read_all(path)
    assert list(batch.columns["loss"][0]) == list(range(10))
    assert batch.columns["loss"][1][3] == pytest.approx(0.25)


def test_a_record_cut_short_waits_for_the_rest(tmp_path):
    path = write_events(tmp_path / "run", {"loss": LOSS})
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # the writer has not finished its last record
    events = EventFile(path)
    batch = events.read()
    assert list(batch.columns["loss"][0]) == list(range(9))
    assert events.waiting > 0 and batch.truncated == 0 and batch.bad == 0
    with open(path, "ab") as fh:  # the rest arrives
        fh.write(data[-7:])
    batch = events.read()
    assert list(batch.columns["loss"][0]) == [9]
    assert events.waiting == 0 and events.offset == len(data)


def test_a_record_cut_short_for_good_is_counted_at_the_end(tmp_path):
    path = write_events(tmp_path / "run", {"loss": LOSS})
    path.write_bytes(path.read_bytes()[:-7])
    batch, events = read_all(path, final=True)
    assert len(batch.columns["loss"][0]) == 9
    assert batch.truncated == 1


def test_a_flipped_byte_is_counted_and_only_its_record_skipped(tmp_path):
    path = write_events(tmp_path / "run", {"loss": LOSS})
    data = bytearray(path.read_bytes())
    starts = record_starts(bytes(data))
    data[starts[5] + 14] ^= 0x40  # inside the body of the 5th record after the file_version one (step 4)
    path.write_bytes(bytes(data))
    batch, _ = read_all(path)
    assert batch.bad == 1
    assert list(batch.columns["loss"][0]) == [0, 1, 2, 3, 5, 6, 7, 8, 9]


def test_a_damaged_length_is_got_past_to_the_next_intact_record(tmp_path):
    path = write_events(tmp_path / "run", {"loss": LOSS})
    data = bytearray(path.read_bytes())
    starts = record_starts(bytes(data))
    data[starts[3] + 2] ^= 0xFF  # the length of step 2's record: its header CRC no longer matches
    path.write_bytes(bytes(data))
    batch, _ = read_all(path)
    assert batch.bad == 1
    assert list(batch.columns["loss"][0]) == [0, 1, 3, 4, 5, 6, 7, 8, 9]


def test_two_files_of_one_run_merge_without_duplicates(tmp_path):
    first = write_events(tmp_path / "run", {"loss": LOSS[:6]})
    os.rename(first, tmp_path / "run" / "events.out.tfevents.1.host.1.0")
    write_events(tmp_path / "run", {"loss": LOSS[3:]})  # a restart that logged steps 3-5 again, then went on
    events = EventSet()
    for path in sorted((tmp_path / "run").iterdir()):
        events.add(path)
    batch = events.read()
    assert sorted(batch.columns["loss"][0]) == list(range(10))


# -- `mltui import tensorboard` --------------------------------------------------------------------

def three_runs(root):
    write_events(root / "baseline", {"train/loss": LOSS, "val/acc": ACC}, hparams={"lr": 0.1, "run_name": "first"})
    write_events(root / "wide" / "train", {"train/loss": LOSS[:4]}, hparams={"lr": 0.01}, start=1_700_100_000.0)
    write_events(root / "wide" / "eval", {"val/acc": ACC[:2]}, start=1_700_100_050.0)


def test_import_of_a_folder_of_three_runs_then_again_adds_only_what_is_new(ws, cli, store, tmp_path):
    three_runs(tmp_path / "logs")
    done = cli("import", "tensorboard", "logs", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["points"] == 10 + 5 + 4 + 2 and report["bad"] == 0
    by_name = {r["name"]: r for r in store.runs()}
    assert set(by_name) == {"baseline", "wide/train", "wide/eval"}
    base = by_name["baseline"]
    assert base["status"] == "finished"
    assert base["started"] == 1_700_000_000.0 and base["ended"] == 1_700_000_009.0
    assert store.params(base["id"]) == {"lr": 0.1, "run_name": "first"}
    assert [(s, v) for s, v, _ in store.series(base["id"], "train/loss")] == [(s, pytest.approx(v)) for s, v in LOSS]
    assert store.params(by_name["wide/train"]["id"]) == {"lr": 0.01}
    assert [s for s, _, _ in store.series(by_name["wide/eval"]["id"], "val/acc")] == [0, 2]

    again = cli("import", "tensorboard", "logs", "--json")
    assert json.loads(again.stdout)["points"] == 0
    assert len(store.runs()) == 3

    # the writer went on: a new file in one folder, a new folder beside them
    write_events(tmp_path / "logs" / "baseline", {"train/loss": [(10, 0.05), (11, 0.04)]}, start=1_700_000_000.0)
    write_events(tmp_path / "logs" / "fourth", {"x": [(0, 1.0)]})
    text = cli("import", "tensorboard", "logs")
    assert text.returncode == 0, text.stderr
    assert "baseline: 2 points added to run" in text.stdout and "fourth: 1 points imported as run" in text.stdout
    assert store.counts(base["id"]) == {"train/loss": 12, "val/acc": 5}
    assert store.run(base["id"])["ended"] == 1_700_000_011.0
    assert len(store.runs()) == 4


def test_name_from_tag_uses_the_logged_run_name(ws, cli, store, tmp_path):
    three_runs(tmp_path / "logs")
    assert cli("import", "tensorboard", str(tmp_path / "logs"), "--name-from", "tag").returncode == 0
    assert {r["name"] for r in store.runs()} == {"first", "wide/train", "wide/eval"}


def test_truncated_and_damaged_files_each_say_what_happened(ws, cli, store, tmp_path):
    cut = write_events(tmp_path / "logs" / "cut", {"loss": LOSS})
    whole = cut.read_bytes()
    cut.write_bytes(whole[:-5])
    flipped = write_events(tmp_path / "logs" / "flipped", {"loss": LOSS})
    data = bytearray(flipped.read_bytes())
    data[record_starts(bytes(data))[2] + 14] ^= 0x01
    flipped.write_bytes(bytes(data))

    done = cli("import", "tensorboard", "logs")
    assert done.returncode == 0, done.stderr
    assert "1 damaged record (CRC mismatch) skipped and counted on the run" in done.stdout
    assert "the last record is incomplete (" in done.stdout and "left for the next import" in done.stdout
    by_name = {r["name"]: r["id"] for r in store.runs()}
    assert store.counts(by_name["cut"]) == {"loss": 9}
    assert store.counts(by_name["flipped"]) == {"loss": 9}
    assert store.tags(by_name["flipped"])["tensorboard.bad_records"] == 1

    cut.write_bytes(whole)  # the writer finished it after all
    assert cli("import", "tensorboard", "logs").returncode == 0
    assert store.counts(by_name["cut"]) == {"loss": 10}
    assert store.tags(by_name["flipped"])["tensorboard.bad_records"] == 1  # not read (nor counted) twice


def test_a_folder_with_no_event_files_is_one_clear_error(ws, cli, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no events here")
    done = cli("import", "tensorboard", "empty")
    assert done.returncode == 1
    assert done.stderr.startswith("mltui: There are no TensorBoard event files (events.out.tfevents.*) under ")
    assert done.stderr.count("\n") == 1
    missing = cli("import", "tensorboard", "nowhere")
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
