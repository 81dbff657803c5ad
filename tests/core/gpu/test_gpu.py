"""GPUs: the NVML layer through a test
double of pynvml, the simulated and replayed backends, CUDA_VISIBLE_DEVICES, `mltui gpu` and
`mltui gpu free`, and which run owns a GPU process, with real process trees.

The double (FAKE_PYNVML below) is written to `tmp_path/fake_nvml/pynvml.py` and goes first on the
import path: in-process through `sys.path` (with `NvmlGpus._module` reset, so NVML starts afresh),
and for the command line through PYTHONPATH. It is steered by the JSON in FAKE_NVML (read when it
is imported) or by its `CONFIG` attribute: which NVML error `nvmlInit` or `nvmlDeviceGetCount` raises,
and per GPU its values and which queries fail with which error. Nothing in mltui knows about it:
`mltui.core.gpu.sources` imports `pynvml` and gets the double instead of nvidia-ml-py, so what is tested is
the code that reads real GPUs.
"""

from __future__ import annotations

import atexit
import importlib
import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest
from launching import kill_workspace_processes, output, row, wait_for, wait_status

from mltui.core.gpu import sources as gpu_mod
from mltui.core.gpu.sources import (
    Gpu,
    GpuState,
    NoGpus,
    NvmlGpus,
    RecordedGpus,
    SimulatedGpus,
    nvml_sentence,
    open_gpus,
    visible,
)
from mltui.core.gpu.owners import owners
from mltui.core.launch.launcher import Launch, launch

try:  # nvidia-ml-py itself, imported before any test puts the double first on the path
    import pynvml as REAL_PYNVML
except ImportError:
    REAL_PYNVML = None

GIB = 2**30

# -- the pynvml double -------------------------------------------------------------------------

FAKE_PYNVML = '''
"""A test double of nvidia-ml-py's `pynvml`: the names mltui calls, steered by CONFIG.

CONFIG (from the JSON in $FAKE_NVML when imported; tests may change it later):
  init: error name nvmlInit raises ("DriverNotLoaded" -> NVMLError_DriverNotLoaded); init_delay: seconds
  count: error name nvmlDeviceGetCount raises
  shutdown_file: nvmlShutdown appends a line to it
  gpus: [{name, uuid, total, used, util, mem_util, temperature, power_mw, limit_mw, fan, clock_sm, clock_mem,
          pstate, mig, compute: [[pid, bytes]], graphics: [[pid, bytes]],
          fail: {query: error name}}]   queries: handle memory util power power_limit mig processes uuid
                                        name temperature fan clocks pstate
"""
import json
import os
import time

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2


class NVMLError(Exception):
    value = 999
    text = "Unknown Error"

    def __init__(self, value=None):
        super().__init__(self.value if value is None else value)

    def __str__(self):
        return self.text


class NVMLError_Uninitialized(NVMLError):
    value, text = 1, "Uninitialized"


class NVMLError_NotSupported(NVMLError):
    value, text = 3, "Not Supported"


class NVMLError_NoPermission(NVMLError):
    value, text = 4, "Insufficient Permissions"


class NVMLError_DriverNotLoaded(NVMLError):
    value, text = 9, "Driver Not Loaded"


class NVMLError_LibraryNotFound(NVMLError):
    value, text = 12, "NVML Shared Library Not Found"


class NVMLError_GpuIsLost(NVMLError):
    value, text = 15, "GPU is lost"


class NVMLError_LibRmVersionMismatch(NVMLError):
    value, text = 18, "RM has detected an NVML/RM version mismatch."


class NVMLError_Unknown(NVMLError):
    value, text = 999, "Unknown Error"


CONFIG = json.loads(os.environ.get("FAKE_NVML") or "{}")
CALLS = []  # (function name, args) of every call
_started = False


class _Handle:
    def __init__(self, index):
        self.index = index


class _Struct:
    def __init__(self, **fields):
        self.__dict__.update(fields)


def _raise(name):
    if name:
        raise globals()["NVMLError_" + name]()


def _gpu(handle, query, fn, args=()):
    CALLS.append((fn, (handle, *args)))
    if not _started:
        raise NVMLError_Uninitialized()
    gpu = CONFIG["gpus"][handle.index]
    _raise(gpu.get("fail", {}).get(query))
    return gpu


def nvmlInit():
    global _started
    CALLS.append(("nvmlInit", ()))
    time.sleep(CONFIG.get("init_delay", 0))
    _raise(CONFIG.get("init"))
    _started = True


def nvmlShutdown():
    global _started
    CALLS.append(("nvmlShutdown", ()))
    if not _started:
        raise NVMLError_Uninitialized()
    _started = False
    if CONFIG.get("shutdown_file"):
        with open(CONFIG["shutdown_file"], "a") as fh:
            fh.write("shutdown\\n")


def nvmlDeviceGetCount():
    CALLS.append(("nvmlDeviceGetCount", ()))
    if not _started:
        raise NVMLError_Uninitialized()
    _raise(CONFIG.get("count"))
    return len(CONFIG.get("gpus", []))


def nvmlDeviceGetHandleByIndex(index):
    CALLS.append(("nvmlDeviceGetHandleByIndex", (index,)))
    _raise(CONFIG["gpus"][index].get("fail", {}).get("handle"))
    return _Handle(index)


def nvmlDeviceGetMemoryInfo(handle, version=None):
    gpu = _gpu(handle, "memory", "nvmlDeviceGetMemoryInfo")
    total, used = gpu.get("total", 80 * 2**30), gpu.get("used", 0)
    return _Struct(total=total, used=used, free=total - used)


def nvmlDeviceGetUtilizationRates(handle):
    gpu = _gpu(handle, "util", "nvmlDeviceGetUtilizationRates")
    return _Struct(gpu=gpu.get("util", 0), memory=gpu.get("mem_util", 0))


def nvmlDeviceGetPowerUsage(handle):
    return _gpu(handle, "power", "nvmlDeviceGetPowerUsage").get("power_mw", 100000)


def nvmlDeviceGetEnforcedPowerLimit(handle):
    return _gpu(handle, "power_limit", "nvmlDeviceGetEnforcedPowerLimit").get("limit_mw", 400000)


def nvmlDeviceGetMigMode(handle):
    mode = _gpu(handle, "mig", "nvmlDeviceGetMigMode").get("mig", 0)
    return [mode, mode]


def _processes(handle, key, fn):
    gpu = _gpu(handle, "processes", fn)
    return [_Struct(pid=pid, usedGpuMemory=used) for pid, used in gpu.get(key, [])]


def nvmlDeviceGetComputeRunningProcesses(handle):
    return _processes(handle, "compute", "nvmlDeviceGetComputeRunningProcesses")


def nvmlDeviceGetGraphicsRunningProcesses(handle):
    return _processes(handle, "graphics", "nvmlDeviceGetGraphicsRunningProcesses")


def nvmlDeviceGetUUID(handle):
    return _gpu(handle, "uuid", "nvmlDeviceGetUUID").get("uuid", "GPU-fake-%04d" % handle.index)


def nvmlDeviceGetName(handle):
    gpu = _gpu(handle, "name", "nvmlDeviceGetName")
    name = gpu.get("name", "Fake A100")
    return name.encode() if gpu.get("bytes") else name  # old nvidia-ml-py returned bytes


def nvmlDeviceGetTemperature(handle, sensor):
    return _gpu(handle, "temperature", "nvmlDeviceGetTemperature", (sensor,)).get("temperature", 40)


def nvmlDeviceGetFanSpeed(handle):
    return _gpu(handle, "fan", "nvmlDeviceGetFanSpeed").get("fan", 30)


def nvmlDeviceGetClockInfo(handle, clock_type):
    gpu = _gpu(handle, "clocks", "nvmlDeviceGetClockInfo", (clock_type,))
    return gpu.get("clock_sm", 1410) if clock_type == NVML_CLOCK_SM else gpu.get("clock_mem", 1593)


def nvmlDeviceGetPerformanceState(handle):
    return _gpu(handle, "pstate", "nvmlDeviceGetPerformanceState").get("pstate", 0)
'''

ERROR_NAMES = ("LibraryNotFound", "DriverNotLoaded", "LibRmVersionMismatch", "NoPermission", "GpuIsLost",
               "NotSupported", "Unknown")

# what each failure at nvmlInit must say (words of the sentence, lower case)
INIT_FAILURES = {
    "LibraryNotFound": ("no nvidia driver",),
    "DriverNotLoaded": ("driver is not loaded",),
    "LibRmVersionMismatch": ("different versions",),
    "NoPermission": ("no permission",),
    "Unknown": ("nvml failed", "unknown error"),
}

GPU_ENV = ("MLTUI_GPU", "MLTUI_GPU_SIM", "MLTUI_GPU_BACKEND", "CUDA_VISIBLE_DEVICES", "FAKE_NVML")


@pytest.fixture(autouse=True)
def _clean(tmp_path, monkeypatch):
    """No GPU choice from the caller's environment; no process of the test's workspace left behind."""
    for var in GPU_ENV:
        monkeypatch.delenv(var, raising=False)
    yield
    kill_workspace_processes(tmp_path / ".mltui")


@pytest.fixture
def fake_dir(tmp_path) -> Path:
    """A folder holding the pynvml double (and nothing else)."""
    folder = tmp_path / "fake_nvml"
    folder.mkdir()
    (folder / "pynvml.py").write_text(FAKE_PYNVML)
    return folder


@pytest.fixture
def nvml(fake_dir, monkeypatch):
    """install(config) -> the double, imported from `fake_dir` first on sys.path as `pynvml`, with NVML
    not yet started in mltui. atexit registrations made meanwhile are kept in `install.atexit`."""
    monkeypatch.setitem(sys.modules, "pynvml", None)  # whatever was there comes back after the test
    del sys.modules["pynvml"]
    monkeypatch.syspath_prepend(str(fake_dir))
    monkeypatch.setattr(NvmlGpus, "_module", None)
    registered: list = []
    monkeypatch.setattr(atexit, "register", lambda fn, *args, **kw: registered.append((fn, args)))

    def install(config: dict | None = None, preload: bool = True):
        monkeypatch.setenv("FAKE_NVML", json.dumps(config or {}))
        sys.modules.pop("pynvml", None)
        if not preload:
            return None
        module = importlib.import_module("pynvml")
        assert Path(module.__file__) == fake_dir / "pynvml.py"
        return module

    install.atexit = registered
    return install


def fake_env(fake_dir: Path, config: dict, **extra: str) -> dict:
    """Environment for `python -m mltui gpu` reading GPUs through the double."""
    path = os.pathsep.join(p for p in (str(fake_dir), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "MLTUI_GPU": "nvml", "FAKE_NVML": json.dumps(config), **extra}


def stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def sentence_ok(text: str) -> None:
    """One plain sentence: one line, no traceback, no Python exception spelling."""
    assert text and "\n" not in text.strip(), text
    assert "Traceback" not in text and "Error:" not in text and "unexpected error" not in text, text


# -- 1. the double is pynvml's shape ---------------------------------------------------------------

def test_the_double_has_the_names_and_call_shapes_of_the_real_pynvml(nvml):
    """mltui's calls on the double would bind on nvidia-ml-py too, its error classes are the real ones'
    names for the same codes, and the constants mltui spells as numbers are the real ones."""
    real = REAL_PYNVML
    if real is None:
        pytest.skip("nvidia-ml-py is not installed")
    fake = nvml({"gpus": [{"compute": [[10, GIB]]}, {"fail": {"fan": "NotSupported"}}]})
    assert fake is not real
    NvmlGpus().snapshot()
    called = {name for name, _ in fake.CALLS}
    assert {"nvmlInit", "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex", "nvmlDeviceGetMemoryInfo",
            "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetPowerUsage", "nvmlDeviceGetEnforcedPowerLimit",
            "nvmlDeviceGetMigMode", "nvmlDeviceGetComputeRunningProcesses",
            "nvmlDeviceGetGraphicsRunningProcesses", "nvmlDeviceGetUUID", "nvmlDeviceGetName",
            "nvmlDeviceGetTemperature", "nvmlDeviceGetFanSpeed", "nvmlDeviceGetClockInfo",
            "nvmlDeviceGetPerformanceState"} <= called
    for name, args in fake.CALLS:
        assert callable(getattr(real, name, None)), f"nvidia-ml-py has no {name}"
        inspect.signature(getattr(real, name)).bind(*args)  # TypeError if mltui calls it otherwise
    for name in ERROR_NAMES:
        cls = getattr(fake, f"NVMLError_{name}")
        assert issubclass(cls, fake.NVMLError)
        assert type(real.NVMLError(cls.value)).__name__ == cls.__name__
    assert (real.NVML_TEMPERATURE_GPU, real.NVML_CLOCK_SM, real.NVML_CLOCK_MEM) == (0, 1, 2)


def test_real_pynvml_errors_get_the_same_sentences_as_the_doubles(nvml):
    real = REAL_PYNVML
    if real is None:
        pytest.skip("nvidia-ml-py is not installed")
    fake = nvml()
    for name in ERROR_NAMES:
        fake_exc = getattr(fake, f"NVMLError_{name}")()
        real_exc = real.NVMLError(fake_exc.value)
        sentence = nvml_sentence(real_exc)
        sentence_ok(sentence)
        if name != "Unknown":  # "NVML failed: <NVML's own words>." differs only in NVML's words
            assert sentence == nvml_sentence(fake_exc)


def test_the_real_nvml_path_never_raises_here(monkeypatch):
    """Whatever this machine has (no driver, or real GPUs), the real pynvml gives GPUs or a sentence."""
    if REAL_PYNVML is None:
        pytest.skip("nvidia-ml-py is not installed")
    monkeypatch.setitem(sys.modules, "pynvml", REAL_PYNVML)
    monkeypatch.setattr(NvmlGpus, "_module", None)
    monkeypatch.setattr(atexit, "register", lambda *a, **k: None)
    state = open_gpus("nvml").snapshot()
    assert state.source == "nvml"
    assert state.gpus or state.error
    if not state.gpus:
        sentence_ok(state.error)


# -- 1. the NVML layer through the double ------------------------------------------------------------

def test_nvml_starts_lazily_once_and_registers_its_shutdown(nvml):
    nvml({"gpus": [{}], "init_delay": 0.05}, preload=False)
    source = open_gpus("nvml")
    assert isinstance(source, NvmlGpus)
    assert "pynvml" not in sys.modules, "choosing the backend must not import pynvml"
    states: list[GpuState] = []
    threads = [threading.Thread(target=lambda: states.append(source.snapshot())) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    fake = sys.modules["pynvml"]
    assert "fake_nvml" in fake.__file__
    source.snapshot()
    NvmlGpus().snapshot()  # another instance shares the started library
    assert [name for name, _ in fake.CALLS].count("nvmlInit") == 1
    assert len(states) == 6 and all(s.error is None and len(s.gpus) == 1 for s in states)
    assert [fn.__name__ for fn, _ in nvml.atexit] == ["_shutdown"]
    fn, args = nvml.atexit[0]
    fn(*args)
    fn(*args)  # a second shutdown (NVML says Uninitialized) is swallowed
    assert [name for name, _ in fake.CALLS].count("nvmlShutdown") == 2


def test_a_failed_init_is_tried_again_on_the_next_snapshot(nvml):
    fake = nvml({"init": "DriverNotLoaded", "gpus": [{}]})
    source = NvmlGpus()
    first = source.snapshot()
    assert first.gpus == () and "not loaded" in first.error
    assert source.devices() == [] and "not loaded" in source.reason
    assert nvml.atexit == [], "a library that did not start is not shut down"
    fake.CONFIG["init"] = None  # the driver came up
    second = source.snapshot()
    assert second.error is None and [g.index for g in second.gpus] == [0]


@pytest.mark.parametrize("error", sorted(INIT_FAILURES))
def test_each_init_failure_is_one_sentence(nvml, error):
    nvml({"init": error, "gpus": [{}]})
    state = NvmlGpus().snapshot()
    assert state.gpus == () and state.source == "nvml"
    sentence_ok(state.error)
    for words in INIT_FAILURES[error]:
        assert words in state.error.lower()


def test_no_pynvml_module_is_a_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    monkeypatch.setattr(NvmlGpus, "_module", None)
    state = NvmlGpus().snapshot()
    assert state.gpus == ()
    sentence_ok(state.error)
    assert "nvidia-ml-py" in state.error and "not installed" in state.error


def test_no_device_and_a_failing_count_are_sentences(nvml):
    fake = nvml({"gpus": []})
    state = NvmlGpus().snapshot()
    assert state.gpus == () and "no NVIDIA GPU" in state.error
    fake.CONFIG.update(count="Unknown", gpus=[{}])
    state = NvmlGpus().snapshot()
    assert state.gpus == ()
    sentence_ok(state.error)
    assert state.error.startswith("NVML failed")


def test_all_fields_of_a_working_gpu(nvml):
    nvml({"gpus": [
        {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-5a3e9c1d-0000", "total": 80 * GIB, "used": 30 * GIB,
         "util": 87, "mem_util": 40, "temperature": 71, "power_mw": 512345, "limit_mw": 700000, "fan": 55,
         "clock_sm": 1980, "clock_mem": 2619, "pstate": 2, "mig": 1,
         "compute": [[4242, 20 * GIB], [4343, None]], "graphics": [[99, GIB]]},
        {"name": "Old Tesla", "bytes": True},
    ]})
    before = time.time()
    state = NvmlGpus().snapshot()
    assert state.error is None and state.source == "nvml" and state.taken >= before
    h100, old = state.gpus
    assert (h100.index, h100.name, h100.uuid) == (0, "NVIDIA H100 80GB HBM3", "GPU-5a3e9c1d-0000")
    assert (h100.mem_total, h100.mem_used, h100.mem_free) == (80 * GIB, 30 * GIB, 50 * GIB)
    assert (h100.util, h100.mem_util, h100.temperature, h100.fan) == (87.0, 40.0, 71, 55)
    assert (h100.power, h100.power_limit) == (pytest.approx(512.345), 700.0)
    assert (h100.clock_sm, h100.clock_mem, h100.pstate, h100.mig) == (1980, 2619, 2, True)
    assert [(p.pid, p.gpu, p.used_memory, p.kind) for p in h100.processes] == [
        (4242, 0, 20 * GIB, "compute"), (4343, 0, None, "compute"), (99, 0, GIB, "graphics")]
    assert h100.error is None and h100.taken == state.taken
    assert old.name == "Old Tesla" and old.mig is False and old.processes == ()
    data = json.loads(json.dumps(state.as_dict()))
    assert data["gpus"][0]["mem_free"] == 50 * GIB
    assert data["gpus"][0]["processes"][2] == {"pid": 99, "gpu": 0, "used_memory": GIB, "kind": "graphics"}


def test_not_supported_fields_are_none_not_errors(nvml):
    nvml({"gpus": [
        {"fail": {"fan": "NotSupported", "power": "NotSupported", "power_limit": "NotSupported",
                  "clocks": "NotSupported"}},
        {"fail": {q: "NotSupported" for q in ("util", "temperature", "pstate", "mig", "processes", "uuid",
                                              "name", "fan", "power", "power_limit", "clocks")}},
    ]})
    source = NvmlGpus()
    state = source.snapshot()
    assert state.error is None
    laptop, bare = state.gpus
    assert (laptop.fan, laptop.power, laptop.power_limit, laptop.clock_sm, laptop.clock_mem) == (None,) * 5
    assert laptop.error is None and laptop.util == 0.0 and laptop.temperature == 40
    assert bare.error is None and bare.mem_total == 80 * GIB
    assert (bare.util, bare.mem_util, bare.temperature, bare.pstate, bare.mig) == (None,) * 5
    assert bare.processes == () and bare.uuid == "" and bare.name == ""
    assert [g.index for g in source.devices()] == [0, 1]


@pytest.mark.parametrize("where", ["handle", "memory"])
def test_a_lost_gpu_carries_a_sentence_and_the_others_still_work(nvml, where):
    nvml({"gpus": [{"name": "Good"}, {"fail": {where: "GpuIsLost"}}, {"name": "Also good"}]})
    source = NvmlGpus()
    state = source.snapshot()
    good, lost, also = state.gpus
    assert (good.name, good.error, also.name, also.error) == ("Good", None, "Also good", None)
    assert lost.index == 1
    sentence_ok(lost.error)
    assert "fallen off the bus" in lost.error
    sentence_ok(state.error)
    assert state.error.startswith("GPU 1: ") and "fallen off the bus" in state.error
    assert [g.index for g in source.devices()] == [0, 2]


# -- 1/6. the same through `mltui gpu` in a subprocess ----------------------------------------------

@pytest.mark.parametrize("error", sorted(INIT_FAILURES))
def test_cli_init_failures_are_one_line_and_exit_1(cli, tmp_path, fake_dir, error):
    shutdown = tmp_path / "shutdown.txt"
    env = fake_env(fake_dir, {"init": error, "gpus": [{}], "shutdown_file": str(shutdown)})
    plain = cli("gpu", cwd=tmp_path, env=env)
    assert plain.returncode == 1
    assert plain.stdout == ""
    lines = stderr_lines(plain)
    assert len(lines) == 1 and lines[0].startswith("mltui: "), plain.stderr
    sentence_ok(lines[0])
    for words in INIT_FAILURES[error]:
        assert words in lines[0].lower()
    as_json = cli("gpu", "--json", cwd=tmp_path, env=env)
    assert as_json.returncode == 1 and as_json.stderr == ""
    data = json.loads(as_json.stdout)
    assert data["gpus"] == [] and data["source"] == "nvml"
    assert f"mltui: {data['error']}" == lines[0]
    assert not shutdown.exists()


def test_cli_without_pynvml_is_one_line(cli, tmp_path):
    broken = tmp_path / "no_nvml"
    broken.mkdir()
    (broken / "pynvml.py").write_text("raise ImportError('No module named pynvml')\n")
    result = cli("gpu", cwd=tmp_path, env={"PYTHONPATH": str(broken), "MLTUI_GPU": "nvml"})
    assert result.returncode == 1 and result.stdout == ""
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("mltui: ") and "nvidia-ml-py" in lines[0]
    data = json.loads(cli("gpu", "--json", cwd=tmp_path,
                          env={"PYTHONPATH": str(broken), "MLTUI_GPU": "nvml"}).stdout)
    assert "nvidia-ml-py" in data["error"] and data["gpus"] == []


def test_cli_lists_the_working_gpu_beside_a_lost_one_and_shuts_nvml_down(cli, tmp_path, fake_dir):
    shutdown = tmp_path / "shutdown.txt"
    env = fake_env(fake_dir, {"shutdown_file": str(shutdown), "gpus": [
        {"fail": {"memory": "GpuIsLost"}},
        {"name": "Fake H100", "total": 80 * GIB, "used": 8 * GIB, "util": 12, "temperature": 50,
         "fail": {"fan": "NotSupported", "power": "NotSupported", "clocks": "NotSupported"}},
    ]})
    plain = cli("gpu", cwd=tmp_path, env=env)
    assert plain.returncode == 0
    lines = stderr_lines(plain)
    assert len(lines) == 1 and lines[0].startswith("mltui: GPU 0: ") and "fallen off the bus" in lines[0]
    rows = {line.split()[0]: line for line in plain.stdout.splitlines() if line.strip()[:1].isdigit()}
    assert "Fake H100" in rows["1"] and "8.0/80.0 GiB" in rows["1"] and "12%" in rows["1"]
    assert "fallen off the bus" in rows["0"]
    assert shutdown.read_text() == "shutdown\n", "NVML must be shut down at exit"

    data = json.loads(cli("gpu", "--json", cwd=tmp_path, env=env).stdout)
    lost, good = data["gpus"]
    assert "fallen off the bus" in lost["error"] and good["error"] is None
    assert good["name"] == "Fake H100" and good["mem_total"] == 80 * GIB
    assert (good["fan"], good["power"], good["clock_sm"], good["clock_mem"]) == (None, None, None, None)
    assert data["error"].startswith("GPU 0: ")


# -- 2. the simulated backend ----------------------------------------------------------------------

@pytest.fixture
def clock(monkeypatch):
    """Set `clock.now` to move the simulated GPUs' time without sleeping."""
    fake = types.SimpleNamespace(now=1_000_000.0)
    monkeypatch.setattr(gpu_mod, "time", types.SimpleNamespace(time=lambda: fake.now))
    return fake


def test_sim_n_gpus_move_over_time(clock):
    source = open_gpus("sim:4")
    assert isinstance(source, SimulatedGpus)
    seen = []
    for step in range(12):
        clock.now += 5.0
        state = source.snapshot()
        assert state.error is None and state.source == "sim" and state.taken == clock.now
        assert len(state.gpus) == 4 and len({g.uuid for g in state.gpus}) == 4
        for g in state.gpus:
            assert g.mem_total == 80 * GIB and 0 < g.mem_used <= g.mem_total
            assert 0 <= g.util <= 100 and g.taken == clock.now
        seen.append([(g.util, g.mem_used, g.temperature, g.power) for g in state.gpus])
    for i in range(4):
        assert len({frame[i] for frame in seen}) > 6, f"GPU {i} barely moves"
    assert len({frame[0][0] for frame in seen} | {frame[1][0] for frame in seen}) > 10


def test_sized_sim_gpus_stand_still(clock):
    source = SimulatedGpus("2x24")
    first = source.snapshot()
    clock.now += 100
    second = source.snapshot()
    assert [g.as_dict() | {"taken": 0} for g in first.gpus] == [g.as_dict() | {"taken": 0} for g in second.gpus]
    assert [(g.mem_total, g.mem_used, g.util) for g in first.gpus] == [(24 * GIB, 0, 0.0)] * 2
    mixed = SimulatedGpus("80,40:10, 2x16").snapshot()
    assert [(g.mem_total // GIB, g.mem_used // GIB) for g in mixed.gpus] == [(80, 0), (40, 10), (16, 0), (16, 0)]


def test_sim_processes_show_up_and_memory_covers_them(clock):
    procs = {0: [(111, 3 * GIB), (222, 2 * GIB)], 2: [(333, 20 * GIB)]}
    still = SimulatedGpus("3x24", processes=procs).snapshot()
    assert [(p.pid, p.gpu, p.used_memory, p.kind) for p in still.gpus[0].processes] == [
        (111, 0, 3 * GIB, "compute"), (222, 0, 2 * GIB, "compute")]
    assert still.gpus[1].processes == ()
    assert [p.pid for p in still.gpus[2].processes] == [333]
    assert still.gpus[0].mem_used >= 5 * GIB and still.gpus[2].mem_used >= 20 * GIB
    moving = SimulatedGpus("4", processes={1: [(444, 70 * GIB)]})
    for _ in range(10):
        clock.now += 3.3
        gpu1 = moving.snapshot().gpus[1]
        assert gpu1.mem_used >= 70 * GIB and [p.pid for p in gpu1.processes] == [444]


def test_sim_with_no_gpus_or_a_bad_spec():
    state = SimulatedGpus("0").snapshot()
    assert state.gpus == ()
    sentence_ok(state.error)
    with pytest.raises(ValueError, match="bad simulated GPU spec"):
        SimulatedGpus("two")
    with pytest.raises(ValueError, match="bad simulated GPU spec"):
        open_gpus("sim:4xbig")


def test_snapshots_are_immutable():
    state = SimulatedGpus("1x24", processes={0: [(1, GIB)]}).snapshot()
    for obj, field in ((state, "error"), (state.gpus[0], "util"), (state.gpus[0].processes[0], "pid")):
        with pytest.raises(AttributeError):
            setattr(obj, field, 1)


def test_open_gpus_precedence(monkeypatch):
    def kind(backend="auto"):
        source = open_gpus(backend)
        return source.name, [g.mem_total // GIB for g in source.snapshot().gpus] if source.name == "sim" else None

    assert isinstance(open_gpus("auto"), NvmlGpus) and isinstance(open_gpus("nvml"), NvmlGpus)
    assert isinstance(open_gpus("none"), NoGpus) and "turned off" in open_gpus("none").snapshot().error
    assert kind("sim") == ("sim", [80])
    monkeypatch.setenv("MLTUI_GPU_SIM", "2x24")
    assert kind("auto") == ("sim", [24, 24])  # sizes turn auto into the simulation
    assert kind("sim") == ("sim", [24, 24])
    assert kind("none") == ("none", None)  # a configured backend other than auto is kept
    monkeypatch.setenv("MLTUI_GPU_BACKEND", "none")
    assert kind("sim") == ("none", None)  # the environment beats the config
    monkeypatch.setenv("MLTUI_GPU", "sim:3")
    assert kind("none") == ("sim", [80, 80, 80])  # MLTUI_GPU beats everything; its N beats the sizes
    monkeypatch.setenv("MLTUI_GPU", "sim")
    assert kind("none") == ("sim", [24, 24])
    monkeypatch.setenv("MLTUI_GPU", "replay:/nowhere/gpus.jsonl")
    assert isinstance(open_gpus("none"), RecordedGpus)
    monkeypatch.setenv("MLTUI_GPU", "nvml")
    assert isinstance(open_gpus("none"), NvmlGpus)
    monkeypatch.setenv("MLTUI_GPU", "cuda")
    with pytest.raises(ValueError, match="unknown GPU backend 'cuda'"):
        open_gpus("auto")


def test_cli_backends_from_env_and_config(cli, ws):
    config = ws.config_path.read_text()
    ws.config_path.write_text(config.replace('backend = "auto"', 'backend = "none"'))
    off = cli("gpu")
    assert off.returncode == 1 and off.stdout == ""
    assert len(stderr_lines(off)) == 1 and "turned off" in off.stderr
    on = cli("gpu", "--json", env={"MLTUI_GPU": "sim:2"})
    assert on.returncode == 0 and [g["index"] for g in json.loads(on.stdout)["gpus"]] == [0, 1]
    ws.config_path.write_text(config.replace('backend = "auto"', 'backend = "sim"'))
    sized = json.loads(cli("gpu", "--json", env={"MLTUI_GPU_SIM": "3x16"}).stdout)
    assert [g["mem_total"] for g in sized["gpus"]] == [16 * GIB] * 3
    flag = json.loads(cli("gpu", "--json", "--sim-gpus", "1", env={"MLTUI_GPU": "none"}).stdout)
    assert flag["source"] == "sim" and len(flag["gpus"]) == 1  # the flag beats the environment


@pytest.mark.parametrize("args, env, words", [
    (["gpu"], {"MLTUI_GPU": "cuda"}, "unknown GPU backend 'cuda'"),
    (["gpu", "--json"], {"MLTUI_GPU": "sim:lots"}, "bad simulated GPU spec"),
    (["gpu", "--sim-gpus", "-1"], {}, "--sim-gpus"),
    (["gpu", "--sim-gpus", "two"], {}, "--sim-gpus"),
    (["gpu", "--sim-gpus", "1", "--watch", "0"], {}, "--watch"),
    (["gpu", "free", "--sim-gpus", "1", "--mem", "lots"], {}, "--mem"),
])
def test_cli_bad_usage_exits_2_with_one_line(cli, tmp_path, args, env, words):
    result = cli(*args, cwd=tmp_path, env=env)
    assert result.returncode == 2 and result.stdout == ""
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("mltui: ") and words in lines[0], result.stderr


def test_cli_plain_table_with_sim_gpus(cli, tmp_path):
    result = cli("gpu", "--sim-gpus", "3", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    rows = [line for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [r.split()[0] for r in rows] == ["0", "1", "2"]
    assert all("Simulated GPU" in r and "/80.0 GiB" in r for r in rows)


# -- 3. CUDA_VISIBLE_DEVICES -------------------------------------------------------------------------

@pytest.fixture
def four():
    return list(SimulatedGpus("4x24").snapshot().gpus)


@pytest.mark.parametrize("spec, want", [
    ("2,0", [2, 0]),
    (" 1 , 3 ", [1, 3]),
    ("GPU-sim-0003,1", [3, 1]),
    ("GPU-sim-0002", [2]),
    ("1,7,2", [1]),  # CUDA stops at the first id it cannot find
    ("GPU-nope,0", []),
    ("-1", []),
    ("", []),
    ("3,", [3]),
])
def test_visible_by_spec(four, spec, want):
    assert [g.index for g in visible(four, spec)] == want


def test_visible_follows_cuda_visible_devices(four, monkeypatch):
    assert [g.index for g in visible(four)] == [0, 1, 2, 3]  # unset: all
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,GPU-sim-0001")
    assert [g.index for g in visible(four)] == [3, 1]
    assert [g.index for g in visible(four, "0")] == [0]  # an explicit spec wins
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible(four) == []


def test_visible_by_real_looking_uuid_prefix(nvml):
    nvml({"gpus": [{"uuid": "GPU-5a3e9c1d-aaaa"}, {"uuid": "GPU-77f0b2c4-bbbb"}]})
    gpus = NvmlGpus().snapshot().gpus
    assert [g.index for g in visible(gpus, "GPU-77f0,GPU-5a3e9c1d-aaaa")] == [1, 0]


# -- 4. record and replay ----------------------------------------------------------------------------

def test_record_with_watch_then_replay(cli, tmp_path):
    recording = tmp_path / "gpus.jsonl"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    with open(recording, "w") as out, open(tmp_path / "rec.err", "w") as err:
        rec = subprocess.Popen([sys.executable, "-m", "mltui", "gpu", "--json", "--watch", "0.2", "--sim-gpus", "2"],
                               stdout=out, stderr=err, cwd=tmp_path, env=child_env)
    try:
        wait_for(lambda: recording.read_text().count("\n") >= 5, 15, what="five recorded snapshots")
    finally:
        rec.send_signal(signal.SIGINT)
        try:
            rec.wait(10)
        except subprocess.TimeoutExpired:
            rec.kill()
            rec.wait()
    assert rec.returncode in (0, 130)
    assert "Traceback" not in (tmp_path / "rec.err").read_text()
    frames = [json.loads(line) for line in recording.read_text().splitlines() if line.strip()]
    assert len(frames) >= 5
    assert all(f["source"] == "sim" and f["error"] is None and len(f["gpus"]) == 2 for f in frames)
    takens = [f["taken"] for f in frames]
    assert takens == sorted(takens) and takens[-1] - takens[0] >= 0.6

    replay = cli("gpu", "--json", cwd=tmp_path, env={"MLTUI_GPU": f"replay:{recording}"})
    assert replay.returncode == 0 and replay.stderr == ""
    data = json.loads(replay.stdout)
    assert data["source"] == "replay" and data["error"] is None
    key = [(g["index"], g["uuid"], g["name"], g["mem_total"]) for g in frames[0]["gpus"]]
    assert [(g["index"], g["uuid"], g["name"], g["mem_total"]) for g in data["gpus"]] == key
    assert (data["gpus"][0]["mem_used"], data["gpus"][0]["util"]) in {
        (f["gpus"][0]["mem_used"], f["gpus"][0]["util"]) for f in frames}
    plain = cli("gpu", cwd=tmp_path, env={"MLTUI_GPU": f"replay:{recording}"})
    assert plain.returncode == 0 and plain.stdout.count("Simulated GPU") == 2


def test_replay_keeps_errors_of_a_lost_gpu(tmp_path):
    frame = GpuState([Gpu(0, "GPU-a", "Good", 10 * GIB, GIB),
                      Gpu(1, "", "", 0, 0, error="the GPU has fallen off the bus")], "GPU 1: lost.", "nvml")
    path = tmp_path / "lost.jsonl"
    path.write_text(json.dumps(frame.as_dict()) + "\n")
    state = RecordedGpus(str(path)).snapshot()
    assert state.source == "replay" and state.error == "GPU 1: lost."
    assert [g.error for g in state.gpus] == [None, "the GPU has fallen off the bus"]
    assert state.gpus[0].mem_free == 9 * GIB


@pytest.mark.parametrize("content, words", [
    (None, "Cannot replay GPU snapshots from"),
    ("", "holds no GPU snapshots"),
    ("this is not json\n", "Cannot replay GPU snapshots from"),
    (b"\xff\xfe\x00garbage\n", "Cannot replay GPU snapshots from"),
    ('{"gpus": [{"index": 0}]}\n', "cannot read"),
    ('{"gpus": [1, 2]}\n', "cannot read"),
])
def test_a_missing_or_garbage_replay_file_is_a_sentence(cli, tmp_path, content, words):
    path = tmp_path / "gpus.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    state = RecordedGpus(str(path)).snapshot()
    assert state.gpus == () and words in state.error
    sentence_ok(state.error)
    result = cli("gpu", cwd=tmp_path, env={"MLTUI_GPU": f"replay:{path}"})
    assert result.returncode == 1 and result.stdout == ""
    lines = stderr_lines(result)
    assert len(lines) == 1 and words in lines[0]


def test_a_replay_line_that_is_json_but_no_object_is_a_sentence(cli, tmp_path):
    path = tmp_path / "gpus.jsonl"
    path.write_text("42\n")
    result = cli("gpu", cwd=tmp_path, env={"MLTUI_GPU": f"replay:{path}"})
    assert "unexpected error" not in result.stderr
    state = RecordedGpus(str(path)).snapshot()
    assert state.gpus == () and state.error


def test_a_recording_with_processes_replays_them(tmp_path):
    from mltui.cli import gpu as cli_gpu

    state = SimulatedGpus("2x24", processes={0: [(4242, 3 * GIB)]}).snapshot()
    path = tmp_path / "gpus.jsonl"
    path.write_text(json.dumps(cli_gpu._as_json(state, {})) + "\n")  # the line --json --watch writes
    replayed = RecordedGpus(str(path)).snapshot()
    assert replayed.error is None
    assert [(p.pid, p.used_memory) for p in replayed.gpus[0].processes] == [(4242, 3 * GIB)]


# -- 5. mltui gpu free ------------------------------------------------------------------------------

def test_gpu_free_with_sim_gpus(cli, tmp_path):
    def free(*args, env=None):
        result = cli("gpu", "free", *args, cwd=tmp_path, env=env)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        return result.stdout.strip()

    # moving 80 GiB GPUs always have between 20 and 68 GiB free, and no process
    assert free("--sim-gpus", "4") == "0,1,2,3"
    assert free("--sim-gpus", "4", "--mem", "19") == "0,1,2,3"
    assert free("--sim-gpus", "4", "--mem", "69") == ""
    assert free("--sim-gpus", "4", "-n", "2") == "0,1"
    assert free("--sim-gpus", "4", "-n", "0") == ""
    data = json.loads(free("--sim-gpus", "3", "--json", "-n", "2"))
    assert data["error"] is None and [g["index"] for g in data["free"]] == [0, 1]
    assert all(g["mem_free"] >= 20 * GIB and g["processes"] == [] for g in data["free"])
    sizes = {"MLTUI_GPU_SIM": "24,80:70,2x40"}  # free: 24, 10, 40, 40 GiB
    assert free("--mem", "20", env=sizes) == "0,2,3"
    assert free("--mem", "30", env=sizes) == "2,3"
    assert free("--mem", "30", "-n", "1", env=sizes) == "2"
    assert free("--mem", "10", env=sizes) == "0,1,2,3"
    assert free("--mem", "10.5", env=sizes) == "0,2,3"


def test_gpu_free_leaves_out_gpus_with_processes_and_lost_ones(cli, tmp_path, fake_dir):
    env = fake_env(fake_dir, {"gpus": [
        {"compute": [[4242, GIB]]}, {"graphics": [[99, 2**20]]}, {}, {"fail": {"handle": "GpuIsLost"}}, {},
    ]})
    result = cli("gpu", "free", cwd=tmp_path, env=env)
    assert result.returncode == 0 and result.stdout.strip() == "2,4"
    data = json.loads(cli("gpu", "free", "--json", cwd=tmp_path, env=env).stdout)
    assert [g["index"] for g in data["free"]] == [2, 4] and "GPU 3" in data["error"]


def test_gpu_free_without_gpus(cli, tmp_path):
    plain = cli("gpu", "free", cwd=tmp_path, env={"MLTUI_GPU": "none"})
    assert plain.returncode == 1 and plain.stdout == ""
    assert len(stderr_lines(plain)) == 1 and plain.stderr.startswith("mltui: ")
    data = json.loads(cli("gpu", "free", "--json", cwd=tmp_path, env={"MLTUI_GPU": "none"}).stdout)
    assert data["free"] == [] and "turned off" in data["error"]


def test_gpu_free_honours_sim_gpus_given_before_the_verb(cli, tmp_path):
    result = cli("gpu", "--sim-gpus", "2", "free", cwd=tmp_path, env={"MLTUI_GPU": "none"})
    assert (result.returncode, result.stdout.strip()) == (0, "0,1"), result.stderr


# -- 3/6. which run owns a GPU process, with real process trees -------------------------------------

TREE = """
import multiprocessing, os, subprocess, sys, time

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]
NESTED = [sys.executable, "-c", "import subprocess, sys, time; "
          "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
          "print('grandchild', p.pid, flush=True); time.sleep(60)"]
no_id = {k: v for k, v in os.environ.items() if k != "MLTUI_RUN_ID"}  # MLTUI_WORKSPACE stays: cleanup finds it

if __name__ == "__main__":
    worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
    worker.start()
    child = subprocess.Popen(SLEEP)                                          # env: MLTUI_RUN_ID
    grouped = subprocess.Popen(SLEEP, env=no_id)                             # the run's process group
    detached = subprocess.Popen(NESTED, env=no_id, start_new_session=True)   # ancestry only
    subprocess.run(["sh", "-c", "sleep 60 & echo orphan $!"], env=no_id)     # the group, its parent gone
    print("pids", os.getpid(), worker.pid, child.pid, grouped.pid, detached.pid, flush=True)
    time.sleep(60)
"""


def _env_has_run_id(pid: int) -> bool:
    with open(f"/proc/{pid}/environ", "rb") as fh:
        return any(item.startswith(b"MLTUI_RUN_ID=") for item in fh.read().split(b"\0"))


@pytest.fixture
def sleeper():
    """A process started by the test itself, outside any run."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_gpu_processes_are_matched_to_the_runs_that_own_them(ws, tmp_path, sleeper, cli, fake_dir):
    (tmp_path / "tree.py").write_text(textwrap.dedent(TREE).lstrip())
    run_id = launch(ws, Launch(["python", "tree.py"], name="tree-run"))
    other_id = launch(ws, Launch(["python", "-c", "import time; print('ready', flush=True); time.sleep(60)"],
                                 name="other-run"))
    wait_status(ws, run_id, "running")
    wait_status(ws, other_id, "running")
    wait_for(lambda: row(ws, other_id)["pid"], 15, what="the other run's pid")
    other = row(ws, other_id)
    wait_for(lambda: all(word in output(ws, run_id) for word in ("grandchild", "orphan", "pids")), 15,
             what="the run's process tree")
    text = output(ws, run_id)
    main, worker, child, grouped, detached = (int(p) for p in text.split("pids", 1)[1].split()[:5])
    grandchild = int(text.split("grandchild", 1)[1].split()[0])
    orphan = int(text.split("orphan", 1)[1].split()[0])
    # the tree is what it is meant to be: three ways to belong to the run
    assert _env_has_run_id(worker) and _env_has_run_id(child)
    assert not _env_has_run_id(grouped) and os.getpgid(grouped) == os.getpgid(main)
    assert not _env_has_run_id(grandchild) and os.getpgid(grandchild) != os.getpgid(main)
    assert not _env_has_run_id(orphan) and os.getpgid(orphan) == os.getpgid(main)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()

    mine = [main, worker, child, grouped, detached, grandchild, orphan]
    found = owners(ws, [*mine, other["pid"], sleeper, os.getpid(), gone.pid])
    assert {pid: r["id"] for pid, r in found.items()} == {**{p: run_id for p in mine}, other["pid"]: other_id}
    assert found[worker]["name"] == "tree-run" and found[worker]["status"] == "running"

    # `mltui gpu --json` in-process: the run per process, null for a process of no run
    from mltui.cli import gpu as cli_gpu

    state = SimulatedGpus("2x24", processes={0: [(worker, GIB), (grandchild, GIB)], 1: [(sleeper, GIB)]}).snapshot()
    data = json.loads(json.dumps(cli_gpu._as_json(state, cli_gpu._owners(state))))
    runs = {p["pid"]: p["run"] for g in data["gpus"] for p in g["processes"]}
    assert runs[sleeper] is None
    for pid in (worker, grandchild):
        assert runs[pid]["id"] == run_id and runs[pid]["name"] == "tree-run" and runs[pid]["status"] == "running"
        assert "user" in runs[pid]

    # and through the command line, with the pynvml double reporting the run's pids
    env = fake_env(fake_dir, {"gpus": [{"compute": [[worker, 4 * GIB], [grandchild, GIB]]},
                                       {"compute": [[sleeper, GIB]], "graphics": [[other["pid"], GIB]]}]})
    result = cli("gpu", "--json", env=env)
    assert result.returncode == 0, result.stderr
    runs = {p["pid"]: p["run"] for g in json.loads(result.stdout)["gpus"] for p in g["processes"]}
    assert runs[sleeper] is None
    assert runs[worker]["id"] == runs[grandchild]["id"] == run_id and runs[other["pid"]]["id"] == other_id
    plain = cli("gpu", env=env)
    assert plain.returncode == 0, plain.stderr
    lines = {int(line.split()[1]): line for line in plain.stdout.split("\n\n", 1)[1].splitlines()[1:] if line.strip()}
    assert run_id in lines[worker] and "tree-run" in lines[worker]
    assert "(no run)" in lines[sleeper]


def test_owners_without_a_workspace_store_or_pids_is_empty(ws, sleeper):
    assert owners(ws, []) == {}
    assert owners(ws, [sleeper, 999_999_999]) == {}
