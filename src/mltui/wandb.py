"""A wandb-shaped API over mltui's tracking: a script written for W&B runs with its import line changed.

    import mltui.wandb as wandb
    wandb.init(project="cifar", config={"lr": 0.01})
    wandb.log({"loss": 0.3})

Covered: `init(project=, name=, config=, tags=, group=, job_type=, notes=)` (also entity=, dir=, reinit=,
mode="online"/"offline"), `wandb.config` (attribute and item access, `update`), `log(dict, step=,
commit=)` with W&B's step rules, `summary`, `run.id`, `run.name`, `save(path)`, `finish(exit_code=)`
and `define_metric` (accepted; `step_metric` honoured). The run is the launched one under `mltui run`,
else a new run in the workspace found from the current folder. config becomes params (nested keys as
`a.b`), project, group, entity and tags become tags, job_type picks the kind (train, eval, other),
notes the note; explicit summary values become `summary.<key>` tags. Anything else raises one sentence
that names the call and what to use instead.

Standard library only at import, like `import mltui`.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping

from mltui.base.errors import MltuiError

__all__ = ["init", "log", "finish", "save", "define_metric", "login", "config", "summary", "run", "Unsupported"]


class Unsupported(MltuiError, AttributeError):
    """A W&B call mltui.wandb does not cover (an AttributeError too, so hasattr() answers False)."""


_DEFAULT = ("mltui.wandb covers init, config, log, summary, save, finish, define_metric and run.id/run.name; "
            "use mltui's own API (import mltui) for the rest")
_INSTEAD = {
    "Image": "save the image to a file and call wandb.save(path)",
    "Audio": "save the audio to a file and call wandb.save(path)",
    "Video": "save the video to a file and call wandb.save(path)",
    "Html": "save the page to a file and call wandb.save(path)",
    "Object3D": "save the object to a file and call wandb.save(path)",
    "Molecule": "save the molecule to a file and call wandb.save(path)",
    "Table": "log its numbers with wandb.log, or write it to a file and call wandb.save(path)",
    "Histogram": "log summary numbers (mean, std, quantiles) with wandb.log",
    "plot": "log the numbers with wandb.log and compare runs with `mltui compare`",
    "Artifact": "call wandb.save(path) for each file; they are recorded with their sha256",
    "log_artifact": "call wandb.save(path) for each file; they are recorded with their sha256",
    "use_artifact": "version data with `mltui data add` and name it in the run (run.use_dataset)",
    "log_model": "call wandb.save(path), then `mltui models register`",
    "watch": "log the gradient or weight norms you need with wandb.log",
    "unwatch": "log the gradient or weight norms you need with wandb.log",
    "sweep": "use `mltui sweep`",
    "agent": "use `mltui sweep`",
    "Api": "use `mltui runs list --json` or `mltui metrics ID --json`",
    "alert": "use `mltui notify`",
    "restore": "copy the file from the run's artifacts folder (`mltui runs show ID`)",
    "log_code": "commit the code: mltui records the git commit of each run",
    "mark_preempting": "launch with `mltui run`: the supervisor records how the run ended",
    "tensorboard": "launch with `mltui run`: the supervisor reads TensorBoard event files itself",
    "setup": "remove the call: mltui needs no setup",
    "teardown": "remove the call: wandb.finish() ends the run",
}
_KINDS = {"train": "train", "training": "train", "eval": "eval", "evaluation": "eval", "evaluate": "eval",
          "test": "eval", "validation": "eval"}


def _unsupported(call: str, name: str) -> Unsupported:
    return Unsupported(f"{call} is not supported by mltui.wandb: {_INSTEAD.get(name, _DEFAULT)}.")


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(f"module 'mltui.wandb' has no attribute {name!r}")
    raise _unsupported(f"wandb.{name}", name)


def _flat(values, prefix: str = "", sep: str = ".") -> dict:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        if hasattr(values, "__dict__"):
            values = vars(values)  # an argparse Namespace
        else:
            raise MltuiError(f"wandb config must be a dict or an argparse Namespace, not {type(values).__name__}.")
    out = {}
    for key, value in values.items():
        full = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_flat(value, full, sep))
        else:
            out[full] = value
    return out


def _param(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return str(value)


class Config:
    """wandb.config: attribute and item access, update(); each value set while a run is open is a param."""

    def __init__(self) -> None:
        object.__setattr__(self, "_items", {})

    def _set(self, values: dict) -> None:
        self._items.update(values)
        if run is not None:
            run._mltui.log_params({_key(k): _param(v) for k, v in _flat(values).items()})

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._items[name]
        except KeyError:
            raise AttributeError(f"wandb.config has no key {name!r}.") from None

    def __setattr__(self, name: str, value) -> None:
        self._set({name: value})

    def __getitem__(self, key: str):
        return self._items[key]

    def __setitem__(self, key: str, value) -> None:
        self._set({key: value})

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def keys(self):
        return self._items.keys()

    def items(self):
        return self._items.items()

    def values(self):
        return self._items.values()

    def get(self, key: str, default=None):
        return self._items.get(key, default)

    def update(self, values=None, allow_val_change: bool | None = None) -> None:
        if values is None:
            return
        self._set(dict(values) if isinstance(values, Mapping) else dict(vars(values)))

    def setdefaults(self, values: Mapping) -> None:
        self._set({k: v for k, v in dict(values).items() if k not in self._items})

    def as_dict(self) -> dict:
        return dict(self._items)

    def __repr__(self) -> str:
        return f"wandb.config({self._items!r})"


class Summary(dict):
    """wandb.summary: the last value logged for each key, unless set; values set are kept as tags."""

    def __init__(self) -> None:
        super().__init__()
        self._set_keys: set[str] = set()

    def __setitem__(self, key: str, value) -> None:
        super().__setitem__(key, value)
        self._set_keys.add(key)
        if run is not None:
            run._mltui.set_tags({_key(f"summary.{key}"): _param(value)})

    def update(self, values=(), **more) -> None:  # type: ignore[override]
        for key, value in {**dict(values), **more}.items():
            self[key] = value

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"wandb.summary has no key {name!r}.") from None

    def _logged(self, values: dict) -> None:
        for key, value in values.items():
            if key not in self._set_keys:
                dict.__setitem__(self, key, value)


def _key(key: str) -> str:
    from mltui.core.runs.metric_keys import metric_key

    return metric_key(key)


class Run:
    """What wandb.init() returns: id, name and the module's calls as methods."""

    def __init__(self, mltui_run, project, group, job_type, notes, tags) -> None:
        self._mltui = mltui_run
        self.id: str = mltui_run.id
        self.name: str = mltui_run.name
        self.project = project
        self.group = group
        self.job_type = job_type
        self.notes = notes
        self.tags = tuple(tags or ())
        self.dir = str(mltui_run.dir)
        self._step = 0
        self._pending: dict = {}
        self._step_metrics: list[tuple[str, str]] = []  # (pattern, step metric)
        self._last: dict[str, float] = {}  # last value of each metric (step metrics are read from here)
        self._saved: list[tuple[str, str | None]] = []  # (glob, base_path) to copy again at finish

    @property
    def config(self) -> Config:
        return config

    @property
    def summary(self) -> Summary:
        return summary

    @property
    def step(self) -> int:
        return self._step

    def log(self, data: Mapping, step: int | None = None, commit: bool | None = None) -> None:
        log(data, step=step, commit=commit)

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        if run is self:
            finish(exit_code=exit_code)

    def save(self, glob_str: str, base_path: str | None = None, policy: str = "live") -> list[str]:
        return save(glob_str, base_path=base_path, policy=policy)

    def define_metric(self, name: str, step_metric: str | None = None, **options) -> dict:
        return define_metric(name, step_metric=step_metric, **options)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(exit_code=0 if exc_type is None else 1)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise _unsupported(f"run.{name}", name)

    def __repr__(self) -> str:
        return f"<mltui.wandb.Run {self.id} {self.name!r}>"

    # -- W&B's step rules ------------------------------------------------------------------------
    def _log(self, data: Mapping, step: int | None, commit: bool | None) -> None:
        if not isinstance(data, Mapping):
            raise MltuiError(f"wandb.log takes a dict of names to numbers, not {type(data).__name__}.")
        if step is not None:
            if step < self._step:
                import sys

                print(f"mltui.wandb: step {step} is before the current step {self._step}; these values are "
                      "dropped (as W&B does)", file=sys.stderr)
                return
            if step > self._step:
                self._commit()
                self._step = step
        self._pending.update(_numbers(data))
        if commit or (commit is None and step is None):
            self._commit()

    def _commit(self) -> None:
        if not self._pending:
            return
        row, self._pending = self._pending, {}
        self._last.update(row)
        by_step: dict[int, dict[str, float]] = {}
        for key, value in row.items():
            at = self._step
            for pattern, step_metric in self._step_metrics:
                if key != step_metric and fnmatch.fnmatchcase(key, pattern):
                    known = self._last.get(step_metric)
                    if known is not None and known == known:
                        at = int(known)
                    break
            by_step.setdefault(at, {})[_key(key)] = value
        for at, values in sorted(by_step.items()):
            self._mltui.log(values, step=at)
        summary._logged(row)
        self._step += 1


def _numbers(data: Mapping, prefix: str = "") -> dict[str, float]:
    from mltui.base.values import metric_value

    out: dict[str, float] = {}
    for key, value in data.items():
        full = f"{prefix}/{key}" if prefix else str(key)
        if full in ("_timestamp", "_runtime", "_step"):
            continue
        if isinstance(value, Mapping):
            out.update(_numbers(value, full))
            continue
        try:
            out[full] = metric_value(full, value)
        except ValueError:
            raise MltuiError(f"wandb.log({full!r}: {type(value).__name__}) is not supported by mltui.wandb, which logs "
                             "numbers: save other values to a file and call wandb.save(path).") from None
    return out


run: Run | None = None
config = Config()
summary = Summary()


def init(project: str | None = None, name: str | None = None, config: Mapping | None = None,  # noqa: PLR0913
         tags=None, group: str | None = None, job_type: str | None = None, notes: str | None = None, *,
         entity: str | None = None, dir: str | None = None, reinit=None, mode: str | None = None,
         **unknown) -> Run:
    """Start the run (or attach to the launched one); returns it, and sets wandb.run."""
    global run
    if unknown:
        key = sorted(unknown)[0]
        raise Unsupported(f"wandb.init({key}=...) is not supported by mltui.wandb: it takes project, name, config, "
                          "tags, group, job_type, notes, entity, dir, reinit and mode.")
    if mode not in (None, "online", "offline"):
        raise Unsupported(f"wandb.init(mode={mode!r}) is not supported by mltui.wandb: it always logs to the local "
                          "workspace (leave mode out).")
    if run is not None:
        if not reinit:
            return run
        finish()
    from mltui.core.runs.tracking import init as mltui_init

    module = _module()
    values = {**module.config.as_dict(), **_flat(config)}
    labels: dict = {}
    for key, value in (("wandb.project", project), ("wandb.group", group), ("wandb.entity", entity),
                       ("wandb.job_type", job_type)):
        if value is not None:
            labels[key] = str(value)
    for tag in tags or ():
        labels[_key(str(tag))] = True
    kind = _KINDS.get(str(job_type).lower(), "other") if job_type else "train"
    mltui_run = mltui_init(name=name, params={_key(k): _param(v) for k, v in _flat(values).items()},
                           tags=labels, kind=kind, note=notes)
    module.config = Config()
    module.config._items.update(values)
    module.summary = Summary()
    run = Run(mltui_run, project, group, job_type, notes, tags)
    return run


def _module():
    import sys

    return sys.modules[__name__]


def _active(call: str) -> Run:
    if run is None:
        raise MltuiError(f"wandb.{call}() needs a run: call wandb.init() first.")
    return run


def log(data: Mapping, step: int | None = None, commit: bool | None = None) -> None:
    """Log numbers at the current step (W&B's rules: step= jumps ahead, commit=False accumulates)."""
    _active("log")._log(data, step, commit)


def define_metric(name: str, step_metric: str | None = None, *, step_sync: bool | None = None,
                  hidden: bool | None = None, summary: str | None = None, goal: str | None = None,
                  overwrite: bool | None = None) -> dict:
    """Accepted; `step_metric` is honoured: metrics matching `name` (a glob such as "val/*") are logged at
    the value of `step_metric` (logged in the same call, or last)."""
    current = _active("define_metric")
    if step_metric is not None:
        current._step_metrics = [(p, s) for p, s in current._step_metrics if p != name]
        current._step_metrics.append((name, step_metric))
    return {"name": name, "step_metric": step_metric}


def save(glob_str: str, base_path: str | None = None, policy: str = "live") -> list[str]:
    """Copy the files matching `glob_str` into the run's artifacts (kept relative to `base_path`, by
    default the glob's folder); with policy "live" or "end" they are copied again at finish()."""
    import glob

    current = _active("save")
    if policy not in ("live", "now", "end"):
        raise MltuiError(f"wandb.save(policy={policy!r}): the policy is one of live, now, end.")
    copied = _copy(current, glob_str, base_path)
    if policy in ("live", "end"):
        current._saved.append((glob_str, base_path))
    if not copied and not glob.has_magic(glob_str) and policy == "now":
        raise MltuiError(f"wandb.save: there is no file {glob_str!r}.")
    return copied


def _copy(current: Run, glob_str: str, base_path: str | None) -> list[str]:
    import glob

    base = base_path if base_path is not None else (os.path.dirname(glob_str) or ".")
    copied = []
    for path in sorted(glob.glob(glob_str, recursive=True)):
        if os.path.isfile(path):
            rel = os.path.relpath(path, base)
            if rel.startswith(".."):
                rel = os.path.basename(path)
            current._mltui.log_artifact(path, name=rel, overwrite=True)
            copied.append(path)
    return copied


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Commit the last step, copy files saved with policy live/end again, and end the run: finished, or
    failed for a non-zero exit_code."""
    global run
    current = run
    if current is None:
        return
    try:
        current._commit()
        for glob_str, base_path in current._saved:
            _copy(current, glob_str, base_path)
    finally:
        run = None
        status = None if not exit_code else "failed"
        current._mltui.finish(status=status, exit_code=exit_code)


def login(*args, **kwargs) -> bool:
    """Accepted and ignored: mltui logs to a local workspace, with no account."""
    return True
