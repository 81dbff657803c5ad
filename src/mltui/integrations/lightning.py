"""A Lightning logger that writes to mltui:

    from mltui.integrations.lightning import MltuiLogger
    trainer = Trainer(logger=MltuiLogger(name="baseline"))
    trainer.fit(model, data)

`log_hyperparams` gives the run's params (nested ones as `a.b`), `log_metrics` its metrics at the step
Lightning gives (the global step), `finalize(status)` ends the run: finished after a fit that ended well,
failed when it raised, killed on Ctrl-C. Checkpoints that ModelCheckpoint saves are copied into the run's
artifacts (artifacts/checkpoints/<file>, with their sha256). Only rank zero logs. Under `mltui run` it
logs to the launched run (MLTUI_RUN_ID) and leaves the status to the supervisor, which reads the exit code.
Needs lightning (or pytorch-lightning): pip install 'mltui[lightning]'.
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

from mltui.integrations import ExtraMissing, need
from mltui.integrations._common import flat_params, numbers, open_run

try:
    need("lightning", "lightning", "mltui's Lightning logger")
    from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
    from lightning.pytorch.utilities import rank_zero_only
except ExtraMissing:
    try:
        from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment  # type: ignore[no-redef]
        from pytorch_lightning.utilities import rank_zero_only  # type: ignore[no-redef]
    except ImportError:
        raise ExtraMissing("mltui's Lightning logger needs the lightning package: "
                           "pip install 'mltui[lightning]'.") from None

__all__ = ["MltuiLogger"]

STATUS = {"success": "finished", "finished": "finished", "failed": "failed"}


class MltuiLogger(Logger):
    """Lightning's Logger over an mltui run (created lazily, on rank zero only)."""

    def __init__(self, name: str | None = None, *, params: dict | None = None, tags: dict | None = None,
                 workspace: str | os.PathLike[str] | None = None, log_checkpoints: bool = True,
                 prefix: str = "") -> None:
        super().__init__()
        self._run_name = name
        self._params = params
        self._tags = tags
        self._workspace = workspace
        self._log_checkpoints = log_checkpoints
        self._prefix = prefix
        self._run = None
        self._copied: dict[str, float] = {}  # checkpoint path -> mtime when copied

    # -- what Lightning asks of a logger ---------------------------------------------------------
    @property
    def name(self) -> str:
        return "mltui"

    @property
    def version(self) -> str | None:
        run_id = getattr(self.experiment, "id", None)  # Lightning's dummy on other ranks answers anything
        return run_id if isinstance(run_id, str) else os.environ.get("MLTUI_RUN_ID")

    @property
    @rank_zero_experiment
    def experiment(self):
        """The mltui Run (rank zero); Lightning's dummy elsewhere."""
        if self._run is None:
            self._run = open_run(self._run_name, self._params, self._tags, self._workspace)
        elif self._run.finished:  # logging again after finalize (a test() after fit()): append to the same run
            from mltui.core.runs.tracking import Run

            self._run = Run(self._run.workspace, self._run.id, attached=True)
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        values = flat_params(params)
        if values:
            self.experiment.log_params(values)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = numbers(metrics, self._prefix)
        if values:
            self.experiment.log(values, step=step)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback) -> None:
        if not self._log_checkpoints:
            return
        paths = set(getattr(checkpoint_callback, "best_k_models", {}) or {})
        for attr in ("best_model_path", "last_model_path"):
            if getattr(checkpoint_callback, attr, ""):
                paths.add(getattr(checkpoint_callback, attr))
        run = self.experiment
        for path in sorted(paths):
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue  # removed since (save_top_k) or a remote path
            if self._copied.get(path) == mtime:
                continue
            run.log_artifact(path, name=f"checkpoints/{Path(path).name}", overwrite=True)
            self._copied[path] = mtime

    @rank_zero_only
    def save(self) -> None:
        if self._run is not None and not self._run.finished:
            self._run.flush()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._run is None or self._run.finished:
            return
        final = STATUS.get(status, "killed")
        if final == "failed" and isinstance(sys.exc_info()[1], KeyboardInterrupt):
            final = "killed"  # Lightning reports Ctrl-C as "failed"
        self._run.finish(status=final)
