"""What a run ran on: git commit and dirty flag, Python, a hash of the installed packages, the data params."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

_PACKAGES = (
    "import importlib.metadata as m, json, sys\n"
    "print(json.dumps({'python': sys.version.split()[0], 'packages': sorted("
    "f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions() if d.metadata['Name'])}))"
)


def _same_python(argv0: str) -> bool:
    found = shutil.which(argv0) or argv0
    try:
        return os.path.samefile(found, sys.executable)
    except OSError:
        return False


def packages(argv: list[str]) -> dict[str, Any] | None:
    """Python version and installed packages of the interpreter the command runs, if it is Python."""
    if not argv or not os.path.basename(argv[0]).startswith("python"):
        return None
    if _same_python(argv[0]):
        import importlib.metadata as m

        names = sorted(f"{d.metadata['Name']}=={d.version}" for d in m.distributions() if d.metadata["Name"])
        return {"python": sys.version.split()[0], "packages": names}
    try:
        out = subprocess.run([argv[0], "-c", _PACKAGES], capture_output=True, text=True, timeout=20)
        return json.loads(out.stdout) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def data_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The params that name data (`data`, `dataset`, `train_data`, ...)."""
    return {k: v for k, v in params.items() if "data" in k.lower()}


def fingerprint(argv: list[str], cwd: str, params: Mapping[str, Any]) -> dict[str, Any]:
    from mltui.base.procs import git_state

    commit, dirty = git_state(cwd)
    fp: dict[str, Any] = {
        "git_commit": commit,
        "git_dirty": None if dirty is None else int(dirty),
        "platform": platform.platform(),
        "data": data_params(params),
    }
    found = packages(argv)
    if found:
        listing = "\n".join(found["packages"])
        fp.update(python=found["python"], packages=len(found["packages"]),
                  packages_hash=hashlib.sha256(listing.encode()).hexdigest()[:16])
    return fp
