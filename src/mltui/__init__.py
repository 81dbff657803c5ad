"""mltui: a terminal MLOps workbench. This module is the tracking API for training scripts.

    import mltui
    run = mltui.init(name="baseline", params={"lr": 0.01})
    run.log({"loss": 0.3}, step=1)
    run.finish()

It imports only the standard library (no Textual, polars or torch), so it is cheap to import.
"""

from __future__ import annotations

from mltui.core.errors import MltuiError
from mltui.core.tracking import Run, init

__all__ = ["init", "Run", "MltuiError", "__version__"]
__version__ = "0.1.0"
