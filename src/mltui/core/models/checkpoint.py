"""What a checkpoint holds: parameter count, tensors with shapes and dtypes, file size.

.safetensors is read from its JSON header (no library needed, no code run). .pt/.pth goes through
torch.load(weights_only=True), which unpickles tensors and plain containers only: a pickle that
would run code or build other objects is refused, never executed.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from mltui.base.errors import MltuiError

SAFETENSORS_HEADER_MAX = 100 * 1024 * 1024
SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "U16": 2,
               "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def inspect(path: str | Path, shown_name: str | None = None) -> dict:
    """{format, size, tensors: [{name, shape, dtype, numel}], parameters}; MltuiError if it cannot be read safely."""
    path = Path(path)
    name = shown_name or path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MltuiError(f"Cannot read {name}: {exc.strerror or exc}.") from None
    suffix = Path(name).suffix.lower()
    if suffix == ".safetensors":
        tensors = _safetensors(path, name)
        fmt = "safetensors"
    elif suffix in SUFFIXES:
        tensors = _torch(path, name)
        fmt = "torch"
    else:
        raise MltuiError(f"{name} is not a checkpoint mltui can read (.pt, .pth, .bin, .ckpt or .safetensors).")
    return {"format": fmt, "size": size, "tensors": tensors, "parameters": sum(t["numel"] for t in tensors)}


def _safetensors(path: Path, name: str) -> list[dict]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise MltuiError(f"{name} is too short to be a safetensors file.")
            (length,) = struct.unpack("<Q", head)
            if length > SAFETENSORS_HEADER_MAX:
                raise MltuiError(f"{name} claims a {length:,}-byte header; it is not a sane safetensors file.")
            raw = fh.read(length)
            if len(raw) != length:
                raise MltuiError(f"{name} is not a readable safetensors file: it is cut short (its header should "
                                 f"be {length:,} bytes).")
            header = json.loads(raw)
        data_size = path.stat().st_size - 8 - length
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise MltuiError(f"{name} is not a readable safetensors file ({exc}).") from None
    if not isinstance(header, dict):
        raise MltuiError(f"{name} has a malformed safetensors header.")
    out = []
    for key, info in header.items():
        if key == "__metadata__" or not isinstance(info, dict):
            continue
        shape = info.get("shape") or []
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise MltuiError(f"{name}: tensor {key!r} has a malformed shape.")
        numel = math.prod(shape)
        offsets = info.get("data_offsets")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise MltuiError(f"{name}: tensor {key!r} lies outside the file (it is cut short or malformed).")
        width = DTYPE_BYTES.get(str(info.get("dtype")))
        if width is not None and offsets[1] - offsets[0] != numel * width:
            raise MltuiError(f"{name}: tensor {key!r} has {offsets[1] - offsets[0]:,} bytes for {numel:,} "
                             f"{info.get('dtype')} values.")
        out.append({"name": key, "shape": shape, "dtype": str(info.get("dtype")), "numel": numel})
    return sorted(out, key=lambda t: t["name"])


def _torch(path: Path, name: str) -> list[dict]:
    try:
        import torch
    except ImportError:
        raise MltuiError(f"Reading {name} needs torch; install mltui with the torch extra.") from None
    import pickle
    import re
    import warnings

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr: the error below says enough
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
        detail = f" ({found.group(1).strip()[:120]})" if found else ""
        raise MltuiError(f"Refused to load {name}: it is not a plain weights file{detail}, and unpickling it fully "
                         "could run code; only tensors and plain containers are read.") from None
    except Exception as exc:  # truncated, not a zip or pickle at all
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else "no detail"
        raise MltuiError(f"{name} is not a readable checkpoint ({type(exc).__name__}: {detail}).") from None
    out: list[dict] = []
    _walk(obj, "", out, torch)
    return out


def _walk(obj: Any, prefix: str, out: list[dict], torch) -> None:
    if isinstance(obj, torch.Tensor):
        out.append({"name": prefix or "(tensor)", "shape": list(obj.shape), "dtype": str(obj.dtype).replace("torch.", ""),
                    "numel": obj.numel()})
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _walk(value, f"{prefix}.{key}" if prefix else str(key), out, torch)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _walk(value, f"{prefix}.{i}" if prefix else str(i), out, torch)
