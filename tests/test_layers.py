"""The layering of DESIGN.md §2 holds, as the machine checks it: import-linter's contracts in
pyproject.toml pass, a broken one is caught, no module cycle exists (imports inside functions
count), and the faces (cli, tui) hold no SQL."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "mltui"


def lint_imports(*, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        pytest.fail("lint-imports is missing: the test extra installs import-linter")
    env = dict(os.environ)
    if pythonpath is not None:  # ahead of the installed (editable) mltui
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(exe), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    done = lint_imports()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "broken" not in done.stdout.lower().replace("0 broken", "")


def test_a_core_module_that_imports_the_tui_breaks_the_contracts(tmp_path):
    """The check can fail: a copy of the package whose domain reaches up into the screen."""
    copy = tmp_path / "src" / "mltui"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "core" / "runs" / "listing.py"
    target.write_text(target.read_text() + "\n\ndef _reaches_up():\n    import mltui.tui.app  # noqa: F401\n")
    done = lint_imports(pythonpath=tmp_path / "src")
    assert done.returncode != 0
    assert "mltui.core.runs.listing -> mltui.tui.app" in done.stdout


def _graph():
    import grimp

    return grimp.build_graph("mltui", cache_dir=None)


def test_no_module_imports_itself_back_through_others():
    """Tarjan's strongly connected components over every import, those inside functions included."""
    graph = _graph()
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(root: str) -> None:  # iterative, so deep chains cannot hit the recursion limit
        nonlocal counter
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    assert cycles == []


def test_the_cycle_check_sees_imports_inside_functions():
    graph = _graph()
    # core/launch/liveness.py asks Slurm inside a function, never at module level
    assert "mltui.core.launch.slurm" in graph.find_modules_directly_imported_by("mltui.core.launch.liveness")


@pytest.mark.parametrize("face", ["cli", "tui"])
def test_the_faces_hold_no_sql(face):
    """cli/ and tui/ call core/; only core and the store talk SQL or open the store."""
    found = []
    for path in sorted((SRC / face).rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\b(execute|executescript|executemany|open_store)\(", line):
                found.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert found == []
