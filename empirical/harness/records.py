"""The versioned record schema: one chunk's per-sample measurements, read back through one function.

A stored record is {"schema", "key", "ids", "data", "checksum"}: `data` holds the cells (lists of per-sample
booleans, [R][N] for R fresh draws) exactly as `empirical.protocol.run_chunk` returns them, and the
checksum covers key, ids and data, so an emptied, edited or copied-over record is detected on resume.
Reports, tables and paper_checks read cells through `outcomes` and never parse record dicts themselves.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

SCHEMA = 2


class RecordError(ValueError):
    """A stored record that is not what its key says."""


def _checksum(key: str, ids: list[int], data: Any) -> str:
    blob = json.dumps({"key": key, "ids": ids, "data": data}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def make(key: str, ids: list[int], data: dict) -> dict:
    """A record ready for the store (data made JSON-plain first, so the checksum is of what is saved)."""
    ids = [int(i) for i in ids]
    data = json.loads(json.dumps(data, default=lambda o: o.tolist()))
    return {"schema": SCHEMA, "key": key, "ids": ids, "data": data, "checksum": _checksum(key, ids, data)}


def verify(record: Any, key: str, ids: list[int] | None, where: str) -> None:
    """Raise RecordError naming the chunk unless `record` is an intact record of chunk `key` (and `ids`)."""
    fields = ("schema", "key", "ids", "data", "checksum")
    if not isinstance(record, dict) or any(f not in record for f in fields):
        raise RecordError(f"{where}: chunk {key!r} is not a complete record (fields {fields}); the store was "
                          "edited or damaged. Remove the store (or that chunk) and rerun")
    if record["schema"] != SCHEMA:
        raise RecordError(f"{where}: chunk {key!r} has schema {record['schema']}, this version reads {SCHEMA}; "
                          "rerun without --resume")
    if record["key"] != key:
        raise RecordError(f"{where}: the record stored under chunk {key!r} belongs to chunk {record['key']!r} "
                          "(copied over); remove the store and rerun")
    if record["checksum"] != _checksum(record["key"], record["ids"], record["data"]):
        raise RecordError(f"{where}: chunk {key!r} fails its checksum (edited or damaged); remove the store "
                          "and rerun")
    if ids is not None and [int(i) for i in ids] != record["ids"]:
        raise RecordError(f"{where}: chunk {key!r} holds samples {record['ids'][:4]}..., this run expects "
                          f"{list(ids)[:4]}...; the store belongs to another sample plan")


def outcomes(chunks: list[dict], cell: str):
    """One cell's per-sample outcomes joined over chunks: [N] lists, or [R][N] lists joined along N.
    None when no chunk measured the cell."""
    parts = [c[cell] for c in chunks if cell in c and len(c[cell])]
    if not parts:
        return None
    if isinstance(parts[0][0], list):
        return [sum((p[i] for p in parts), []) for i in range(len(parts[0]))]
    return sum(parts, [])
