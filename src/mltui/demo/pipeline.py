"""The demo's pipeline: the sample pipeline (sample_projects/pipeline) copied to pipeline/, its stages
declared in the demo's mltui.toml, run once for real (`mltui repro` in-process), then one script edited
so that exactly one stage, evaluate, is stale: the Pipelines pane (key 6) has something to say."""

from __future__ import annotations

import shutil
from pathlib import Path

from mltui.core.workspace import Workspace

FOLDER = "pipeline"  # where the sample goes in the demo's project
STALE_STAGE = "evaluate"
# the sample's [stages] with every path under pipeline/ (tests/tui/test_tui_pipelines.py checks they match)
PIPELINE_TOML = """
# The sample pipeline, copied to pipeline/: prepare -> featurize -> train -> evaluate. `mltui repro` runs
# what changed; key 6 in the TUI shows each stage's state (r, R: reproduce; s: why a stage is stale).
[stages.prepare]
run = "python pipeline/prepare.py --raw pipeline/data/raw --out pipeline/data/prepared --seed {seed}"
deps = ["pipeline/prepare.py", "pipeline/data/raw"]
outs = ["pipeline/data/prepared"]
params = { seed = 1 }

[stages.featurize]
run = "python pipeline/featurize.py --data pipeline/data/prepared --out pipeline/data/features --degree {degree}"
deps = ["pipeline/featurize.py", "pipeline/data/prepared"]
outs = ["pipeline/data/features"]
params = { degree = 2 }

[stages.train]
run = "python pipeline/train.py --data pipeline/data/features --lr {lr} --epochs {epochs} --out pipeline/models/model.json"
deps = ["pipeline/train.py", "pipeline/data/features"]
outs = ["pipeline/models/model.json"]
params = { lr = 0.1, epochs = 30 }
kind = "train"

[stages.evaluate]
run = "python pipeline/evaluate.py --model pipeline/models/model.json --data pipeline/data/features --out pipeline/eval.json"
deps = ["pipeline/evaluate.py", "pipeline/models/model.json", "pipeline/data/features"]
metrics = ["pipeline/eval.json"]
kind = "eval"
"""
EDIT = "# edited after the last repro, so the demo shows a stale stage: `mltui pipeline status` says why\n"


def build_pipeline(ws: Workspace, samples: Path) -> str | None:
    """Copy the sample pipeline in, declare its stages, run it, make one stage stale. The project's
    mltui.toml must exist (launch.py writes it); returns a sentence when the pipeline did not run."""
    from mltui.base.errors import MltuiError
    from mltui.core.pipeline.repro import Options, Repro
    from mltui.core.pipeline.stages import load_pipeline

    if not (samples / "pipeline" / "mltui.toml").is_file():
        return "The sample pipeline is not installed here, so the demo shows no pipeline."
    project = ws.project_dir
    leave = shutil.ignore_patterns("__pycache__", "mltui.toml", "models", "eval.json", "prepared", "features")
    shutil.copytree(samples / "pipeline", project / FOLDER, ignore=leave)  # the stages live in the demo's toml
    toml = project / "mltui.toml"
    with open(toml, "a", encoding="utf-8") as fh:
        fh.write(PIPELINE_TOML)
    try:
        result = Repro(ws, load_pipeline(toml), Options()).run()
    except MltuiError as exc:
        return f"The demo pipeline did not run: {exc}"
    if not result.ok:
        failed = next((s for s in result.steps if s.state == "failed"), None)
        return f"The demo pipeline did not run: stage {failed.stage if failed else '?'} failed."
    with open(project / FOLDER / f"{STALE_STAGE}.py", "a", encoding="utf-8") as fh:
        fh.write(EDIT)
    return None
