"""Trials read back: :class:`TrialTable` (one frame of trial fields, one of parameters, one of metrics, row for
row) assembled from decoded blocks and from trials stored a row each, and the dict view of a block's rows."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from dse.storage.columns import Block
from dse.storage.values import objects


@dataclass
class TrialTable:
    """Trials read back, row for row, sorted by number: ``base`` (number int64, state, feasible True/False/None,
    error, worker, started_at, finished_at, duration_s), one column per parameter (``params``) and per metric
    (``metrics``); missing values NaN or None."""

    base: pd.DataFrame
    params: pd.DataFrame
    metrics: pd.DataFrame

    def __len__(self) -> int:
        return len(self.base)


def _feasible_objects(feas: np.ndarray) -> np.ndarray:
    """Float 1/0/NaN as an object array of True/False/None (three shared objects, not one per row)."""
    code = np.where(np.isnan(feas), 0, np.where(feas > 0.5, 2, 1))
    return objects([None, False, True])[code]


def blocks_table(blocks: Sequence[tuple[Block, str | None]]) -> TrialTable:
    """Decoded blocks (with their worker) as one :class:`TrialTable`, each column concatenated once."""
    lengths = [len(b.numbers) for b, _ in blocks]
    n = sum(lengths)
    cat = np.concatenate
    complete = cat([b.base["complete"] for b, _ in blocks]) if blocks else np.zeros(0, dtype=bool)
    base = pd.DataFrame({
        "number": cat([b.numbers for b, _ in blocks]) if blocks else np.zeros(0, dtype=np.int64),
        "state": pd.Series(objects(["failed", "complete"])[complete.astype(np.intp)], dtype=object),
        "feasible": pd.Series(_feasible_objects(cat([b.base["feasible"] for b, _ in blocks]) if blocks
                                                else np.zeros(0)), dtype=object),
        "error": pd.Series(cat([b.base["error"].astype(object) for b, _ in blocks]) if blocks else objects([]),
                           dtype=object),
        "worker": pd.Series(np.repeat(objects([w for _, w in blocks]), lengths), dtype=object),
        **{c: cat([b.base[c] for b, _ in blocks]) if blocks else np.zeros(0)
           for c in ("started_at", "finished_at", "duration_s")},
    }, index=range(n))
    params = _union([{k: v for k, (v, _) in b.params.items()} for b, _ in blocks], lengths)
    metrics = _union([{k: v for k, (v, _) in b.metrics.items()} for b, _ in blocks], lengths)
    return TrialTable(base, params, metrics)


def block_dicts(cols: dict[str, tuple[np.ndarray, np.ndarray | None]], n: int, *, nan_as_none: bool = False
                ) -> list[dict[str, Any]]:
    """One dict per row of a block's params or metrics (keys a row lacks left out), plain Python values;
    ``nan_as_none``: a NaN float reads None (parameters: NaN only ever stands for an inactive one)."""
    names = list(cols)
    values = [(np.where(np.isnan(v), cast(Any, None), v.astype(object)) if nan_as_none and v.dtype.kind == "f"
               else v).tolist()
              for v, _ in cols.values()]
    if not names:
        return [{} for _ in range(n)]
    out = [dict(zip(names, row)) for row in zip(*values)]
    for k, (_, mask) in cols.items():
        if mask is not None:
            for i in np.flatnonzero(~mask).tolist():
                del out[i][k]
    return out


def rows_table(base: pd.DataFrame, params: Sequence[Mapping[str, Any]], metrics: Sequence[Mapping[str, Any]]
               ) -> TrialTable:
    """A :class:`TrialTable` of trials stored a row each (``params``/``metrics``: their dicts)."""
    n = len(base)
    return TrialTable(base.reset_index(drop=True),
                      pd.DataFrame.from_records(list(params), index=range(n)),
                      pd.DataFrame.from_records(list(metrics), index=range(n)))


def concat_tables(parts: Sequence[TrialTable]) -> TrialTable:
    """Several tables as one, sorted by number (columns united; a column some parts lack is missing there)."""
    parts = [p for p in parts if len(p)] or list(parts[:1])
    if len(parts) == 1:
        t = parts[0]
    else:
        lengths = [len(p) for p in parts]
        t = TrialTable(*(_union([{c: getattr(p, f)[c].to_numpy() for c in getattr(p, f).columns} for p in parts],
                                lengths) for f in ("base", "params", "metrics")))
    numbers = t.base["number"].to_numpy()
    if len(numbers) > 1 and not (np.diff(numbers) > 0).all():
        order = np.argsort(numbers, kind="stable")
        t = TrialTable(*(getattr(t, f).iloc[order].reset_index(drop=True) for f in ("base", "params", "metrics")))
    return t


def _union(parts: Sequence[Mapping[str, np.ndarray]], lengths: Sequence[int]) -> pd.DataFrame:
    """Columns of several parts stacked row-wise, in first-seen order: one dtype where the parts agree (ints and
    floats mixed: float64), else object; a column a part lacks is missing there (NaN, or None in object columns)."""
    names = list(dict.fromkeys(c for p in parts for c in p))
    n = sum(lengths)
    data: dict[str, Any] = {}
    for c in names:
        given = [p[c] for p in parts if c in p]
        kinds = {g.dtype.kind for g in given}
        numeric = kinds <= {"f", "i", "u"}
        pieces = []
        for p, k in zip(parts, lengths):
            if c in p:
                pieces.append(p[c])
            else:
                pieces.append(np.full(k, np.nan) if numeric else objects([None] * k))
        dtypes = {x.dtype for x in pieces}
        if len(dtypes) == 1 and pieces[0].dtype != object:
            data[c] = np.concatenate(pieces)
        elif numeric and all(x.dtype.kind in "fiu" for x in pieces):
            data[c] = np.concatenate([x.astype(np.float64) for x in pieces])
        else:
            data[c] = pd.Series(np.concatenate([x.astype(object) for x in pieces]), dtype=object)
    return pd.DataFrame(data, index=range(n), columns=names)
