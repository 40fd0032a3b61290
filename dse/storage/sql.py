"""SQLStorage: bulk trial storage over SQLAlchemy Core (SQLite by default, PostgreSQL or any SQLAlchemy URL).

Design (see :mod:`dse.storage.base` for the conventions of the interface):

- One transaction per call. On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (SQLAlchemy's
  documented event-hook recipe: the driver's own BEGIN is disabled and ours is emitted), so a writer takes the
  file's write lock up front and never fails half-way with SQLITE_BUSY; reads use a plain deferred ``BEGIN``.
- SQLite runs in WAL mode with ``synchronous=NORMAL`` (a SIGKILL of any process loses no committed transaction
  and cannot corrupt the file) and a busy timeout; on top of that a transaction that still meets "database is
  locked"/"busy" (or, on PostgreSQL, a serialization failure or deadlock) is retried as a whole with jittered
  exponential backoff, so no lock error reaches the user unless the lock is held for ``retry_timeout_s``.
- Trial numbers come from the study row's ``next_number`` counter, advanced by
  ``UPDATE dse_studies SET next_number = next_number + n ... RETURNING next_number`` inside the same transaction
  that inserts the trials: a row lock on PostgreSQL, the file write lock on SQLite. Same code on both.
- JSON columns are TEXT (json.dumps with ``allow_nan=True``), so NaN/inf round-trip; see :mod:`dse.storage.base`.
"""
from __future__ import annotations

import importlib.util
import json
import numbers as _numbers
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, case, create_engine, event, func, select, text, update
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from dse.errors import StorageError, StudyError
from dse.storage.base import BaseStorage
from dse.storage.columns import BLOCK_ROWS, TrialColumns, decode_block, encode_block, objects
from dse.storage.columns import encode_json as _encode
from dse.storage.columns import opt_bool as _opt_bool
from dse.storage.columns import opt_float as _opt_float
from dse.storage.columns import opt_str as _opt_str
from dse.storage.columns import short as _short
from dse.storage.schema import (
    FINISHED_STATES,
    SCHEMA_VERSION,
    STATES,
    meta_table,
    metadata,
    studies,
    trial_blocks,
    trials,
)
from dse.storage.schema import attrs as attrs_table
from dse.storage.table import TrialTable, block_dicts, blocks_table, concat_tables, rows_table

T = TypeVar("T")

#: Valid storage forms, quoted by every "cannot open" error.
#: The storage URL of a throwaway in-memory study (nothing written to disk; gone with the process).
MEMORY = ":memory:"

VALID_URLS = (
    "None (a SQLite file studies/<name>.db), ':memory:' (in this process only, nothing written), "
    "a file path ending .db/.sqlite/.sqlite3, 'sqlite:///path/to/file.db', "
    "or any SQLAlchemy URL with an installed driver such as 'postgresql://user:password@host:5432/dbname' "
    "(psycopg2)"
)
_CHUNK = 900  # bound parameters per IN (...) list: below SQLite's historical limit of 999
_PG_SCHEMA_LOCK = 0x64_73_65_31  # pg_advisory_xact_lock key ("dse1") serializing schema creation


def _int(value: Any, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (_numbers.Integral, np.integer)):
        raise StorageError(f"{what} must be an int, got {type(value).__name__} {_short(value)}")
    return int(value)


def _check_states(states: Sequence[str] | str | None, allowed: Sequence[str] = STATES) -> list[str] | None:
    if states is None:
        return None
    if isinstance(states, str):
        states = [states]
    out = list(states)
    bad = [s for s in out if s not in allowed]
    if bad:
        raise StorageError(f"unknown trial state(s) {bad!r}; valid states: {list(allowed)!r}")
    return out


def _chunks(seq: Sequence[T], size: int = _CHUNK) -> list[Sequence[T]]:
    return [seq[i : i + size] for i in range(0, len(seq), size)] or [seq[:0]]


def mask_url(url: str | URL) -> str:
    """``url`` with its password replaced by ``***`` (best effort for strings SQLAlchemy cannot parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable string: mask anything between ':' and '@'
        s = str(url)
        if "@" in s and "://" in s:
            head, rest = s.split("://", 1)
            cred, host = rest.rsplit("@", 1)
            if ":" in cred:
                cred = cred.split(":", 1)[0] + ":***"
            return f"{head}://{cred}@{host}"
        return s


def _is_transient(exc: DBAPIError) -> bool:
    """A lock/busy error (SQLite) or serialization failure/deadlock (PostgreSQL): retrying the transaction helps."""
    msg = str(getattr(exc, "orig", exc)).lower()
    if "database is locked" in msg or "database is busy" in msg or "database table is locked" in msg:
        return True
    return getattr(getattr(exc, "orig", None), "pgcode", None) in ("40001", "40P01")


class _NewerSchema(StorageError):
    """The database holds a schema version newer than this dse reads."""


class SQLStorage(BaseStorage):
    """Trials and studies in a SQL database through SQLAlchemy Core.

    Args:
        url: a SQLAlchemy URL (``sqlite:///file.db``, ``postgresql://user:pw@host/db``, ``sqlite://`` in memory).
        busy_timeout_s: SQLite busy timeout (s) each connection waits for a lock before reporting busy.
        retry_timeout_s: how long (s) a transaction that meets a transient lock error is retried before
            a StorageError is raised.

    Raises:
        StorageError: the URL cannot be opened (bad scheme, missing driver, unreachable server, directory not
            writable) or holds a newer schema version than this dse reads.
    """

    def __init__(self, url: str | URL, *, busy_timeout_s: float = 30.0, retry_timeout_s: float = 300.0) -> None:
        if isinstance(url, str) and url == MEMORY:
            url = "sqlite://"   # a private SQLite database in this process's memory, gone when it is closed
            self.url = MEMORY
        else:
            self.url = mask_url(url)
        self._retry_timeout_s = float(retry_timeout_s)
        self._rng = random.Random()
        try:
            sa_url = make_url(url)
        except (SQLAlchemyError, ValueError, TypeError) as exc:
            raise StorageError(f"storage URL {self.url!r} cannot be parsed ({exc}); valid: {VALID_URLS}") from None
        self._sqlite = sa_url.get_backend_name() == "sqlite"
        self._postgres = sa_url.get_backend_name() == "postgresql"
        try:
            self._engine = self._make_engine(sa_url, busy_timeout_s)
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - NoSuchModuleError, ImportError, ArgumentError, ...
            raise StorageError(
                f"storage URL {self.url!r} cannot be opened: {type(exc).__name__}: {exc}; valid: {VALID_URLS}"
            ) from None
        self._pid = os.getpid()
        try:
            self._setup_schema()
        except _NewerSchema:
            self._engine.dispose()
            raise
        except StorageError as exc:  # a database error while reading/creating the schema
            self._engine.dispose()
            raise StorageError(f"{exc}; the storage cannot be opened; valid: {VALID_URLS}") from None
        except Exception as exc:  # noqa: BLE001 - OperationalError (unreachable, unwritable), ...
            self._engine.dispose()
            raise StorageError(
                f"storage {self.url!r} cannot be opened: {type(exc).__name__}: {getattr(exc, 'orig', None) or exc}; "
                f"valid: {VALID_URLS}"
            ) from None

    # -- engine and transactions ----------------------------------------------------------------------------------
    def _make_engine(self, sa_url: URL, busy_timeout_s: float) -> Engine:
        if not self._sqlite:
            if sa_url.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
                sa_url = sa_url.set(drivername="postgresql+psycopg2")  # SQLAlchemy 2.1 defaults to psycopg 3
            kwargs: dict[str, Any] = {}
            if sa_url.get_driver_name() == "psycopg2":
                kwargs["executemany_mode"] = "values_plus_batch"  # batched executemany UPDATE (finish_trials)
            return create_engine(sa_url, pool_pre_ping=True, **kwargs)
        database = sa_url.database or ""
        if database in ("", ":memory:"):
            engine = create_engine(sa_url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            if not database.startswith("file:"):
                path = Path(database)
                if path.is_dir():
                    raise StorageError(f"storage {self.url!r} names a directory, not a database file; valid: {VALID_URLS}")
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StorageError(
                        f"storage {self.url!r}: cannot create directory {str(path.parent)!r} ({exc}); valid: {VALID_URLS}"
                    ) from None
            engine = create_engine(
                sa_url, connect_args={"timeout": float(busy_timeout_s), "check_same_thread": False}
            )
        in_memory = database in ("", ":memory:")

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (SQLAlchemy's documented recipe)
            cur = dbapi_connection.cursor()
            try:
                cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
                if not in_memory:
                    cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
            finally:
                cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql(conn.get_execution_options().get("dse_begin", "BEGIN"))

        return engine

    def _transaction(self, fn: Callable[[Connection], T], *, write: bool) -> T:
        """Run ``fn(conn)`` in one transaction; retry the whole of it on transient lock errors."""
        if os.getpid() != self._pid:  # forked child: never reuse the parent's pooled connections
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        delay = 0.002
        deadline = time.monotonic() + self._retry_timeout_s
        while True:
            try:
                with self._engine.connect() as conn:
                    if write and self._sqlite:
                        conn.execution_options(dse_begin="BEGIN IMMEDIATE")
                    with conn.begin():
                        return fn(conn)
            except DBAPIError as exc:
                if _is_transient(exc) and time.monotonic() < deadline:
                    time.sleep(delay * (0.5 + self._rng.random()))
                    delay = min(delay * 2.0, 0.25)
                    continue
                detail = " ".join(str(exc.orig if exc.orig is not None else exc).split())
                raise StorageError(
                    f"storage {self.url!r}: {type(exc.orig or exc).__name__}: {detail}"
                ) from None

    def _setup_schema(self) -> None:
        def version(conn: Connection) -> str | None:
            return conn.execute(
                select(meta_table.c.value).where(meta_table.c.key == "schema_version")
            ).scalar_one_or_none()

        def check(found: str | None) -> None:
            if found is not None and int(found) > SCHEMA_VERSION:
                raise _NewerSchema(
                    f"storage {self.url!r} holds dse schema version {found}, newer than the version this dse "
                    f"reads ({SCHEMA_VERSION}); upgrade dse to open it"
                )

        def has_tables(conn: Connection) -> bool:
            names = set(conn.dialect.get_table_names(conn))
            return all(t.name in names for t in metadata.sorted_tables)

        def read(conn: Connection) -> str | None:
            return version(conn) if has_tables(conn) else None

        found = self._transaction(read, write=False)  # fast path: schema already there
        check(found)
        if found is not None and int(found) == SCHEMA_VERSION:
            return

        def create(conn: Connection) -> None:
            if self._postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK})
            metadata.create_all(conn, checkfirst=True)
            found = version(conn)
            check(found)
            if found is None:
                conn.execute(meta_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(found) < SCHEMA_VERSION:   # an older schema: create_all added its new tables, nothing moves
                conn.execute(update(meta_table).where(meta_table.c.key == "schema_version")
                             .values(value=str(SCHEMA_VERSION)))

        self._transaction(create, write=True)

    # -- helpers --------------------------------------------------------------------------------------------------
    def _require_study(self, conn: Connection, study_id: int) -> None:
        if conn.execute(select(studies.c.id).where(studies.c.id == study_id)).first() is None:
            self._no_study(conn, study_id)

    def _no_study(self, conn: Connection, study_id: int) -> NoReturn:
        known = conn.execute(select(studies.c.id, studies.c.name).order_by(studies.c.id).limit(20)).all()
        raise StudyError(
            f"no study with id {study_id!r} in {self.url}; existing: "
            + (", ".join(f"{i} ({n!r})" for i, n in known) or "none")
        )

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

    def _take_numbers(self, conn: Connection, study_id: int, n: int, now: float) -> int:
        """Advance the study's counter by ``n`` under its row/file lock; return the first number taken."""
        end = conn.execute(
            update(studies)
            .where(studies.c.id == study_id)
            .values(next_number=studies.c.next_number + n, updated_at=_stamp(now))
            .returning(studies.c.next_number)
        ).scalar_one_or_none()
        if end is None:
            self._no_study(conn, study_id)
        return int(end) - n

    def _lock_study(self, conn: Connection, study_id: int, now: float) -> None:
        """First statement of every write that does not take numbers: sets ``updated_at`` and so takes the study
        row's lock (PostgreSQL), which orders all writers of a study the same way (no deadlocks)."""
        found = conn.execute(
            update(studies).where(studies.c.id == study_id).values(updated_at=_stamp(now)).returning(studies.c.id)
        ).first()
        if found is None:
            self._no_study(conn, study_id)

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

    # -- studies --------------------------------------------------------------------------------------------------
    def create_study(self, name: str, meta: dict[str, Any]) -> int:
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise StudyError(f"study name {_short(name)} is invalid; valid: a non-empty str of at most 255 characters")
        meta_json = _encode(meta, f"meta of study {name!r}")
        now = time.time()

        def tx(conn: Connection) -> int:
            try:
                return int(
                    conn.execute(
                        studies.insert()
                        .values(name=name, meta=meta_json, next_number=0, created_at=now, updated_at=now)
                        .returning(studies.c.id)
                    ).scalar_one()
                )
            except IntegrityError:
                raise StudyError(
                    f"a study named {name!r} already exists in {self.url}; load it (dse.load_study) or choose "
                    "another name"
                ) from None

        return self._transaction(tx, write=True)

    def get_study(self, name: str) -> dict[str, Any] | None:
        def tx(conn: Connection) -> Any:
            return conn.execute(
                select(studies.c.id, studies.c.name, studies.c.meta, studies.c.created_at).where(studies.c.name == name)
            ).first()

        row = self._transaction(tx, write=False)
        if row is None:
            return None
        return {"id": int(row.id), "name": row.name, "meta": json.loads(row.meta), "created_at": float(row.created_at)}

    def update_study_meta(self, study_id: int, patch: dict[str, Any]) -> None:
        sid = _int(study_id, "study_id")
        _encode(patch, f"meta patch of study {sid}")  # validate before taking any lock

        def tx(conn: Connection) -> None:
            self._lock_study(conn, sid, time.time())
            merged = json.loads(conn.execute(select(studies.c.meta).where(studies.c.id == sid)).scalar_one())
            merged.update(patch)
            conn.execute(update(studies).where(studies.c.id == sid).values(meta=_encode(merged, "meta")))

        self._transaction(tx, write=True)

    def list_studies(self) -> pd.DataFrame:
        def n_in(state: str) -> Any:
            return func.coalesce(func.sum(case((trials.c.state == state, 1), else_=0)), 0)

        stmt = (
            select(
                studies.c.name,
                func.count(trials.c.number).label("n_trials"),
                n_in("complete").label("n_complete"),
                n_in("failed").label("n_failed"),
                n_in("running").label("n_running"),
                studies.c.created_at,
                studies.c.updated_at,
            )
            .select_from(studies.outerjoin(trials, trials.c.study_id == studies.c.id))
            .group_by(studies.c.id, studies.c.name, studies.c.created_at, studies.c.updated_at)
            .order_by(studies.c.name)
        )
        bstmt = select(
            trial_blocks.c.study_id, studies.c.name, func.sum(trial_blocks.c.n_complete), func.sum(trial_blocks.c.n_failed)
        ).join(studies, studies.c.id == trial_blocks.c.study_id).group_by(trial_blocks.c.study_id, studies.c.name)

        def tx(conn: Connection) -> tuple[list[Any], list[Any]]:
            return list(conn.execute(stmt).all()), list(conn.execute(bstmt).all())

        rows, brows = self._transaction(tx, write=False)
        cols = ["name", "n_trials", "n_complete", "n_failed", "n_running", "created_at", "updated_at"]
        df = pd.DataFrame([tuple(r) for r in rows], columns=cols)
        for _, name, n_complete, n_failed in brows:   # trials stored in blocks
            at = df["name"] == name
            df.loc[at, "n_complete"] += int(n_complete)
            df.loc[at, "n_failed"] += int(n_failed)
            df.loc[at, "n_trials"] += int(n_complete) + int(n_failed)
        return df.astype({c: "int64" for c in cols[1:5]} | {"created_at": "float64", "updated_at": "float64"})

    def delete_study(self, name: str) -> None:
        def tx(conn: Connection) -> None:
            sid = conn.execute(select(studies.c.id).where(studies.c.name == name)).scalar_one_or_none()
            if sid is None:
                known = conn.execute(select(studies.c.name).order_by(studies.c.name).limit(20)).scalars().all()
                raise StudyError(f"no study named {_short(name)} in {self.url}; existing: {known!r}")
            conn.execute(attrs_table.delete().where(attrs_table.c.study_id == sid))
            conn.execute(trials.delete().where(trials.c.study_id == sid))
            conn.execute(trial_blocks.delete().where(trial_blocks.c.study_id == sid))
            conn.execute(studies.delete().where(studies.c.id == sid))

        self._transaction(tx, write=True)

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

    # -- attrs ----------------------------------------------------------------------------------------------------
    def set_attrs(self, study_id: int, attrs: dict[str, Any]) -> None:
        sid = _int(study_id, "study_id")
        if not isinstance(attrs, Mapping):
            raise StorageError(f"attrs must be a dict, got {type(attrs).__name__} {_short(attrs)}")
        values = []
        for k, v in attrs.items():
            if not isinstance(k, str) or not k or len(k) > 255 or k.startswith(_CLAIM):
                raise StorageError(f"attr key {_short(k)} is invalid; valid: a non-empty str of at most 255 characters, "
                                   f"not starting with {_CLAIM!r} (claims are set with claim())")
            values.append({"study_id": sid, "key": k, "value": _encode(v, f"attrs[{k!r}]", mapping=False)})

        def tx(conn: Connection) -> None:
            self._lock_study(conn, sid, time.time())
            if not values:
                return
            keys = [v["key"] for v in values]
            for chunk in _chunks(keys):
                conn.execute(attrs_table.delete().where(attrs_table.c.study_id == sid, attrs_table.c.key.in_(list(chunk))))
            conn.execute(attrs_table.insert(), values)

        self._transaction(tx, write=True)

    def get_attrs(self, study_id: int) -> dict[str, Any]:
        sid = _int(study_id, "study_id")

        def tx(conn: Connection) -> list[Any]:
            self._require_study(conn, sid)
            return list(conn.execute(
                select(attrs_table.c.key, attrs_table.c.value).where(attrs_table.c.study_id == sid)
            ).all())

        return {k: json.loads(v) for k, v in self._transaction(tx, write=False) if not k.startswith(_CLAIM)}

    # -- claims (rows of dse_attrs keyed "claim:<key>", value {"worker": ..., "at": epoch s}) ----------------------
    def claim(self, study_id: int, key: str, worker: str) -> bool:
        sid = _int(study_id, "study_id")
        if not isinstance(key, str) or not key or len(key) > 255 - len(_CLAIM):
            raise StorageError(f"claim key {_short(key)} is invalid; valid: a non-empty str of at most "
                               f"{255 - len(_CLAIM)} characters")
        wk = _opt_str(worker, "worker", 255)
        if wk is None:
            raise StorageError("claim() needs a worker id (a str), got None")
        now = time.time()

        def tx(conn: Connection) -> bool:
            self._lock_study(conn, sid, now)   # serializes claimers of this study (row lock / BEGIN IMMEDIATE)
            held = conn.execute(select(attrs_table.c.value).where(
                attrs_table.c.study_id == sid, attrs_table.c.key == _CLAIM + key)).scalar_one_or_none()
            if held is not None:
                return bool(json.loads(held).get("worker") == wk)
            conn.execute(attrs_table.insert(), [{"study_id": sid, "key": _CLAIM + key,
                                                 "value": json.dumps({"worker": wk, "at": now})}])
            return True

        return self._transaction(tx, write=True)

    def claims(self, study_id: int) -> dict[str, str]:
        sid = _int(study_id, "study_id")

        def tx(conn: Connection) -> list[Any]:
            self._require_study(conn, sid)
            return list(conn.execute(select(attrs_table.c.key, attrs_table.c.value).where(
                attrs_table.c.study_id == sid, attrs_table.c.key.startswith(_CLAIM, autoescape=True))).all())

        return {k[len(_CLAIM):]: json.loads(v).get("worker") for k, v in self._transaction(tx, write=False)}

    def release_claims(self, study_id: int, keys: Sequence[str]) -> None:
        sid = _int(study_id, "study_id")
        full = [_CLAIM + str(k) for k in keys]

        def tx(conn: Connection) -> None:
            self._lock_study(conn, sid, time.time())
            for chunk in _chunks(full):
                conn.execute(attrs_table.delete().where(attrs_table.c.study_id == sid,
                                                         attrs_table.c.key.in_(list(chunk))))

        if full:
            self._transaction(tx, write=True)

    # -- lifetime -------------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._engine.dispose()


def _stamp(now: float) -> Any:
    """The study's new ``updated_at``: ``now``, or just after the stored one if that is not earlier, so that every
    write advances it (a version stamp: ``trials_version``), also two writes within one clock tick."""
    return case((studies.c.updated_at >= now, studies.c.updated_at + 1e-6), else_=now)


#: Prefix of the dse_attrs keys that hold claims (hidden from get_attrs).
_CLAIM = "claim:"

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
