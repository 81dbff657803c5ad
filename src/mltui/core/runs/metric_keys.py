"""Names from other tools (TensorBoard tags, MLflow keys, framework logs) as keys the store allows."""

from __future__ import annotations

_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_REST = _FIRST | frozenset(".:/-")


def metric_key(name: str) -> str:
    """`name` as an mltui key: kept as it is when allowed (`train/loss`), otherwise each character the
    store refuses becomes '_' (`Loss (train)` -> `Loss__train_`), cut to 200 characters."""
    if name and name[0] in _FIRST and len(name) <= 200 and _REST.issuperset(name):
        return name
    fixed = "".join(c if c in _REST else "_" for c in name[:200]) or "_"
    return fixed if fixed[0] in _FIRST else "_" + fixed[:199]
