"""A missing optional extra gives one sentence naming the pip install that fixes it.

The packages are made missing for real in a child Python: a sitecustomize on its PYTHONPATH puts a finder
first on sys.meta_path that refuses them, so `import tensorboard` fails there as it does where the
package was never installed (ModuleNotFoundError naming it). No mltui code is replaced."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import OFFLINE, write_events  # noqa: E402  (tests/integrations/conftest.py)
from launching import kill_workspace_processes, wait_ended  # noqa: E402

BLOCKED = ("tensorboard", "tensorboardX", "mlflow", "lightning", "pytorch_lightning", "transformers", "keras")

SITECUSTOMIZE = f"""\
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.fixture
def without_extras(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {**OFFLINE, "PYTHONPATH": str(shim)}


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    kill_workspace_processes(tmp_path / ".mltui")


def test_the_shim_really_hides_the_packages(without_extras, tmp_path):
    code = "import importlib.util, json; json.dump([importlib.util.find_spec('json') is not None], __import__('sys').stdout)\n" \
           "try:\n    import tensorboard\nexcept ModuleNotFoundError as e:\n    print(e.name)"
    done = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, **without_extras},
                          capture_output=True, text=True, timeout=60)
    assert done.stdout == "[true]tensorboard\n", done.stderr


@pytest.mark.parametrize("args, sentence", [
    (("import", "tensorboard", "logs"),
     "mltui: Reading TensorBoard event files needs the tensorboard package: pip install 'mltui[tensorboard]'.\n"),
    (("import", "mlflow", "mlruns"),
     "mltui: Importing from MLflow needs the mlflow package: pip install 'mltui[mlflow]'.\n"),
])
def test_the_import_commands_say_which_pip_install(ws, cli, without_extras, tmp_path, args, sentence):
    write_events(tmp_path / "logs", {"loss": [(0, 1.0)]})
    (tmp_path / "mlruns").mkdir()
    done = cli(*args, env=without_extras)
    assert done.returncode == 1
    assert done.stderr == sentence
    assert done.stdout == ""


@pytest.mark.parametrize("module, sentence", [
    ("mltui.integrations.lightning", "mltui's Lightning logger needs the lightning package: "
                                     "pip install 'mltui[lightning]'."),
    ("mltui.integrations.transformers", "mltui's Hugging Face callback needs the transformers package: "
                                        "pip install 'mltui[transformers]'."),
    ("mltui.integrations.keras", "mltui's Keras callback needs the keras package: pip install 'mltui[keras]'."),
])
def test_the_callbacks_say_which_pip_install(without_extras, tmp_path, module, sentence):
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=tmp_path,
                          env={**__import__("os").environ, **without_extras}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"mltui.integrations.ExtraMissing: {sentence}"


def test_a_launched_run_with_event_files_says_it_in_its_log(ws, cli, without_extras, tmp_path):
    made = write_events(tmp_path / "made", {"loss": [(0, 1.0)]})
    script = f"import shutil, os\nos.makedirs('tb')\nshutil.copy({str(made)!r}, 'tb/' + os.path.basename({str(made)!r}))\n"
    (tmp_path / "make_events.py").write_text(script)
    started = cli("run", "--json", "--", sys.executable, "make_events.py", env=without_extras)
    run_id = json.loads(started.stdout)["id"]
    row = wait_ended(ws, run_id, timeout=60)
    assert row["status"] == "finished"
    log = (ws.run_dir(run_id) / "output.log").read_text()
    assert ("the run writes TensorBoard event files (" + made.name + ") but they cannot be read: Reading TensorBoard "
            "event files needs the tensorboard package: pip install 'mltui[tensorboard]'.") in log
    assert log.count("cannot be read") == 1
    shutil.rmtree(tmp_path / "tb")
