"""Bridges to the tools training code already uses. Nothing here is imported by `import mltui`; each
module imports its framework when it is itself imported, and says which `pip install` brings it when
it is missing.

- `mltui.integrations.lightning`: `MltuiLogger`, a Lightning Logger.
- `mltui.integrations.transformers`: `MltuiCallback`, a Hugging Face TrainerCallback.
- `mltui.integrations.keras`: `MltuiCallback` and `ModelCheckpoint` for Keras 3.
- `mltui.integrations.tensorboard`: `mltui import tensorboard` (event files read live by the supervisor
  live in core: mltui.core.runs.tfevents).
- `mltui.integrations.mlflow`: `mltui import mlflow`.
- `mltui.wandb` (beside this package): a wandb-shaped API, `import mltui.wandb as wandb`.
"""

from __future__ import annotations

from mltui.base.errors import MltuiError


class ExtraMissing(MltuiError):
    """An optional dependency of a bridge is not installed."""


def need(module: str, extra: str, what: str):
    """Import `module`, or raise ExtraMissing naming the pip install that brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but broken inside: its own error says more
        raise ExtraMissing(f"{what} needs the {module.split('.')[0]} package: pip install 'mltui[{extra}]'.") from None
