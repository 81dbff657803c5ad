"""Import hygiene: the tracking API and the domain stay free of the screen and heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_import_mltui_pulls_no_textual_polars_or_torch():
    mods = top_level(loaded_after("import mltui"))
    assert not mods & {"textual", "rich", "polars", "torch", "numpy", "plotext", "pynvml", "watchdog", "sqlite_utils"}


@pytest.mark.parametrize(
    "module",
    ["mltui.core.workspace", "mltui.core.runs.tracking", "mltui.core.runs.listing", "mltui.demo.build", "mltui.core.reader",
     "mltui.store.connection", "mltui.store.schema", "mltui.store.metrics", "mltui.store.runs", "mltui.store.where",
     "mltui.cli.main", "mltui.cli.runs"],
)
def test_core_store_and_cli_import_no_textual(module):
    mods = top_level(loaded_after(f"import {module}"))
    assert "textual" not in mods and "rich" not in mods


def test_every_core_and_store_module_avoids_textual():
    """Walk the packages, feature subpackages included, so a new module cannot slip past the list above."""
    code = (
        "import pkgutil, importlib, sys, json, mltui.base, mltui.core, mltui.store\n"
        "for pkg in (mltui.base, mltui.core, mltui.store):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mods = top_level(set(json.loads(out.stdout)))
    assert "textual" not in mods and "rich" not in mods


def test_the_hygiene_check_can_fail():
    """The same helper sees Textual when something does import it."""
    assert "textual" in top_level(loaded_after("import mltui.tui.app"))


FRAMEWORKS = {"tensorboard", "tensorboardX", "google", "mlflow", "lightning", "pytorch_lightning", "transformers",
              "keras", "torch", "numpy", "polars"}


def test_import_mltui_leaves_the_bridges_and_their_frameworks_unloaded():
    mods = loaded_after("import mltui")
    assert not {m for m in mods if m.startswith(("mltui.integrations", "mltui.wandb"))}
    assert not top_level(mods) & FRAMEWORKS


@pytest.mark.parametrize("statement", ["import mltui.wandb", "import mltui.wandb as wandb; wandb.config.lr = 1"])
def test_mltui_wandb_is_standard_library_only(statement):
    """It replaces `import wandb` in training scripts: nothing but the standard library and mltui's floor."""
    mods = loaded_after(statement) - loaded_after("pass")  # what the interpreter loads anyway (.pth hooks) aside
    assert top_level(mods) - set(sys.stdlib_module_names) - {"mltui"} == set()
    assert not {m for m in mods if m.startswith("mltui.integrations")}


@pytest.mark.parametrize("module", ["mltui.integrations", "mltui.core.launch.supervisor", "mltui.core.launch.tb_tail",
                                    "mltui.core.runs.tfevents", "mltui.cli.imports"])
def test_the_bridges_load_their_frameworks_only_when_used(module):
    assert not top_level(loaded_after(f"import {module}")) & FRAMEWORKS
