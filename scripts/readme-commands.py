"""Print or run the README's two opening commands exactly as written, for CI.

    python3 scripts/readme-commands.py show         # both lines
    python3 scripts/readme-commands.py demo         # line 1, in an 80x24 pseudo-terminal: waits for the
                                                    # first screen, presses q, exits with its exit code
    python3 scripts/readme-commands.py test         # line 2, as a shell would run it

Standard library only: it runs before anything of the project is installed."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def commands() -> list[str]:
    """The lines of the README's first code block (it must be two commands)."""
    match = re.search(r"^```[^\n]*\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
    if not match:
        raise SystemExit("readme-commands: the README has no code block")
    lines = [line for line in match.group(1).splitlines() if line.strip()]
    if len(lines) != 2:
        raise SystemExit(f"readme-commands: the README's first block has {len(lines)} commands, not 2")
    return lines


def run_in_terminal(line: str, ready: bytes = b"Runs", timeout: float = 900.0) -> int:
    """Run `line` under bash in a pseudo-terminal; once the screen shows `ready`, press q."""
    import fcntl
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of 80x24, like an SSH session
        os.environ.update(TERM="xterm-256color", COLUMNS="80", LINES="24")
        os.execvp("bash", ["bash", "-c", line])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    seen = b""
    pressed_at = None
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], 0.5)
        if readable:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal closed: the program ended
                chunk = b""
            if not chunk:
                break
            seen = (seen + chunk)[-200000:]
        if pressed_at is None and ready in seen:
            time.sleep(1.0)  # let the first poll land, as a person would
            os.write(fd, b"q")
            pressed_at = time.monotonic()
        elif pressed_at is not None and time.monotonic() - pressed_at > 30:
            print("\nreadme-commands: the demo did not quit 30 s after q", file=sys.stderr)
            os.kill(pid, signal.SIGKILL)
            break
    else:
        print(f"\nreadme-commands: no {ready.decode()!r} on the screen within {timeout:.0f} s", file=sys.stderr)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if pressed_at is None or code:
        text = re.sub(rb"\x1b\[[0-9;?<>=$]*[A-Za-z~]|\x1b[\]P][^\x07\x1b]*(\x07|\x1b\\)?", b" ", seen)
        sys.stdout.buffer.write(b"--- what the terminal showed last ---\n" + text[-3000:] + b"\n")
        return code or 1
    print(f"readme-commands: the demo showed its Runs pane, quit on q, exit code {code}")
    return code


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "show"
    demo, test = commands()
    if what == "show":
        print(demo)
        print(test)
        return 0
    if what == "demo":
        print(f"+ {demo}", flush=True)
        return run_in_terminal(demo)
    if what == "test":
        print(f"+ {test}", flush=True)
        return subprocess.run(["bash", "-c", test]).returncode
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
