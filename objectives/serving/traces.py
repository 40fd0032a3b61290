"""Readers for public LLM request traces, and `Trace`: their common normalized form.

    from objectives import serving
    t = serving.read_trace("AzureLLMInferenceTrace_conv.csv")          # layout detected from the header
    t = serving.traces.read_mooncake("conversation_trace.jsonl")       # or a named reader
    w = serving.Workload(trace=t.scale_rate(4.0).sample(2000, seed=0))   # 4x the rate, 2,000 requests
    serving.simulate("Llama-3.1-8B", "H100", workload=w, scheduler=serving.Scheduler(prefix_caching=True))

Layouts (columns as the publishers name them):

- ``azure``: the Azure LLM inference traces, 2023 (Splitwise, ISCA 2024) and 2024 (DynamoLLM, HPCA 2025):
  ``TIMESTAMP`` (wall-clock invocation time; 2023: ``2023-11-16 18:17:03.9799600``, 2024:
  ``2024-05-10 00:00:00.009930+00:00``), ``ContextTokens``, ``GeneratedTokens``.
- ``mooncake``: Mooncake (FAST 2025) JSONL, one object a line: ``timestamp`` (ms from the trace start),
  ``input_length``, ``output_length``, ``hash_ids`` (ids of the prompt's 512-token blocks; equal ids are
  identical prefix blocks).
- ``burstgpt``: BurstGPT CSV: ``Timestamp`` (s from the trace start), ``Model``, ``Request tokens``,
  ``Response tokens``, ``Total tokens``, ``Log Type`` (newer releases add ``Session ID`` and ``Elapsed time``,
  ignored). Rows with 0 response tokens are failed requests and are dropped by default.
- ``vidur``: the processed traces of Vidur (microsoft/vidur ``data/processed_traces``): ``arrived_at`` (s),
  ``num_prefill_tokens``, ``num_decode_tokens``; its length-only files (no ``arrived_at``) give a trace without
  arrival times (a `Workload` then needs ``rate=`` or ``concurrency=``).
- ``dse``: ``arrival_s`` (s), ``input_tokens``, ``output_tokens`` (what `Trace.frame` writes).

Files may be gzip-compressed (``.gz``: read as their content) and may start with a UTF-8 byte-order mark. Bad
input raises ValueError naming the file, the line (1-based, header = line 1 for CSV) and the column, the
value found and what is valid; a CSV row with more fields than its header is refused at its line (pandas would
shift its columns under the header's names). Token counts must be integers >= 1 (``on_zero="drop"`` drops rows with a zero
count instead); times must be finite and >= 0. Each request keeps its record in the file (`Trace.rows`), so a
later refusal (a request longer than the model's context) names its line too (`Trace.where`).
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
import pandas as pd

LAYOUTS = ("azure", "mooncake", "burstgpt", "vidur", "dse")

#: Token counts a trace may hold: below 2^31 (an int64 count converted from a larger float would overflow)
MAX_TOKENS = 2 ** 31

#: Hash-block ids a trace may hold: below 2^63 (they are stored as int64)
MAX_HASH = 2 ** 63

#: Tokens per Mooncake hash block (the FAST'25 release hashes prompts in 512-token blocks).
MOONCAKE_BLOCK_TOKENS = 512

_AZURE = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_BURST = ("Timestamp", "Request tokens", "Response tokens")
_VIDUR = ("num_prefill_tokens", "num_decode_tokens")
_DSE = ("arrival_s", "input_tokens", "output_tokens")
_ON_ZERO = ("error", "drop")


class Origin(NamedTuple):
    """Where a trace's requests were read from, to name one by its place there (`Trace.where`): ``kind`` "csv"
    (records: 0-based data rows as pandas numbers them, named by the file's line), "jsonl" (records: 1-based lines)
    or "frame" (records: 0-based rows of a DataFrame; ``path`` None)."""

    kind: str
    path: str | None = None

    def name(self, record: int) -> str:
        """Record ``record`` named for messages: "line 7 of trace file 'x.csv'" or "row 5 of the trace DataFrame"
        (a CSV's line found by one pass over the file: only on an error's path)."""
        if self.path is None:
            return f"row {record} of the trace DataFrame"
        line = _row_line(Path(self.path), record) if self.kind == "csv" else record
        return f"line {line} of trace file {self.path!r}"


def _origin(path: str | None) -> Origin:
    """The `Origin` of a CSV file's or DataFrame's rows (`_frame_or_file`'s path; None for a DataFrame)."""
    return Origin("frame") if path is None else Origin("csv", path)


class Trace:
    """Requests of a trace in normalized form (read-only arrays, sorted by arrival).

    Attributes:
        arrival_s: arrival times in seconds from the first request (float64, non-decreasing, first 0), or None
            for a length-only trace.
        input_tokens, output_tokens: prompt and output lengths in tokens (int64, >= 1).
        hash_ids, hash_offsets: the prompt block ids of request i are ``hash_ids[hash_offsets[i]:hash_offsets[i+1]]``
            (int64; None when the trace has none). Equal ids mean identical prompt prefixes.
        block_tokens: tokens per hash block (512 for Mooncake).
        source: where the trace came from (file and layout), for messages.
        dropped: rows the reader dropped (failed requests, ``on_zero="drop"``).
        rows: each request's record in the file or DataFrame the readers took it from (int64: the 0-based data row
            of a CSV file or DataFrame, the 1-based line of a JSONL file; None for a trace built from arrays), with
            ``origin`` (`Origin`: the file and how its records are numbered); `where` names request i by it.
    """

    __slots__ = ("arrival_s", "input_tokens", "output_tokens", "hash_ids", "hash_offsets", "block_tokens", "source",
                 "dropped", "rows", "origin", "_sha")

    def __init__(self, arrival_s: np.ndarray | None, input_tokens: np.ndarray, output_tokens: np.ndarray, *,
                 hash_ids: np.ndarray | None = None, hash_offsets: np.ndarray | None = None,
                 block_tokens: int = MOONCAKE_BLOCK_TOKENS, source: str = "trace", dropped: int = 0,
                 rows: np.ndarray | None = None, origin: Origin | None = None, _sorted: bool = False) -> None:
        inp = np.asarray(input_tokens, dtype=np.int64)
        out = np.asarray(output_tokens, dtype=np.int64)
        n = len(inp)
        if inp.ndim != 1 or out.shape != inp.shape:
            raise ValueError(f"{source}: input_tokens and output_tokens must be 1-D arrays of one length, got shapes "
                             f"{inp.shape} and {out.shape}")
        if n == 0:
            raise ValueError(f"{source} has no requests")
        for name, a in (("input_tokens", inp), ("output_tokens", out)):
            if (a < 1).any():
                i = int(np.flatnonzero(a < 1)[0])
                raise ValueError(f"{source}: request {i} {name}={int(a[i])}: token counts are integers >= 1")
        if (hash_ids is None) != (hash_offsets is None):
            raise ValueError(f"{source}: give hash_ids and hash_offsets together")
        if (rows is None) != (origin is None):
            raise ValueError(f"{source}: give rows and origin together")
        rec = None if rows is None else np.asarray(rows, dtype=np.int64)
        if rec is not None and rec.shape != inp.shape:
            raise ValueError(f"{source}: rows has shape {rec.shape}, expected {inp.shape}")
        _check_block_tokens(source, block_tokens)
        hid = off = None
        if hash_ids is not None:
            hid = np.asarray(hash_ids, dtype=np.int64)
            off = np.asarray(hash_offsets, dtype=np.int64)
            if off.shape != (n + 1,) or off[0] != 0 or off[-1] != len(hid) or (np.diff(off) < 0).any():
                raise ValueError(f"{source}: hash_offsets must be {n + 1} non-decreasing offsets from 0 to "
                                 f"len(hash_ids)={len(hid)}")
            over = np.diff(off) > max_blocks(inp, int(block_tokens))
            if over.any():
                i = int(np.flatnonzero(over)[0])
                raise ValueError(f"{source}: request {i} has {int(off[i + 1] - off[i])} hash blocks for a prompt of "
                                 f"{int(inp[i])} tokens: at most {int(max_blocks(inp[i], int(block_tokens)))} blocks "
                                 f"of {int(block_tokens)} tokens (blocks past the prompt would be prefix-cache hits "
                                 f"on tokens it does not have)")
        arr = None
        if arrival_s is not None:
            arr = np.asarray(arrival_s, dtype=np.float64)
            if arr.shape != inp.shape:
                raise ValueError(f"{source}: arrival_s has shape {arr.shape}, expected {inp.shape}")
            bad = ~np.isfinite(arr) | (arr < 0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{source}: request {i} arrival_s={arr[i]!r}: times are finite and >= 0 s")
            if not _sorted and (np.diff(arr) < 0).any():
                order = np.argsort(arr, kind="stable")
                arr, inp, out = arr[order], inp[order], out[order]
                rec = rec[order] if rec is not None else None
                if hid is not None and off is not None:
                    hid, off = _take_csr(hid, off, order)
            arr = arr - arr[0]
        self.arrival_s = _frozen(arr) if arr is not None else None
        self.input_tokens = _frozen(inp)
        self.output_tokens = _frozen(out)
        self.hash_ids = _frozen(hid) if hid is not None else None
        self.hash_offsets = _frozen(off) if off is not None else None
        self.block_tokens = int(block_tokens)
        self.source = str(source)
        self.dropped = int(dropped)
        self.rows = _frozen(rec) if rec is not None else None
        self.origin = origin if rec is not None else None
        self._sha: str | None = None

    # ---- views --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.input_tokens)

    def __repr__(self) -> str:
        rate = f", {self.rate:.3g} req/s" if self.arrival_s is not None and self.duration_s > 0 else ""
        hashes = ", hash_ids" if self.hash_ids is not None else ""
        return f"Trace({self.source}, {len(self)} requests{rate}{hashes})"

    @property
    def has_arrivals(self) -> bool:
        return self.arrival_s is not None

    @property
    def duration_s(self) -> float:
        """Time from the first to the last arrival, s (0 without arrivals)."""
        return float(self.arrival_s[-1]) if self.arrival_s is not None else 0.0

    @property
    def rate(self) -> float:
        """Mean arrival rate, requests/s ((n - 1) / duration; inf when every request arrives at once)."""
        if self.arrival_s is None:
            raise ValueError(f"{self.source} has no arrival times, hence no rate")
        d = self.duration_s
        return (len(self) - 1) / d if d > 0 else math.inf

    def blocks(self, i: int) -> np.ndarray:
        """Hash-block ids of request i's prompt (empty without hash ids)."""
        off = self.hash_offsets
        if self.hash_ids is None or off is None:
            return np.empty(0, dtype=np.int64)
        return self.hash_ids[off[i]:off[i + 1]]

    def where(self, i: int) -> str:
        """Request ``i`` (its position in arrival order) named for messages by where it was read: "line 7 of trace
        file 'x.csv'" (blank lines and quoted fields spanning lines counted, as the readers' errors count them),
        "row 5 of the trace DataFrame", or "request 3 in arrival order of trace <source>" for a trace built from
        arrays."""
        if self.rows is None or self.origin is None:
            return f"request {i} in arrival order of trace {self.source}"
        return self.origin.name(int(self.rows[i]))

    def frame(self) -> pd.DataFrame:
        """The trace as a DataFrame: arrival_s (if any), input_tokens, output_tokens, and hash_ids (lists) if
        any."""
        d: dict[str, object] = {}
        if self.arrival_s is not None:
            d["arrival_s"] = np.array(self.arrival_s)
        d["input_tokens"] = np.array(self.input_tokens)
        d["output_tokens"] = np.array(self.output_tokens)
        if self.hash_ids is not None:
            d["hash_ids"] = [list(map(int, self.blocks(i))) for i in range(len(self))]
        return pd.DataFrame(d)

    def sha256(self) -> str:
        """Digest of the contents (arrivals, lengths, hash ids, block size): equal traces, equal digests."""
        if self._sha is None:
            h = hashlib.sha256()
            for a in (self.arrival_s, self.input_tokens, self.output_tokens, self.hash_ids, self.hash_offsets):
                h.update(b"-" if a is None else np.ascontiguousarray(a).tobytes())
                h.update(b"|")
            h.update(str(self.block_tokens).encode())
            self._sha = h.hexdigest()
        return self._sha

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trace) and self.sha256() == other.sha256()

    def __hash__(self) -> int:
        return hash(self.sha256())

    # ---- transformations (each returns a new Trace) -------------------------------------------------------
    def take(self, idx: Sequence[int] | np.ndarray) -> Trace:
        """The requests at positions ``idx`` (kept in arrival order)."""
        raw = np.asarray(idx)
        if raw.size and raw.dtype.kind not in "iu":
            raise ValueError(f"{self.source}: take() got index {raw.ravel()[0].item()!r} ({raw.dtype}); indices are "
                             f"integer request positions")
        idx = np.sort(raw.astype(np.int64).ravel())
        if len(idx) == 0:
            raise ValueError(f"{self.source}: take() needs at least one request index")
        if idx[0] < 0 or idx[-1] >= len(self):
            raise ValueError(f"{self.source}: request indices must lie in [0, {len(self) - 1}]")
        hid = off = None
        if self.hash_ids is not None and self.hash_offsets is not None:
            hid, off = _take_csr(self.hash_ids, self.hash_offsets, idx)
        return Trace(None if self.arrival_s is None else self.arrival_s[idx], self.input_tokens[idx],
                     self.output_tokens[idx], hash_ids=hid, hash_offsets=off, block_tokens=self.block_tokens,
                     source=self.source, dropped=self.dropped,
                     rows=None if self.rows is None else self.rows[idx], origin=self.origin, _sorted=True)

    def head(self, n: int) -> Trace:
        """The first ``n`` requests (all when n >= len)."""
        _check_count("head", "n", n)
        return self.take(np.arange(min(n, len(self))))

    def sample(self, n: int, seed: int = 0) -> Trace:
        """``n`` requests drawn uniformly without replacement (seeded), in arrival order with their own arrival
        times: the rate drops to about n / len of the original (``scale_rate`` brings it back). ``n`` above the
        trace's length is refused (``n == len``: the trace itself)."""
        _check_count("sample", "n", n)
        _check_count("sample", "seed", seed, lo=0)
        if n > len(self):
            raise ValueError(f"sample(n={n}): {self.source} holds {len(self)} requests; a sample without replacement "
                             f"takes at most that many (the whole trace: n={len(self)})")
        if n == len(self):
            return self
        idx = np.random.default_rng(seed).choice(len(self), size=n, replace=False)
        return self.take(idx)

    def window(self, start_s: float, end_s: float) -> Trace:
        """The requests arriving in [start_s, end_s) seconds from the trace start."""
        if self.arrival_s is None:
            raise ValueError(f"{self.source} has no arrival times to cut a window from")
        if not (math.isfinite(start_s) and end_s > start_s >= 0):
            raise ValueError(f"window({start_s!r}, {end_s!r}): need 0 <= start_s < end_s (seconds)")
        idx = np.flatnonzero((self.arrival_s >= start_s) & (self.arrival_s < end_s))
        if len(idx) == 0:
            raise ValueError(f"{self.source}: no request arrives in [{start_s}, {end_s}) s "
                             f"(the trace spans 0 to {self.duration_s:.6g} s)")
        return self.take(idx)

    def scale_rate(self, k: float) -> Trace:
        """Replay at ``k`` times the rate: every arrival time divided by k (k > 1: denser; lengths unchanged)."""
        if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) \
                or not math.isfinite(k) or k <= 0:
            raise ValueError(f"scale_rate(k={k!r}): k must be a finite number > 0 (1 = the recorded rate)")
        if self.arrival_s is None:
            raise ValueError(f"{self.source} has no arrival times to scale")
        return Trace(self.arrival_s / float(k), self.input_tokens, self.output_tokens, hash_ids=self.hash_ids,
                     hash_offsets=self.hash_offsets, block_tokens=self.block_tokens,
                     source=f"{self.source} x{k:g} rate", dropped=self.dropped, rows=self.rows, origin=self.origin,
                     _sorted=True)

    def to_rate(self, rate: float) -> Trace:
        """Replay scaled so that the mean arrival rate is ``rate`` requests/s (the shape of the arrivals kept)."""
        if isinstance(rate, (bool, np.bool_)) or not (isinstance(rate, (int, float, np.integer, np.floating))
                                                      and math.isfinite(rate) and rate > 0):
            raise ValueError(f"to_rate(rate={rate!r}): rate must be a finite number > 0 (requests/s)")
        r0 = self.rate
        if not math.isfinite(r0):
            raise ValueError(f"{self.source}: every request arrives at once; there is no rate to scale")
        return self.scale_rate(rate / r0)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    if a.flags.writeable:
        a = a.copy() if a.base is not None else a
        a.setflags(write=False)
    return a


def _take_csr(flat: np.ndarray, off: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``idx`` of a CSR list-of-arrays (flat values, offsets)."""
    lens = off[idx + 1] - off[idx]
    new_off = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(lens, out=new_off[1:])
    if new_off[-1] == 0:
        return np.empty(0, dtype=np.int64), new_off
    pos = np.repeat(off[idx] - new_off[:-1], lens) + np.arange(new_off[-1])
    return flat[pos], new_off


def max_blocks(input_tokens: np.ndarray | int, block_tokens: int) -> np.ndarray:
    """Hash blocks a prompt of ``input_tokens`` tokens holds at most: ceil(input_tokens / block_tokens) (Mooncake's
    traces give exactly that many a prompt)."""
    return -(-np.asarray(input_tokens, dtype=np.int64) // int(block_tokens))


def _check_block_tokens(source: str, block_tokens: object) -> None:
    if isinstance(block_tokens, bool) or not isinstance(block_tokens, (int, np.integer)) or block_tokens < 1:
        raise ValueError(f"{source}: block_tokens={block_tokens!r} must be an integer >= 1 (tokens per hash block)")


def _check_count(fn: str, name: str, v: object, lo: int = 1) -> None:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{fn}({name}={v!r}): must be an integer >= {lo}")


# ---- checking columns --------------------------------------------------------------------------------------------

def _where(path: str | None) -> str:
    return f"trace file {path!r}" if path is not None else "trace DataFrame"


def _loc(path: str | None, df: pd.DataFrame, i: int, col: str) -> str:
    """'file 'x.csv', line 7, column 'ContextTokens' (2)' for a CSV (the line data row ``i`` starts on,
    `_row_line`), or 'row 5' of a frame."""
    j = list(df.columns).index(col) + 1
    if path is None:
        return f"trace DataFrame row {i}, column {col!r} ({j})"
    return f"trace file {path!r}, line {_row_line(Path(path), i)}, column {col!r} ({j})"


def _blank(row: Sequence[str]) -> bool:
    """A CSV record pandas skips (``skip_blank_lines``): an empty or whitespace-only line."""
    return len(row) <= 1 and not "".join(row).strip()


def _row_line(p: Path, i: int) -> int:
    """The 1-based line of CSV file ``p`` on which data row ``i`` (0-based, as pandas numbers the rows it reads)
    starts: blank and whitespace-only lines, which pandas skips, and quoted fields spanning lines counted. Only on
    the error path: one pass of the csv module over the file."""
    with _open_text(p) as f:
        rows = csv.reader(f, skipinitialspace=True)
        seen, end = -1, 0                     # data rows read (-1: the header not yet), the last record's end line
        for row in rows:
            start, end = end + 1, rows.line_num
            if _blank(row):
                continue
            if seen == i:
                return start
            seen += 1
    return i + 2                              # not reached for a row pandas read: the header + 1 line a row


def _require(df: pd.DataFrame, cols: Sequence[str], path: str | None, layout: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{_where(path)} ({layout} layout) lacks column(s) {missing}; needed: {list(cols)}, found "
                         f"{list(df.columns)}")
    if len(df) == 0:
        raise ValueError(f"{_where(path)} has no rows")


def _numbers(df: pd.DataFrame, col: str, path: str | None, *, tokens: bool,
             among: np.ndarray | None = None) -> np.ndarray:
    """Column as float64, refusing missing, non-numeric, negative or (tokens) non-integer values in the rows
    ``among`` selects (default all; the others' values are returned as read, NaN where not numbers)."""
    s = df[col]
    x = pd.to_numeric(s, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    sel = np.ones(len(x), dtype=bool) if among is None else among
    bad = ~np.isfinite(x) & sel
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        v = s.iloc[i]
        valid = "integer token counts >= 0" if tokens else "times in seconds, finite and >= 0"
        if np.isinf(x[i]):
            raise ValueError(f"{_loc(path, df, i, col)}: {_as_written(v)} is not a finite number; valid: {valid}")
        what = "(missing)" if pd.isna(v) or (isinstance(v, str) and not v.strip()) else _as_written(v)
        raise ValueError(f"{_loc(path, df, i, col)}: non-numeric value {what}; valid: {valid}")
    valid = f"integer token counts >= 0 and below 2^31 ({MAX_TOKENS})" if tokens else "times in seconds >= 0"
    checks = [(x < 0, "negative")]
    if tokens:
        checks += [(x != np.rint(x), "not an integer"), (x >= MAX_TOKENS, "too large")]
    for bad, what in checks:
        bad = bad & sel
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{_loc(path, df, i, col)}: {_shown(x[i])} is {what}; valid: {valid}")
    return x


def _shown(v: float) -> str:
    """A cell's number as written: -5, -1.5, 1e+23 (never numpy's np.int64(-5))."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e16 else repr(float(v))


def _as_written(v: object) -> str:
    """A cell as written: a string quoted ('abc'), a number plain (1700000000, inf; never np.int64(...))."""
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
        return _shown(float(v)) if math.isfinite(float(v)) else repr(float(v))
    return repr(str(v)) if isinstance(v, str) else repr(v)


def _zeros(df: pd.DataFrame, cols: Mapping[str, np.ndarray], path: str | None, on_zero: str,
           among: np.ndarray | None = None) -> np.ndarray:
    """Mask of rows to keep (within ``among``, default all rows); on_zero='error' refuses a zero token count
    naming where it is."""
    if on_zero not in _ON_ZERO:
        raise ValueError(f"on_zero={on_zero!r}: valid values are {', '.join(_ON_ZERO)}")
    among = np.ones(len(df), dtype=bool) if among is None else among
    zero = np.zeros(len(df), dtype=bool)
    for c, x in cols.items():
        z = (x < 1) & among
        if z.any() and on_zero == "error":
            i = int(np.flatnonzero(z)[0])
            raise ValueError(f"{_loc(path, df, i, c)}: 0 tokens; valid: integers >= 1 (on_zero='drop' drops such "
                             f"rows)")
        zero |= z
    keep = among & ~zero
    if not keep.any():
        raise ValueError(f"{_where(path)}: no request is left (every selected row has a zero token count)")
    return keep


def _gzipped(p: Path) -> bool:
    return p.name.lower().endswith(".gz")


def _open_text(p: Path) -> IO[str]:
    """``p`` as UTF-8 text (a byte-order mark dropped; a ``.gz`` file decompressed)."""
    if _gzipped(p):
        return gzip.open(p, "rt", encoding="utf-8-sig", errors="replace", newline="")
    return p.open("r", encoding="utf-8-sig", errors="replace", newline="")


def _not_gzip(p: Path, exc: Exception) -> ValueError:
    return ValueError(f"trace file {str(p)!r} ends in .gz but is not gzip-compressed ({exc}); rename it or "
                      f"compress it with gzip")


def _read_csv(path: str | Path) -> tuple[pd.DataFrame, str]:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"trace file {str(p)!r} does not exist")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            # index_col=False: a row with a field more than the header is refused below, never read as an index
            # that shifts every column one to the right (a trailing delimiter on every row is read as written)
            df = pd.read_csv(p, skipinitialspace=True, index_col=False, encoding="utf-8-sig",
                             compression="gzip" if _gzipped(p) else None)
    except (gzip.BadGzipFile, EOFError) as exc:
        raise _not_gzip(p, exc) from None
    except pd.errors.ParserError as exc:
        raise _wide_row(p) or ValueError(f"trace file {str(p)!r} is not a readable CSV: "
                                         f"{str(exc).splitlines()[0]}") from None
    except (UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"trace file {str(p)!r} is not a readable CSV: {str(exc).splitlines()[0]}") from None
    parser = [w for w in caught if issubclass(w.category, pd.errors.ParserWarning)]
    if parser:
        raise _wide_row(p) or ValueError(f"trace file {str(p)!r} is not a readable CSV: {parser[0].message}")
    df.columns = [str(c).strip() for c in df.columns]
    return df, str(p)


def _wide_row(p: Path) -> ValueError | None:
    """The error for the first row of CSV file ``p`` with more fields than its header (a non-empty extra field
    first; None if there is none). Only on the error path: one pass of the csv module over the file."""
    with _open_text(p) as f:
        rows = csv.reader(f, skipinitialspace=True)
        header = next((row for row in rows if not _blank(row)), [])
        first: tuple[int, int] | None = None
        for row in rows:
            if len(row) > len(header):
                if any(x.strip() for x in row[len(header):]):
                    first = (rows.line_num, len(row))
                    break
                first = first or (rows.line_num, len(row))
    if first is None:
        return None
    return ValueError(f"trace file {str(p)!r}, line {first[0]}: {first[1]} fields, the header has {len(header)} "
                      f"({header}); every row needs one field per column")


def _frame_or_file(trace: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    if isinstance(trace, pd.DataFrame):
        return trace.reset_index(drop=True), None
    if isinstance(trace, (str, Path)):
        return _read_csv(trace)
    raise TypeError(f"trace {trace!r:.80}: must be a file path or a pandas DataFrame, not {type(trace).__name__}")


# ---- readers -----------------------------------------------------------------------------------------------------

def read_azure(trace: str | Path | pd.DataFrame, *, on_zero: str = "error") -> Trace:
    """Azure LLM inference trace (2023 or 2024 layout): TIMESTAMP (wall clock; with or without a UTC offset,
    any ISO 8601 precision), ContextTokens (input), GeneratedTokens (output). Times become seconds from the
    first request."""
    df, path = _frame_or_file(trace)
    _require(df, _AZURE, path, "azure")
    ts = pd.to_datetime(df["TIMESTAMP"].astype(str).str.strip(), format="ISO8601", utc=True, errors="coerce")
    bad = ts.isna().to_numpy() | df["TIMESTAMP"].isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{_loc(path, df, i, 'TIMESTAMP')}: {_as_written(df['TIMESTAMP'].iloc[i])} is not a timestamp; valid: "
                         f"ISO 8601 date and time such as '2023-11-16 18:17:03.9799600' or "
                         f"'2024-05-10 00:00:00.009930+00:00'")
    t = (ts - ts.min()).dt.total_seconds().to_numpy(np.float64)
    inp = _numbers(df, "ContextTokens", path, tokens=True)
    out = _numbers(df, "GeneratedTokens", path, tokens=True)
    keep = _zeros(df, {"ContextTokens": inp, "GeneratedTokens": out}, path, on_zero)
    return Trace(t[keep], inp[keep], out[keep], source=f"{path or 'DataFrame'} (azure)", dropped=int((~keep).sum()),
                 rows=np.flatnonzero(keep), origin=_origin(path))


def read_burstgpt(trace: str | Path | pd.DataFrame, *, models: Sequence[str] | None = None,
                  log_types: Sequence[str] | None = None, on_zero: str = "drop") -> Trace:
    """BurstGPT CSV: Timestamp (s), Model, Request tokens, Response tokens, Total tokens, Log Type.

    ``models`` / ``log_types`` keep only rows with those values (e.g. ``models=["ChatGPT"]``,
    ``log_types=["Conversation log"]``). Rows with 0 response (or request) tokens are failed requests and are
    dropped (``on_zero="error"`` refuses them instead); `Trace.dropped` counts them.
    """
    df, path = _frame_or_file(trace)
    _require(df, _BURST, path, "burstgpt")
    keep = np.ones(len(df), dtype=bool)
    for col, vals in (("Model", models), ("Log Type", log_types)):
        if vals is None:
            continue
        if col not in df.columns:
            raise ValueError(f"{_where(path)} has no {col!r} column to filter on; found {list(df.columns)}")
        vals = [vals] if isinstance(vals, str) else list(vals)
        present = sorted(map(str, df[col].dropna().unique()))
        unknown = [v for v in vals if v not in present]
        if unknown:
            raise ValueError(f"{_where(path)}: {col} {unknown} not in the trace; values present: {present}")
        keep &= df[col].isin(vals).to_numpy()
    if not keep.any():
        raise ValueError(f"{_where(path)}: no row matches models={models!r} log_types={log_types!r}")
    # only the rows kept are read: another model's malformed row does not refuse the file
    t = _numbers(df, "Timestamp", path, tokens=False, among=keep)
    inp = _numbers(df, "Request tokens", path, tokens=True, among=keep)
    out = _numbers(df, "Response tokens", path, tokens=True, among=keep)
    idx = np.flatnonzero(_zeros(df, {"Request tokens": inp, "Response tokens": out}, path, on_zero, among=keep))
    return Trace(t[idx], inp[idx], out[idx], source=f"{path or 'DataFrame'} (burstgpt)",
                 dropped=int(keep.sum() - len(idx)), rows=idx, origin=_origin(path))


def read_vidur(trace: str | Path | pd.DataFrame, *, on_zero: str = "error") -> Trace:
    """Vidur processed trace: arrived_at (s; optional), num_prefill_tokens (input), num_decode_tokens (output)."""
    df, path = _frame_or_file(trace)
    _require(df, _VIDUR, path, "vidur")
    t = _numbers(df, "arrived_at", path, tokens=False) if "arrived_at" in df.columns else None
    inp = _numbers(df, "num_prefill_tokens", path, tokens=True)
    out = _numbers(df, "num_decode_tokens", path, tokens=True)
    keep = _zeros(df, {"num_prefill_tokens": inp, "num_decode_tokens": out}, path, on_zero)
    return Trace(None if t is None else t[keep], inp[keep], out[keep], source=f"{path or 'DataFrame'} (vidur)",
                 dropped=int((~keep).sum()), rows=np.flatnonzero(keep), origin=_origin(path))


def read_dse(trace: str | Path | pd.DataFrame, *, on_zero: str = "error",
             block_tokens: int = MOONCAKE_BLOCK_TOKENS) -> Trace:
    """dse's own layout: arrival_s (s), input_tokens, output_tokens and optionally hash_ids (what `Trace.frame`
    writes: lists of block ids, as JSON text such as ``[0, 1, 2]`` once written to a CSV file), blocks of
    ``block_tokens`` tokens."""
    df, path = _frame_or_file(trace)
    _require(df, _DSE, path, "dse")
    t = _numbers(df, "arrival_s", path, tokens=False)
    inp = _numbers(df, "input_tokens", path, tokens=True)
    out = _numbers(df, "output_tokens", path, tokens=True)
    keep = _zeros(df, {"input_tokens": inp, "output_tokens": out}, path, on_zero)
    hid = off = None
    if "hash_ids" in df.columns:
        lists = [_json_list(df["hash_ids"].iloc[i]) for i in np.flatnonzero(keep)]
        hid, off = _csr(lists, lambda k: _loc(path, df, int(np.flatnonzero(keep)[k]), "hash_ids"))
    return Trace(t[keep], inp[keep], out[keep], hash_ids=hid, hash_offsets=off, block_tokens=block_tokens,
                 source=f"{path or 'DataFrame'} (dse)", dropped=int((~keep).sum()), rows=np.flatnonzero(keep),
                 origin=_origin(path))


def _json_list(v: Any) -> Any:
    """A hash_ids cell: a list as is; JSON text of a list (a frame written to CSV) parsed; anything else as is,
    for `_csr` to refuse by name."""
    if isinstance(v, str) and v.lstrip().startswith("["):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


def _csr(lists: Sequence[Any], where: Callable[[int], str]) -> tuple[np.ndarray, np.ndarray]:
    """Lists of block ids as CSR (flat values, offsets); `where(k)` names list k in messages."""
    off = np.zeros(len(lists) + 1, dtype=np.int64)
    for k, v in enumerate(lists):
        if not isinstance(v, (list, tuple, np.ndarray)) or any(
                isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not 0 <= h < MAX_HASH for h in v):
            raise ValueError(f"{where(k)}: {v!r:.80} is not a list of integer block ids >= 0 and below 2^63")
        off[k + 1] = off[k] + len(v)
    flat = np.fromiter((h for v in lists for h in v), dtype=np.int64, count=int(off[-1]))
    return flat, off


def _jsonl_lines(p: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of JSONL file ``p`` (a ``.gz`` decompressed, a byte-order mark dropped); a line that is
    not UTF-8, or a .gz that is not gzip, is refused naming the file and the line."""
    try:
        with (gzip.open(p, "rb") if _gzipped(p) else p.open("rb")) as f:
            for ln, raw in enumerate(f, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ValueError(f"trace file {str(p)!r}, line {ln}: not UTF-8 text (byte {exc.start + 1} of the "
                                     f"line is {raw[exc.start:exc.start + 1]!r}); save the trace as UTF-8") from None
                yield ln, text.removeprefix("\ufeff") if ln == 1 else text
    except (gzip.BadGzipFile, EOFError) as exc:
        raise _not_gzip(p, exc) from None


def read_mooncake(path: str | Path, *, block_tokens: int = MOONCAKE_BLOCK_TOKENS, on_zero: str = "error") -> Trace:
    """Mooncake JSONL: one object a line with timestamp (ms from the start), input_length, output_length and
    hash_ids (ids of the prompt's ``block_tokens``-token blocks; optional). Blank lines are skipped."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"trace file {str(p)!r} does not exist")
    if on_zero not in _ON_ZERO:
        raise ValueError(f"on_zero={on_zero!r}: valid values are {', '.join(_ON_ZERO)}")
    _check_block_tokens(f"trace file {str(p)!r}", block_tokens)
    ts: list[float] = []
    inp: list[int] = []
    out: list[int] = []
    lines: list[int] = []
    hashes: list[list[int]] = []
    has_hash: bool | None = None
    dropped = 0
    where = f"trace file {str(p)!r}"
    for ln, line in _jsonl_lines(p):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}, line {ln}, column {exc.colno}: not valid JSON ({exc.msg}); each line "
                             f"must be one object with timestamp, input_length, output_length[, hash_ids]") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{where}, line {ln}: {line.strip()[:60]!r} is not a JSON object")
        vals = []
        for key, tok in (("timestamp", False), ("input_length", True), ("output_length", True)):
            if key not in rec:
                raise ValueError(f"{where}, line {ln}: field {key!r} is missing; found {sorted(rec)}")
            v = rec[key]
            ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 \
                and (not tok or (float(v).is_integer() and v < MAX_TOKENS))
            if not ok:
                valid = f"an integer token count >= 0 and below 2^31 ({MAX_TOKENS})" if tok else \
                    "a time in ms, finite and >= 0"
                raise ValueError(f"{where}, line {ln}, field {key!r}: {v!r} is not {valid}")
            vals.append(v)
        h = rec.get("hash_ids")
        if has_hash is None:
            has_hash = h is not None
        if (h is not None) != has_hash:
            raise ValueError(f"{where}, line {ln}, field 'hash_ids': present on some lines only; give it on "
                             f"every line or on none")
        if h is not None and (not isinstance(h, list) or any(
                isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < MAX_HASH for x in h)):
            raise ValueError(f"{where}, line {ln}, field 'hash_ids': {h!r:.60} is not a list of integers >= 0 "
                             f"and below 2^63 (block hashes)")
        if h is not None and len(h) > max_blocks(int(vals[1]), block_tokens):
            raise ValueError(f"{where}, line {ln}, field 'hash_ids': {len(h)} blocks of {block_tokens} tokens "
                             f"for a prompt of {int(vals[1])} tokens; at most "
                             f"{int(max_blocks(int(vals[1]), block_tokens))} (ceil(input_length / {block_tokens}))")
        if vals[1] < 1 or vals[2] < 1:
            if on_zero == "error":
                key = "input_length" if vals[1] < 1 else "output_length"
                raise ValueError(f"{where}, line {ln}, field {key!r}: 0 tokens; valid: integers >= 1 "
                                 f"(on_zero='drop' drops such lines)")
            dropped += 1
            continue
        ts.append(float(vals[0]) / 1e3)
        inp.append(int(vals[1]))
        out.append(int(vals[2]))
        lines.append(ln)
        if h is not None:
            hashes.append(h)
    if not inp:
        raise ValueError(f"{where} has no requests")
    hid = off = None
    if has_hash:
        hid, off = _csr(hashes, lambda k: f"{where}, request {k}")
    return Trace(np.array(ts), np.array(inp), np.array(out), hash_ids=hid, hash_offsets=off,
                 block_tokens=block_tokens, source=f"{str(p)} (mooncake)", dropped=dropped, rows=np.array(lines),
                 origin=Origin("jsonl", str(p)))


def detect_layout(trace: str | Path | pd.DataFrame) -> str:
    """The layout of a trace file or DataFrame, from its extension and columns (one of `LAYOUTS`)."""
    if isinstance(trace, (str, Path)):
        p = Path(trace)
        if not p.is_file():
            raise ValueError(f"trace file {str(p)!r} does not exist")
        inner = Path(p.name[:-3]) if _gzipped(p) else p          # conv.csv.gz: a .csv
        if inner.suffix.lower() in (".jsonl", ".json"):
            return "mooncake"
        try:
            with _open_text(p) as f:
                header = next((line for line in f if line.strip()), "")     # pandas skips blank lines before it
        except (gzip.BadGzipFile, EOFError) as exc:
            raise _not_gzip(p, exc) from None
        if not header.strip():
            raise ValueError(f"trace file {str(p)!r} is empty (no header line); a trace CSV starts with its column "
                             f"names, e.g. {','.join(_AZURE)}")
        cols = [c.strip().strip('"') for c in header.rstrip("\r\n").split(",")]
        where = f"trace file {str(p)!r}"
    elif isinstance(trace, pd.DataFrame):
        cols = [str(c) for c in trace.columns]
        where = "trace DataFrame"
    else:
        raise TypeError(f"trace {trace!r:.80}: must be a file path, a pandas DataFrame or a serving.Trace, not "
                        f"{type(trace).__name__}")
    for layout, need in (("azure", _AZURE), ("burstgpt", _BURST), ("vidur", _VIDUR), ("dse", _DSE)):
        if all(c in cols for c in need):
            return layout
    raise ValueError(f"{where}: columns {cols} match no known trace layout; valid layouts: azure {list(_AZURE)}, "
                     f"burstgpt {list(_BURST)}, vidur {list(_VIDUR)} (+ optional 'arrived_at'), dse {list(_DSE)}, "
                     f"mooncake (.jsonl: timestamp, input_length, output_length, hash_ids)")


_READERS: dict[str, Callable[..., Trace]] = {"azure": read_azure, "mooncake": read_mooncake, "burstgpt": read_burstgpt, "vidur": read_vidur,
            "dse": read_dse}


def read_trace(trace: str | Path | pd.DataFrame | Trace, layout: str | None = None, **kw: object) -> Trace:
    """Read a trace in any known layout (detected from the extension and columns unless ``layout`` is given;
    see the module docstring); ``kw`` go to the layout's reader. A `Trace` is returned as is."""
    if isinstance(trace, Trace):
        return trace
    if layout is None:
        layout = detect_layout(trace)
    if layout not in _READERS:
        raise ValueError(f"layout={layout!r}: valid layouts are {', '.join(LAYOUTS)}")
    if layout == "mooncake" and not isinstance(trace, (str, Path)):
        raise ValueError("the mooncake layout is read from a JSONL file path")
    return _READERS[layout](trace, **kw)


#: Trace samples shipped with the package (objectives/data/traces/; licenses and attribution in NOTICE and the
#: folder's README.md).
SAMPLES = {
    "azure_conv_2023": "azure_llm_2023_conv_sample.csv",
    "azure_code_2023": "azure_llm_2023_code_sample.csv",
    "mooncake_conversation": "mooncake_conversation_sample.jsonl",
}


def sample_path(name: str) -> Path:
    """Path of a shipped trace sample (one of `SAMPLES`)."""
    if name not in SAMPLES:
        raise ValueError(f"trace sample {name!r} unknown; valid: {', '.join(SAMPLES)}")
    return Path(__file__).resolve().parent.parent / "data" / "traces" / SAMPLES[name]


def load_sample(name: str) -> Trace:
    """A shipped trace sample as a `Trace` (see `SAMPLES`)."""
    return read_trace(sample_path(name))


__all__ = ["Trace", "Origin", "LAYOUTS", "SAMPLES", "read_trace", "read_azure", "read_mooncake", "read_burstgpt", "read_vidur",
           "read_dse", "detect_layout", "sample_path", "load_sample", "MOONCAKE_BLOCK_TOKENS"]
