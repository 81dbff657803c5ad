"""Prediction records folded into time windows as compact, mergeable aggregates: counts on the
reference's bins, missing and unseen values, latency on log bins, output counts, and quality counts
once labels are joined. Raw rows are not kept (a small window keeps its numbers for an exact KS),
so months of history cost little and the logs themselves can be rotated away.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mltui.core.monitor.reference import Reference
from mltui.core.monitor.stats import SMALL, latency_bounds

LATENCY = latency_bounds()
LATENCY_LAYOUT = "log2/16"  # kept with each window: bins of another layout are not read as these


def empty() -> dict[str, Any]:
    return {"n": 0, "latency_layout": LATENCY_LAYOUT, "latency": {}, "features": {}, "extra": {}, "outputs": {}, "output_sum": [0, 0.0, 0.0],
            "quality": {}, "labelled": 0}


def _add_counts(into: dict, key: str, counts) -> None:
    have = into.get(key)
    into[key] = [a + b for a, b in zip(have, counts)] if have else list(counts)


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """`b` added into `a` (both aggregates of the same window and model version)."""
    a["n"] += b["n"]
    for k, v in b["latency"].items():
        a["latency"][k] = a["latency"].get(k, 0) + v
    for name, fb in b["features"].items():
        fa = a["features"].setdefault(name, {"missing": 0, "unseen": 0, "out_of_range": 0})
        for key in ("missing", "absent", "unseen", "out_of_range"):
            fa[key] = fa.get(key, 0) + fb.get(key, 0)
        if "counts" in fb:
            _add_counts(fa, "counts", fb["counts"])
        if "tails" in fb:  # sums of the values below the first edge and above the last
            fa["tails"] = [x + y for x, y in zip(fa.get("tails", [0.0, 0.0]), fb["tails"])]
        if a["n"] <= SMALL and "values" in fb:  # a small window keeps its numbers, for an exact KS
            fa["values"] = fa.get("values", []) + fb["values"]
        else:
            fa.pop("values", None)
    for k, v in b["extra"].items():
        a["extra"][k] = a["extra"].get(k, 0) + v
    for k, v in b["outputs"].items():
        a["outputs"][k] = a["outputs"].get(k, 0) + v
    a["output_sum"] = [x + y for x, y in zip(a["output_sum"], b["output_sum"])]
    merge_quality(a["quality"], b["quality"])
    a["labelled"] += b["labelled"]
    return a


def merge_quality(qa: dict, qb: dict) -> None:
    for k, v in qb.get("confusion", {}).items():
        qa.setdefault("confusion", {})[k] = qa.get("confusion", {}).get(k, 0) + v
    for side in ("pos", "neg"):
        if side in qb:
            _add_counts(qa, side, qb[side])
    if "errors" in qb:
        qa["errors"] = [x + y for x, y in zip(qa.get("errors", [0, 0.0, 0.0]), qb["errors"])]


def aggregate(frame, ref: Reference, np) -> dict[str, Any]:
    """One window's aggregate from its rows (a polars frame with `inputs.*` unnested as `f:NAME`)."""
    import polars as pl

    n = frame.height
    out = empty()
    out["n"] = n
    if "latency_ms" in frame.columns:
        lat = frame.get_column("latency_ms").cast(pl.Float64, strict=False).drop_nulls().to_numpy()
        if len(lat):
            bins = np.clip(np.searchsorted(LATENCY, lat, side="right") - 1, 0, len(LATENCY) - 2)
            idx, counts = np.unique(bins, return_counts=True)
            out["latency"] = {str(int(i)): int(c) for i, c in zip(idx, counts)}
    present = {c[2:] for c in frame.columns if c.startswith("f:")}
    for name, spec in ref.features.items():
        if name not in present:  # no record of this chunk carries it: absent, not missing
            out["features"][name] = {"missing": 0, "absent": n, "unseen": 0, "out_of_range": 0}
            continue
        out["features"][name] = _feature(frame.get_column("f:" + name), spec, n, np, pl)
    for name in sorted(present - set(ref.features)):
        nulls = frame.get_column("f:" + name).null_count()
        if nulls < n:
            out["extra"][name] = n - nulls
    if "output" in frame.columns:
        outputs = frame.get_column("output")
        if outputs.dtype.is_float():
            vals = outputs.drop_nulls().to_numpy()
            out["output_sum"] = [int(len(vals)), float(vals.sum()), float((vals ** 2).sum())]
            if ref.target is not None and ref.target["kind"] == "number":
                idx = np.searchsorted(ref.target["edges"], vals, side="right")
                out["outputs"] = {str(int(i)): int(c) for i, c in zip(*np.unique(idx, return_counts=True))}
        else:
            vc = outputs.drop_nulls().cast(pl.Utf8).value_counts()
            out["outputs"] = {str(k): int(v) for k, v in vc.iter_rows()}
    return out


def _feature(column, spec: Mapping[str, Any], n: int, np, pl) -> dict[str, Any]:
    if spec["kind"] == "number":
        values = column.cast(pl.Float64, strict=False)
        missing = values.null_count()
        arr = values.drop_nulls().to_numpy()
        arr = arr[np.isfinite(arr)]
        missing += (n - missing) - len(arr)
        counts = np.bincount(np.searchsorted(spec["edges"], arr, side="right"), minlength=len(spec["edges"]) + 1)
        edges = spec["edges"]
        feature = {"missing": int(missing), "unseen": 0, "counts": counts.tolist(),
                   "out_of_range": int(((arr < spec["min"]) | (arr > spec["max"])).sum()),
                   "tails": [float(arr[arr < edges[0]].sum()), float(arr[arr >= edges[-1]].sum())]}
        if n <= SMALL:
            feature["values"] = arr.tolist()
        return feature
    values = column.cast(pl.Utf8, strict=False)
    missing = values.null_count()
    index = {c: i for i, c in enumerate(spec["categories"])}
    counts = [0] * (len(index) + 1)  # the last: values the reference never had
    for value, count in values.drop_nulls().value_counts().iter_rows():
        counts[index.get(value, len(index))] += int(count)
    return {"missing": int(missing), "unseen": counts[-1], "out_of_range": 0, "counts": counts}
