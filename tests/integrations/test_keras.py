"""MltuiCallback and ModelCheckpoint under a real Keras 3 fit, on its torch backend, with a tiny model."""

from __future__ import annotations

import hashlib

import pytest

from conftest import run_script  # noqa: E402  (tests/integrations/conftest.py)

FIT = """\
import os, sys
import numpy as np, keras
from mltui.integrations.keras import MltuiCallback, ModelCheckpoint

assert keras.backend.backend() == "torch"

class Diverge(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == FAIL_AT:
            raise FloatingPointError("loss is nan")

FAIL_AT = -1
keras.utils.set_random_seed(0)
x = np.random.rand(32, 3).astype("float32")
y = x.sum(1, keepdims=True)
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)],
                         name="tiny")
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"])
history = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0,
                    callbacks=[ModelCheckpoint("ckpt/e{epoch}.keras"), MltuiCallback(name="keras-tiny"), Diverge()])
print(repr(history.history))
"""


def test_fit_gives_params_epoch_and_batch_curves_checkpoints_and_status(ws, store, tmp_path):
    done = run_script(tmp_path, FIT)
    history = eval(done.stdout.strip().splitlines()[-1])  # Keras's own record of the epochs (a dict repr)
    [run] = store.runs()
    assert run["name"] == "keras-tiny" and run["status"] == "finished"
    params = store.params(run["id"])
    assert params["epochs"] == 3 and params["steps"] == 3 and params["model"] == "tiny"
    assert params["optimizer.learning_rate"] == pytest.approx(0.05) and params["optimizer.name"] == "sgd"
    for key in ("loss", "mae", "val_loss", "val_mae"):
        got = store.series(run["id"], key)
        assert [s for s, _, _ in got] == [0, 1, 2]
        assert [v for _, v, _ in got] == [float(v) for v in history[key]]
    assert [s for s, _, _ in store.series(run["id"], "batch/loss")] == list(range(9))  # 24 rows / 8, x 3 epochs
    arts = store.artifacts(run["id"])
    assert set(arts) == {f"artifacts/checkpoints/e{n}.keras" for n in (1, 2, 3)}
    for path, row in arts.items():
        assert row["sha256"] == hashlib.sha256((tmp_path / "ckpt" / path.rsplit("/", 1)[1]).read_bytes()).hexdigest()


def test_a_fit_that_raises_ends_failed(ws, store, tmp_path):
    done = run_script(tmp_path, FIT.replace("FAIL_AT = -1", "FAIL_AT = 1"), check=False)
    assert done.returncode == 1 and "FloatingPointError: loss is nan" in done.stderr
    [run] = store.runs()
    assert run["status"] == "failed"
    assert [s for s, _, _ in store.series(run["id"], "loss")] == [0, 1]
    assert len(store.artifacts(run["id"])) == 2
