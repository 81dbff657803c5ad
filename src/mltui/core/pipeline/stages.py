"""Stages from a project's `mltui.toml`: `[stages.NAME]` tables with a command template, deps, outs,
params and metrics files, and the DAG that matching outs to deps draws.

Everything wrong with a pipeline is found here, at load time, and said in one sentence that names
the stages and paths: a cycle, two writers of one out, an out outside the project or inside a dep
of its own stage, a dep that nothing makes and that is not on disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mltui.base.errors import UsageError
from mltui.core.launch.commands import KINDS, fill, placeholders, project_section, split_template

KNOWN = ("run", "deps", "outs", "params", "metrics", "kind", "gpus", "description")


class PipelineError(UsageError):
    """A pipeline that cannot be run as written (exit code 2)."""


@dataclass
class Stage:
    name: str
    template: str
    deps: list[str]
    outs: list[str]
    params: dict[str, Any]
    metrics: list[str] = field(default_factory=list)
    kind: str = "other"
    gpus: int = 0
    description: str = ""

    def argv(self, params: Mapping[str, Any]) -> list[str]:
        """The command with every {param} filled inside its own argument (never through a shell)."""
        return fill(self.template, params, f"stage {self.name}")

    def params_with(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.params, **overrides}

    @property
    def products(self) -> list[str]:
        """What the stage writes: its outs and its metrics files (kept and restored alike)."""
        return self.outs + [m for m in self.metrics if m not in self.outs]


@dataclass
class Pipeline:
    project: Path
    stages: dict[str, Stage]  # in topological order: every stage after the stages it reads from
    parents: dict[str, list[str]]  # stage -> the stages whose outs it reads
    producer: dict[str, str]  # out path -> the stage that writes it

    @property
    def order(self) -> list[str]:
        return list(self.stages)

    def children(self, name: str) -> list[str]:
        return [s for s, ps in self.parents.items() if name in ps]

    def ancestors(self, names: Iterable[str]) -> set[str]:
        """The stages named and everything they need, transitively."""
        seen: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.parents[name])
        return seen

    def descendants(self, name: str) -> set[str]:
        seen: set[str] = set()
        todo = self.children(name)
        while todo:
            child = todo.pop()
            if child not in seen:
                seen.add(child)
                todo.extend(self.children(child))
        return seen

    def select(self, names: Sequence[str]) -> list[str]:
        """The stages to consider for `names` (all when empty), in order."""
        unknown = [n for n in names if n not in self.stages]
        if unknown:
            known = ", ".join(self.stages) or "none"
            raise UsageError(f"There is no stage {unknown[0]!r} in {self.project / 'mltui.toml'} (stages: {known}).")
        wanted = self.ancestors(names) if names else set(self.stages)
        return [s for s in self.stages if s in wanted]


def _norm(path: str, where: str, what: str) -> str:
    """A dep or out as a clean path relative to the project, or one sentence saying why it cannot be."""
    if not isinstance(path, str) or not path.strip():
        raise PipelineError(f"{where}: each {what} must be a non-empty path.")
    p = PurePosixPath(path)
    if p.is_absolute() or path.startswith("~"):
        raise PipelineError(f"{where}: the {what} {path!r} is outside the project (write it relative to the project).")
    parts = [part for part in p.parts if part not in (".", "")]
    if ".." in parts:
        raise PipelineError(f"{where}: the {what} {path!r} is outside the project ('..' is not allowed).")
    if not parts:
        raise PipelineError(f"{where}: the {what} {path!r} is the project itself; name a file or folder inside it.")
    if parts[0] == ".mltui":
        raise PipelineError(f"{where}: the {what} {path!r} is inside the .mltui workspace.")
    return "/".join(parts)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def _paths(spec: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = spec.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise PipelineError(f"{where}: '{key}' must be a list of paths, e.g. {key} = [\"data/prepared\"].")
    out: list[str] = []
    for item in value:
        norm = _norm(item, where, key[:-1] if key.endswith("s") else key)
        if norm not in out:
            out.append(norm)
    return out


def parse_stage(name: str, spec: Any, source: Path) -> Stage:
    where = f"{source}: stage {name!r}"
    if not isinstance(spec, dict):
        raise PipelineError(f"{where} must be a table with a 'run' template.")
    unknown = sorted(set(spec) - set(KNOWN))
    if unknown:
        raise PipelineError(f"{where} has unknown settings: {', '.join(unknown)} (known: {', '.join(KNOWN)}).")
    template = spec.get("run")
    if not isinstance(template, str) or not template.strip():
        raise PipelineError(f"{where} needs a 'run' template, e.g. run = \"python train.py --lr {{lr}}\".")
    params = spec.get("params", {})
    if not isinstance(params, dict):
        raise PipelineError(f"{where}: 'params' must be a table, e.g. params = {{ lr = 0.01 }}.")
    for key, value in params.items():
        if not isinstance(value, (str, int, float, bool)):
            raise PipelineError(f"{where}: param {key!r} must be a string, number or true/false.")
    kind = spec.get("kind", "train" if name == "train" else "other")
    if kind not in KINDS:
        raise PipelineError(f"{where}: 'kind' must be one of {', '.join(KINDS)}.")
    gpus = spec.get("gpus", 0)
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 0:
        raise PipelineError(f"{where}: 'gpus' must be a whole number, 0 or more.")
    try:
        split_template(template)
        missing = [k for k in placeholders(template, f"stage {name}") if k not in params]
    except UsageError as exc:
        raise PipelineError(f"{where}: {exc}") from None
    if missing:
        raise PipelineError(f"{where}: the template uses {{{missing[0]}}} but 'params' gives it no value.")
    deps = _paths(spec, "deps", where)
    outs = _paths(spec, "outs", where)
    metrics = _paths(spec, "metrics", where)
    for out in outs + metrics:
        for dep in deps:
            if _inside(out, dep) or _inside(dep, out):
                raise PipelineError(f"{where}: the out {out!r} is inside its own dep {dep!r}"
                                    if _inside(out, dep) else
                                    f"{where}: the dep {dep!r} is inside its own out {out!r}.")
    return Stage(name, template, deps, outs, dict(params), metrics, kind, gpus, str(spec.get("description", "")))


def read_table(path: Path) -> dict[str, Any]:
    return project_section(path, "stages", PipelineError)


def load_pipeline(path: Path, check_deps: bool = True) -> Pipeline:
    """Parse the `[stages]` of `path` and draw the DAG; raises PipelineError (exit 2) on any problem."""
    table = read_table(path)
    if not table:
        raise PipelineError(f"{path} declares no stages; add [stages.NAME] tables with run, deps and outs.")
    stages = {name: parse_stage(name, spec, path) for name, spec in table.items()}
    producer: dict[str, str] = {}
    for stage in stages.values():
        for out in stage.products:
            for other_out, other in producer.items():
                if other != stage.name and (_inside(out, other_out) or _inside(other_out, out)):
                    same = "the same out" if out == other_out else f"overlapping outs ({other_out!r} and {out!r})"
                    raise PipelineError(f"{path}: stages {other!r} and {stage.name!r} both write {same}"
                                        + (f" {out!r}." if out == other_out else "."))
            producer[out] = stage.name
    parents: dict[str, list[str]] = {}
    for stage in stages.values():
        ps: list[str] = []
        for dep in stage.deps:
            for out, who in producer.items():
                if (_inside(dep, out) or _inside(out, dep)) and who not in ps:
                    if who == stage.name:
                        raise PipelineError(f"{path}: stage {stage.name!r} reads its own out {out!r}.")
                    ps.append(who)
            if check_deps and not any(_inside(dep, out) or _inside(out, dep) for out in producer):
                if not (path.parent / dep).exists():
                    raise PipelineError(f"{path}: stage {stage.name!r} depends on {dep!r}, which does not exist "
                                        "and which no stage writes.")
        parents[stage.name] = ps
    order = _topological(stages, parents, path)
    return Pipeline(path.parent, {name: stages[name] for name in order}, parents, producer)


def depths(pipe: Pipeline) -> dict[str, int]:
    """Each stage's row in a drawing of the DAG: one more than its deepest parent."""
    out: dict[str, int] = {}
    for name in pipe.stages:
        out[name] = 1 + max((out[p] for p in pipe.parents[name]), default=-1)
    return out


def _topological(stages: Mapping[str, Stage], parents: Mapping[str, list[str]], path: Path) -> list[str]:
    """Stages in an order where each comes after its parents (declaration order among equals); a
    cycle is one sentence naming it."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 on the path being walked, 2 done

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            loop = trail[trail.index(name):] + [name]
            raise PipelineError(f"{path}: the stages form a cycle: {' -> '.join(loop)} "
                                "(each reads an out of the next).")
        state[name] = 1
        for parent in parents[name]:
            visit(parent, trail + [name])
        state[name] = 2
        order.append(name)

    for name in stages:
        visit(name, [])
    return order
