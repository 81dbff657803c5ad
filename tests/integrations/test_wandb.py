"""`import mltui.wandb as wandb`: a script written for W&B runs with only its import line changed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import OFFLINE, run_script, script_env  # noqa: E402  (tests/integrations/conftest.py)
from launching import kill_workspace_processes, wait_ended  # noqa: E402

# Written against W&B's API; the one line that differs from a W&B script is the import.
SCRIPT = """\
import argparse, json, sys
import mltui.wandb as wandb

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--arch", default="mlp")
args = parser.parse_args([])

run = wandb.init(project="demo", name="wb-run", config=args, tags=["baseline", "cpu"], group="g1", job_type="train",
                 notes="first try")
wandb.config.update({"optim": {"name": "sgd", "momentum": 0.9}})
wandb.config.epochs = 3
assert wandb.config["lr"] == 0.01 and wandb.config.arch == "mlp" and "epochs" in wandb.config

wandb.define_metric("epoch")
wandb.define_metric("val/*", step_metric="epoch")
for epoch in range(3):
    for i in range(4):
        wandb.log({"train/loss": 1.0 / (epoch * 4 + i + 1)})
    wandb.log({"val/acc": 0.5 + epoch / 10, "epoch": epoch})
wandb.log({"extra": 1.0}, commit=False)
wandb.log({"extra2": 2.0})
wandb.log({"jump": 5.0}, step=100)
wandb.summary["best_acc"] = 0.7
assert wandb.summary["train/loss"] == 1.0 / 12
with open("model.pt", "w") as fh:
    fh.write("weights")
wandb.save("model.pt")
print(json.dumps({"id": run.id, "name": run.name}))
wandb.finish(exit_code=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
"""


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    kill_workspace_processes(tmp_path / ".mltui")


def check_run(store, run_id: str) -> None:
    params = store.params(run_id)
    assert params == {"lr": 0.01, "arch": "mlp", "optim.name": "sgd", "optim.momentum": 0.9, "epochs": 3}
    tags = store.tags(run_id)
    assert {k: tags[k] for k in ("wandb.project", "wandb.group", "wandb.job_type", "baseline", "cpu",
                                 "summary.best_acc")} == {"wandb.project": "demo", "wandb.group": "g1",
                                                          "wandb.job_type": "train", "baseline": True, "cpu": True,
                                                          "summary.best_acc": 0.7}
    assert [s for s, _, _ in store.series(run_id, "train/loss")] == [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13]
    assert [(s, v) for s, v, _ in store.series(run_id, "val/acc")] == [(0, 0.5), (1, 0.6), (2, 0.7)]  # at epoch
    assert [s for s, _, _ in store.series(run_id, "epoch")] == [4, 9, 14]
    assert [s for s, _, _ in store.series(run_id, "extra")] == [15] == [s for s, _, _ in store.series(run_id, "extra2")]
    assert [s for s, _, _ in store.series(run_id, "jump")] == [100]
    assert set(store.artifacts(run_id)) == {"artifacts/model.pt"}


def test_a_wandb_script_runs_with_only_its_import_changed(ws, store, tmp_path):
    done = run_script(tmp_path, SCRIPT)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    [run] = store.runs()
    assert out == {"id": run["id"], "name": "wb-run"}
    assert run["status"] == "finished" and run["kind"] == "train" and run["note"] == "first try"
    check_run(store, run["id"])


def test_finish_with_an_exit_code_fails_the_run(ws, store, tmp_path):
    (tmp_path / "script.py").write_text(SCRIPT)
    done = subprocess.run([sys.executable, "script.py", "3"], cwd=tmp_path, env=script_env(), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [run] = store.runs()
    assert run["status"] == "failed" and run["exit_code"] == 3


def test_under_mltui_run_it_logs_to_the_launched_run(ws, cli, store, tmp_path):
    (tmp_path / "script.py").write_text(SCRIPT)
    started = cli("run", "--json", "--", sys.executable, "script.py", env=OFFLINE)
    run_id = json.loads(started.stdout)["id"]
    row = wait_ended(ws, run_id, timeout=60)
    assert row["status"] == "finished", (ws.run_dir(run_id) / "output.log").read_text()
    assert [r["id"] for r in store.runs()] == [run_id]
    check_run(store, run_id)


@pytest.mark.parametrize("call, sentence", [
    ("wandb.Image(None)", "wandb.Image is not supported by mltui.wandb: save the image to a file and call "
                          "wandb.save(path)."),
    ("wandb.watch(None)", "wandb.watch is not supported by mltui.wandb: log the gradient or weight norms you need "
                          "with wandb.log."),
    ("wandb.init(resume='allow')", "wandb.init(resume=...) is not supported by mltui.wandb: it takes project, name, "
                                   "config, tags, group, job_type, notes, entity, dir, reinit and mode."),
    ("wandb.init(name='x').log_code('.')", "run.log_code is not supported by mltui.wandb: commit the code: mltui "
                                           "records the git commit of each run."),
    ("wandb.init(name='x'); wandb.log({'caption': 'a cat'})",
     "wandb.log('caption': str) is not supported by mltui.wandb, which logs numbers: save other values to a file "
     "and call wandb.save(path)."),
])
def test_anything_else_raises_one_sentence_naming_the_call_and_what_to_use(ws, tmp_path, call, sentence):
    code = f"import mltui.wandb as wandb\n{call}\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=script_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].endswith(sentence)
    assert not hasattr(__import__("mltui.wandb").wandb, "Image")  # hasattr() stays usable (an AttributeError)
