"""The notification channels of config.toml, checked: each problem is one sentence naming the file and
the channel.

    [notify]
    bell = true                      # the TUI rings the terminal bell with each notice

    [[notify.channels]]
    name = "ops"
    webhook = "https://hooks.example/T000/B000"   # a secret: shown only as https://hooks.example/…

    [[notify.channels]]
    name = "pager"
    command = ["python", "page.py"]  # run in the project folder, the event as JSON on stdin
    events = ["alert", "run.failed"] # prefixes: "alert" is alert.opened and alert.closed; all by default

    [[notify.channels]]
    name = "screen"
    tui = true                       # the TUI's notices; with no such channel the TUI shows every event
    events = ["run", "alert"]
"""

from __future__ import annotations

from mltui.base.errors import MltuiError
from mltui.core.workspace import Workspace

KINDS = ("webhook", "command", "tui")
DEFAULTS = {  # per channel kind: seconds per try, tries, seconds before the second try (doubling after)
    "webhook": {"timeout": 5.0, "tries": 3, "backoff": 1.0},
    "command": {"timeout": 30.0, "tries": 3, "backoff": 1.0},
    "tui": {"timeout": 0.0, "tries": 1, "backoff": 0.0},
}
CHANNEL_KEYS = ("name", "events", "timeout", "tries", "backoff", *KINDS)
NOTIFY_KEYS = ("channels", "bell")


class NotifyConfigError(MltuiError):
    """config.toml's [notify] section is wrong (one sentence naming the file and the channel)."""


class Channel:
    """One `[[notify.channels]]` entry. `target` is the webhook URL or the argv; never print `target` of
    a webhook: `shown` is what may be seen of it."""

    def __init__(self, name: str, kind: str, target, events: tuple[str, ...] | None, timeout: float,
                 tries: int, backoff: float) -> None:
        self.name = name
        self.kind = kind
        self.target = target
        self.events = events  # None: every event
        self.timeout = timeout
        self.tries = tries
        self.backoff = backoff

    def wants(self, kind: str) -> bool:
        """Whether an event of `kind` goes to this channel: a filter entry matches the kind itself and the
        kinds under it ("alert" matches "alert.opened", "run.failed" matches only itself)."""
        if self.events is None:
            return True
        return any(kind == e or kind.startswith(e + ".") for e in self.events)

    @property
    def shown(self) -> str:
        """What a person may see of the channel's target: a webhook as scheme://host/…, a command's argv."""
        if self.kind == "webhook":
            return redact(self.target)
        if self.kind == "command":
            import shlex

            return shlex.join(self.target)
        return "the TUI's notices"

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "target": self.shown,
                "events": list(self.events) if self.events is not None else None,
                "timeout": self.timeout, "tries": self.tries}


class Settings:
    """The whole [notify] section: the channels, and whether the TUI rings the bell."""

    def __init__(self, channels: list[Channel] | None = None, bell: bool = False) -> None:
        self.channels = list(channels or [])
        self.bell = bell

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)

    @property
    def senders(self) -> list[Channel]:
        """The channels that deliver out of mltui (webhooks and commands): the TUI reads the outbox itself."""
        return [c for c in self.channels if c.kind != "tui"]

    def screen_wants(self, kind: str) -> bool:
        """Whether the TUI shows an event of `kind`: every kind, unless `tui = true` channels narrow it."""
        screens = [c for c in self.channels if c.kind == "tui"]
        return not screens or any(c.wants(kind) for c in screens)


def redact(url: str) -> str:
    """A webhook URL as it may be shown: scheme://host[:port]/… (the path and query are the secret)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a webhook URL)"
    return f"{parts.scheme}://{host}{port}/…"


def load(ws: Workspace) -> Settings:
    """The workspace's notification settings; NotifyConfigError (one sentence) when they are wrong."""
    return parse(ws.config().raw, str(ws.config_path))


def parse(raw: dict, source: str = "config.toml") -> Settings:
    section = raw.get("notify", {})
    if not isinstance(section, dict):
        raise NotifyConfigError(f"{source}: [notify] must be a table of settings.")
    unknown = [k for k in section if k not in NOTIFY_KEYS]
    if unknown:
        raise NotifyConfigError(f"{source}: [notify] has an unknown setting {unknown[0]!r} "
                                f"(known: {', '.join(NOTIFY_KEYS)}).")
    bell = section.get("bell", False)
    if not isinstance(bell, bool):
        raise NotifyConfigError(f"{source}: notify.bell must be true or false.")
    entries = section.get("channels", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise NotifyConfigError(f"{source}: notify channels are declared as [[notify.channels]] tables.")
    channels: list[Channel] = []
    for number, entry in enumerate(entries, 1):
        channel = _channel(entry, number, source)
        if any(c.name == channel.name for c in channels):
            raise NotifyConfigError(f"{source}: two notify channels are named {channel.name!r}; "
                                    "give each its own name.")
        channels.append(channel)
    return Settings(channels, bell)


def _channel(entry: dict, number: int, source: str) -> Channel:
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise NotifyConfigError(f"{source}: notify channel #{number} needs a name (name = \"ops\").")
    where = f"{source}: notify channel {name!r}"
    unknown = [k for k in entry if k not in CHANNEL_KEYS]
    if unknown:
        raise NotifyConfigError(f"{where} has an unknown setting {unknown[0]!r} (known: {', '.join(CHANNEL_KEYS)}).")
    kinds = [k for k in KINDS if k in entry]
    if len(kinds) != 1:
        raise NotifyConfigError(f"{where} needs exactly one of webhook = \"https://...\", "
                                "command = [\"program\", \"arg\"] or tui = true.")
    kind = kinds[0]
    target = entry[kind]
    if kind == "webhook":
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(target) if isinstance(target, str) else None
            ok = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:  # the value itself is not repeated: it may be a secret with a typo in it
            raise NotifyConfigError(f"{where}: webhook must be an http:// or https:// URL in quotes.")
    elif kind == "command":
        if (not isinstance(target, list) or not target or not all(isinstance(a, str) for a in target)
                or not target[0]):
            raise NotifyConfigError(f"{where}: command must be a list of strings, program first "
                                    "(command = [\"python\", \"page.py\"]).")
        target = tuple(target)
    elif target is not True:
        raise NotifyConfigError(f"{where}: tui must be true (delete the channel to leave the TUI out).")
    events = entry.get("events")
    if events is not None:
        if not isinstance(events, list) or not all(isinstance(e, str) and e.strip(". ") for e in events):
            raise NotifyConfigError(f"{where}: events must be a list of event kinds or prefixes "
                                    "(events = [\"alert\", \"run.failed\"]).")
        events = tuple(e.strip().rstrip(".") for e in events)
    options = dict(DEFAULTS[kind])
    for key in ("timeout", "backoff"):
        if key in entry:
            value = entry[key]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or (
                    key == "timeout" and value == 0):
                raise NotifyConfigError(f"{where}: {key} must be a number of seconds"
                                        + (" above 0." if key == "timeout" else ", 0 or more."))
            options[key] = float(value)
    if "tries" in entry:
        tries = entry["tries"]
        if not isinstance(tries, int) or isinstance(tries, bool) or not 1 <= tries <= 10:
            raise NotifyConfigError(f"{where}: tries must be a whole number from 1 to 10.")
        options["tries"] = tries
    return Channel(name.strip(), kind, target, events, options["timeout"], options["tries"], options["backoff"])
