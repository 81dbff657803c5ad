"""Run ids: short, sortable by creation time, typeable by unique prefix."""

from __future__ import annotations

import os
import time

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase: no i, l, o, u


def new_run_id(now: float | None = None) -> str:
    """7 characters of seconds since the epoch, then 3 random ones: 10 in all."""
    seconds = int(time.time() if now is None else now)
    head = []
    for _ in range(7):
        seconds, digit = divmod(seconds, 32)
        head.append(ALPHABET[digit])
    tail = "".join(ALPHABET[b % 32] for b in os.urandom(3))
    return "".join(reversed(head)) + tail
