"""A model with history for the demo: versions registered from demo runs, one in production, one
archived, and a request waiting for review (with a failing gate), all through the real registry."""

from __future__ import annotations

import json
import struct

from mltui.core.workspace import Workspace

POLICY = """
[[promotion.gates]]
kind = "metric"
metric = "val/acc"
op = ">="
value = 0.8

[[promotion.gates]]
kind = "beats_production"
metric = "val/acc"
margin = 0.005

[[promotion.gates]]
kind = "eval_run"
targets = ["production"]
"""


def _safetensors(path, seed: int) -> None:
    """A small, valid safetensors checkpoint (written by hand: no torch needed)."""
    tensors = {"backbone.weight": [64, 32], "backbone.bias": [64], "head.weight": [10, 64], "head.bias": [10]}
    header, offset = {}, 0
    for name, shape in tensors.items():
        count = 1
        for d in shape:
            count *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * count]}
        offset += 4 * count
    blob = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)) + blob + bytes([seed % 251]) * offset)


def build_models(ws: Workspace, run_ids: list[str]) -> None:
    """Register three versions of `classifier` from the best finished demo runs and give them a history."""
    from mltui.core.models import promotion, registry
    from mltui.core.reader import open_writer

    with open(ws.config_path, "a", encoding="utf-8") as fh:
        fh.write(POLICY)
    conn = open_writer(ws)
    try:
        finished = [r for (r,) in conn.execute(
            "SELECT r.id FROM runs r JOIN metric_summary m ON m.run_id = r.id AND m.key = 'val/acc' "
            "WHERE r.status = 'finished' AND r.id IN (SELECT value FROM json_each(?)) ORDER BY m.last DESC LIMIT 3",
            (json.dumps(run_ids),))]
        if len(finished) < 3:
            return
        versions = []
        for i, run_id in enumerate(reversed(finished)):  # the best run last: it is the new candidate
            _safetensors(ws.run_dir(run_id) / "artifacts" / "model.safetensors", i + 1)
            versions.append(registry.register(ws, conn, "classifier", run_id, "artifacts/model.safetensors",
                                              who="alice")[0])
        for mv, reviewer in ((versions[0], "bob"), (versions[1], "carol")):
            req = promotion.request(ws, conn, mv.label, "production", "better on the holdout set", who="alice")
            promotion.approve(ws, conn, req["id"], "looks good", override="no eval run in the demo", who=reviewer)
        registry.set_alias(ws, conn, versions[1].label, "champion", who="alice")
        registry.set_alias(ws, conn, versions[2].label, "challenger", who="alice")
        promotion.request(ws, conn, versions[2].label, "production", "best val/acc so far", who="alice")
    finally:
        conn.close()
