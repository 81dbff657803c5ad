"""Keras 3 callbacks that write to mltui (any backend: torch, JAX or TensorFlow):

    from mltui.integrations.keras import MltuiCallback, ModelCheckpoint
    model.fit(x, y, epochs=5, callbacks=[MltuiCallback(), ModelCheckpoint("ckpt/e{epoch}.keras")])

`MltuiCallback` gives the run its params at the start of `fit` (epochs, steps, the optimizer's settings
under `optimizer.`), each epoch's logs as metrics at the epoch number (loss, val_loss, accuracy, ...),
each batch's logs as `batch/<name>` at the batch count since the start, and finishes the run at the end
of `fit`. `ModelCheckpoint` is Keras's own, plus: every file it saves is copied into the run's
artifacts (artifacts/checkpoints/<file>, with its sha256). Under `mltui run` they log to the launched run.
Needs keras 3: pip install 'mltui[keras]'.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mltui.integrations import need
from mltui.integrations._common import flat_params, numbers, open_run

need("keras", "keras", "mltui's Keras callback")
import keras  # noqa: E402

__all__ = ["MltuiCallback", "ModelCheckpoint"]

_current = None  # the run the last MltuiCallback opened: where ModelCheckpoint records its files


class MltuiCallback(keras.callbacks.Callback):
    """Epoch metrics at the epoch, batch metrics (`batch/...`) at the global batch count."""

    def __init__(self, name: str | None = None, *, params: dict | None = None, tags: dict | None = None,
                 workspace: str | os.PathLike[str] | None = None, log_batches: bool = True,
                 batch_prefix: str = "batch/") -> None:
        super().__init__()
        self._name = name
        self._params = params
        self._tags = tags
        self._workspace = workspace
        self._log_batches = log_batches
        self._batch_prefix = batch_prefix
        self._batches = 0
        self.run = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        global _current
        self.run = open_run(self._name, self._params, self._tags, self._workspace)
        _current = self.run
        self._batches = 0
        values = flat_params({k: v for k, v in (self.params or {}).items() if v is not None})
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "get_config"):
            values.update({k: v for k, v in flat_params(optimizer.get_config(), "optimizer").items() if v is not None})
        if getattr(self.model, "name", None):
            values["model"] = self.model.name
        if values:
            self.run.log_params(values)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._log_batches and self.run is not None:
            values = numbers(logs, self._batch_prefix)
            if values:
                self.run.log(values, step=self._batches)
        self._batches += 1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.run is not None:
            values = numbers(logs)
            if values:
                self.run.log(values, step=epoch)

    def on_train_end(self, logs: dict | None = None) -> None:
        global _current
        if self.run is not None and not self.run.finished:
            self.run.finish()
        if _current is self.run:
            _current = None
        self.run = None


class ModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """keras.callbacks.ModelCheckpoint that also records each saved file in the run of the MltuiCallback
    given to the same fit() (it opens the run in on_train_begin, before any save)."""

    def _save_model(self, epoch: int, batch: Any, logs: dict) -> None:
        before = self._file_state(epoch, batch, logs)
        super()._save_model(epoch, batch, logs)
        path = self._get_file_path(epoch, batch, logs)
        run = _current
        if run is None or run.finished or not os.path.isfile(path):
            return
        if before == _state(path):
            return  # not saved this time (save_best_only and no improvement)
        run.log_artifact(path, name=f"checkpoints/{Path(path).name}", overwrite=True)

    def _file_state(self, epoch: int, batch: Any, logs: dict):
        try:
            return _state(self._get_file_path(epoch, batch, logs))
        except Exception:
            return None


def _state(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
