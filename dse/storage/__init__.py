"""Study storage: bulk trial persistence in a compact schema over SQLAlchemy Core.

``open_storage(None, "name")`` opens the SQLite file ``studies/name.db``; any SQLAlchemy URL (PostgreSQL via
psycopg2 for several workers and machines) works too. See :mod:`dse.storage.base` for the conventions.
"""
from __future__ import annotations

from pathlib import Path

from dse.errors import StorageError
from dse.storage.base import BaseStorage
from dse.storage.schema import SCHEMA_VERSION, STATES
from dse.storage.sql import MEMORY, VALID_URLS, SQLStorage, mask_url

__all__ = [
    "BaseStorage", "SQLStorage", "open_storage", "default_url", "sqlite_file", "mask_url", "MEMORY", "SCHEMA_VERSION",
    "STATES",
]

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def default_url(study_name: str, root: str | Path = "studies") -> str:
    """``sqlite:///<root>/<study_name>.db`` (relative to the working directory when ``root`` is relative).

    Raises:
        StorageError: ``study_name`` is empty or cannot be a file name (a path separator, NUL, ``.`` or ``..``).
    """
    if (
        not isinstance(study_name, str)
        or not study_name.strip()
        or study_name in (".", "..")
        or any(c in study_name for c in "/\\\0")
    ):
        raise StorageError(
            f"study name {study_name!r} cannot name a SQLite file; use a non-empty name without '/', '\\' or NUL, "
            "or pass storage= explicitly"
        )
    return "sqlite:///" + (Path(root) / f"{study_name}.db").as_posix()


def sqlite_file(url: str | Path) -> Path | None:
    """The database file a storage URL or path (as `open_storage` takes it) names, where it names a SQLite file
    (``sqlite:///studies/x.db``, ``studies/x.db``); None for any other storage (PostgreSQL, in memory)."""
    url = str(url)
    if "://" not in url:
        return Path(url) if url.lower().endswith(_SQLITE_SUFFIXES) else None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    try:
        u = make_url(url)
    except ArgumentError:
        return None
    db = u.database
    return Path(db) if u.get_backend_name() == "sqlite" and db and db != ":memory:" else None


def open_storage(url: str | Path | None, study_name: str | None = None) -> BaseStorage:
    """Open (and create the schema of) the storage at ``url``.

    Args:
        url: None for :func:`default_url` of ``study_name``; ``":memory:"`` for a private in-memory SQLite database
            (throwaway notebook work: nothing is written, and another ``open_storage(":memory:")`` is another,
            empty database); a SQLAlchemy URL (``sqlite:///file.db``,
            ``postgresql://user:password@host:5432/db``); or a file path ending ``.db``/``.sqlite``/``.sqlite3``.
        study_name: used only when ``url`` is None.

    Raises:
        StorageError: the URL is not one of the valid forms or cannot be opened (message names it, password masked).
    """
    if url is None:
        if study_name is None:
            raise StorageError(f"open_storage(None) needs a study_name for the default SQLite file; valid: {VALID_URLS}")
        return SQLStorage(default_url(study_name))
    if isinstance(url, Path):
        url = str(url)
    if not isinstance(url, str) or not url.strip():
        raise StorageError(f"storage {url!r} is not a URL or path; valid: {VALID_URLS}")
    if "://" in url or url == MEMORY:
        return SQLStorage(url)
    if url.lower().endswith(_SQLITE_SUFFIXES):
        return SQLStorage("sqlite:///" + Path(url).as_posix())
    raise StorageError(f"storage {mask_url(url)!r} is neither a URL nor a SQLite file path; valid: {VALID_URLS}")
