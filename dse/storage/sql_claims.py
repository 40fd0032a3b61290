"""Study attributes and work claims of :class:`dse.storage.sql.SQLStorage`: both are rows of ``dse_attrs``; a claim
is the row keyed ``claim:<key>`` (value ``{"worker": ..., "at": epoch s}``), taken at most once under the study's
row lock, so workers sharing a study split its work (grid blocks) through the storage."""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from dse.errors import StorageError
from dse.storage.schema import attrs as attrs_table
from dse.storage.sql_connection import SQLConnection, _chunks, _int
from dse.storage.values import encode_json as _encode
from dse.storage.values import opt_str as _opt_str
from dse.storage.values import short as _short

#: Prefix of the dse_attrs keys that hold claims (hidden from get_attrs).
_CLAIM = "claim:"


class AttrsAndClaims(SQLConnection):
    """``set_attrs`` / ``get_attrs`` and ``claim`` / ``claims`` / ``release_claims`` over SQL."""

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

