"""mltui: a terminal MLOps workbench. This module is the tracking API for training scripts.

    import mltui
    run = mltui.init(name="baseline", params={"lr": 0.01})
    run.log({"loss": 0.3}, step=1)
    run.finish()

It imports only the standard library (no Textual, polars or torch), so it is cheap to import.
"""

from __future__ import annotations

from mltui.base.errors import MltuiError

__all__ = ["init", "Run", "MltuiError", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The tracking API loads on first use: `python -m mltui.core.launch.supervisor` and the CLI import this
    # package too, and most of them never log a point themselves.
    if name in ("init", "Run"):
        from mltui.core.runs import tracking
        return getattr(tracking, name)
    raise AttributeError(f"module 'mltui' has no attribute {name!r}")
