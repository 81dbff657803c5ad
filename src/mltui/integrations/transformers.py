"""A Hugging Face `Trainer` callback that writes to mltui:

    from mltui.integrations.transformers import MltuiCallback
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[MltuiCallback()])
    trainer.train()

At the start of training the run gets its params: the TrainingArguments (learning_rate, num_train_epochs,
...) and the model's config under `model.` (model.hidden_size, ...). Each `on_log` gives the numbers it
holds as metrics at `state.global_step` (loss, learning_rate, grad_norm, eval_loss, ...). Each checkpoint
the Trainer saves (output_dir/checkpoint-N) is copied into the run's artifacts (artifacts/checkpoints/
checkpoint-N/...). `on_train_end` finishes the run. Only the main process logs. Under `mltui run` it logs
to the launched run (MLTUI_RUN_ID). Needs transformers: pip install 'mltui[transformers]'.
"""

from __future__ import annotations

import os
from typing import Any

from mltui.integrations import need
from mltui.integrations._common import flat_params, numbers, open_run

need("transformers", "transformers", "mltui's Hugging Face callback")
from transformers import TrainerCallback  # noqa: E402

__all__ = ["MltuiCallback"]

SKIP_ARGS = ("push_to_hub_token", "hub_token", "_n_gpu", "logging_dir", "deepspeed_plugin")


class MltuiCallback(TrainerCallback):
    """Reports a Trainer's training to an mltui run."""

    def __init__(self, name: str | None = None, *, params: dict | None = None, tags: dict | None = None,
                 workspace: str | os.PathLike[str] | None = None, log_checkpoints: bool = True) -> None:
        self._name = name
        self._params = params
        self._tags = tags
        self._workspace = workspace
        self._log_checkpoints = log_checkpoints
        self.run = None

    def _open(self, args, state, model=None):
        if self.run is None and state.is_world_process_zero:
            self.run = open_run(self._name or _run_name(args), self._params, self._tags, self._workspace)
            values = {k: v for k, v in flat_params(args.to_dict()).items() if k not in SKIP_ARGS and v is not None}
            config = getattr(model, "config", None)
            if config is not None and hasattr(config, "to_dict"):
                values.update(flat_params(config.to_dict(), "model"))
            if values:
                self.run.log_params(values)
        return self.run

    def on_train_begin(self, args, state, control, model=None, **kwargs: Any):
        self._open(args, state, model)

    def on_log(self, args, state, control, logs=None, model=None, **kwargs: Any):
        run = self._open(args, state, model)
        if run is None:
            return
        values = numbers({k: v for k, v in (logs or {}).items() if k != "total_flos"})
        if values:
            run.log(values, step=state.global_step)

    def on_save(self, args, state, control, **kwargs: Any):
        run = self._open(args, state, kwargs.get("model"))
        if run is None or not self._log_checkpoints:
            return
        name = f"checkpoint-{state.global_step}"
        folder = os.path.join(args.output_dir, name)
        if os.path.isdir(folder):
            run.log_artifact(folder, name=f"checkpoints/{name}", overwrite=True)

    def on_train_end(self, args, state, control, **kwargs: Any):
        if self.run is not None and not self.run.finished:
            self.run.finish()
        self.run = None  # a second train() starts a new run (or attaches to the launched one again)


def _run_name(args) -> str | None:
    name = getattr(args, "run_name", None)
    return name if name and name != getattr(args, "output_dir", None) else None
