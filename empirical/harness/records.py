"""The versioned record schema: one chunk's per-sample measurements, bound to the store that holds it.

A stored record is {"schema", "key", "ids", "data", "checksum"}: `data` holds the cells (lists of per-sample
booleans, [R][N] for R fresh draws) exactly as `empirical.protocol.run_chunk` returns them, made JSON-plain
first (arrays as lists; NaN and infinities as {"nonfinite": "nan" | "inf" | "-inf"}, which `get_data`
turns back into floats, so a real NaN measurement is stored and read back as NaN, never as tampering). The checksum covers the configuration digest of the
store as well as key, ids and data, so an emptied, edited, copied-over record, or one copied in from a
store of another configuration, is refused on resume, naming the chunk.

Table cells are read through `outcomes` (the library's `empirical.outcomes.join`, which the audit shares).
Three readers also parse a chunk dict's own fields: `empirical.predict.summarise` (Table 1's toy block: the
cells and each chunk's "prediction" list), `empirical.audit_summary.summarise` (the audit's records:
"randomized", "toy", "toy_note") and `empirical.paper.runs.chunk_outcomes` (each chunk's "ids" / "eot_ids").
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from empirical.outcomes import join as outcomes  # noqa: F401  (the harness's name for it)

SCHEMA = 3
NONFINITE = "nonfinite"
KNOWN_SCHEMAS = (SCHEMA,)
# schema 2 (checksum without the configuration digest) is refused: its records cannot prove their store.


class RecordError(ValueError):
    """A stored record that is not what its key says."""


def canonical_json(obj: Any) -> str:
    """Sorted-key, separator-free JSON: equal content, equal text (the input of every digest)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def digest(view: dict) -> str:
    """A short stable hash of a digest view (canonical JSON)."""
    return hashlib.sha256(canonical_json(view).encode()).hexdigest()[:16]


def _checksum(key: str, ids: list[int], data: Any, config_digest: str) -> str:
    blob = json.dumps({"key": key, "ids": ids, "data": data, "config_digest": config_digest}, sort_keys=True,
                      separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _encode(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return {NONFINITE: "nan" if obj != obj else ("inf" if obj > 0 else "-inf")}
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_encode(v) for v in obj]
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if len(obj) == 1 and NONFINITE in obj:
            return float(obj[NONFINITE])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def _tolist(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in a results store")


def make(key: str, ids: list[int], data: dict, config_digest: str) -> dict:
    """A record ready for the store of `config_digest` (data made JSON-plain first, non-finite floats
    spelled out, so the checksum is of exactly what is saved)."""
    ids = [int(i) for i in ids]
    data = _encode(json.loads(json.dumps(data, default=_tolist)))
    return {"schema": SCHEMA, "key": key, "ids": ids, "data": data,
            "checksum": _checksum(key, ids, data, config_digest)}


def verify(record: Any, key: str, ids: list[int] | None, where: str, config_digest: str) -> None:
    """Raise RecordError naming the chunk unless `record` is an intact record of chunk `key` (and `ids`)
    written into the store of `config_digest`."""
    fields = ("schema", "key", "ids", "data", "checksum")
    if not isinstance(record, dict) or any(f not in record for f in fields):
        raise RecordError(f"{where}: chunk {key!r} is not a complete record (fields {fields}); the store was "
                          "edited or damaged. Remove the store (or that chunk) and rerun")
    if record["schema"] not in KNOWN_SCHEMAS:
        raise RecordError(f"{where}: chunk {key!r} has record schema {record['schema']!r}, this version reads "
                          f"schema {SCHEMA}; the store was written by another version of this tool: start a new "
                          "store (--overwrite, or another --results path)")
    if record["key"] != key:
        raise RecordError(f"{where}: the record stored under chunk {key!r} belongs to chunk {record['key']!r} "
                          "(copied over); remove the store and rerun")
    if record["checksum"] != _checksum(record["key"], record["ids"], record["data"], config_digest):
        raise RecordError(f"{where}: chunk {key!r} fails its checksum (edited, damaged, or copied in from a store "
                          "of another configuration); remove the store and rerun")
    if ids is not None and [int(i) for i in ids] != record["ids"]:
        raise RecordError(f"{where}: chunk {key!r} holds samples {record['ids'][:4]}..., this run expects "
                          f"{list(ids)[:4]}...; the store belongs to another sample plan")


def get_data(record: dict) -> dict:
    """A verified record's measurements as the measuring code returned them (non-finite floats restored)."""
    return _decode(record["data"])


_REPLICATE = re.compile(r"^(?P<key>.*)#r(?P<k>\d+)$")


def replicate_key(key: str, k: int) -> str:
    """The record key of noise replicate k of a cell (replicate 0 is the cell's own key)."""
    return key if k == 0 else f"{key}#r{k}"


def split_replicate(key: str) -> tuple[str, int]:
    """(cell key, replicate) of a record key: the inverse of `replicate_key`."""
    m = _REPLICATE.match(key)
    return (m["key"], int(m["k"])) if m else (key, 0)

