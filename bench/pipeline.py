"""Pipelines: no-op `mltui pipeline status` / `mltui repro` over 2,000 and 20,000 raw files, the first repro's
overhead over the commands' own time, and restoring a 200 MB out from the run cache; DVC beside it.

    python bench/pipeline.py [--files 2000 20000] [--repeat 5] [--restore-mb 200] [--dir DIR]
                             [--no-dvc] [--keep] [--no-pyc-cache]

Every figure is a whole command (a subprocess, as a user types it), the median of --repeat runs after one
untimed run; every run of each form is printed beside the median.

1. A project per size: data/raw holds N CSV files of 150 B to 4 KB (100 per folder), data/holdout 20
   more, and the issue's chain prepare -> train -> evaluate (standard library only) declared in
   mltui.toml [stages]; `mltui init`. Each stage's script appends its name to .bench-stages.log (not a dep
   nor an out), so the bench sees which stages really started.
2. First repro: per round, the three commands run directly in sequence (the floor), then the outs and
   .mltui/ are removed, `mltui init`, and `mltui repro` runs all three in the fresh workspace (no stat
   cache, empty run cache). Overhead = repro - direct, round by round.
3. No-op: after that, `mltui pipeline status` and `mltui repro` (interleaved); no stage may start.
   Targets: < 0.3 s with 2,000 files, < 1 s with 20,000.
4. Restore: a one-stage project writes a --restore-mb out (random bytes from a seed param). Run with
   seed 1, with -p blob.seed=2, then alternate -p blob.seed=1 / 2: each of these repros must restore the
   out from the run cache (blob.py does not start; the bytes are checked). Then the out deleted by hand
   and restored. Beside shutil.copyfile of the same bytes on the same disk. os.sync() before each.
5. DVC, where installed (on PATH or beside this interpreter): the same trees in git-initialised copies
   with an equivalent dvc.yaml + params.yaml (`dvc init`); the same first repro, no-op `dvc status` /
   `dvc repro`, and run-cache restore (params.yaml edited instead of -p). DVC is never a dependency of
   mltui; install it in the bench venv: /work/benchvenv/bin/pip install dvc.

Bytecode: the commands write .pyc files to a temporary PYTHONPYCACHEPREFIX (the untimed runs fill it), as
an install would have them; --no-pyc-cache keeps the environment's setting.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, timer  # noqa: E402

BIN = Path(sys.executable).parent
STAGE_LOG = ".bench-stages.log"
PER_DIR = 100
HOLDOUT = 20
TARGETS = {2_000: 0.3, 20_000: 1.0}  # seconds, no-op status / repro
MB = 1e6

PREPARE = """\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--raw"); p.add_argument("--out"); p.add_argument("--seed", type=int)
a = p.parse_args()
rows = []
for top, dirs, files in os.walk(a.raw):
    dirs.sort()
    for name in sorted(files):
        with open(os.path.join(top, name), "rb") as fh:
            data = fh.read()
        first, count = data.split(b"\\n", 2)[1], data.count(b"\\n") - 1  # the first row, how many rows
        rows.append(f"{first.decode()},{count}\\n")
cut = len(rows) * 4 // 5 + a.seed % 7
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "train.csv"), "w") as fh:
    fh.writelines(rows[:cut])
with open(os.path.join(a.out, "test.csv"), "w") as fh:
    fh.writelines(rows[cut:])
with open(".bench-stages.log", "a") as fh:
    fh.write("prepare\\n")
"""

TRAIN = """\
import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--data"); p.add_argument("--lr", type=float); p.add_argument("--out")
a = p.parse_args()
with open(os.path.join(a.data, "train.csv")) as fh:
    xy = [tuple(map(float, line.split(",")[:2])) for line in fh]
w = b = 0.0
for _ in range(3):
    for x, y in xy:
        err = w * x + b - y
        w -= a.lr * err * x / 100; b -= a.lr * err / 100
os.makedirs(os.path.dirname(a.out), exist_ok=True)
with open(a.out, "w") as fh:
    json.dump({"w": w, "b": b, "lr": a.lr}, fh)
with open(".bench-stages.log", "a") as fh:
    fh.write("train\\n")
"""

EVALUATE = """\
import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--model"); p.add_argument("--out")
a = p.parse_args()
with open(a.model) as fh:
    m = json.load(fh)
se = n = 0
for name in sorted(os.listdir("data/holdout")):
    with open(os.path.join("data/holdout", name)) as fh:
        next(fh)
        for line in fh:
            x, y = map(float, line.split(","))
            se += (m["w"] * x + m["b"] - y) ** 2; n += 1
with open(a.out, "w") as fh:
    json.dump({"mse": se / n, "rows": n}, fh)
with open(".bench-stages.log", "a") as fh:
    fh.write("evaluate\\n")
"""

BLOB = """\
import argparse, os, random
p = argparse.ArgumentParser()
p.add_argument("--seed", type=int); p.add_argument("--mb", type=int); p.add_argument("--out")
a = p.parse_args()
rng = random.Random(a.seed)
os.makedirs(os.path.dirname(a.out), exist_ok=True)
left = a.mb * 1000000
with open(a.out, "wb") as fh:
    while left:
        chunk = min(left, 8 << 20)
        fh.write(rng.randbytes(chunk)); left -= chunk
with open(".bench-stages.log", "a") as fh:
    fh.write("blob\\n")
"""

# the chain (gpus left out: the bench needs no GPU)
CHAIN = [
    {"name": "prepare", "run": "python prepare.py --raw data/raw --out data/prepared --seed {seed}",
     "deps": ["prepare.py", "data/raw"], "outs": ["data/prepared"], "params": {"seed": 1}},
    {"name": "train", "run": "python train.py --data data/prepared --lr {lr} --out models/model.pt",
     "deps": ["train.py", "data/prepared"], "outs": ["models/model.pt"], "params": {"lr": 0.01}},
    {"name": "evaluate", "run": "python evaluate.py --model models/model.pt --out eval.json",
     "deps": ["evaluate.py", "models/model.pt", "data/holdout"], "metrics": ["eval.json"], "kind": "eval"},
]
CHAIN_OUTS = ["data/prepared", "models", "eval.json"]


def blob_stage(mb: int) -> list[dict]:
    return [{"name": "blob", "run": f"python blob.py --seed {{seed}} --mb {mb} --out big/blob.bin",
             "deps": ["blob.py"], "outs": ["big/blob.bin"], "params": {"seed": 1}}]


# -- environment and commands ------------------------------------------------------------------------
ENV: dict[str, str] = {}


def setup_env(keep_pyc: bool, base: Path) -> str:
    ENV.update({k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")})
    ENV["PATH"] = f"{BIN}{os.pathsep}{ENV.get('PATH', '')}"  # `python` in the stages: this interpreter's
    ENV.update(DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="bench", GIT_COMMITTER_NAME="bench",
               GIT_AUTHOR_EMAIL="bench@localhost", GIT_COMMITTER_EMAIL="bench@localhost")
    if keep_pyc:
        return f"as the environment says (PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', 'unset')})"
    ENV.update(PYTHONPYCACHEPREFIX=str(base / "pyc"))
    ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    return "cached in a temporary PYTHONPYCACHEPREFIX"


def tool(name: str) -> str | None:
    beside = BIN / name
    return str(beside) if beside.exists() else shutil.which(name)


def run(argv: list[str], cwd: Path, ok: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    clock = timer()
    proc = subprocess.run(argv, cwd=cwd, env=ENV, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    secs = clock()
    if ok and proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-5:]
        raise SystemExit(f"`{shlex.join(argv)}` in {cwd} failed ({proc.returncode}):\n  " + "\n  ".join(said))
    return secs, proc


def ran(project: Path) -> list[str]:
    try:
        return (project / STAGE_LOG).read_text().split()
    except FileNotFoundError:
        return []


def expect_ran(project: Path, before: int, want: list[str], what: str) -> None:
    got = ran(project)[before:]
    if sorted(got) != sorted(want):
        raise SystemExit(f"{what}: expected stages {want or 'none'} to start, got {got or 'none'} ({project})")


def show(label: str, secs: list[float], note: str = "") -> float:
    med = statistics.median(secs)
    print(f"  {label:<46} {med:7.3f} s   ({fmt(secs, digits=3)}){'   ' + note if note else ''}", flush=True)
    return med


def verdict(secs: float, target: float) -> str:
    return f"target < {target:g} s {'PASS' if secs < target else 'MISS'}"


# -- the project tree --------------------------------------------------------------------------------
def csv_file(path: Path, rng: random.Random) -> None:
    lines = ["x,y\n"]
    size, want = 4, rng.randint(150, 4000)
    while size < want:
        x = rng.uniform(-10, 10)
        line = f"{x:.5f},{3 * x + 1 + rng.gauss(0, 1):.5f}\n"
        lines.append(line)
        size += len(line)
    path.write_text("".join(lines))


def build_tree(root: Path, files: int, stages: list[dict], seed: int = 1) -> int:
    """The raw files, the holdout, the scripts and mltui.toml under root; the bytes of data/raw."""
    rng = random.Random(seed)
    for i in range(files):
        path = root / "data" / "raw" / f"d{i // PER_DIR:04d}" / f"f{i:06d}.csv"
        if i % PER_DIR == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        csv_file(path, rng)
    if files:
        (root / "data" / "holdout").mkdir(parents=True)
        for i in range(HOLDOUT):
            csv_file(root / "data" / "holdout" / f"h{i:03d}.csv", rng)
    for name, text in (("prepare.py", PREPARE), ("train.py", TRAIN), ("evaluate.py", EVALUATE), ("blob.py", BLOB)):
        (root / name).write_text(text)
    (root / "mltui.toml").write_text(mltui_toml(stages))
    return sum(p.stat().st_size for p in (root / "data" / "raw").rglob("*") if p.is_file()) if files else 0


def toml_value(v) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(v)  # a JSON string or number is a TOML basic string or number


def mltui_toml(stages: list[dict]) -> str:
    out = []
    for st in stages:
        out.append(f"[stages.{st['name']}]")
        out += [f"{key} = {toml_value(st[key])}" for key in ("run", "deps", "outs", "params", "metrics", "kind")
                if key in st]
        out.append("")
    return "\n".join(out)


def command(st: dict, params: dict | None = None) -> list[str]:
    return shlex.split(st["run"].format(**(params or st.get("params", {}))))


def direct(project: Path, stages: list[dict]) -> float:
    """The commands' own time: each stage's command run in order, nothing else."""
    clock = timer()
    for st in stages:
        run(command(st), project)
    return clock()


def remove(project: Path, paths: list[str]) -> None:
    for rel in paths:
        p = project / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# -- DVC's side of the same tree -----------------------------------------------------------------------
def dvc_files(project: Path, stages: list[dict]) -> None:
    params, lines = {}, ["stages:"]
    for st in stages:
        cmd = st["run"]
        for key in st.get("params", {}):
            cmd = cmd.replace(f"{{{key}}}", f"${{{st['name']}.{key}}}")
        params[st["name"]] = st.get("params", {})
        lines += [f"  {st['name']}:", f"    cmd: {json.dumps(cmd)}", "    deps:"]
        lines += [f"      - {json.dumps(d)}" for d in st["deps"]]
        if st.get("params"):
            lines += ["    params:"] + [f"      - {st['name']}.{k}" for k in st["params"]]
        if st.get("outs"):
            lines += ["    outs:"] + [f"      - {json.dumps(o)}" for o in st["outs"]]
        if st.get("metrics"):
            lines += ["    metrics:"] + [f"      - {json.dumps(m)}:\n          cache: false" for m in st["metrics"]]
    (project / "dvc.yaml").write_text("\n".join(lines) + "\n")
    write_params(project, {k: v for k, v in params.items() if v})


def write_params(project: Path, params: dict) -> None:
    (project / "params.yaml").write_text(json.dumps(params, indent=2) + "\n")  # JSON is YAML


def dvc_init(dvc: str, project: Path) -> None:
    run(["git", "init", "-q"], project)
    run([dvc, "init", "-q"], project)
    run([dvc, "config", "core.analytics", "false"], project)
    run([dvc, "config", "core.check_update", "false"], project)
    (project / ".gitignore").write_text(f"/{STAGE_LOG}\n")


def dvc_reset(project: Path, outs: list[str]) -> None:
    remove(project, outs + ["dvc.lock", ".dvc/cache", ".dvc/tmp"])


# -- one tool on one tree --------------------------------------------------------------------------------
class Tool:
    """What differs between mltui and DVC: how a workspace is made fresh, and the commands."""

    def __init__(self, name: str, exe: str) -> None:
        self.name, self.exe = name, exe

    def fresh(self, project: Path, outs: list[str]) -> None:
        if self.name == "mltui":
            remove(project, outs + [".mltui"])
            run([self.exe, "init"], project)
        else:
            dvc_reset(project, outs)

    def status(self) -> list[str]:
        return [self.exe, "pipeline", "status"] if self.name == "mltui" else [self.exe, "status"]

    def repro(self) -> list[str]:
        return [self.exe, "repro"]

    def with_param(self, project: Path, stage: str, key: str, value) -> list[str]:
        if self.name == "mltui":
            return [self.exe, "repro", "-p", f"{stage}.{key}={value}"]
        write_params(project, {stage: {key: value}})
        return [self.exe, "repro"]


def chain_bench(pairs: list[tuple[Tool, Path]], n: int, repeat: int) -> dict[tuple[str, str], float]:
    """First repros and no-ops of every tool, round by round interleaved: load on the machine hits all alike."""
    first: dict[str, list[float]] = {t.name: [] for t, _ in pairs}
    floor: dict[str, list[float]] = {t.name: [] for t, _ in pairs}
    for _ in range(repeat):
        for t, project in pairs:
            remove(project, CHAIN_OUTS)
            floor[t.name].append(direct(project, CHAIN))
            t.fresh(project, CHAIN_OUTS)
            before = len(ran(project))
            first[t.name].append(run(t.repro(), project)[0])
            expect_ran(project, before, [st["name"] for st in CHAIN], f"first `{t.name} repro`")
    time.sleep(0.5)  # past any racy window of the outs just written
    said, marks = {}, {}
    for t, project in pairs:
        marks[t.name] = len(ran(project))
        said[t.name] = run(t.status(), project)[1]  # untimed: stat caches settle, bytecode cached
        run(t.repro(), project)
    stat_t: dict[str, list[float]] = {t.name: [] for t, _ in pairs}
    noop_t: dict[str, list[float]] = {t.name: [] for t, _ in pairs}
    for _ in range(repeat):
        for t, project in pairs:
            stat_t[t.name].append(run(t.status(), project)[0])
            noop_t[t.name].append(run(t.repro(), project)[0])
    figs: dict[tuple[str, str], float] = {}
    target = TARGETS.get(n)
    for t, project in pairs:
        expect_ran(project, marks[t.name], [], f"no-op `{t.name} repro`")
        print(f"  {t.name}:")
        figs[(t.name, "direct")] = show("the 3 commands run directly, in sequence", floor[t.name])
        figs[(t.name, "first")] = show(f"first `{t.name} repro` (fresh workspace)", first[t.name])
        over = [a - b for a, b in zip(first[t.name], floor[t.name])]
        figs[(t.name, "overhead")] = show("  overhead over the commands, each round", over,
                                          f"x{figs[(t.name, 'first')] / figs[(t.name, 'direct')]:.2f} the commands' time")
        ours = t.name == "mltui" and target
        figs[(t.name, "status")] = show(f"no-op `{shlex.join(['mltui' if ours else t.name] + t.status()[1:])}`",
                                        stat_t[t.name], verdict(statistics.median(stat_t[t.name]), target) if ours else "")
        figs[(t.name, "noop")] = show(f"no-op `{t.name} repro`", noop_t[t.name],
                                      verdict(statistics.median(noop_t[t.name]), target) if ours else "")
        lines = (said[t.name].stdout.strip() or said[t.name].stderr.strip()).splitlines()
        print(f"    ({t.name} status said: {' | '.join(lines[:4])[:150] or '(nothing)'})")
    return figs


def restore_bench(tool: Tool, project: Path, mb: int, repeat: int) -> dict[str, float]:
    figs: dict[str, float] = {}
    out = project / "big" / "blob.bin"
    before = len(ran(project))
    figs["run1"] = run(tool.repro(), project)[0]
    digests = {1: sha256(out)}
    figs["run2"] = run(tool.with_param(project, "blob", "seed", 2), project)[0]
    digests[2] = sha256(out)
    expect_ran(project, before, ["blob", "blob"], f"{tool.name}: the two seeds' runs")
    print(f"  {tool.name + ' repro that runs blob.py (seed 1, 2)':<46} {figs['run1']:7.3f} s, {figs['run2']:.3f} s")
    secs, after, noop, seed, how = [], [], [], 2, set()
    before = len(ran(project))
    for i in range(repeat + 1):  # the first round is untimed
        seed = 1 if seed == 2 else 2
        argv = tool.with_param(project, "blob", "seed", seed)
        os.sync()
        took = run(argv, project)[0]
        if sha256(out) != digests[seed]:
            raise SystemExit(f"{tool.name}: after restoring seed {seed}, {out} does not hold seed {seed}'s bytes")
        how.add("hardlink" if out.stat().st_nlink > 1 else "own inode (copy or reflink)")
        time.sleep(0.3)  # past the racy window of the restored out
        again = tool.repro() if tool.name == "dvc" else argv  # the same repro again: a no-op
        first = run(again, project)[0]  # the first after a restore may hash the out once more
        still = run(again, project)[0]
        if i:
            secs.append(took)
            after.append(first)
            noop.append(still)
    expect_ran(project, before, [], f"{tool.name}: restores from the run cache")
    figs["restore"] = show(f"{tool.name} repro restoring {mb} MB (param reverted)", secs, f"out is {', '.join(sorted(how))}")
    figs["after"] = show(f"{tool.name} repro, the same again (first no-op)", after)
    figs["blob-noop"] = show(f"{tool.name} repro, the same once more (no-op)", noop)
    figs["marginal"] = show("  the restore itself (restoring - no-op)", [a - b for a, b in zip(secs, noop)],
                            "each round")
    figs["after-extra"] = show("  the first no-op's extra (first - no-op)", [a - b for a, b in zip(after, noop)],
                               "each round")
    if tool.name == "dvc":
        argv = tool.repro()  # params.yaml already says this seed
    secs = []
    for _ in range(repeat):
        out.unlink()
        os.sync()
        secs.append(run(argv, project)[0])
        if sha256(out) != digests[seed]:
            raise SystemExit(f"{tool.name}: the deleted out came back with other bytes")
    expect_ran(project, before, [], f"{tool.name}: restoring a deleted out")
    figs["deleted"] = show(f"{tool.name} repro restoring the {mb} MB out deleted", secs)
    return figs


def copy_floor(folder: Path, mb: int, repeat: int) -> float:
    src, dst = folder / "src.bin", folder / "dst.bin"
    rng = random.Random(3)
    with open(src, "wb") as fh:
        for _ in range(mb):
            fh.write(rng.randbytes(1_000_000))
    secs = []
    for _ in range(repeat + 1):
        dst.unlink(missing_ok=True)
        os.sync()
        clock = timer()
        shutil.copyfile(src, dst)
        secs.append(clock())
    med = show(f"shutil.copyfile of {mb} MB, same disk", secs[1:])
    src.unlink()
    dst.unlink()
    return med


# -- main ---------------------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, nargs="+", default=[2_000, 20_000], help="raw files per tree")
    p.add_argument("--repeat", type=int, default=5, help="timed runs of each form (the median is quoted)")
    p.add_argument("--restore-mb", type=int, default=200, help="size of the out restored from the run cache")
    p.add_argument("--dir", type=Path, default=None, help="where the trees go (default: the system temp folder)")
    p.add_argument("--no-dvc", action="store_true", help="leave DVC out even where it is installed")
    p.add_argument("--keep", action="store_true", help="keep the trees afterwards")
    p.add_argument("--no-pyc-cache", action="store_true", help="leave PYTHONDONTWRITEBYTECODE as it is")
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mltui-bench-pipeline-", dir=args.dir))
    pyc = setup_env(args.no_pyc_cache, base)
    mltui, dvc = tool("mltui"), (None if args.no_dvc else tool("dvc"))
    has_repro = bool(mltui) and run([mltui, "repro", "--help"], base, ok=False)[1].returncode == 0
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}; "
          f"trees under {base}; bytecode {pyc}")
    print(f"mltui: {mltui or 'not found'}{'' if has_repro else ' (no `repro` command: its half is skipped)'}")
    if dvc:
        print(f"dvc: {dvc} {run([dvc, '--version'], base)[1].stdout.strip()}")
    else:
        print("dvc: not installed" if not args.no_dvc else "dvc: left out (--no-dvc)")
    tools = ([Tool("mltui", mltui)] if has_repro else []) + ([Tool("dvc", dvc)] if dvc else [])
    results: dict[tuple[str, str], float] = {}
    clock = timer()
    try:
        floor = [run([sys.executable, "-c", "pass"], base)[0] for _ in range(args.repeat + 1)][1:]
        print()
        show("python -c pass (interpreter start)", floor)
        if mltui:
            run([mltui, "--help"], base)
            show("mltui --help (the CLI's start)", [run([mltui, "--help"], base)[0] for _ in range(args.repeat)])
        for n in args.files:
            pairs = []
            for t in tools:
                project = base / f"{t.name}-{n}"
                project.mkdir()
                raw = build_tree(project, n, CHAIN)
                if t.name == "dvc":
                    dvc_init(t.exe, project)
                    dvc_files(project, CHAIN)
                pairs.append((t, project))
            if not pairs:
                continue
            print(f"\n{n:,} raw files ({raw / MB:,.1f} MB in {-(-n // PER_DIR)} folders), {args.repeat} runs each, "
                  f"{' and '.join(t.name for t in tools)} interleaved (load average {os.getloadavg()[0]:.2f}):",
                  flush=True)
            for (name, key), value in chain_bench(pairs, n, args.repeat).items():
                results[(name, f"{key}-{n}")] = value
            for _, project in pairs:
                if not args.keep:
                    shutil.rmtree(project)
        print(f"\nrestoring a {args.restore_mb} MB out from the run cache ({args.repeat} runs each, "
              f"load average {os.getloadavg()[0]:.2f}):")
        results[("copy", "restore")] = copy_floor(base, args.restore_mb, args.repeat)
        for t in tools:
            project = base / f"{t.name}-blob"
            project.mkdir()
            stages = blob_stage(args.restore_mb)
            build_tree(project, 0, stages)
            if t.name == "dvc":
                dvc_init(t.exe, project)
                dvc_files(project, stages)
            else:
                run([t.exe, "init"], project)
            for key, value in restore_bench(t, project, args.restore_mb, args.repeat).items():
                results[(t.name, key)] = value
            if not args.keep:
                shutil.rmtree(project)
        summary(results, args.files, args.restore_mb)
    finally:
        if args.keep:
            print(f"\n(trees kept under {base})")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"(whole bench {clock():.0f} s; load average now {os.getloadavg()[0]:.2f})")


def summary(res: dict[tuple[str, str], float], sizes: list[int], mb: int) -> None:
    rows = [("no-op status", "status"), ("no-op repro", "noop"), ("first repro", "first"),
            ("  commands run directly", "direct"), ("  first repro's overhead", "overhead")]
    names = sorted({t for t, _ in res if t in ("mltui", "dvc")}, reverse=True)
    head = "".join(f"{f'{t} {n:,}':>16}" for n in sizes for t in names)
    print(f"\n{'summary (medians, seconds)':<40}{head}")
    for label, key in rows:
        cells = "".join(f"{res[(t, f'{key}-{n}')]:16.3f}" if (t, f"{key}-{n}") in res else f"{'-':>16}"
                        for n in sizes for t in names)
        print(f"  {label:<38}{cells}")
    for n in sizes:
        if ("mltui", f"status-{n}") in res and ("dvc", f"status-{n}") in res:
            print(f"  {n:,} files: dvc status / mltui pipeline status = x{res[('dvc', f'status-{n}')] / res[('mltui', f'status-{n}')]:.1f}, "
                  f"dvc repro / mltui repro (no-op) = x{res[('dvc', f'noop-{n}')] / res[('mltui', f'noop-{n}')]:.1f}")
    print(f"  restore {mb} MB: shutil.copyfile {res[('copy', 'restore')]:.3f} s")
    for t in names:
        if (t, "restore") in res:
            print(f"    {t} repro restoring it {res[(t, 'restore')]:.3f} s, the out deleted {res[(t, 'deleted')]:.3f} s, "
                  f"a no-op {res[(t, 'blob-noop')]:.3f} s: the restore itself {res[(t, 'marginal')]:.3f} s "
                  f"(+{res[(t, 'after-extra')]:.3f} s in the first no-op after it)")
    if ("mltui", "restore") in res:
        ok = res[("mltui", "marginal")] < res[("copy", "restore")]
        print(f"  mltui's restore (over its no-op) vs the plain copy: {'PASS' if ok else 'MISS'} (less time than the copy)")


if __name__ == "__main__":
    main()
