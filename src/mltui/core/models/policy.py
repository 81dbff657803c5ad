"""The promotion policy from the workspace's config.toml: which gates a promotion must pass.

    [promotion]
    allow_self_approval = false          # the reviewer must not be the requester (default)
    require_signed = false               # true: refuse a decision that cannot be signed with an SSH key
    trust_env_user = false               # true: $MLTUI_USER may name who acts (single-user demos); such
                                         # decisions are recorded as asserted, not verified

    [[promotion.gates]]
    kind = "metric"                      # a metric of the version (its eval run's, else its training run's)
    metric = "val_acc"
    op = ">="                            # >=, >, <=, <, ==
    value = 0.9

    [[promotion.gates]]
    kind = "beats_production"            # better than the version in production, by a margin
    metric = "val_acc"
    direction = "max"                    # or "min"
    margin = 0.01

    [[promotion.gates]]
    kind = "eval_run"                    # a finished eval run of this version, on a registered dataset version

    [[promotion.gates]]
    kind = "same_eval_data"              # evaluated on the dataset versions production was judged on

Every gate may name `targets = ["production"]` to apply only to some stages (default: all).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mltui.base.errors import MltuiError

OPS = (">=", ">", "<=", "<", "==")
KINDS: dict[str, dict[str, tuple[type, ...]]] = {  # kind -> key -> allowed types (required keys listed first)
    "metric": {"metric": (str,), "op": (str,), "value": (int, float)},
    "beats_production": {"metric": (str,), "direction": (str,), "margin": (int, float)},
    "eval_run": {},
    "same_eval_data": {},
}
REQUIRED = {"metric": ("metric", "op", "value"), "beats_production": ("metric",)}
TARGETS = ("staging", "production")
SWITCHES = ("allow_self_approval", "require_signed", "trust_env_user")  # [promotion] true/false settings
GUARDED = ("promotion", "notify")  # config.toml sections only the workspace owner may change


@dataclass
class Gate:
    kind: str
    options: dict[str, Any]
    targets: tuple[str, ...] = TARGETS

    def describe(self) -> str:
        o = self.options
        if self.kind == "metric":
            return f"{o['metric']} {o['op']} {o['value']:g}"
        if self.kind == "beats_production":
            margin = o.get("margin", 0)
            return (f"{o['metric']} beats production" + (f" by {margin:g}" if margin else "")
                    + (" (lower is better)" if o.get("direction", "max") == "min" else ""))
        if self.kind == "eval_run":
            return "an eval run on a registered dataset version"
        return "evaluated on the data production was judged on"


@dataclass
class Policy:
    gates: list[Gate] = field(default_factory=list)
    allow_self_approval: bool = False
    require_signed: bool = False
    trust_env_user: bool = False

    def gates_for(self, target: str) -> list[Gate]:
        return [g for g in self.gates if target in g.targets]


def parse_policy(data: dict, source: str = "config.toml") -> Policy:
    """The [promotion] table of a parsed config; anything unknown is refused with one sentence."""
    section = data.get("promotion", {})
    if not isinstance(section, dict):
        raise MltuiError(f"{source}: [promotion] must be a table.")
    unknown = set(section) - {"gates", *SWITCHES}
    if unknown:
        raise MltuiError(f"{source}: [promotion] has an unknown setting {sorted(unknown)[0]!r} "
                         f"(known: {', '.join(SWITCHES)}, gates).")
    for key in SWITCHES:
        if not isinstance(section.get(key, False), bool):
            raise MltuiError(f"{source}: promotion.{key} must be true or false.")
    raw = section.get("gates", [])
    if not isinstance(raw, list) or not all(isinstance(g, dict) for g in raw):
        raise MltuiError(f"{source}: gates are written as [[promotion.gates]] tables.")
    gates = []
    for i, g in enumerate(raw, 1):
        where = f"{source}: gate {i}"
        kind = g.get("kind")
        if kind not in KINDS:
            raise MltuiError(f"{where} has an unknown kind {kind!r} (known: {', '.join(KINDS)}).")
        allowed = KINDS[kind]
        options = {k: v for k, v in g.items() if k not in ("kind", "targets")}
        for key, value in options.items():
            if key not in allowed:
                raise MltuiError(f"{where} ({kind}) has an unknown setting {key!r}"
                                 + (f" (known: {', '.join(allowed)})." if allowed else " (it takes none)."))
            if not isinstance(value, allowed[key]) or isinstance(value, bool):
                raise MltuiError(f"{where} ({kind}): {key} has the wrong type.")
        for key in REQUIRED.get(kind, ()):
            if key not in options:
                raise MltuiError(f"{where} ({kind}) needs {key!r}.")
        if kind == "metric" and options["op"] not in OPS:
            raise MltuiError(f"{where}: op must be one of {' '.join(OPS)}.")
        if kind == "beats_production" and options.get("direction", "max") not in ("max", "min"):
            raise MltuiError(f"{where}: direction must be \"max\" or \"min\".")
        targets = g.get("targets", list(TARGETS))
        if not isinstance(targets, list) or not targets or any(t not in TARGETS for t in targets):
            raise MltuiError(f"{where}: targets must be a list of \"staging\" and/or \"production\".")
        gates.append(Gate(kind, options, tuple(targets)))
    return Policy(gates, **{key: section.get(key, False) for key in SWITCHES})


def policy_hash(ws) -> str:
    """sha256 of the guarded settings of config.toml (the promotion policy and the notification channels),
    as parsed: each decision records it, so a change nobody recorded shows in `mltui audit verify`."""
    import hashlib
    import json

    text = json.dumps(guarded_settings(ws), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def guarded_settings(ws) -> dict:
    raw = ws.config().raw
    return {name: raw[name] for name in GUARDED if name in raw}


def load_policy(ws) -> Policy:
    """The workspace's policy, from the config.toml the workspace already parses (and caches)."""
    return parse_policy(ws.config().raw, ws.config_path.name)
