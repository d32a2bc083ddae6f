"""Data-only checkpoints: nested state (dicts, lists, tuples, numbers, strings, numpy arrays and scalars)
↔ one ``.npz`` file holding the arrays, the rest as JSON, and a SHA-256 over both.

Nothing in a checkpoint can run code: the arrays are read with ``allow_pickle=False`` (an object array is
refused), the structure is plain JSON, and a file whose checksum does not match what it holds is refused
before anything in it is used. Writing is atomic (temporary file, then ``os.replace``), so a kill mid-write
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from evolora.evolution.errors import EvoloraError

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint_file",
    "encode",
    "decode",
    "pack",
    "unpack",
]

FORMAT = "evolora-checkpoint/1"


class CheckpointError(EvoloraError):
    """A checkpoint is malformed, tampered with or not a checkpoint at all."""


def encode(obj: Any, arrays: list[np.ndarray]) -> Any:
    """``obj`` as JSON-able data; numpy arrays and scalars are appended to ``arrays`` and referenced by index."""
    if isinstance(obj, np.ndarray) or isinstance(obj, np.generic):
        a = np.asarray(obj)
        if a.dtype.hasobject:
            raise TypeError("object arrays cannot be checkpointed")
        arrays.append(a)
        return {"__array__": len(arrays) - 1, "scalar": isinstance(obj, np.generic)}
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [encode(v, arrays) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k.startswith("__") for k in obj):
            return {k: encode(v, arrays) for k, v in obj.items()}
        return {"__items__": [[encode(k, arrays), encode(v, arrays)] for k, v in obj.items()]}
    raise TypeError(f"cannot checkpoint a {type(obj).__name__}")


def decode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, list):
        return [decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__array__" in obj:
        a = arrays[f"a{int(obj['__array__'])}"]
        return a[()] if obj.get("scalar") else a
    if "__tuple__" in obj:
        return tuple(decode(v, arrays) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_hashable(decode(k, arrays)): decode(v, arrays) for k, v in obj["__items__"]}
    return {k: decode(v, arrays) for k, v in obj.items()}


def _hashable(k):
    return k.item() if isinstance(k, np.generic) else k


def _digest(state_json: bytes, arrays: list[np.ndarray]) -> str:
    h = hashlib.sha256(state_json)
    for a in arrays:
        h.update(f"|{a.dtype.str}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` to ``path`` (an .npz file) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: list[np.ndarray] = []
    body = json.dumps({"format": FORMAT, "state": encode(state, arrays)}, allow_nan=True).encode()
    payload = {f"a{i}": a for i, a in enumerate(arrays)}
    payload["state_json"] = np.frombuffer(body, dtype=np.uint8)
    payload["sha256"] = np.frombuffer(_digest(body, arrays).encode(), dtype=np.uint8)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint_file(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; raises :class:`CheckpointError` if it is not
    one, is truncated, or its contents do not match its checksum."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable or not data-only: {e}") from None
    try:
        body = files.pop("state_json").tobytes()
        want = files.pop("sha256").tobytes().decode()
        doc = json.loads(body)
        n = len(files)
        arrays = [files[f"a{i}"] for i in range(n)]
    except (KeyError, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} is malformed: {e}") from None
    if doc.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {doc.get('format')!r}, expected {FORMAT!r}"
        )
    if _digest(body, arrays) != want:
        raise CheckpointError(
            f"checkpoint {path} does not match its checksum (modified or corrupt); refusing it"
        )
    return decode(doc["state"], files)


def pack(state: Any) -> bytes:
    """``state`` (what a checkpoint may hold) as one byte string: a length-prefixed JSON header, then each
    array's raw bytes. The wire format of population evaluation: nothing in it can run code."""
    arrays: list[np.ndarray] = []
    doc = encode(state, arrays)
    arrays = [np.ascontiguousarray(a) for a in arrays]
    head = json.dumps(
        {"format": FORMAT, "state": doc, "arrays": [[a.dtype.str, list(a.shape)] for a in arrays]},
        allow_nan=True,
    ).encode()
    return b"".join([len(head).to_bytes(8, "little"), head, *(a.tobytes() for a in arrays)])


def unpack(data: bytes) -> Any:
    """The state :func:`pack` wrote; CheckpointError for anything else (an object dtype is refused)."""
    try:
        n = int.from_bytes(data[:8], "little")
        head = json.loads(bytes(data[8 : 8 + n]))
        pos, arrays = 8 + n, {}
        for i, (dtype, shape) in enumerate(head["arrays"]):
            dt = np.dtype(dtype)
            if dt.hasobject:
                raise ValueError("object arrays are refused")
            size = dt.itemsize * int(np.prod(shape, dtype=np.int64))
            if pos + size > len(data):
                raise ValueError("truncated")
            arrays[f"a{i}"] = (
                np.frombuffer(
                    data, dtype=dt, count=size // dt.itemsize if dt.itemsize else 0, offset=pos
                )
                .reshape(shape)
                .copy()
            )
            pos += size
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"not a packed state: {e}") from None
    if head.get("format") != FORMAT or pos != len(data):
        raise CheckpointError("not a packed state: wrong format or trailing bytes")
    return decode(head["state"], arrays)
