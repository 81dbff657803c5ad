"""Reading prediction logs from where the last check stopped, in bounded chunks of whole lines.

A chunk of clean JSON lines goes straight to polars; a chunk with a bad line is read line by line,
and every line that is not JSON, or not a prediction or a label, is counted and skipped. A line not
yet ended by a newline is left for the next check (the writer may be half-way through it).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHUNK = 32 * 2**20
LOG_SUFFIXES = (".jsonl", ".ndjson", ".json", ".log", ".parquet")


@dataclass
class Chunk:
    path: str
    inode: int
    end: int  # the offset after this chunk
    predictions: object  # a polars frame: ts, model, id, output, score, value, latency_ms, f:<feature>...
    labels: list[tuple[str, str, str]]  # (model or "", id, label)
    malformed: int


def log_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root, f) for f in sorted(files) if f.endswith(LOG_SUFFIXES) and not f.startswith(".")]
    return out


def read_new(path: Path, inode_offset: tuple[int | None, int] | None, chunk: int = CHUNK) -> Iterator[Chunk]:
    """The records added to `path` since `inode_offset`, chunk by chunk (a replaced file starts over)."""
    try:
        st = path.stat()
    except OSError:
        return
    inode, offset = inode_offset if inode_offset else (None, 0)
    if inode != st.st_ino or offset > st.st_size:
        offset = 0  # rotated or replaced: a new file under the old name
    if path.suffix == ".parquet":
        if offset == 0 and st.st_size:
            import polars as pl

            try:
                frame = pl.read_parquet(path)
            except Exception:  # a parquet file still being written, or not one at all
                return
            yield _from_frame(str(path), st.st_ino, st.st_size, frame)
        return
    with open(path, "rb") as fh:
        fh.seek(offset)
        carry = b""
        while True:
            block = fh.read(chunk)
            if not block:
                return
            block = carry + block
            cut = block.rfind(b"\n")
            if cut < 0:
                carry = block
                continue
            whole, carry = block[:cut + 1], block[cut + 1:]
            offset += len(whole)
            yield parse(str(path), st.st_ino, offset, whole)


def parse(path: str, inode: int, end: int, data: bytes) -> Chunk:
    import polars as pl

    try:
        frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
        return _from_frame(path, inode, end, frame)
    except Exception:  # a bad line, or types that differ between lines: go line by line
        pass
    rows, malformed = [], 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            malformed += 1
            continue
        if not isinstance(record, dict):
            malformed += 1
            continue
        rows.append(_flat(record))
    frame = pl.from_dicts(rows, infer_schema_length=None) if rows else pl.DataFrame()
    chunk = _from_frame(path, inode, end, frame, flat=True)
    chunk.malformed += malformed
    return chunk


def _flat(record: dict) -> dict:
    out = {k: v for k, v in record.items() if k != "inputs"}
    inputs = record.get("inputs")
    if isinstance(inputs, dict):
        out["__inputs"] = True
        for k, v in inputs.items():
            out["f:" + str(k)] = v if not isinstance(v, (dict, list)) else json.dumps(v)
    for key in ("output", "label", "id", "model"):
        value = out.get(key)
        if isinstance(value, (dict, list)):
            out[key] = json.dumps(value)
    scores = out.get("scores")
    if isinstance(scores, dict):
        out["scores"] = json.dumps(scores)
    return out


def _from_frame(path: str, inode: int, end: int, frame, flat: bool = False) -> Chunk:
    import polars as pl

    if frame.height == 0:
        return Chunk(path, inode, end, pl.DataFrame(), [], 0)
    columns = set(frame.columns)
    if not flat and "inputs" in columns:
        dtype = frame.schema["inputs"]
        if isinstance(dtype, pl.Struct):
            names = [f.name for f in dtype.fields]
            frame = frame.with_columns(pl.col("inputs").is_not_null().alias("__inputs")).with_columns(
                pl.col("inputs").struct.rename_fields(["f:" + n for n in names])).unnest("inputs")
        else:
            frame = frame.with_columns(pl.lit(False).alias("__inputs")).drop("inputs")
    if "__inputs" not in frame.columns:
        frame = frame.with_columns(pl.lit(False).alias("__inputs"))
    for col in ("ts", "model", "id", "output", "label", "latency_ms", "scores"):
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None).alias(col))
    is_label = pl.col("label").is_not_null() & ~pl.col("__inputs").fill_null(False)
    labels_frame = frame.filter(is_label & pl.col("id").is_not_null())
    labels = [(str(m or "").split("@")[0], str(i), _text(lab)) for m, i, lab in
              labels_frame.select("model", "id", "label").iter_rows()]
    preds = frame.filter(~is_label)
    ts = _epoch(preds.get_column("ts"))
    preds = preds.with_columns(ts.alias("ts"))
    ok = pl.col("ts").is_not_null() & pl.col("model").is_not_null() & pl.col("__inputs").fill_null(False)
    good = preds.filter(ok)
    malformed = preds.height - good.height + (frame.filter(is_label).height - labels_frame.height)
    good = good.with_columns(pl.col("model").cast(pl.Utf8), pl.col("id").cast(pl.Utf8, strict=False))
    return Chunk(path, inode, end, good, labels, malformed)


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _epoch(column):
    """Seconds since the epoch from numbers, or from ISO 8601 strings (naive ones are UTC)."""
    import polars as pl

    if column.dtype.is_numeric():
        return column.cast(pl.Float64)
    if column.dtype == pl.Utf8:
        parsed = column.str.to_datetime(strict=False, time_unit="us", time_zone="UTC")
        return (parsed.dt.epoch("us").cast(pl.Float64) / 1e6)
    if isinstance(column.dtype, pl.Datetime):
        return column.dt.epoch("us").cast(pl.Float64) / 1e6
    return pl.Series(column.name, [None] * len(column), dtype=pl.Float64)
