"""Finding, creating and describing a workspace: a `.mltui/` folder found like `.git`."""

from __future__ import annotations

import os
from pathlib import Path

from mltui.base.errors import MltuiError, UsageError, WorkspaceNotFound


class PermissionDenied(MltuiError):
    """The account may not read or change this (a workspace of a group it is not in, the owner's settings)."""

DIRNAME = ".mltui"
DB_NAME = "mltui.db"
CONFIG_NAME = "config.toml"
SIGNERS_NAME = "allowed_signers"

CONFIG_TEMPLATE = """\
# mltui workspace settings. Delete a line to get its default back.

# true: new files and folders are readable and writable by your group too.
shared = false

# The TUI theme: a name from `mltui --list-themes` (or a file in .mltui/themes/).
theme = "mltui-dark"

[tui]
# How often the Runs pane looks for changes, in seconds.
refresh_seconds = 1.0

[compare.direction]
# Which way is better for a metric, when its name does not say (loss is down, acc is up):
# "val/perplexity" = "min"

[runs]
# The supervisor of each launched run writes a heartbeat this often (seconds); a running run
# whose heartbeat is older than lost_after_seconds is marked lost.
heartbeat_seconds = 2.0
lost_after_seconds = 30.0
# `mltui runs kill` sends SIGTERM, then SIGKILL after this many seconds.
kill_grace_seconds = 10.0
# A running run with no output line and no metric for this long is flagged as stalled (and notified,
# see [[notify.channels]]); 0 turns the check off.
stall_seconds = 600.0

[queue]
# How many queued runs that ask for no GPU may run at once.
max_parallel = 1

[gpu]
# Where GPU state comes from: "auto" (NVML when present), "nvml", "sim:4" (four simulated GPUs), "none".
backend = "auto"
# How often a launched run's supervisor logs the run's own GPUs (sys/gpuN/* metrics), in seconds.
sample_seconds = 5.0
# A run holding GPU memory under 5% utilisation for this long is flagged as idle (the waste report).
idle_seconds = 300.0

[keys]
# Remap any key by its binding id, e.g.:
# "runs.filter" = "slash,f"
# "app.quit" = "ctrl+q,q"
"""


class Config:
    """Workspace settings from config.toml (plain class: dataclasses cost import time)."""

    def __init__(
        self, shared: bool = False, theme: str = "mltui-dark", refresh_seconds: float = 1.0,
        keys: dict[str, str] | None = None, directions: dict[str, str] | None = None,
        heartbeat_seconds: float = 2.0, lost_after_seconds: float = 30.0, kill_grace_seconds: float = 10.0,
        max_parallel: int = 1, gpu_backend: str = "auto", gpu_sample_seconds: float = 5.0,
        gpu_idle_seconds: float = 300.0, stall_seconds: float = 600.0,
    ) -> None:
        self.shared = shared
        self.theme = theme
        self.refresh_seconds = refresh_seconds
        self.keys = dict(keys or {})
        self.directions = dict(directions or {})  # metric -> "min" | "max", for compare
        self.heartbeat_seconds = heartbeat_seconds
        self.lost_after_seconds = lost_after_seconds
        self.kill_grace_seconds = kill_grace_seconds
        self.max_parallel = max_parallel
        self.gpu_backend = gpu_backend
        self.gpu_sample_seconds = gpu_sample_seconds
        self.gpu_idle_seconds = gpu_idle_seconds
        self.stall_seconds = stall_seconds  # alive but silent this long: stalled (0: never)
        self.raw: dict = {}  # the whole parsed file, for the sections other modules read ([promotion], [slurm])

    @property
    def dir_mode(self) -> int:
        """Folders: the group's too when shared, and set-group-id so what is made inside keeps the group."""
        return 0o2770 if self.shared else 0o700

    @property
    def file_mode(self) -> int:
        return 0o660 if self.shared else 0o600

    @property
    def guarded_mode(self) -> int:
        """config.toml and allowed_signers: only the owner writes them; the group reads them."""
        return 0o640 if self.shared else 0o600


def parse_config(text: str, source: str = CONFIG_NAME) -> Config:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MltuiError(f"{source} is not valid TOML: {exc}.") from None
    tui = data.get("tui", {})
    keys = data.get("keys", {})
    shared = data.get("shared", False)
    theme = data.get("theme", "mltui-dark")
    refresh = tui.get("refresh_seconds", 1.0) if isinstance(tui, dict) else None
    if not isinstance(shared, bool):
        raise MltuiError(f"{source}: 'shared' must be true or false.")
    if not isinstance(theme, str):
        raise MltuiError(f"{source}: 'theme' must be a name in quotes.")
    if not _is_number(refresh) or refresh <= 0:
        raise MltuiError(f"{source}: 'tui.refresh_seconds' must be a positive number.")
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise MltuiError(f"{source}: every entry under [keys] must be a string of keys.")
    compare = data.get("compare", {})
    directions = compare.get("direction", {}) if isinstance(compare, dict) else None
    if not isinstance(directions, dict) or not all(v in ("min", "max") for v in directions.values()):
        raise MltuiError(f"{source}: every entry under [compare.direction] must be \"min\" or \"max\".")
    runs = _section(data, "runs", source)
    numbers = {}
    for key, default in (("heartbeat_seconds", 2.0), ("lost_after_seconds", 30.0), ("kill_grace_seconds", 10.0),
                         ("stall_seconds", 600.0)):
        value = runs.get(key, default)
        if not _is_number(value) or value < 0:
            raise MltuiError(f"{source}: 'runs.{key}' must be a number of seconds, 0 or more.")
        numbers[key] = float(value)
    queue = _section(data, "queue", source)
    max_parallel = queue.get("max_parallel", 1)
    if not isinstance(max_parallel, int) or isinstance(max_parallel, bool) or max_parallel < 1:
        raise MltuiError(f"{source}: 'queue.max_parallel' must be a whole number, 1 or more.")
    gpu = _section(data, "gpu", source)
    gpu_backend = gpu.get("backend", "auto")
    if not isinstance(gpu_backend, str) or gpu_backend.partition(":")[0] not in ("auto", "nvml", "sim", "replay", "none"):
        raise MltuiError(f"{source}: 'gpu.backend' must be \"auto\", \"nvml\", \"sim:N\", \"replay:FILE\" or \"none\".")
    sample, idle = gpu.get("sample_seconds", 5.0), gpu.get("idle_seconds", 300.0)
    for key, value in (("sample_seconds", sample), ("idle_seconds", idle)):
        if not _is_number(value) or value <= 0:
            raise MltuiError(f"{source}: 'gpu.{key}' must be a positive number of seconds.")
    config = Config(shared=shared, theme=theme, refresh_seconds=float(refresh), keys=dict(keys),
                    directions=dict(directions), max_parallel=max_parallel, gpu_backend=gpu_backend,
                    gpu_sample_seconds=float(sample), gpu_idle_seconds=float(idle), **numbers)
    config.raw = data
    return config


def _is_number(value: object) -> bool:
    """An int or float from TOML (true/false are ints to Python, not numbers to a config)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _section(data: dict, name: str, source: str) -> dict:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise MltuiError(f"{source}: [{name}] must be a table of settings.")
    return value


class Workspace:
    """A located `.mltui/` folder; `root` is that folder itself."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    @property
    def project_dir(self) -> Path:
        return self.root.parent

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def config(self) -> Config:
        """The settings, parsed again only when config.toml has changed since the last call."""
        try:
            st = os.stat(self.config_path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            return Config()
        except OSError as exc:
            raise MltuiError(f"Cannot read {self.config_path}: {exc.strerror}.") from None
        cached = self.__dict__.get("_config")
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            text = self.config_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise MltuiError(f"Cannot read {self.config_path}: {exc.strerror}.") from None
        config = parse_config(text, str(self.config_path))
        if config.shared:
            share_umask()
        self.__dict__["_config"] = (stamp, config)
        return config

    @property
    def signers_path(self) -> Path:
        """The allowed signers (git's gpg.ssh.allowedSignersFile format): accounts and their SSH keys."""
        return self.root / SIGNERS_NAME

    def owner(self) -> tuple[int, str]:
        """(uid, account) of the workspace's owner: whoever owns the .mltui folder."""
        import pwd

        uid = os.stat(self.root).st_uid
        try:
            return uid, pwd.getpwuid(uid).pw_name
        except KeyError:
            return uid, str(uid)

    def require_owner(self, what: str) -> None:
        """Refuse, in one sentence, a change to `what` (the policy, the allowed signers, the notification
        channels) by anyone but the workspace's owner."""
        from mltui.base.procs import user

        uid, name = self.owner()
        if os.getuid() != uid:
            raise PermissionDenied(f"Only the workspace's owner ({name}) may change {what}; you are {user()}.")


def share_umask() -> None:
    """In a shared workspace every file and folder mltui (and what it launches) creates is the group's
    and nobody else's: the process's umask becomes 007 (folders inherit the group through set-group-id)."""
    os.umask(0o007)


def _as_workspace_root(path: Path) -> Path | None:
    if path.name == DIRNAME and path.is_dir():
        return path
    if (path / DIRNAME).is_dir():
        return path / DIRNAME
    return None


def find_workspace(start: str | os.PathLike[str] | None = None) -> Workspace:
    """The workspace named by MLTUI_WORKSPACE, or the nearest `.mltui/` above `start`."""
    env = os.environ.get("MLTUI_WORKSPACE")
    if env and start is None:
        root = _as_workspace_root(Path(env).expanduser().absolute())
        if root is None:
            raise WorkspaceNotFound(f"MLTUI_WORKSPACE points at {env}, which holds no mltui workspace.")
        return _readable(Workspace(root))
    here = Path(start if start is not None else os.getcwd()).absolute()
    for folder in (here, *here.parents):
        root = folder / DIRNAME
        try:
            found = root.is_dir()
        except PermissionError:  # a folder this account may not look into: a group's, say
            raise _denied(root, folder) from None
        if found:
            return _readable(Workspace(root))
    raise WorkspaceNotFound(
        "Not inside an mltui workspace (no .mltui/ here or above); run `mltui init` first."
    )


def _readable(ws: Workspace) -> Workspace:
    """The workspace, or one sentence when this account may not open it (a group workspace of a group it
    is not in): nothing is read or changed."""
    if os.access(ws.root, os.R_OK | os.X_OK):
        return ws
    raise _denied(ws.root, ws.root)


def _denied(root: Path, closed: Path) -> PermissionDenied:
    """The sentence for a workspace at `root` this account cannot open, `closed` being the folder that
    shuts it out."""
    import grp
    import pwd

    from mltui.base.procs import user

    try:
        st = os.stat(closed)
    except OSError:
        return PermissionDenied(f"You ({user()}) cannot open the workspace in {closed}: permission denied.")
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    if st.st_mode & 0o070:
        return PermissionDenied(f"You ({user()}) cannot open the workspace {root}: it is shared with the group "
                                f"{group}, and you are not in it.")
    return PermissionDenied(f"You ({user()}) cannot open the workspace {root}: {closed} is {owner}'s and not shared.")


def init_workspace(where: str | os.PathLike[str] | None = None, shared: bool = False,
                   group: str | None = None) -> tuple[Workspace, bool]:
    """Create `.mltui/` in `where` (default: cwd). Returns the workspace and whether it was new.

    Shared: the folder is the group's (`group`, else the group of the folder that holds it when you are
    in it, else your own), set-group-id so everything made inside stays the group's, and sticky so no
    member can replace the owner's config.toml or allowed_signers; nobody outside the group reads anything."""
    base = Path(where if where is not None else os.getcwd()).absolute()
    root = base / DIRNAME
    created = not root.exists()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a folder.")
    if group is not None and not shared:
        raise UsageError("--group only makes sense with --shared.")
    config = Config(shared=shared)
    try:
        base.mkdir(parents=True, exist_ok=True)  # like `git init NEWDIR`
        gid = _group_id(group, base) if shared else None
        if shared:
            share_umask()
        root.mkdir(mode=config.dir_mode, exist_ok=True)
        if created and gid is not None:
            os.chown(root, -1, gid)
        (root / "runs").mkdir(mode=config.dir_mode, exist_ok=True)
        if created:  # mkdir's mode is cut by the umask: set exactly what was asked
            os.chmod(root, config.dir_mode | (0o1000 if shared else 0))
            os.chmod(root / "runs", config.dir_mode)
        cfg = root / CONFIG_NAME
        if not cfg.exists():
            text = CONFIG_TEMPLATE.replace("shared = false", f"shared = {'true' if shared else 'false'}")
            write_private(cfg, text, config.guarded_mode)
        signers = root / SIGNERS_NAME
        if not signers.exists():  # made by the owner now, so that no member can be first to make it
            write_private(signers, "", config.guarded_mode)
    except PermissionError:
        raise MltuiError(f"Cannot create a workspace in {base}: permission denied.") from None
    except OSError as exc:
        raise MltuiError(f"Cannot create a workspace in {base}: {exc.strerror}.") from None
    ws = Workspace(root)
    from mltui.store.opening import open_store

    open_store(ws.db_path, file_mode=config.file_mode).close()
    return ws, created


def _group_id(name: str | None, base: Path) -> int:
    """The group a shared workspace belongs to: one you are in."""
    import grp

    mine = {os.getegid(), *os.getgroups()}
    if name is None:
        gid = os.stat(base).st_gid
        return gid if gid in mine or os.getuid() == 0 else os.getegid()
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        raise UsageError(f"There is no group named {name!r}.") from None
    if gid not in mine and os.getuid() != 0:
        raise UsageError(f"You are not in the group {name!r}; a shared workspace must be a group you are in.")
    return gid


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a new text file created with `mode` (never wider than asked)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), mode)  # O_CREAT's mode is cut by the umask
        fh.write(text)
