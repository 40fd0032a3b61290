"""Finished trials column by column (:class:`TrialColumns`), and the bytes a block of them is stored as.

Every finished trial is stored in a *block* (``dse_trial_blocks``): one row per write of finished trials
(``SQLStorage.add_columns``, ``add_trials``, ``finish_columns``), split every :data:`BLOCK_ROWS` trials, numbered
``first_number..last_number``. Its ``data`` cell (BLOB / bytea) holds no pickle and no code: a magic line, the
8-byte little-endian length of a UTF-8 JSON header, the header, then one raw buffer per column::

    {"n": rows, "columns": [[group, name, kind, meta, nbytes, mask_nbytes], ...]}

- ``group``: ``"base"`` (complete, feasible as -1 unknown / 0 / 1, error, timings), ``"params"`` or ``"metrics"``;
- ``kind``: ``"f8"`` / ``"i8"`` / ``"i1"`` / ``"b1"``: the buffer is the little-endian array (NaN and inf kept bit
  for bit); ``"const"``: every row holds one value, ``meta`` = ``[kind of the values, the value]``, no buffer;
  ``"str"``: ``meta`` lists the distinct values, the buffer holds int32 codes (-1: missing, read as None);
  ``"json"``: ``meta`` is the list of values itself (anything JSON holds; NaN/inf as ``NaN``/``Infinity``), no
  buffer;
- ``mask_nbytes``: 0, or the length of a bool buffer after the values marking the rows that hold the key (trials
  written as dicts whose keys differ): the dict view (``load_trials``) leaves the key out where it is absent;
  frames read it as missing.

Numbers and strings cost a few bytes each and no Python object per value on the way in or out, so storing and
reading a million trials is a matter of array copies, not a million JSON documents.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from dse.errors import StorageError
from dse.storage.values import ENCODER, objects, opt_bool, opt_float, opt_str, short
from dse.vocabulary import FINISHED_STATES

if TYPE_CHECKING:
    from dse.optimizers.batch import Batch

#: Trials per stored block at most (a write of more is split into several blocks, in one transaction).
BLOCK_ROWS = 65536

#: Base columns of a block besides the numbers, in this order.
BASE = ("state", "feasible", "error", "started_at", "finished_at", "duration_s")




@dataclass
class TrialColumns:
    """Finished trials, one array (or frame column) per field, row for row.

    ``params`` and ``metrics``: one row per trial (missing values NaN or None); ``state``: "complete" | "failed";
    ``feasible``: True, False or None (unknown: failed trials), or as floats 1.0, 0.0, NaN; ``error``: str or None; ``started_at``,
    ``finished_at`` (epoch s) and ``duration_s`` (s): float64, NaN when unknown. ``*_present``: for a column whose
    key some trials lack (trials given as dicts), the rows that hold it.
    """

    params: pd.DataFrame
    metrics: pd.DataFrame
    state: np.ndarray
    feasible: np.ndarray
    error: np.ndarray
    started_at: np.ndarray
    finished_at: np.ndarray
    duration_s: np.ndarray
    params_present: dict[str, np.ndarray] = field(default_factory=dict)
    metrics_present: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.state)

    @classmethod
    def of_rows(cls, rows: Sequence[Any], what: str = "rows") -> TrialColumns:
        """From finished trials as dicts (``params``, ``state``, ``metrics``, ``feasible``, ``error``,
        ``started_at``, ``finished_at``, ``duration_s``), each field validated; StorageError names the first bad
        one. A missing ``started_at`` is ``finished_at - duration_s`` when both are known."""
        n = len(rows)
        params: list[Mapping[str, Any]] = []
        metrics: list[Mapping[str, Any]] = []
        state = objects([None] * n)
        feasible = objects([None] * n)
        error = objects([None] * n)
        times = np.full((3, n), np.nan)
        for i, r in enumerate(rows):
            w = f"{what}[{i}]"
            if not isinstance(r, Mapping):
                raise StorageError(f"{w} must be a dict, got {type(r).__name__} {short(r)}")
            s = r.get("state")
            if s not in FINISHED_STATES:
                raise StorageError(f"{w}['state'] = {s!r} is not a finished state; valid: {list(FINISHED_STATES)!r}")
            p, m = r.get("params"), r.get("metrics")
            m = {} if m is None else m
            for value, field_name in ((p, "params"), (m, "metrics")):
                if not isinstance(value, Mapping):
                    raise StorageError(f"{w}['{field_name}'] must be a dict, got {type(value).__name__} {short(value)}")
                bad = [k for k in value if not isinstance(k, str)]
                if bad:
                    raise StorageError(f"{w}['{field_name}'] = {short(value)} cannot be stored: keys must be str, "
                                       f"got {short(bad[0])}")
            params.append(cast(Mapping[str, Any], p))
            metrics.append(m)
            state[i] = s
            feasible[i] = opt_bool(r.get("feasible"), f"{w}['feasible']")
            error[i] = opt_str(r.get("error"), f"{w}['error']")
            fin = opt_float(r.get("finished_at"), f"{w}['finished_at']")
            dur = opt_float(r.get("duration_s"), f"{w}['duration_s']")
            start = opt_float(r.get("started_at"), f"{w}['started_at']")
            if start is None and fin is not None and dur is not None:
                start = fin - dur
            times[:, i] = [np.nan if v is None else v for v in (start, fin, dur)]
        pf, pp = _dict_columns(params, f"{what}[...]['params']")
        mf, mp = _dict_columns(metrics, f"{what}[...]['metrics']")
        return cls(pf, mf, state, feasible, error, times[0], times[1], times[2], pp, mp)

    @classmethod
    def of_batch(cls, batch: Batch, *, started_at: float, finished_at: float) -> TrialColumns:
        """The trials of an evaluated, scored ``Batch``: its frame and metrics frame as they are, complete where it
        has no error, feasible from its scoring (unknown for failed trials), its seconds per configuration."""
        if batch.metrics is None or batch.errors is None or batch.seconds is None or batch.feasible is None:
            raise StorageError(f"{batch!r} cannot be stored: it is not evaluated and scored yet")
        ok = batch.ok
        n = len(batch)
        return cls(
            params=batch.frame, metrics=batch.metrics, state=np.where(ok, "complete", "failed").astype(object),
            feasible=np.where(ok, batch.feasible, np.nan), error=batch.errors,
            started_at=np.full(n, started_at), finished_at=np.full(n, finished_at), duration_s=batch.seconds,
            metrics_present=batch.present or {},
        )

    def check(self) -> None:
        """StorageError if a field is not of its kind or not one row per trial (the frame path's validation:
        per column, not per value)."""
        n = len(self.state)
        for name in ("feasible", "error", "started_at", "finished_at", "duration_s"):
            if len(getattr(self, name)) != n:
                raise StorageError(f"trial columns: {name} has {len(getattr(self, name))} rows, state has {n}")
        for name, frame in (("params", self.params), ("metrics", self.metrics)):
            if len(frame) != n:
                raise StorageError(f"trial columns: {name} has {len(frame)} rows, state has {n}")
        bad = [v for v in set(np.asarray(self.state, dtype=object).tolist()) if v not in FINISHED_STATES]
        if bad:
            raise StorageError(f"state {bad[0]!r} is not a finished state; valid: {list(FINISHED_STATES)!r}")
        err = np.asarray(self.error, dtype=object)
        given = err[pd.notna(err)]
        if len(given) and pd.api.types.infer_dtype(given, skipna=False) != "string":
            v = next(v for v in given if not isinstance(v, str))
            raise StorageError(f"error must be a str or None, got {type(v).__name__} {short(v)}")
        feas = np.asarray(self.feasible)
        if feas.dtype == object:
            given = feas[pd.notna(feas)]
            if len(given) and pd.api.types.infer_dtype(given, skipna=False) != "boolean":
                v = next(v for v in given if not isinstance(v, (bool, np.bool_)))
                raise StorageError(f"feasible must be True, False or None, got {short(v)}")
        elif feas.dtype.kind != "f" or not ((feas == 0.0) | (feas == 1.0) | np.isnan(feas)).all():
            raise StorageError(f"feasible must be True/False/None (or 1.0/0.0/NaN), got an array of {feas.dtype}")

    def rows(self, start: int, stop: int) -> TrialColumns:
        """Trials ``start..stop-1``."""
        if start == 0 and stop >= len(self):
            return self
        sl = slice(start, stop)
        return TrialColumns(
            self.params.iloc[sl], self.metrics.iloc[sl], self.state[sl], self.feasible[sl], self.error[sl],
            self.started_at[sl], self.finished_at[sl], self.duration_s[sl],
            {k: v[sl] for k, v in self.params_present.items()}, {k: v[sl] for k, v in self.metrics_present.items()},
        )


def _dict_columns(dicts: Sequence[Mapping[str, Any]], what: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Dicts as a frame of object columns (values as given) and, per key some dicts lack, the rows holding it."""
    n = len(dicts)
    names = list(dict.fromkeys(k for d in dicts for k in d))
    data: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for k in names:
        col = objects([d.get(k) for d in dicts])
        has = np.fromiter((k in d for d in dicts), dtype=bool, count=n)
        if not has.all():
            present[k] = has
        data[k] = col
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in data.items()}, index=range(n), columns=names)
    return frame, present


# ---------------------------------------------------------------------------------------------------- the codec
_MAGIC = b"DSEB1\n"
_RAW = {"f8": "<f8", "i8": "<i8", "b1": "?", "i1": "i1"}
_RAW_KIND = {"f": "f8", "i": "i8", "u": "i8", "b": "b1"}


def _encode_column(values: Any, what: str) -> tuple[str, Any, np.ndarray | None]:
    """(kind, JSON part, raw array or None) of one column (see the module docstring)."""
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    kind = arr.dtype.kind
    if len(arr) > 1 and kind in "fiub":
        first = arr[:1]
        if (arr == first).all() or (kind == "f" and np.isnan(arr).all()):
            return "const", [_RAW_KIND[kind], first.tolist()[0]], None   # one value for every row: timings, flags
    if kind == "f":
        return "f8", None, arr.astype("<f8", copy=False)
    if kind in "iu" and (kind == "i" or not len(arr) or int(arr.max()) < 2**63):
        return "i8", None, arr.astype("<i8", copy=False)
    if kind == "b":
        return "b1", None, arr.astype(np.bool_, copy=False)
    obj = arr if arr.dtype == object else objects(arr.tolist())
    inferred = pd.api.types.infer_dtype(obj, skipna=True)
    if inferred == "empty" and len(obj) > 1 and all(v is None for v in obj.tolist()):
        return "const", ["json", None], None
    if inferred == "string":
        miss = pd.isna(obj)
        codes, uniques = pd.factorize(np.where(miss, cast(Any, None), obj), use_na_sentinel=True)
        if len(uniques) == 1 and len(obj) > 1 and not miss.any():
            return "const", ["json", str(uniques[0])], None
        return "str", [str(u) for u in uniques], codes.astype("<i4")
    if inferred in ("integer", "floating", "boolean") and pd.api.types.infer_dtype(obj, skipna=False) == inferred:
        # Python numbers of one type, none missing (dicts given row by row): as an array, exactly
        try:
            return _encode_column(np.array(obj.tolist(), dtype={"integer": np.int64, "floating": np.float64,
                                                                "boolean": np.bool_}[inferred]), what)
        except OverflowError:
            pass   # an int beyond int64: JSON keeps it
    values_list = obj.tolist()
    try:
        ENCODER.encode(values_list)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        for i, v in enumerate(values_list):
            try:
                ENCODER.encode(v)
            except (TypeError, ValueError, OverflowError, RecursionError):
                raise StorageError(
                    f"{what}, row {i} = {short(v)} cannot be stored: {exc}. Valid values: str, int, float (NaN/inf "
                    "allowed), bool, None, numpy scalars, and lists/dicts (str keys) of these"
                ) from None
        raise StorageError(f"{what} cannot be stored: {exc}") from None
    return "json", values_list, None


def column_arrays(frame: pd.DataFrame) -> list[np.ndarray]:
    """The frame's columns as numpy arrays, in order, without building a Series per column (which costs more
    than encoding a small batch's column)."""
    get = getattr(frame, "_get_column_array", None)   # pandas' own positional column accessor
    if get is None:   # pragma: no cover - a pandas without it
        return [frame.iloc[:, j].to_numpy() for j in range(frame.shape[1])]
    return [np.asarray(get(j)) for j in range(frame.shape[1])]


def encode_block(cols: TrialColumns) -> bytes:
    """The bytes of a block of the trials ``cols`` (their numbers are the block row's, first to last)."""
    n = len(cols)
    complete = np.asarray(cols.state, dtype=object) == "complete"
    feas = np.asarray(cols.feasible)
    if feas.dtype == object:
        known = pd.notna(feas)
        feas = np.where(known, feas, np.nan).astype("<f8")
    code = np.where(np.isnan(feas), -1, feas > 0.5).astype(np.int8)   # feasible as -1 (unknown), 0, 1
    entries: list[list[Any]] = []
    buffers: list[bytes] = []

    def add(group: str, name: str, values: Any, mask: np.ndarray | None = None) -> None:
        kind, meta, raw = _encode_column(values, f"{group}[{name!r}]" if group != "base" else name)
        data = b"" if raw is None else np.ascontiguousarray(raw).tobytes()
        mbytes = b"" if mask is None else np.ascontiguousarray(mask, dtype=np.bool_).tobytes()
        entries.append([group, name, kind, meta, len(data), len(mbytes)])
        buffers.extend((data, mbytes))

    add("base", "complete", complete)
    add("base", "feasible", code)
    add("base", "error", cols.error)
    for name in ("started_at", "finished_at", "duration_s"):
        add("base", name, np.asarray(getattr(cols, name), dtype="<f8"))
    for group, frame, present in (("params", cols.params, cols.params_present),
                                  ("metrics", cols.metrics, cols.metrics_present)):
        for name, values in zip(frame.columns.tolist(), column_arrays(frame)):
            add(group, str(name), values, present.get(name))
    header = ENCODER.encode({"n": n, "columns": entries}).encode("utf-8")
    return b"".join([_MAGIC, len(header).to_bytes(8, "little"), header, *buffers])


@dataclass
class Block:
    """A decoded block: ``numbers``; ``base`` columns (complete: bool, feasible: float 1/0/NaN, error: object,
    timings: float64); ``params`` and ``metrics``: name -> (values, rows holding the key or None)."""

    numbers: np.ndarray
    base: dict[str, np.ndarray]
    params: dict[str, tuple[np.ndarray, np.ndarray | None]]
    metrics: dict[str, tuple[np.ndarray, np.ndarray | None]]

    def take(self, keep: np.ndarray) -> Block:
        """The rows ``keep`` (a bool mask)."""
        def sub(d: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
            return {k: (v[keep], None if m is None else m[keep]) for k, (v, m) in d.items()}

        return Block(self.numbers[keep], {k: v[keep] for k, v in self.base.items()}, sub(self.params), sub(self.metrics))


def _decode_column(kind: str, meta: Any, raw: bytes | memoryview, n: int) -> np.ndarray:
    if kind == "const":
        raw_kind, value = meta
        if raw_kind == "json":
            return objects([value] * n)
        return np.full(n, np.nan if value is None else value, dtype=_RAW[raw_kind])
    if kind in _RAW:
        return np.frombuffer(raw, dtype=_RAW[kind])
    if kind == "str":
        table = objects([*meta, None])
        return table[np.frombuffer(raw, dtype="<i4")]   # code -1 picks the trailing None
    if kind == "json":
        return objects(meta)
    raise StorageError(f"a stored trial block has a column of unknown kind {kind!r}; valid: f8, i8, b1, str, json "
                       "(written by a newer dse? upgrade dse to read it)")


def decode_block(data: bytes | memoryview, first: int) -> Block:
    """The arrays of a block's bytes (see the module docstring); its trials are numbered from ``first``."""
    view = memoryview(data)
    if bytes(view[: len(_MAGIC)]) != _MAGIC:
        raise StorageError("a stored trial block does not start with the dse block header; the database is damaged "
                           "or was written by another program")
    at = len(_MAGIC) + 8
    size = int.from_bytes(view[len(_MAGIC):at], "little")
    doc = json.loads(bytes(view[at:at + size]))
    at += size
    base: dict[str, np.ndarray] = {}
    groups: dict[str, dict[str, tuple[np.ndarray, np.ndarray | None]]] = {"params": {}, "metrics": {}}
    for group, name, kind, meta, nbytes, mbytes in doc["columns"]:
        values = _decode_column(kind, meta, view[at:at + nbytes], int(doc["n"]))
        at += nbytes
        mask = np.frombuffer(view[at:at + mbytes], dtype=np.bool_) if mbytes else None
        at += mbytes
        if group == "base":
            base[name] = values
        else:
            groups[group][name] = (values, mask)
    feas = base["feasible"]
    base["feasible"] = np.where(feas < 0, np.nan, feas).astype(np.float64) if feas.dtype.kind in "iub" else feas
    numbers = np.arange(first, first + int(doc["n"]), dtype=np.int64)
    return Block(numbers, base, groups["params"], groups["metrics"])
