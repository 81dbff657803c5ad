"""How long `import mltui` takes in a fresh interpreter, next to an interpreter that imports nothing.

    python bench/import_time.py [--repeat 21]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_of, timer  # noqa: E402


ENV: dict[str, str] = {}


def run(code: str) -> float:
    clock = timer()
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV or None)
    return clock()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--no-pyc-cache", action="store_true",
                        help="leave PYTHONDONTWRITEBYTECODE as it is (then every start compiles mltui's source)")
    args = parser.parse_args()
    if not args.no_pyc_cache:  # where PYTHONDONTWRITEBYTECODE is set, cache bytecode outside src/ as an install would
        import os
        import tempfile

        ENV.update(os.environ, PYTHONPYCACHEPREFIX=tempfile.mkdtemp(prefix="mltui-pyc-"), PYTHONDONTWRITEBYTECODE="")
    run("import mltui; mltui.init; import mltui.cli.main, mltui.cli.runs, mltui.core.runs.listing")  # compile first
    base, _ = median_of(lambda: run("pass"), args.repeat)
    bare, _ = median_of(lambda: run("import mltui"), args.repeat)
    lib, _ = median_of(lambda: run("import mltui; mltui.init"), args.repeat)  # the tracking API loaded
    cli, _ = median_of(lambda: run("import mltui.cli.main, mltui.cli.runs, mltui.core.runs.listing"), args.repeat)
    print(f"python -c pass                 : median {base * 1000:6.1f} ms")
    print(f"python -c 'import mltui'       : median {bare * 1000:6.1f} ms  (import itself: {(bare - base) * 1000:.1f} ms;"
          " the tracking API loads on first use)")
    print(f"import mltui; mltui.init       : median {lib * 1000:6.1f} ms  (import itself: {(lib - base) * 1000:.1f} ms;"
          " target well under 100 ms)")
    print(f"CLI modules for `runs list`    : median {cli * 1000:6.1f} ms  (import itself: {(cli - base) * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
