"""Real runs for `mltui demo`: the sample projects copied into the demo folder and launched under supervisors,
and the sample pipeline run once with one stage left stale (demo/pipeline.py).

The demo's mltui.toml names the sample commands, so the launch dialog offers them too.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from mltui.core.workspace import Workspace

DEMO_TOML = """\
# The demo's commands: the sample projects copied next to this file. Launch them with `n` in the TUI.
[commands.count]
run = "python jsonl_counter/count.py --steps {steps} --sleep {sleep} --noise {noise} --seed {seed}"
params = { steps = 120, sleep = 0.25, noise = 0.05, seed = 0 }
kind = "train"

[commands.fail]
run = "python jsonl_counter/count.py --steps {steps} --sleep {sleep} --fail-at {fail_at}"
params = { steps = 40, sleep = 0.1, fail_at = 25 }
kind = "train"
"""

TORCH_TOML = """
[commands.train]
run = "python classifier/train.py --lr {lr} --epochs {epochs} --hidden {hidden} --data {data} --checkpoints {checkpoints}"
params = { lr = 0.003, epochs = 15, hidden = 64, data = "classifier/data/", checkpoints = "checkpoints" }
kind = "train"
watch = ["checkpoints"]

[commands.eval]
run = "python classifier/eval.py --model {model} --data {data}"
params = { model = "checkpoints/last.pt", data = "classifier/data/" }
kind = "eval"
"""


def sample_projects() -> Path | None:
    """The repository's sample_projects/ folder, when mltui runs from a checkout (pip install -e)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "sample_projects"
        if (candidate / "jsonl_counter" / "count.py").is_file():
            return candidate
    return None


def launch_samples(ws: Workspace) -> tuple[list[str], str | None]:
    """Copy the sample projects into the demo's project folder and start a few real runs.

    Returns the run ids and, when something could not be done, a sentence saying why."""
    from mltui.core.launch.commands import load_commands
    from mltui.core.launch.launcher import Launch, launch

    source = sample_projects()
    if source is None:
        return [], "The sample projects are not installed here, so the demo shows no launched runs."
    project = ws.project_dir
    shutil.copytree(source / "jsonl_counter", project / "jsonl_counter")
    toml = DEMO_TOML
    has_torch = importlib.util.find_spec("torch") is not None
    if has_torch:
        shutil.copytree(source / "classifier", project / "classifier")
        toml += TORCH_TOML
    earlier = project / "mltui.toml"  # the monitor's retraining command (demo/monitor.py) is already there
    toml += earlier.read_text(encoding="utf-8") if earlier.is_file() else ""
    earlier.write_text(toml, encoding="utf-8")
    commands = load_commands(project / "mltui.toml")
    from mltui.demo.pipeline import build_pipeline

    pipeline_note = build_pipeline(ws, source)  # first: the runs launched below would slow its stages down
    import os

    from mltui.core.gpu.sources import open_gpus

    if not open_gpus(ws.config().gpu_backend).devices():  # no real GPU: the demo shows four simulated ones
        os.environ.setdefault("MLTUI_GPU", "sim:4")
    ids = [
        launch(ws, Launch(command=commands["count"], params={"seed": 1}, name="demo-count", gpus=1)),
        launch(ws, Launch(command=commands["fail"], name="demo-fail")),
    ]
    if has_torch:
        ids.append(launch(ws, Launch(command=commands["train"], params={"epochs": 25}, name="demo-classifier",
                                     gpus=1)))
    notes = [pipeline_note,
             None if has_torch else "torch is not installed, so the demo runs only the dependency-free sample."]
    return ids, " ".join(n for n in notes if n) or None
