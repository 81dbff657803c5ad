"""TensorBoard event files (`events.out.tfevents.*`): scalars become metric points, hparams become params.

A file is a sequence of TFRecords: an 8-byte length, the masked CRC32C of those 8 bytes, the record,
the masked CRC32C of the record. The framing is read here; each record is decoded by the protobuf
definitions of a maintained package (tensorboard's `event_pb2`, or tensorboardX's), never by hand.

Reading is incremental: `EventFile.read()` takes what was appended since the last call, in bounded
steps. A record cut short at the end of the file waits for the rest (a writer is still writing it);
with `final=True` (the writer is gone) it is counted as `truncated` and left out. A record whose CRC
does not match is counted in `bad` and skipped; when the length itself is damaged the reader looks
for the next intact record.

The tensorboard package is optional (`pip install 'mltui[tensorboard]'`); it is imported on first
use, so the supervisor and `import mltui` stay light.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from mltui.base.errors import MltuiError
from mltui.core.runs.metric_keys import metric_key

PREFIX = "events.out.tfevents."
MAX_READ = 16 << 20  # bytes taken per call (like metrics.jsonl), so memory stays bounded however far behind
MAX_RECORD = 256 << 20  # a length past this is a damaged header, not a record
_HEADER = struct.Struct("<QI")
_U32 = struct.Struct("<I")
_TENSOR_FORMATS = {1: "<f", 2: "<d", 3: "<i", 9: "<q", 19: "<e"}  # DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64, DT_HALF
INSTALL = "pip install 'mltui[tensorboard]'"


class TensorboardMissing(MltuiError):
    """Neither tensorboard nor tensorboardX is installed."""


class _Proto:
    """The decoding pieces, loaded once: Event, the hparams plugin's data, and a masked CRC32C."""

    def __init__(self) -> None:
        try:
            from tensorboard.compat.proto import event_pb2
        except ImportError:
            try:
                from tensorboardX.proto import event_pb2  # type: ignore[no-redef]
            except ImportError:
                raise TensorboardMissing(
                    f"Reading TensorBoard event files needs the tensorboard package: {INSTALL}.") from None
        self.parse = event_pb2.Event.FromString
        try:
            from tensorboard.plugins.hparams import plugin_data_pb2
        except ImportError:
            try:
                from tensorboardX.proto import plugin_hparams_pb2 as plugin_data_pb2  # type: ignore[no-redef]
            except ImportError:
                plugin_data_pb2 = None
        self.hparams = plugin_data_pb2.HParamsPluginData.FromString if plugin_data_pb2 else None
        self.crc32c, self.masked_crc = _masked_crc()
        from google.protobuf.message import DecodeError

        self.DecodeError = DecodeError


def _masked_crc():
    """CRC32C masked as TFRecord does: google-crc32c's C code where installed (the tensorboard extra brings
    it), else tensorboard's own pure-Python one (correct, but slow on big files)."""
    try:
        from google_crc32c import value as crc32c
    except ImportError:
        try:
            from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c
        except ImportError:
            from tensorboardX.crc32c import crc32c  # type: ignore[no-redef]

    def masked(data: bytes) -> int:
        x = crc32c(data)
        return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    return crc32c, masked


_proto: _Proto | None = None


def proto() -> _Proto:
    """The decoders; TensorboardMissing (one sentence naming the pip install) when the package is absent."""
    global _proto
    if _proto is None:
        _proto = _Proto()
    return _proto


def is_event_file(name: str) -> bool:
    return name.startswith(PREFIX) and not name.endswith((".tmp", ".crc"))


class Batch:
    """What one read gave: metric columns {key: (steps, values, times)}, params from hparams, the wall
    times seen, and how many records were damaged or cut short."""

    __slots__ = ("columns", "params", "first_time", "last_time", "bad", "truncated", "records", "bytes")

    def __init__(self) -> None:
        self.columns: dict[str, tuple[list[int], list[float], list[float]]] = {}
        self.params: dict[str, object] = {}
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.bad = 0
        self.truncated = 0
        self.records = 0
        self.bytes = 0

    def points(self) -> int:
        return sum(len(steps) for steps, _, _ in self.columns.values())

    def merge(self, other: "Batch") -> None:
        for key, (steps, values, times) in other.columns.items():
            into = self.columns.get(key)
            if into is None:
                self.columns[key] = (steps, values, times)
            else:
                into[0].extend(steps)
                into[1].extend(values)
                into[2].extend(times)
        self.params.update(other.params)
        for t in (other.first_time, other.last_time):
            if t is not None:
                self.first_time = t if self.first_time is None else min(self.first_time, t)
                self.last_time = t if self.last_time is None else max(self.last_time, t)
        self.bad += other.bad
        self.truncated += other.truncated
        self.records += other.records
        self.bytes += other.bytes


class EventFile:
    """One event file read from `offset` on; `read()` returns a Batch of what was appended since."""

    def __init__(self, path: str | os.PathLike[str], offset: int = 0) -> None:
        self.path = Path(path)
        self.offset = offset  # the start of the first record not yet taken
        self.more = False  # the last read stopped at MAX_READ with more in the file
        self.size = 0  # the file's size at the last read
        self.waiting = 0  # bytes of a record cut short at the end, waiting for the rest
        self._plugins: dict[str, str] = {}  # tag -> plugin name (TF2 writers send metadata with a tag's first value)
        self._ino: int | None = None
        self._lost = False  # past a damaged header, looking for the next intact one (counted once)

    def read(self, final: bool = False, max_bytes: int = MAX_READ) -> Batch:
        batch = Batch()
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return batch
        try:
            st = os.fstat(fd)
            if self._ino is not None and (st.st_ino != self._ino or st.st_size < self.offset):
                self.offset = 0  # replaced or truncated: start over
            self._ino = st.st_ino
            self.size = st.st_size
            self.more = False
            if st.st_size <= self.offset:
                self.waiting = 0
                return batch
            want = min(st.st_size - self.offset, max_bytes)
            data = os.pread(fd, want, self.offset)
        finally:
            os.close(fd)
        self.more = self.offset + len(data) < self.size
        used = self._records(data, batch, final and not self.more)
        if used == 0 and self.more and len(data) >= 12:  # one record bigger than this read: take it whole
            need = 16 + _HEADER.unpack_from(data, 0)[0]
            if max_bytes < need <= MAX_RECORD + 16:
                return self.read(final, max_bytes=need)
        self.offset += used
        batch.bytes = used
        self.waiting = len(data) - used if not self.more else 0
        return batch

    def _records(self, data: bytes, batch: Batch, final: bool) -> int:
        """Decode the whole records in `data` into `batch`; returns the bytes used. The hot loop of every
        reader: one pass, locals only, one append per point (columns are made at the end)."""
        p = proto()
        parse, crc, header, u32 = p.parse, p.masked_crc, _HEADER.unpack_from, _U32.unpack_from
        raw = p.crc32c  # masked inline below: a Python call per CRC is a fifth of the loop
        plugins = self._plugins
        rows: dict[str, list[tuple[int, float, float]]] = {}  # tag -> [(step, value, time)]
        end = len(data)
        pos = 0
        first = last = None
        records = 0
        while pos + 12 <= end:
            length, head_crc = header(data, pos)
            x = raw(data[pos:pos + 8])
            if length > MAX_RECORD or (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF != head_crc:
                found = _resync(data, pos + 1, crc)
                if not self._lost:
                    batch.bad += 1
                self._lost = found is None
                if found is None:  # no intact header in what we have: wait, or give the rest up
                    pos = end if final else max(pos, end - 12)  # the last 12 bytes may start a header
                    break
                pos = found
                continue
            stop = pos + 16 + length
            if stop > end:
                break
            body = data[pos + 12:stop - 4]
            x = raw(body)
            if (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF != u32(data, stop - 4)[0]:
                batch.bad += 1
                pos = stop
                continue
            pos = stop
            self._lost = False
            try:
                event = parse(body)
            except p.DecodeError:
                batch.bad += 1
                continue
            records += 1
            values = event.summary.value
            if not values:
                continue  # file_version, graphs, session logs: no time of the run's own
            last = event.wall_time
            if first is None:
                first = last
            step = event.step
            for value in values:
                if value.HasField("simple_value"):  # the common case first: HasField is the cheaper question
                    number = value.simple_value
                elif (kind := value.WhichOneof("value")) == "tensor" or kind is None:
                    tag = value.tag
                    meta = value.metadata
                    if meta.plugin_data.plugin_name:
                        plugins[tag] = meta.plugin_data.plugin_name
                    plugin = plugins.get(tag)
                    if plugin == "hparams":
                        self._hparams(meta.plugin_data.content, batch)
                        continue
                    if kind is None or plugin != "scalars":
                        continue
                    number = _tensor_scalar(value.tensor)
                    if number is None:
                        continue
                else:
                    continue  # images, histograms, audio: not metrics
                tag = value.tag
                series = rows.get(tag)
                if series is None:
                    series = rows[tag] = []
                series.append((step, number, last))
        batch.records += records
        if first is not None:
            batch.first_time = first if batch.first_time is None else min(batch.first_time, first)
            batch.last_time = last if batch.last_time is None else max(batch.last_time, last)
        columns = batch.columns
        for tag, points in rows.items():
            steps, numbers, times = zip(*points)
            key = metric_key(tag)
            into = columns.get(key)
            if into is None:
                columns[key] = (list(steps), list(numbers), list(times))
            else:  # two tags that become the same key
                into[0].extend(steps)
                into[1].extend(numbers)
                into[2].extend(times)
        if pos < end and final:
            batch.truncated += 1  # the writer is gone and will never finish this record
            return end
        return pos

    def _hparams(self, content: bytes, batch: Batch) -> None:
        decode = proto().hparams
        if decode is None or not content:
            return
        try:
            data = decode(content)
        except proto().DecodeError:
            batch.bad += 1
            return
        if data.WhichOneof("data") != "session_start_info":
            return
        for name, value in data.session_start_info.hparams.items():
            kind = value.WhichOneof("kind")
            if kind == "number_value":
                number = value.number_value
                batch.params[name] = int(number) if number.is_integer() and abs(number) < 2**53 else number
            elif kind == "string_value":
                batch.params[name] = value.string_value
            elif kind == "bool_value":
                batch.params[name] = value.bool_value


def _resync(data: bytes, start: int, crc) -> int | None:
    """The next position at or after `start` where an intact record header begins, or None."""
    header = _HEADER.unpack_from
    for pos in range(start, len(data) - 11):
        length, head_crc = header(data, pos)
        if length <= MAX_RECORD and crc(data[pos:pos + 8]) == head_crc:
            return pos
    return None


def _tensor_scalar(tensor) -> float | None:
    """The one number of a scalar tensor (the `scalars` plugin of TF2 writers), or None."""
    if tensor.float_val:
        return float(tensor.float_val[0])
    if tensor.double_val:
        return float(tensor.double_val[0])
    if tensor.int_val:
        return float(tensor.int_val[0])
    if tensor.int64_val:
        return float(tensor.int64_val[0])
    content = tensor.tensor_content
    fmt = _TENSOR_FORMATS.get(tensor.dtype)
    if content and fmt and len(content) == struct.calcsize(fmt):
        return float(struct.unpack(fmt, content)[0])
    if tensor.half_val:
        return float(struct.unpack("<e", struct.pack("<H", tensor.half_val[0]))[0])
    return None
