"""Trial reads of :class:`dse.storage.sql.SQLStorage`: trials as a DataFrame (``load_trials``) or a columnar
``TrialTable`` (``load_table``), from row-per-trial storage and column blocks alike, plus counts, the study's
version stamp and the workers with running trials."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from dse.storage.columns import decode_block
from dse.storage.schema import FINISHED_STATES, studies, trial_blocks, trials
from dse.storage.sql_connection import SQLConnection, _check_states, _int
from dse.storage.table import TrialTable, block_dicts, blocks_table, concat_tables, rows_table
from dse.storage.values import objects


class TrialReads(SQLConnection):
    """The trial-reading half of the storage interface (``BaseStorage``) over SQL."""

    # -- trials ---------------------------------------------------------------------------------------------------
    def load_trials(
        self, study_id: int, *, states: Sequence[str] | None = None, min_number: int | None = None
    ) -> pd.DataFrame:
        rows, blocks = self._read(study_id, states, min_number)
        parts = [_trials_frame(rows)]
        for b, worker in blocks:
            n = len(b.numbers)
            base = blocks_table([(b, worker)]).base
            base["params"] = objects(block_dicts(b.params, n, nan_as_none=True))
            base["metrics"] = objects(block_dicts(b.metrics, n))
            parts.append(base[list(_FRAME_COLUMNS)])
        parts = [p for p in parts if len(p)] or parts[:1]
        df = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        if len(parts) > 1:
            df = df.sort_values("number", kind="stable").reset_index(drop=True)
        return df.astype({"number": "int64", "started_at": "float64", "finished_at": "float64",
                          "duration_s": "float64"})

    def load_table(
        self, study_id: int, *, states: Sequence[str] | None = None, min_number: int | None = None
    ) -> TrialTable:
        rows, blocks = self._read(study_id, states, min_number)
        raw = _trials_frame(rows)
        parts = [rows_table(raw.drop(columns=["params", "metrics"]), raw["params"], raw["metrics"])] if rows else []
        if blocks or not parts:
            parts.append(blocks_table(blocks))
        return concat_tables(parts)

    def _read(self, study_id: int, states: Sequence[str] | None, min_number: int | None
              ) -> tuple[list[Any], list[tuple[Any, str | None]]]:
        """Trials stored a row each (raw rows) and the decoded blocks (with their worker), filtered."""
        sid = _int(study_id, "study_id")
        wanted = _check_states(states)
        low = None if min_number is None else _int(min_number, "min_number")
        stmt = select(
            trials.c.number, trials.c.state, trials.c.params, trials.c.metrics, trials.c.feasible, trials.c.error,
            trials.c.worker, trials.c.started_at, trials.c.finished_at, trials.c.duration_s,
        ).where(trials.c.study_id == sid)
        bstmt = select(trial_blocks.c.first_number, trial_blocks.c.worker, trial_blocks.c.data).where(
            trial_blocks.c.study_id == sid)
        if wanted is not None:
            stmt = stmt.where(trials.c.state.in_(wanted))
            if "complete" not in wanted:
                bstmt = bstmt.where(trial_blocks.c.n_failed > 0)
            if "failed" not in wanted:
                bstmt = bstmt.where(trial_blocks.c.n_complete > 0)
        if low is not None:
            stmt = stmt.where(trials.c.number >= low)
            bstmt = bstmt.where(trial_blocks.c.last_number >= low)
        stmt = stmt.order_by(trials.c.number)
        bstmt = bstmt.order_by(trial_blocks.c.first_number)

        def tx(conn: Connection) -> tuple[list[Any], list[Any]]:
            self._require_study(conn, sid)
            return _fetch_raw(conn, stmt), _fetch_raw(conn, bstmt)

        rows, raw_blocks = self._transaction(tx, write=False)
        blocks = []
        for first, worker, data in raw_blocks:
            b = decode_block(data, int(first))
            keep = np.ones(len(b.numbers), dtype=bool)
            if low is not None:
                keep &= b.numbers >= low
            if wanted is not None:
                keep &= np.isin(np.where(b.base["complete"], "complete", "failed"), wanted)
            blocks.append((b if keep.all() else b.take(keep), worker))
        return rows, [(b, w) for b, w in blocks if len(b.numbers)]

    def trials_version(self, study_id: int) -> float:
        sid = _int(study_id, "study_id")

        def tx(conn: Connection) -> float:
            found = conn.execute(select(studies.c.updated_at).where(studies.c.id == sid)).scalar_one_or_none()
            if found is None:
                self._no_study(conn, sid)
            return float(found)

        return self._transaction(tx, write=False)

    def count_trials(self, study_id: int, states: Sequence[str] | None = None) -> int:
        sid = _int(study_id, "study_id")
        wanted = _check_states(states)
        stmt = select(func.count()).select_from(trials).where(trials.c.study_id == sid)
        if wanted is not None:
            stmt = stmt.where(trials.c.state.in_(wanted))
        counted = [trial_blocks.c[f"n_{s}"] for s in FINISHED_STATES if wanted is None or s in wanted]
        bstmt = select(func.coalesce(func.sum(sum(counted[1:], counted[0]) if counted else 0), 0)).where(
            trial_blocks.c.study_id == sid)

        def tx(conn: Connection) -> int:
            self._require_study(conn, sid)
            return int(conn.execute(stmt).scalar_one()) + (int(conn.execute(bstmt).scalar_one()) if counted else 0)

        return self._transaction(tx, write=False)

    def running_workers(self, study_id: int) -> list[str]:
        sid = _int(study_id, "study_id")

        def tx(conn: Connection) -> list[str]:
            self._require_study(conn, sid)
            return list(
                conn.execute(
                    select(trials.c.worker)
                    .where(trials.c.study_id == sid, trials.c.state == "running", trials.c.worker.is_not(None))
                    .distinct()
                ).scalars()
            )

        return sorted(self._transaction(tx, write=False))


_FRAME_COLUMNS = (
    "number", "state", "params", "metrics", "feasible", "error", "worker", "started_at", "finished_at", "duration_s",
)


def _fetch_raw(conn: Connection, stmt: Any) -> list[tuple]:
    """All rows of ``stmt`` as plain DBAPI tuples, skipping SQLAlchemy's per-row Row objects (load_trials is hot)."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    args = tuple(params[k] for k in compiled.positiontup) if compiled.positional else params
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cur = cast(Any, conn.connection.dbapi_connection).cursor()
    try:
        cur.execute(compiled.string, args)
        return list(cur.fetchall())
    except dbapi_error as exc:  # as SQLAlchemy would wrap it, so that the retry loop sees "database is locked"
        raise DBAPIError.instance(compiled.string, args, exc, dbapi_error) from exc
    finally:
        cur.close()


def _trials_frame(rows: Sequence[Any]) -> pd.DataFrame:
    """Columns of :meth:`SQLStorage.load_trials` from raw rows; JSON columns parsed in one ``json.loads`` each."""
    n = len(rows)
    cols = list(zip(*rows)) if n else [()] * len(_FRAME_COLUMNS)
    params = json.loads("[" + ",".join(cols[2]) + "]")
    metrics = json.loads("[" + ",".join(m if m is not None else "{}" for m in cols[3]) + "]")
    return pd.DataFrame(
        {
            "number": np.fromiter(cols[0], dtype=np.int64, count=n),
            "state": pd.Series(objects(cols[1]), dtype=object),
            "params": objects(params),
            "metrics": objects(metrics),
            # object dtype of True/False/None (SQLite hands back 0/1): .astype(bool) maps None to False
            "feasible": pd.Series(objects([None if v is None else bool(v) for v in cols[4]]), dtype=object),
            "error": pd.Series(objects(cols[5]), dtype=object),  # object dtype keeps None (not NaN)
            "worker": pd.Series(objects(cols[6]), dtype=object),
            "started_at": np.array(cols[7], dtype=np.float64),
            "finished_at": np.array(cols[8], dtype=np.float64),
            "duration_s": np.array(cols[9], dtype=np.float64),
        },
        columns=list(_FRAME_COLUMNS),
    )
