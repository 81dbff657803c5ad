"""GPU state through one small interface: real NVML (pynvml), simulated GPUs, a replayed recording, or none.

Every backend answers `snapshot()` with a `GpuState`: immutable values with the time they were
read, so threads and screens never touch NVML handles. A field a GPU cannot report is None ("not
available"); a GPU or a machine that cannot be read at all gets one plain sentence in `error`.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Sequence


class _Snapshot:
    """Values that are set once: a snapshot crosses threads, so nothing may change it afterwards."""

    __slots__ = ()

    def __setattr__(self, name: str, value) -> None:
        try:
            getattr(self, name)
        except AttributeError:
            object.__setattr__(self, name, value)
            return
        raise AttributeError(f"{type(self).__name__} is a snapshot: {name} cannot change")


class GpuProcess(_Snapshot):
    """A process using a GPU: pid as NVML reports it, memory in bytes (None: not available)."""

    __slots__ = ("pid", "gpu", "used_memory", "kind")

    def __init__(self, pid: int, gpu: int, used_memory: int | None, kind: str = "compute") -> None:
        self.pid = pid
        self.gpu = gpu
        self.used_memory = used_memory
        self.kind = kind

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


class Gpu(_Snapshot):
    """One GPU at one moment. Memory in bytes, power in watts, clocks in MHz; None where not available."""

    __slots__ = ("index", "uuid", "name", "util", "mem_util", "mem_total", "mem_used", "temperature", "power",
                 "power_limit", "fan", "clock_sm", "clock_mem", "pstate", "mig", "processes", "error", "taken")

    def __init__(self, index: int, uuid: str, name: str, mem_total: int, mem_used: int,
                 util: float | None = None, taken: float | None = None, **fields) -> None:
        self.index = index
        self.uuid = uuid
        self.name = name
        self.mem_total = mem_total
        self.mem_used = mem_used
        self.util = util
        self.taken = time.time() if taken is None else taken
        for name in ("mem_util", "temperature", "power", "power_limit", "fan", "clock_sm", "clock_mem", "pstate",
                     "mig", "error"):
            setattr(self, name, fields.pop(name, None))
        self.processes: tuple[GpuProcess, ...] = tuple(fields.pop("processes", ()))
        if fields:
            raise TypeError(f"unknown GPU fields: {sorted(fields)}")

    @property
    def mem_free(self) -> int:
        return max(0, (self.mem_total or 0) - (self.mem_used or 0))

    def as_dict(self) -> dict:
        out = {name: getattr(self, name) for name in self.__slots__ if name != "processes"}
        out["mem_free"] = self.mem_free
        out["processes"] = [p.as_dict() for p in self.processes]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Gpu":
        data = dict(data)
        data.pop("mem_free", None)
        keep = GpuProcess.__slots__  # a recording may carry more (the owning run): not part of the snapshot
        procs = [GpuProcess(**{k: v for k, v in p.items() if k in keep}) for p in data.pop("processes", [])]
        return cls(data.pop("index"), data.pop("uuid"), data.pop("name"), data.pop("mem_total"),
                   data.pop("mem_used"), data.pop("util", None), data.pop("taken", None), processes=procs, **data)

    def __repr__(self) -> str:
        return f"Gpu({self.index}, {self.name!r}, free={self.mem_free / 2**30:.1f} GiB)"


class GpuState(_Snapshot):
    """What a backend saw: the GPUs, and a sentence when it could not see them (or some of them)."""

    __slots__ = ("gpus", "error", "source", "taken")

    def __init__(self, gpus: Sequence[Gpu], error: str | None, source: str, taken: float | None = None) -> None:
        self.gpus = tuple(gpus)
        self.error = error
        self.source = source
        self.taken = time.time() if taken is None else taken

    def as_dict(self) -> dict:
        return {"source": self.source, "error": self.error, "taken": self.taken,
                "gpus": [g.as_dict() for g in self.gpus]}


class _Backend:
    name = "none"
    reason = ""

    def snapshot(self) -> GpuState:
        raise NotImplementedError

    def devices(self) -> list[Gpu]:
        """The GPUs that can be used now (for the launcher and the queue)."""
        state = self.snapshot()
        self.reason = state.error or ""
        return [g for g in state.gpus if g.error is None]


class NoGpus(_Backend):
    """No GPU source: an empty list, and the sentence saying why."""

    def __init__(self, reason: str = "GPU reading is turned off (gpu.backend = \"none\").") -> None:
        self.reason = reason

    def snapshot(self) -> GpuState:
        return GpuState([], self.reason, self.name)


# -- simulated --------------------------------------------------------------------------------------
class SimulatedGpus(_Backend):
    """Plausible moving GPUs for demos and tests. `spec` is a count ("4": four 80 GiB GPUs) or sizes
    ("2x24": two 24 GiB GPUs; "80,40:10": 80 GiB free and 40 GiB with 10 GiB used). Utilisation and
    memory drift with time unless `still`; `processes` maps a GPU index to (pid, bytes) pairs."""

    name = "sim"

    def __init__(self, spec: str, still: bool | None = None,
                 processes: dict[int, list[tuple[int, int]]] | None = None, workspace=None) -> None:
        self.workspace = workspace  # when set, runs given simulated GPUs show up as their processes
        self._gpus: list[tuple[int, int]] = []
        spec = spec.strip()
        if spec.isdigit():
            spec = f"{spec}x80"
            still = False if still is None else still
        for part in spec.replace(" ", "").split(","):
            if not part:
                continue
            count, _, size = part.rpartition("x") if "x" in part else ("1", "", part)
            total, _, used = size.partition(":")
            try:
                n, total_gib, used_gib = int(count or 1), float(total), float(used or 0)
            except ValueError:
                raise ValueError(f"bad simulated GPU spec {spec!r} (try \"4\", \"2x24\" or \"80,40:10\")") from None
            self._gpus.extend([(int(total_gib * 2**30), int(used_gib * 2**30))] * n)
        self.still = True if still is None else still
        self.processes = dict(processes or {})

    def _run_processes(self) -> dict[int, list[tuple[int, int]]]:
        """{gpu: [(pid, bytes)]} for the running runs of `workspace` that were given simulated GPUs."""
        out: dict[int, list[tuple[int, int]]] = {}
        try:
            import sqlite3

            conn = sqlite3.connect(f"file:{self.workspace.db_path}?mode=ro", uri=True, timeout=1)
            try:
                rows = conn.execute("SELECT pid, gpus FROM runs WHERE status = 'running' AND gpus IS NOT NULL "
                                    "AND pid IS NOT NULL").fetchall()
            finally:
                conn.close()
        except Exception:
            return out
        for pid, gpus in rows:
            try:
                for g in json.loads(gpus):
                    out.setdefault(int(g), []).append((int(pid), int((3 + pid % 9) * 2**30)))
            except (ValueError, TypeError):
                continue
        return out

    def snapshot(self) -> GpuState:
        now = time.time()
        gpus = []
        given = dict(self.processes)
        if self.workspace is not None:
            for index, procs in self._run_processes().items():
                given[index] = given.get(index, []) + procs
        for i, (total, used) in enumerate(self._gpus):
            procs = [GpuProcess(pid, i, mem) for pid, mem in given.get(i, [])]
            util, temp, power = 0.0, 35.0, 60.0
            if not self.still:
                wave = 0.5 + 0.5 * math.sin(now / 7.0 + i * 1.7)
                util = round(100 * wave * (0.6 + 0.4 * ((i + 1) % 3 != 0)), 1)
                used = max(used, int(total * (0.15 + 0.6 * wave)))
                temp, power = round(38 + 40 * wave), round(70 + 230 * wave)
            used = max(used, sum(mem or 0 for _, mem in given.get(i, [])))
            gpus.append(Gpu(i, f"GPU-sim-{i:04d}", "Simulated GPU", total, min(used, total), util, now,
                            mem_util=util * 0.6, temperature=temp, power=power, power_limit=350.0, fan=None,
                            clock_sm=1410, clock_mem=1593, pstate=0 if util else 8, mig=False, processes=procs))
        return GpuState(gpus, None if gpus else "The simulated machine has no GPUs.", self.name, now)


# -- replayed ---------------------------------------------------------------------------------------
class RecordedGpus(_Backend):
    """Replays a JSON-lines file of snapshots (as `mltui gpu --json --watch` writes them), looping."""

    name = "replay"

    def __init__(self, path: str) -> None:
        self.path = path
        self._frames: list[dict] | None = None
        self._start = time.time()

    def _load(self) -> list[dict]:
        if self._frames is None:
            frames = []
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    line = line.strip()
                    if line:
                        frames.append(json.loads(line))
            self._frames = frames
        return self._frames

    def snapshot(self) -> GpuState:
        try:
            frames = self._load()
        except (OSError, ValueError) as exc:
            return GpuState([], f"Cannot replay GPU snapshots from {self.path}: {exc}.", self.name)
        if not frames:
            return GpuState([], f"{self.path} holds no GPU snapshots to replay.", self.name)
        frame = frames[int(time.time() - self._start) % len(frames)]
        now = time.time()
        if not isinstance(frame, dict):
            return GpuState([], f"{self.path} has a line that is not a GPU snapshot.", self.name)
        try:
            gpus = [Gpu.from_dict({**g, "taken": now}) for g in frame.get("gpus", [])]
        except (KeyError, TypeError) as exc:
            return GpuState([], f"{self.path} has a snapshot mltui cannot read ({exc}).", self.name)
        return GpuState(gpus, frame.get("error"), self.name, now)


# -- real -------------------------------------------------------------------------------------------
_NVML_SENTENCES = {
    "LibraryNotFound": "No NVIDIA driver library (libnvidia-ml.so) was found: this machine has no NVIDIA driver.",
    "DriverNotLoaded": "The NVIDIA driver is not loaded, so no GPU can be read.",
    "LibRmVersionMismatch": "The NVIDIA driver and its library have different versions (a driver update "
                            "without a reboot?), so no GPU can be read.",
    "NoPermission": "This user may not read the GPUs (NVML said: no permission).",
    "GpuIsLost": "the GPU has fallen off the bus (NVML: GPU is lost); it needs a reset or a reboot",
    "Uninitialized": "NVML was not initialised.",
}


def nvml_sentence(exc: BaseException) -> str:
    """One plain sentence for an NVML failure."""
    kind = type(exc).__name__.removeprefix("NVMLError_")
    if kind in _NVML_SENTENCES:
        return _NVML_SENTENCES[kind]
    return f"NVML failed: {exc}."


class NvmlGpus(_Backend):
    """The real GPUs through nvidia-ml-py. NVML starts lazily, once, under a lock, and is shut down at exit;
    a query a GPU does not support gives None."""

    name = "nvml"
    _lock = threading.Lock()
    _module = None  # pynvml once initialised

    def _nvml(self):
        with self._lock:
            if NvmlGpus._module is None:
                try:
                    import pynvml
                except ImportError:
                    raise _Unavailable("The NVIDIA management library for Python (nvidia-ml-py) is not "
                                       "installed, so GPUs cannot be read.") from None
                try:
                    pynvml.nvmlInit()
                except Exception as exc:
                    raise _Unavailable(nvml_sentence(exc)) from None
                import atexit

                atexit.register(_shutdown, pynvml)
                NvmlGpus._module = pynvml
            return NvmlGpus._module

    def snapshot(self) -> GpuState:
        now = time.time()
        try:
            nv = self._nvml()
            count = nv.nvmlDeviceGetCount()
        except _Unavailable as exc:
            return GpuState([], str(exc), self.name, now)
        except Exception as exc:
            return GpuState([], nvml_sentence(exc), self.name, now)
        if count == 0:
            return GpuState([], "NVML works, but this machine has no NVIDIA GPU.", self.name, now)
        gpus, problems = [], []
        for i in range(count):
            gpu = self._device(nv, i, now)
            if gpu.error:
                problems.append(f"GPU {i}: {gpu.error}")
            gpus.append(gpu)
        return GpuState(gpus, "; ".join(problems) + "." if problems else None, self.name, now)

    def _device(self, nv, i: int, now: float) -> Gpu:
        try:
            handle = nv.nvmlDeviceGetHandleByIndex(i)
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
        except Exception as exc:
            return Gpu(i, "", "", 0, 0, None, now, error=nvml_sentence(exc).rstrip("."))

        def query(fn, *args, default=None):
            try:
                return fn(handle, *args)
            except Exception:  # NotSupported and friends: not available, never an error
                return default

        rates = query(nv.nvmlDeviceGetUtilizationRates)
        power = query(nv.nvmlDeviceGetPowerUsage)
        limit = query(nv.nvmlDeviceGetEnforcedPowerLimit)
        mig = query(nv.nvmlDeviceGetMigMode)
        procs = []
        for fn, kind in ((nv.nvmlDeviceGetComputeRunningProcesses, "compute"),
                         (nv.nvmlDeviceGetGraphicsRunningProcesses, "graphics")):
            for p in query(fn, default=[]) or []:
                used = getattr(p, "usedGpuMemory", None)
                procs.append(GpuProcess(int(p.pid), i, int(used) if isinstance(used, int) else None, kind))
        return Gpu(
            i, _text(query(nv.nvmlDeviceGetUUID, default="")), _text(query(nv.nvmlDeviceGetName, default="")),
            int(mem.total), int(mem.used), float(rates.gpu) if rates is not None else None, now,
            mem_util=float(rates.memory) if rates is not None else None,
            temperature=query(nv.nvmlDeviceGetTemperature, 0),  # NVML_TEMPERATURE_GPU
            power=power / 1000.0 if power is not None else None,
            power_limit=limit / 1000.0 if limit is not None else None,
            fan=query(nv.nvmlDeviceGetFanSpeed),
            clock_sm=query(nv.nvmlDeviceGetClockInfo, 1),  # NVML_CLOCK_SM
            clock_mem=query(nv.nvmlDeviceGetClockInfo, 2),  # NVML_CLOCK_MEM
            pstate=query(nv.nvmlDeviceGetPerformanceState),
            mig=bool(mig[0]) if isinstance(mig, (list, tuple)) and mig else None,
            processes=procs,
        )


class _Unavailable(Exception):
    pass


def _shutdown(nv) -> None:
    try:
        nv.nvmlShutdown()
    except Exception:
        pass


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


# -- choosing -----------------------------------------------------------------------------------------
def open_gpus(backend: str = "auto", workspace=None):
    """The GPU source named by config (`gpu.backend`), overridden by the environment:
    MLTUI_GPU=sim:N | replay:PATH | nvml | none, or MLTUI_GPU_SIM="2x24" (sizes), or MLTUI_GPU_BACKEND."""
    chosen = os.environ.get("MLTUI_GPU") or os.environ.get("MLTUI_GPU_BACKEND") or backend
    sim = os.environ.get("MLTUI_GPU_SIM")
    kind, _, arg = chosen.partition(":")
    if kind == "sim" or (kind == "auto" and sim):
        return SimulatedGpus(arg or sim or "1", workspace=workspace)
    if kind == "replay":
        return RecordedGpus(arg)
    if kind == "none":
        return NoGpus()
    if kind in ("auto", "nvml"):
        return NvmlGpus()
    raise ValueError(f"unknown GPU backend {chosen!r} (auto, nvml, sim:N, replay:PATH, none)")


def visible(gpus: Sequence[Gpu], spec: str | None = None) -> list[Gpu]:
    """The GPUs CUDA_VISIBLE_DEVICES (or `spec`) lets a process see, by index or UUID, in its order."""
    spec = os.environ.get("CUDA_VISIBLE_DEVICES") if spec is None else spec
    if spec is None:
        return list(gpus)
    out = []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        match = next((g for g in gpus if (token.isdigit() and g.index == int(token)) or
                      (not token.isdigit() and g.uuid.startswith(token))), None)
        if match is None:
            break  # CUDA stops at the first id it cannot find
        out.append(match)
    return out


def pick_gpus(gpus: Sequence[Gpu], want: int, mem_gb: float | None, busy: set[int]) -> list[int] | None:
    """Indexes of `want` GPUs not given to another run and with `mem_gb` free, or None if not enough now."""
    need = int((mem_gb or 0) * 2**30)
    free = [g.index for g in gpus if g.index not in busy and g.mem_free >= need]
    return free[:want] if len(free) >= want else None
