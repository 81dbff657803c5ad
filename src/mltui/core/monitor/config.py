"""`[monitor]` in config.toml: where prediction logs are, the window, each model's reference and
target, and the rules. Every mistake is one sentence naming the file and the setting."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mltui.base.errors import MltuiError
from mltui.core.workspace import Workspace

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
ACTIONS = ("notify", "retrain")


def seconds(text: Any, where: str) -> float:
    """'1h', '30m', '1d', '90s' (or a number of seconds) as seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text > 0:
        return float(text)
    match = _DURATION.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise MltuiError(f"{where} must be a duration like \"1h\", \"30m\" or \"1d\", not {text!r}.")
    return float(match.group(1)) * _UNIT[match.group(2)]


@dataclass
class ModelSettings:
    reference: str | None = None  # "DATASET@VERSION"; None: the training run's data (lineage)
    file: str | None = None  # the table in that version, when it holds several
    target: str | None = None  # the label column in the reference (excluded from the features)
    task: str | None = None  # "classification" | "regression"; None: from the outputs
    positive: str | None = None  # the positive class, for ROC AUC from one score per record
    eval_metric: str | None = None  # the eval run's metric quality is compared with (default: accuracy / rmse)


@dataclass
class Rule:
    model: str
    when: str
    times: int  # `for`: consecutive windows
    then: list[str]
    retrain: str | None  # a [stages] or [commands] name in mltui.toml
    index: int

    @property
    def key(self) -> str:
        return f"{self.model}: {self.when}"


@dataclass
class MonitorConfig:
    logs: Path
    window: float
    models: dict[str, ModelSettings] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    label_horizon: float = 30 * 86400.0

    def model(self, name: str) -> ModelSettings:
        return self.models.get(name, ModelSettings())


def load(ws: Workspace) -> MonitorConfig:
    from mltui.core.monitor.when import parse_when

    raw = ws.config().raw
    source = str(ws.config_path)
    section = raw.get("monitor", {})
    if not isinstance(section, dict):
        raise MltuiError(f"{source}: [monitor] must be a table of settings.")
    known = {"logs", "window", "models", "rules", "label_horizon"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise MltuiError(f"{source}: [monitor] has unknown settings: {', '.join(unknown)} (known: {', '.join(sorted(known))}).")
    logs = section.get("logs")
    if logs is None:
        folder = ws.root / "monitor"
    elif isinstance(logs, str) and logs.strip():
        folder = Path(logs).expanduser()
        folder = folder if folder.is_absolute() else ws.project_dir / folder
    else:
        raise MltuiError(f"{source}: 'monitor.logs' must be a folder path.")
    window = seconds(section.get("window", "1h"), f"{source}: 'monitor.window'")
    horizon = seconds(section.get("label_horizon", "30d"), f"{source}: 'monitor.label_horizon'")
    models: dict[str, ModelSettings] = {}
    for name, spec in (section.get("models") or {}).items():
        where = f"{source}: [monitor.models.{name}]"
        if not isinstance(spec, dict):
            raise MltuiError(f"{where} must be a table (reference, target, ...).")
        bad = sorted(set(spec) - set(ModelSettings.__dataclass_fields__))
        if bad:
            raise MltuiError(f"{where} has unknown settings: {', '.join(bad)}.")
        if spec.get("task") not in (None, "classification", "regression"):
            raise MltuiError(f"{where}: 'task' must be \"classification\" or \"regression\".")
        for key, value in spec.items():
            if not isinstance(value, str):
                raise MltuiError(f"{where}: {key!r} must be a string.")
        models[name] = ModelSettings(**spec)
    rules: list[Rule] = []
    raw_rules = section.get("rules", [])
    if not isinstance(raw_rules, list):
        raise MltuiError(f"{source}: rules are [[monitor.rules]] tables.")
    for i, spec in enumerate(raw_rules, 1):
        where = f"{source}: monitor rule {i}"
        if not isinstance(spec, dict):
            raise MltuiError(f"{where} must be a table with model, when, for and then.")
        bad = sorted(set(spec) - {"model", "when", "for", "then", "retrain"})
        if bad:
            raise MltuiError(f"{where} has unknown settings: {', '.join(bad)} (known: model, when, for, then, retrain).")
        model, when = spec.get("model"), spec.get("when")
        if not isinstance(model, str) or not model:
            raise MltuiError(f"{where} needs model = \"NAME\".")
        if not isinstance(when, str) or not when.strip():
            raise MltuiError(f"{where} needs a condition, e.g. when = \"drift_share > 0.3\".")
        try:
            parse_when(when)
        except MltuiError as exc:
            raise MltuiError(f"{where}: {exc}") from None
        times = spec.get("for", 1)
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise MltuiError(f"{where}: 'for' must be a whole number of windows, 1 or more.")
        then = spec.get("then", ["notify"])
        if isinstance(then, str):
            then = [then]
        if not isinstance(then, list) or any(a not in ACTIONS for a in then):
            raise MltuiError(f"{where}: 'then' takes a list of {', '.join(ACTIONS)}.")
        retrain = spec.get("retrain", "train" if "retrain" in then else None)
        if retrain is not None and (not isinstance(retrain, str) or not retrain.strip()):
            raise MltuiError(f"{where}: 'retrain' names a [stages] or [commands] entry of mltui.toml (default \"train\").")
        rules.append(Rule(model, when.strip(), times, list(then), retrain, i))
    return MonitorConfig(folder, window, models, rules, horizon)
