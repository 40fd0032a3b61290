"""Trial writes of :class:`dse.storage.sql.SQLStorage`: reserve running trials, finish them, add finished trials
(a row each, or column blocks of at most ``BLOCK_ROWS`` trials), and fail running ones (a crash, Ctrl-C, a dead
worker). Every write takes the study's row lock first (``_lock_study`` / ``_take_numbers``)."""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection

from dse.errors import StorageError, StudyError
from dse.storage.columns import BLOCK_ROWS, TrialColumns, encode_block
from dse.storage.schema import FINISHED_STATES, trial_blocks, trials
from dse.storage.sql_connection import SQLConnection, _chunks, _int
from dse.storage.values import encode_json as _encode
from dse.storage.values import opt_bool as _opt_bool
from dse.storage.values import opt_float as _opt_float
from dse.storage.values import opt_str as _opt_str
from dse.storage.values import short as _short


class TrialWrites(SQLConnection):
    """The trial-writing half of the storage interface (``BaseStorage``) over SQL."""

    def _insert_numbered(self, conn: Connection, study_id: int, rows: list[dict[str, Any]], now: float) -> list[int]:
        """Take the next len(rows) trial numbers and insert the rows with them, in the caller's transaction (no
        rows: only check that the study exists)."""
        if not rows:
            self._require_study(conn, study_id)
            return []
        start = self._take_numbers(conn, study_id, len(rows), now)
        cols = list(dict.fromkeys(k for row in rows for k in row)) + ["number"]
        values = [tuple(row.get(c) for c in cols[:-1]) + (start + i,) for i, row in enumerate(rows)]
        # one pre-built statement through the driver's executemany: SQLAlchemy's per-row parameter processing cost
        # more than SQLite's insert itself (every value here is already a plain, validated Python value)
        mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(conn.dialect.paramstyle)
        unknown = set(cols) - set(trials.c.keys())
        if unknown:
            raise StorageError(f"trial rows carry unknown field(s) {sorted(unknown)}; valid: {list(trials.c.keys())}")
        if mark is None:   # another driver's parameter style: SQLAlchemy's generic path
            conn.execute(trials.insert(), [dict(zip(cols, v)) for v in values])
        else:
            sql = f"INSERT INTO {trials.name} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
            conn.exec_driver_sql(sql, values)
        return list(range(start, start + len(rows)))

    @staticmethod
    def _finished_fields(row: Any, what: str) -> dict[str, Any]:
        if not isinstance(row, Mapping):
            raise StorageError(f"{what} must be a dict, got {type(row).__name__} {_short(row)}")
        state = row.get("state")
        if state not in FINISHED_STATES:
            raise StorageError(f"{what}['state'] = {state!r} is not a finished state; valid: {list(FINISHED_STATES)!r}")
        metrics = row.get("metrics")
        return {
            "state": state,
            "metrics": _encode({} if metrics is None else metrics, f"{what}['metrics']"),
            "feasible": _opt_bool(row.get("feasible"), f"{what}['feasible']"),
            "error": _opt_str(row.get("error"), f"{what}['error']"),
            "finished_at": _opt_float(row.get("finished_at"), f"{what}['finished_at']"),
            "duration_s": _opt_float(row.get("duration_s"), f"{what}['duration_s']"),
        }

    # -- trials ---------------------------------------------------------------------------------------------------
    def reserve_trials(self, study_id: int, params: list[dict[str, Any]], worker: str | None) -> list[int]:
        sid = _int(study_id, "study_id")
        worker = _opt_str(worker, "worker", 255)
        encoded = [_encode(p, f"params[{i}]") for i, p in enumerate(params)]
        now = time.time()

        def tx(conn: Connection) -> list[int]:
            return self._insert_numbered(conn, sid, [
                {"study_id": sid, "state": "running", "params": p, "metrics": None, "feasible": None, "error": None,
                 "worker": worker, "started_at": now, "finished_at": None, "duration_s": None}
                for p in encoded
            ], now)

        return self._transaction(tx, write=True)

    def finish_trials(self, study_id: int, results: list[dict[str, Any]]) -> None:
        sid = _int(study_id, "study_id")
        values = []
        for i, r in enumerate(results):
            fields = self._finished_fields(r, f"results[{i}]")
            fields["b_number"] = _int(r.get("number"), f"results[{i}]['number']")
            values.append(fields)
        nums = [v["b_number"] for v in values]
        if len(set(nums)) != len(nums):
            dup = sorted({x for x in nums if nums.count(x) > 1})[:10]
            raise StorageError(f"results repeat trial number(s) {dup}; each trial is finished once per call")
        now = time.time()
        stmt = (
            update(trials)
            .where(trials.c.study_id == sid, trials.c.number == bindparam("b_number"))
            .values(
                state=bindparam("state"), metrics=bindparam("metrics"), feasible=bindparam("feasible"),
                error=bindparam("error"), finished_at=bindparam("finished_at"), duration_s=bindparam("duration_s"),
            )
        )

        def tx(conn: Connection) -> None:
            self._lock_study(conn, sid, now)
            if not values:
                return
            found: set[int] = set()
            for chunk in _chunks(nums):
                found.update(
                    conn.execute(
                        select(trials.c.number).where(trials.c.study_id == sid, trials.c.number.in_(list(chunk)))
                    ).scalars()
                )
            missing = sorted(set(nums) - found)
            if missing:
                raise StudyError(
                    f"trial number(s) {missing[:10]}{' ...' if len(missing) > 10 else ''} do not exist in study "
                    f"{sid}; reserve them with reserve_trials first"
                )
            conn.execute(stmt, values)

        self._transaction(tx, write=True)

    def add_trials(self, study_id: int, rows: list[dict[str, Any]], worker: str | None) -> list[int]:
        sid = _int(study_id, "study_id")
        worker = _opt_str(worker, "worker", 255)
        if not isinstance(rows, (list, tuple)):
            raise StorageError(f"rows must be a list of dicts, got {type(rows).__name__} {_short(rows)}")
        return self._add_blocks(sid, TrialColumns.of_rows(rows), worker)

    def add_columns(self, study_id: int, cols: TrialColumns, worker: str | None) -> list[int]:
        sid = _int(study_id, "study_id")
        worker = _opt_str(worker, "worker", 255)
        if not isinstance(cols, TrialColumns):
            raise StorageError(f"add_columns needs a TrialColumns, got {type(cols).__name__} {_short(cols)}")
        cols.check()
        return self._add_blocks(sid, cols, worker)

    def finish_columns(self, study_id: int, numbers: Sequence[int], cols: TrialColumns, worker: str | None) -> None:
        sid = _int(study_id, "study_id")
        worker = _opt_str(worker, "worker", 255)
        if not isinstance(cols, TrialColumns):
            raise StorageError(f"finish_columns needs a TrialColumns, got {type(cols).__name__} {_short(cols)}")
        nums = np.asarray(numbers)
        n = len(cols)
        if nums.dtype.kind not in "iu" or len(nums) != n or (n and not (np.diff(nums) == 1).all()):
            raise StorageError(f"finish_columns needs {n} contiguous trial numbers (as reserve_trials gives them), "
                               f"got {_short(list(numbers))}")
        cols.check()
        blocks = self._encode_blocks(cols)
        now = time.time()

        def tx(conn: Connection) -> None:
            self._lock_study(conn, sid, now)
            if not n:
                return
            first, last = int(nums[0]), int(nums[-1])
            span = (trials.c.study_id == sid) & trials.c.number.between(first, last)
            found = int(conn.execute(select(func.count()).select_from(trials).where(span)).scalar_one())
            if found != n:
                raise StudyError(f"trial numbers {first}..{last} are not all reserved in study {sid} ({found} of {n} "
                                 "are); reserve them with reserve_trials first")
            conn.execute(trials.delete().where(span))
            self._insert_blocks(conn, sid, first, blocks, worker)

        self._transaction(tx, write=True)

    def _add_blocks(self, sid: int, cols: TrialColumns, worker: str | None) -> list[int]:
        """Store finished trials as new, numbered blocks in one transaction (encoded, and so validated, before it
        starts)."""
        n = len(cols)
        blocks = self._encode_blocks(cols)
        now = time.time()

        def tx(conn: Connection) -> list[int]:
            if not n:
                self._require_study(conn, sid)
                return []
            first = self._take_numbers(conn, sid, n, now)
            self._insert_blocks(conn, sid, first, blocks, worker)
            return list(range(first, first + n))

        return self._transaction(tx, write=True)

    @staticmethod
    def _encode_blocks(cols: TrialColumns) -> list[tuple[int, int, int, bytes]]:
        """(offset, rows, complete rows, bytes) of each block of at most BLOCK_ROWS trials of ``cols``."""
        n = len(cols)
        complete = np.asarray(cols.state, dtype=object) == "complete"
        return [(a, min(a + BLOCK_ROWS, n) - a, int(complete[a:a + BLOCK_ROWS].sum()),
                 encode_block(cols.rows(a, min(a + BLOCK_ROWS, n)))) for a in range(0, n, BLOCK_ROWS)]

    @staticmethod
    def _insert_blocks(conn: Connection, sid: int, first: int, blocks: list[tuple[int, int, int, bytes]],
                       worker: str | None) -> None:
        conn.execute(trial_blocks.insert(), [
            {"study_id": sid, "first_number": first + a, "last_number": first + a + k - 1, "n_complete": c,
             "n_failed": k - c, "worker": worker, "data": data}
            for a, k, c, data in blocks
        ])

    def fail_running(
        self,
        study_id: int,
        *,
        numbers: Sequence[int] | None = None,
        workers: Sequence[str] | None = None,
        reason: str,
    ) -> list[dict[str, Any]]:
        sid = _int(study_id, "study_id")
        if not isinstance(reason, str):
            raise StorageError(f"reason must be a str, got {_short(reason)}")
        nums = None if numbers is None else [_int(x, "numbers[...]") for x in numbers]
        if isinstance(workers, str):
            workers = [workers]
        wks = None if workers is None else [_opt_str(w, "workers[...]") for w in workers]
        now = time.time()

        def tx(conn: Connection) -> list[Any]:
            self._lock_study(conn, sid, now)
            out: list[Any] = []
            for chunk in _chunks(nums) if nums is not None else [None]:
                stmt = update(trials).where(trials.c.study_id == sid, trials.c.state == "running")
                if chunk is not None:
                    stmt = stmt.where(trials.c.number.in_(list(chunk)))
                if wks is not None:
                    stmt = stmt.where(trials.c.worker.in_(wks))
                stmt = stmt.values(
                    state="failed", error=reason, finished_at=now, duration_s=now - trials.c.started_at
                ).returning(trials.c.number, trials.c.params)
                out.extend(conn.execute(stmt).all())
            return out

        rows = self._transaction(tx, write=True)
        return [{"number": int(n), "params": json.loads(p)} for n, p in sorted(rows, key=lambda r: r[0])]

