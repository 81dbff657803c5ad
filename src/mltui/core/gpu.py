"""GPU state through one small interface: real NVML (pynvml), a simulated set of GPUs, or none.

Only immutable snapshots leave this module, so threads and screens never touch NVML handles.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence


class Gpu:
    """One GPU at one moment: plain values and the time they were read."""

    __slots__ = ("index", "uuid", "name", "mem_total", "mem_used", "util", "taken")

    def __init__(self, index: int, uuid: str, name: str, mem_total: int, mem_used: int,
                 util: float | None = None, taken: float | None = None) -> None:
        self.index = index
        self.uuid = uuid
        self.name = name
        self.mem_total = mem_total  # bytes
        self.mem_used = mem_used  # bytes
        self.util = util  # percent, None when the GPU cannot say
        self.taken = time.time() if taken is None else taken

    @property
    def mem_free(self) -> int:
        return max(0, self.mem_total - self.mem_used)

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"Gpu({self.index}, {self.name!r}, free={self.mem_free / 2**30:.1f} GiB)"


class NoGpus:
    """No GPU source: an empty list, and a reason to show."""

    name = "none"

    def __init__(self, reason: str = "no GPU source is configured") -> None:
        self.reason = reason

    def devices(self) -> list[Gpu]:
        return []


class SimulatedGpus:
    """GPUs described by a spec like "2x24" (two 24 GiB GPUs) or "80,40:10" (80 GiB free, 40 GiB with 10 used)."""

    name = "sim"

    def __init__(self, spec: str) -> None:
        self.reason = ""
        self._gpus: list[tuple[int, int]] = []
        for part in spec.replace(" ", "").split(","):
            if not part:
                continue
            count, _, size = part.rpartition("x") if "x" in part else ("1", "", part)
            total, _, used = size.partition(":")
            try:
                n, total_gib, used_gib = int(count or 1), float(total), float(used or 0)
            except ValueError:
                raise ValueError(f"bad simulated GPU spec {spec!r} (try \"2x24\" or \"80,40:10\")") from None
            self._gpus.extend([(int(total_gib * 2**30), int(used_gib * 2**30))] * n)

    def devices(self) -> list[Gpu]:
        now = time.time()
        return [Gpu(i, f"GPU-sim-{i:04d}", "Simulated GPU", total, used, 0.0, now)
                for i, (total, used) in enumerate(self._gpus)]


class NvmlGpus:
    """The real thing, through nvidia-ml-py. NVML is initialised lazily, once, under a lock."""

    name = "nvml"
    _lock = threading.Lock()
    _ready = False

    def __init__(self) -> None:
        self.reason = ""

    def _init(self):
        import pynvml

        with self._lock:
            if not NvmlGpus._ready:
                pynvml.nvmlInit()
                NvmlGpus._ready = True
        return pynvml

    def devices(self) -> list[Gpu]:
        try:
            nv = self._init()
            count = nv.nvmlDeviceGetCount()
        except Exception as exc:  # no driver, no library, no permission: no GPUs, said once
            self.reason = f"NVML is not available ({type(exc).__name__}: {exc})"
            return []
        now = time.time()
        out = []
        for i in range(count):
            try:
                handle = nv.nvmlDeviceGetHandleByIndex(i)
                mem = nv.nvmlDeviceGetMemoryInfo(handle)
                name = nv.nvmlDeviceGetName(handle)
                uuid = nv.nvmlDeviceGetUUID(handle)
            except Exception:
                continue
            try:
                util = float(nv.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:
                util = None
            out.append(Gpu(i, _text(uuid), _text(name), int(mem.total), int(mem.used), util, now))
        return out


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def open_gpus(backend: str = "auto"):
    """The GPU source named by config (`gpu.backend`), overridden by MLTUI_GPU_BACKEND / MLTUI_GPU_SIM."""
    backend = os.environ.get("MLTUI_GPU_BACKEND", backend)
    sim = os.environ.get("MLTUI_GPU_SIM")
    if backend == "sim" or (backend == "auto" and sim):
        return SimulatedGpus(sim or "")
    if backend == "none":
        return NoGpus()
    if backend in ("auto", "nvml"):
        return NvmlGpus()
    raise ValueError(f"unknown GPU backend {backend!r}")


def pick_gpus(gpus: Sequence[Gpu], want: int, mem_gb: float | None, busy: set[int]) -> list[int] | None:
    """Indexes of `want` GPUs not given to another run and with `mem_gb` free, or None if not enough now."""
    need = int((mem_gb or 0) * 2**30)
    free = [g.index for g in gpus if g.index not in busy and g.mem_free >= need]
    return free[:want] if len(free) >= want else None
