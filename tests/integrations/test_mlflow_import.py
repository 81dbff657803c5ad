"""`mltui import mlflow` on stores written by real MLflow: a file store (mlruns/) and a SQLite store. Every
param, tag and metric point comes across, artifacts are copied with their sha256, and a second import
adds nothing and says so."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import run_script, script_env  # noqa: E402  (tests/integrations/conftest.py)


WRITER = """\
import json, os, sys, time
import mlflow
from mlflow import MlflowClient

uri, artifacts = sys.argv[1], sys.argv[2]
mlflow.set_tracking_uri(uri)
client = MlflowClient()
out = {}
for exp_name in ("vision", "text"):
    exp_id = client.create_experiment(exp_name, artifact_location=os.path.join(artifacts, exp_name))
    for i, status in enumerate(("FINISHED", "FAILED")):
        with mlflow.start_run(experiment_id=exp_id, run_name=f"{exp_name}-{i}") as run:
            mlflow.log_params({"lr": 0.01 * (i + 1), "batch": 32 * (i + 1), "opt": "adam", "note": "0.10"})
            mlflow.set_tags({"team": exp_name, "try": str(i)})
            for step in range(50):
                mlflow.log_metric("loss", 1.0 / (step + 1 + i), step=step, timestamp=1_700_000_000_000 + 1000 * step)
                if step % 10 == 0:
                    mlflow.log_metric("val acc", 0.5 + step / 100, step=step)
            with open("model.bin", "wb") as fh:
                fh.write(os.urandom(1000 + i))
            mlflow.log_artifact("model.bin", artifact_path="model")
            with open("notes.txt", "w") as fh:
                fh.write(f"run {exp_name}-{i}")
            mlflow.log_artifact("notes.txt")
            if status != "FINISHED":
                mlflow.end_run(status)
        got = client.get_run(run.info.run_id)
        out[run.info.run_id] = {
            "name": got.info.run_name, "experiment": exp_name, "status": got.info.status,
            "start": got.info.start_time, "end": got.info.end_time,
            "params": got.data.params, "tags": got.data.tags,
            "metrics": {k: [(m.step, m.value, m.timestamp) for m in client.get_metric_history(got.info.run_id, k)]
                        for k in got.data.metrics},
        }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A file store and a SQLite store, each with two experiments of two runs, written by MLflow itself."""
    root = tmp_path_factory.mktemp("mlflow")
    made = {}
    for kind, uri in (("file", (root / "mlruns").as_uri()), ("sqlite", f"sqlite:///{root / 'mlflow.db'}")):
        folder = root / f"writer-{kind}"
        folder.mkdir()
        done = run_script(folder, WRITER.replace("sys.argv[1], sys.argv[2]", f"{uri!r}, {str(root / (kind + '-art'))!r}"),
                          env=script_env())
        made[kind] = (uri, json.loads(done.stdout.strip().splitlines()[-1]))
    return root, made


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_every_param_tag_and_point_comes_across_and_a_second_import_adds_nothing(ws, cli, store, stores, kind):
    root, made = stores
    uri, expected = made[kind]
    source = str(root / "mlruns") if kind == "file" else str(root / "mlflow.db")  # a path, as a user types it
    done = cli("import", "mlflow", source, "--json", env={"MLFLOW_ALLOW_FILE_STORE": ""})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert len(report["imported"]) == 4 and report["skipped"] == []
    assert report["points"] == 4 * (50 + 5)

    runs = {store.tags(r["id"])["mlflow.run_id"]: r for r in store.runs()}
    assert set(runs) == set(expected)
    for mlflow_id, want in expected.items():
        run = runs[mlflow_id]
        assert run["name"] == want["name"]
        assert run["status"] == {"FINISHED": "finished", "FAILED": "failed"}[want["status"]]
        assert run["started"] == want["start"] / 1000 and run["ended"] == want["end"] / 1000
        tags = store.tags(run["id"])
        assert tags["mlflow.experiment"] == want["experiment"]
        for key, value in want["tags"].items():
            assert tags[key] == value
        params = store.params(run["id"])
        assert set(params) == set(want["params"])
        assert params["opt"] == "adam" and params["note"] == "0.10"  # text that is not exactly a number stays text
        assert params["batch"] in (32, 64) and isinstance(params["lr"], float)
        assert {str(v) for v in params.values()} == set(want["params"].values())
        for key, points in want["metrics"].items():
            stored = store.series(run["id"], key.replace(" ", "_"))
            assert [(s, v, t) for s, v, t in stored] == [(s, v, ts / 1000) for s, v, ts in sorted(points)]
        arts = store.artifacts(run["id"])
        assert set(arts) == {"artifacts/model/model.bin", "artifacts/notes.txt"}
        for path, row in arts.items():
            data = (ws.run_dir(run["id"]) / path).read_bytes()
            assert row["sha256"] == sha256(data) and row["size"] == len(data)

    again = cli("import", "mlflow", uri)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith("Imported 0 runs from " + uri + "; skipped 4 already imported.")
    assert len(store.runs()) == 4
    assert sum(sum(store.counts(r["id"]).values()) for r in store.runs()) == 4 * 55


def test_experiment_and_where_narrow_the_import(ws, cli, store, stores):
    root, made = stores
    uri, expected = made["file"]  # the file store opens faster than SQLite's (no schema check): quicker errors
    done = cli("import", "mlflow", uri, "--experiment", "text", "--where", "params.opt = 'adam' and tags.try = '1'",
               "--json")
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)["imported"]
    assert entry["name"] == "text-1" and entry["status"] == "failed"
    bad = cli("import", "mlflow", uri, "--experiment", "audio")
    assert bad.returncode == 1 and "has no experiment 'audio' (it has: " in bad.stderr and "text, vision)" in bad.stderr
    wrong = cli("import", "mlflow", uri, "--where", "params.opt === 'adam'")
    assert wrong.returncode == 2 and wrong.stderr.startswith("mltui: MLflow refused --where")
    assert wrong.stderr.count("\n") == 1
    nothing = cli("import", "mlflow", str(root / "missing.db"))
    assert nothing.returncode == 1 and "There is no MLflow store at" in nothing.stderr
