"""The SQL connection every part of :class:`dse.storage.sql.SQLStorage` works through: the URL forms, the engine
(SQLite pragmas and ``BEGIN IMMEDIATE`` for writers), one transaction per call retried on transient lock errors,
schema creation and upgrade, and the study-row lock and trial-number counter that order writers (module docstring of
:mod:`dse.storage.sql` for the design).
"""
from __future__ import annotations

import importlib.util
import numbers as _numbers
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np
from sqlalchemy import case, create_engine, event, select, text, update
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from dse.errors import StorageError, StudyError
from dse.storage.base import BaseStorage
from dse.storage.schema import SCHEMA_VERSION, STATES, meta_table, metadata, studies
from dse.storage.values import short as _short

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



class SQLConnection(BaseStorage):
    """Engine, transactions, schema and study-row locking of :class:`dse.storage.sql.SQLStorage` (whose docstring
    gives the arguments); the trial, study and claim operations are built on ``_transaction``."""

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

    # -- lifetime -------------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._engine.dispose()


def _stamp(now: float) -> Any:
    """The study's new ``updated_at``: ``now``, or just after the stored one if that is not earlier, so that every
    write advances it (a version stamp: ``trials_version``), also two writes within one clock tick."""
    return case((studies.c.updated_at >= now, studies.c.updated_at + 1e-6), else_=now)

