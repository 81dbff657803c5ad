"""Launching runs: start latency of `mltui run`, and what the supervisor costs while a run logs hard.

    python bench/launch.py [--repeat 10] [--seconds 10] [--rate 100000] [--no-pyc-cache]

1. Start latency: wall time from invoking the installed `mltui` console script (a real subprocess, in
   a temporary workspace that has a mltui.toml) to the child's first line in .mltui/runs/<id>/output.log,
   for `mltui run -- python hello.py` and the named form `mltui run hello`. Split into: the CLI exits
   with the id / the supervisor starts the child (runs.started) / the child's first statement (its own
   time.time()) / the line seen in the log (a 1 ms polling loop). Against a bare
   subprocess.Popen([python, hello.py]) writing to a file, measured in the same rounds, interleaved.
   One untimed cold round first; then the figures of --repeat rounds and their medians.
2. Supervisor cost while the run logs --rate points/s through the tracking API (10 metrics a step,
   paced in ~1 ms batches) for --seconds: the supervisor's CPU (utime+stime from /proc/<pid>/stat) as
   % of one core over the logging window, its RSS (VmRSS) peak and median, sampled every 0.5 s; the
   points stored afterwards (metric_summary counts) over the child's own logging time.
3. The same load appended to $MLTUI_RUN_DIR/metrics.jsonl (10 keys a line) instead: the supervisor
   parses it, so its CPU is the parsing; plus how far the store lagged behind the file while it ran,
   and how long it took to drain after the child ended.

Bytecode: the CLI, supervisors and children write .pyc files to a temporary PYTHONPYCACHEPREFIX (src/
is never written), as a normal install would have them; --no-pyc-cache keeps the environment's
setting (PYTHONDONTWRITEBYTECODE=1 makes every start of the CLI and the supervisor compile mltui).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, fresh_workspace  # noqa: E402

MLTUI = Path(sys.executable).parent / "mltui"
POLL = 0.001  # seconds between looks at output.log in the latency rounds
SAMPLE = 0.5  # seconds between samples of the supervisor
KEYS = 10  # metrics per step (API) or per line (jsonl)
TICKS = os.sysconf("SC_CLK_TCK")
START_TARGET_MS = 300
CPU_TARGET = 5.0
RSS_TARGET_MB = 60

HELLO = """\
import time
t = time.time()
print(f"hello {t!r}", flush=True)
"""

API_CHILD = """\
import sys, time
rate, seconds, keys = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
import mltui
run = mltui.init()
log = run.log
per_s = rate / keys
total = int(per_s * seconds)
names = [f"m{i}" for i in range(keys)]
print(f"logging {time.time()!r}", flush=True)
t0 = time.perf_counter()
step = 0
while step < total:
    due = min(total, int((time.perf_counter() - t0) * per_s) + 1)
    if due <= step:
        time.sleep(0.001)
        continue
    for s in range(step, due):
        x = 1.0 / (s + 1)
        log({k: x + i for i, k in enumerate(names)}, step=s)
    step = due
elapsed = time.perf_counter() - t0
end = time.time()
run.finish()
print(f"done {end!r} {elapsed!r} {total * keys}", flush=True)
"""

JSONL_CHILD = """\
import os, sys, time
rate, seconds, keys = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
path = os.path.join(os.environ["MLTUI_RUN_DIR"], "metrics.jsonl")
line = "{" + '"step": %d, ' + ", ".join(f'"m{i}": %r' for i in range(keys)) + "}\\n"
per_s = rate / keys
total = int(per_s * seconds)
print(f"logging {time.time()!r}", flush=True)
t0 = time.perf_counter()
step = 0
with open(path, "a") as fh:
    while step < total:
        due = min(total, int((time.perf_counter() - t0) * per_s) + 1)
        if due <= step:
            time.sleep(0.001)
            continue
        for s in range(step, due):
            x = 1.0 / (s + 1)
            fh.write(line % (s, *[x + i for i in range(keys)]))
        fh.flush()
        step = due
elapsed = time.perf_counter() - t0
print(f"done {time.time()!r} {elapsed!r} {total * keys}", flush=True)
"""

TOML = """\
[commands.hello]
run = "python hello.py --lr {lr}"
params = { lr = 0.1 }
"""

_spawned: list[int] = []  # supervisor and child pids seen, killed at the end if still alive
_folders: list[Path] = []


# -- helpers ---------------------------------------------------------------------------------
_extra_env: dict[str, str] = {}  # set by main: where the children keep their bytecode


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLTUI_WORKSPACE", "MLTUI_RUN_ID", "MLTUI_RUN_DIR")}
    for key, value in _extra_env.items():  # "" means: not set for the children
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    return env


def bytecode_setup(as_env: bool) -> str:
    """Without cached bytecode every start of the CLI and the supervisor compiles mltui's sources (~40 ms
    each here); a normal install has .pyc files. Unless told to keep the environment as it is, the children
    write theirs to a temporary PYTHONPYCACHEPREFIX (the cold round fills it; src/ is never written)."""
    dont_write = os.environ.get("PYTHONDONTWRITEBYTECODE")
    if as_env:
        return f"as the environment says (PYTHONDONTWRITEBYTECODE={dont_write or 'unset'})"
    prefix = Path(tempfile.mkdtemp(prefix="mltui-bench-pyc-"))
    _folders.append(prefix)
    _extra_env.update(PYTHONPYCACHEPREFIX=str(prefix), PYTHONDONTWRITEBYTECODE="")
    why = f"; the environment sets PYTHONDONTWRITEBYTECODE={dont_write}, --no-pyc-cache keeps it" if dont_write else ""
    return f"cached in a temporary PYTHONPYCACHEPREFIX{why}"


def project(prefix: str):
    ws = fresh_workspace(prefix)
    _folders.append(ws.project_dir)
    (ws.project_dir / "hello.py").write_text(HELLO)
    (ws.project_dir / "api_child.py").write_text(API_CHILD)
    (ws.project_dir / "jsonl_child.py").write_text(JSONL_CHILD)
    (ws.project_dir / "mltui.toml").write_text(TOML)
    return ws


def reader(ws) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{ws.db_path}?mode=ro", uri=True, timeout=10)


def run_row(conn: sqlite3.Connection, run_id: str) -> dict:
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT status, reason, started, ended, pid, sup_pid, exit_code FROM runs WHERE id = ?",
                       (run_id,)).fetchone()
    return dict(row) if row else {}


def stored_points(conn: sqlite3.Connection, run_id: str) -> int:
    return conn.execute("SELECT coalesce(sum(count), 0) FROM metric_summary WHERE run_id = ?", (run_id,)).fetchone()[0]


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15)
    except (OSError, IndexError, ValueError):
        return None


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def log_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def wait_ended(ws, run_id: str, timeout: float) -> dict:
    """Poll the store until the run is no longer running and its supervisor has exited."""
    conn = reader(ws)
    try:
        end = time.time() + timeout
        while True:
            row = run_row(conn, run_id)
            if row and row["status"] not in ("running", "queued") and not alive(row["sup_pid"]):
                return row
            if time.time() > end:
                raise SystemExit(f"run {run_id} did not end within {timeout:.0f} s: {row}")
            time.sleep(0.05)
    finally:
        conn.close()


def note_pids(row: dict) -> None:
    for pid in (row.get("sup_pid"), row.get("pid")):
        if pid and pid not in _spawned:
            _spawned.append(pid)


def cleanup() -> None:
    for pid in _spawned:
        if alive(pid):
            for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    kill()
                except (ProcessLookupError, PermissionError):
                    pass
            print(f"  (killed leftover process {pid})")
    for folder in _folders:
        shutil.rmtree(folder, ignore_errors=True)


# -- 1. start latency ------------------------------------------------------------------------
def first_line(path: Path, prefix: bytes) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    for line in data.split(b"\n")[:-1]:  # complete lines only
        if line.startswith(prefix):
            return line
    return None


def mltui_start(ws, argv: list[str]) -> dict[str, float]:
    """One `mltui run ...`: offsets in seconds from invoking it, then wait for the run to end."""
    before = set(os.listdir(ws.runs_dir))
    t0 = time.time()
    proc = subprocess.Popen([str(MLTUI), *argv], cwd=ws.project_dir, env=clean_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t_cli = t_log = None
    run_dir = line = None
    try:
        while t_cli is None or t_log is None:
            if t_cli is None and proc.poll() is not None:
                t_cli = time.time()
            if t_log is None:
                if run_dir is None:
                    new = set(os.listdir(ws.runs_dir)) - before
                    if new:
                        run_dir = ws.runs_dir / new.pop()
                if run_dir is not None:
                    line = first_line(run_dir / "output.log", b"hello ")
                    if line is not None:
                        t_log = time.time()
            if time.time() - t0 > 30:
                raise SystemExit(f"`mltui {' '.join(argv)}`: no line in the log after 30 s")
            if t_cli is None or t_log is None:
                time.sleep(POLL)
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"`mltui {' '.join(argv)}` failed ({proc.returncode}): {err.decode(errors='replace')}")
    run_id = out.decode().strip()
    if run_dir is None or run_dir.name != run_id:
        raise SystemExit(f"the CLI printed {run_id!r} but the new run folder is {run_dir}")
    row = wait_ended(ws, run_id, 30)
    note_pids(row)
    if row["status"] != "finished":
        raise SystemExit(f"run {run_id} ended {row['status']}: {row['reason']}")
    t_child = float(line.split()[1])
    return {"cli": t_cli - t0, "sup": row["started"] - t0, "child": t_child - t0, "log": t_log - t0}


def bare_start(folder: Path) -> dict[str, float]:
    """The floor: Popen the same child with its output going to a file."""
    log = folder / "bare.log"
    log.unlink(missing_ok=True)
    t0 = time.time()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(folder / "hello.py")], cwd=folder, env=clean_env(),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        while (line := first_line(log, b"hello ")) is None:
            if time.time() - t0 > 30:
                raise SystemExit("the bare child wrote nothing in 30 s")
            time.sleep(POLL)
        t_log = time.time()
    finally:
        proc.wait()
    return {"child": float(line.split()[1]) - t0, "log": t_log - t0}


def start_latency(repeat: int) -> None:
    ws = project("mltui-bench-launch-")
    forms = [
        ("bare Popen([python, hello.py]) > file", lambda: bare_start(ws.project_dir)),
        ("mltui run -- python hello.py", lambda: mltui_start(ws, ["run", "--", "python", "hello.py"])),
        ("mltui run hello (from mltui.toml)", lambda: mltui_start(ws, ["run", "hello"])),
    ]
    cold = {label: fn() for label, fn in forms}  # untimed: disk cache, .pyc, first store writes
    figures: dict[str, list[dict[str, float]]] = {label: [] for label, _ in forms}
    for _ in range(repeat):
        for label, fn in forms:  # interleaved, so drift hits every form alike
            figures[label].append(fn())
    print(f"\n1. start latency: invoking -> child's first line in its log (ms; {repeat} rounds after one cold "
          f"round, forms interleaved; log polled every {POLL * 1000:.0f} ms)")
    base = statistics.median(f["log"] for f in figures[forms[0][0]])
    parts = [("cli", "CLI exited with the id"), ("sup", "supervisor Popen'd the child"),
             ("child", "child's first statement"), ("log", "line seen in output.log")]
    for label, _ in forms:
        runs = figures[label]
        med = statistics.median(f["log"] for f in runs)
        extra = "" if label == forms[0][0] else (f"   +{(med - base) * 1000:.0f} ms over bare; "
                                                 f"target < {START_TARGET_MS} ms "
                                                 f"{'OK' if med * 1000 < START_TARGET_MS else 'MISSED'}")
        print(f"  {label:40s}: median {med * 1000:6.1f} ms  (cold {cold[label]['log'] * 1000:.0f} ms){extra}")
        print(f"      each: {fmt([f['log'] for f in runs], scale=1000)}")
        for key, words in parts:
            if key in runs[0]:
                print(f"      {words:30s} median {statistics.median(f[key] for f in runs) * 1000:6.1f} ms"
                      f"   (range {min(f[key] for f in runs) * 1000:.0f}-{max(f[key] for f in runs) * 1000:.0f})")


# -- 2 and 3. the supervisor under load ------------------------------------------------------
def under_load(mode: str, rate: float, seconds: float) -> None:
    ws = project(f"mltui-bench-load-{mode}-")
    script = "api_child.py" if mode == "api" else "jsonl_child.py"
    proc = subprocess.run([str(MLTUI), "run", "--", "python", script, str(rate), str(seconds), str(KEYS)],
                          cwd=ws.project_dir, env=clean_env(), stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=60)
    if proc.returncode != 0:
        raise SystemExit(f"mltui run failed: {proc.stderr.decode(errors='replace')}")
    run_id = proc.stdout.decode().strip()
    run_dir = ws.run_dir(run_id)
    conn = reader(ws)
    try:
        end = time.time() + 30
        while not (row := run_row(conn, run_id)).get("pid"):  # the supervisor records its own pid with the child's
            if time.time() > end:
                raise SystemExit(f"run {run_id} never started: {row}")
            time.sleep(0.01)
        note_pids(row)
        sup, child = row["sup_pid"], row["pid"]
        jsonl = run_dir / "metrics.jsonl"
        samples = []  # (time, sup cpu s, sup rss MB, child cpu s, stored points, metrics.jsonl bytes)
        deadline = time.time() + seconds + 120
        while alive(sup):
            now = time.time()
            try:
                size = jsonl.stat().st_size
            except OSError:
                size = 0
            samples.append((now, cpu_seconds(sup), rss_mb(sup), cpu_seconds(child) if alive(child) else None,
                            stored_points(conn, run_id), size))
            if now > deadline:
                raise SystemExit(f"run {run_id} still going {seconds + 120:.0f} s after it started")
            time.sleep(SAMPLE - (time.time() - now) % SAMPLE)
        row = wait_ended(ws, run_id, 30)
        stored = stored_points(conn, run_id)
    finally:
        conn.close()
    lines = log_lines(run_dir / "output.log")
    start = next((float(x.split()[1]) for x in lines if x.startswith("logging ")), None)
    done = next((x.split() for x in lines if x.startswith("done ")), None)
    if start is None or done is None or row["status"] != "finished":
        tail = "\n".join(lines[-10:])
        raise SystemExit(f"the {mode} child did not run to its end ({row['status']}: {row['reason']}):\n{tail}")
    t_end, elapsed, written = float(done[1]), float(done[2]), int(done[3])
    window = [s for s in samples if start <= s[0] <= t_end and s[1] is not None]
    what = ("run.log() through the tracking API" if mode == "api"
            else "lines appended to metrics.jsonl, parsed by the supervisor")
    print(f"\n{'2' if mode == 'api' else '3'}. supervisor while the child logs {rate:,.0f} points/s for {seconds:g} s: "
          f"{what} ({KEYS} per {'step' if mode == 'api' else 'line'})")
    if len(window) < 2:
        print(f"  too few samples in the logging window ({len(window)}); make --seconds larger")
        return
    (t_a, cpu_a, *_), (t_b, cpu_b, *_) = window[0], window[-1]
    sup_cpu = 100 * (cpu_b - cpu_a) / (t_b - t_a)
    rss = [s[2] for s in window if s[2] is not None]
    life_rss = max(s[2] for s in samples if s[2] is not None)
    kids = [s for s in window if s[3] is not None]
    child_cpu = 100 * (kids[-1][3] - kids[0][3]) / (kids[-1][0] - kids[0][0]) if len(kids) >= 2 else float("nan")
    total_cpu = max(s[1] for s in samples if s[1] is not None)
    ok_cpu = "OK" if sup_cpu < CPU_TARGET else "MISSED"
    ok_rss = "OK" if max(rss) < RSS_TARGET_MB else "MISSED"
    print(f"  supervisor pid {sup}: CPU {sup_cpu:5.1f}% of one core over {t_b - t_a:.1f} s of logging "
          f"({len(window)} samples)   target < {CPU_TARGET:g}% {ok_cpu}")
    print(f"      RSS peak {max(rss):.1f} MB, median {statistics.median(rss):.1f} MB "
          f"(peak over its whole life {life_rss:.1f} MB)   target < {RSS_TARGET_MB} MB {ok_rss}")
    print(f"      CPU from its start to the last sample (start-up imports, fingerprint included): {total_cpu:.2f} s")
    print(f"      per-interval CPU %: "
          f"{fmt([100 * (b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(window, window[1:])])}")
    print(f"  child: {child_cpu:.0f}% of one core; logged for {elapsed:.2f} s (asked {seconds:g} s)")
    print(f"  points: written {written:,}, stored {stored:,} ({'all' if stored == written else 'LOST SOME'}); "
          f"achieved {stored / elapsed:,.0f} points/s stored over the child's logging time")
    if mode == "jsonl":
        final_size = samples[-1][5] or 1
        per_point = final_size / written  # bytes in the file per point written
        lag = [(s[5] / per_point - s[4]) / rate for s in window]
        at_end = next((s for s in samples if s[0] >= t_end), samples[-1])
        print(f"  kept up? store behind the file while logging: median {statistics.median(lag):.2f} s, "
              f"max {max(lag):.2f} s of points; at the child's end {(at_end[5] / per_point - at_end[4]):,.0f} "
              f"points behind; all stored {row['ended'] - t_end:.2f} s after the child's last line")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10, help="timed launches of each form")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each loaded run logs")
    parser.add_argument("--rate", type=float, default=100_000, help="points per second the loaded runs log")
    parser.add_argument("--no-pyc-cache", action="store_true",
                        help="leave PYTHONDONTWRITEBYTECODE / PYTHONPYCACHEPREFIX as they are for the children")
    args = parser.parse_args()
    if not MLTUI.exists():
        raise SystemExit(f"no mltui console script next to {sys.executable}; pip install -e . first")
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}; "
          f"cli {MLTUI}; load average now {os.getloadavg()[0]:.2f} (other work on the machine skews the figures)")
    clock = time.perf_counter()
    try:
        print(f"bytecode of the CLI, supervisor and children: {bytecode_setup(args.no_pyc_cache)}")
        start_latency(args.repeat)
        under_load("api", args.rate, args.seconds)
        under_load("jsonl", args.rate, args.seconds)
    finally:
        cleanup()
    print(f"\n(whole bench {time.perf_counter() - clock:.0f} s; load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
