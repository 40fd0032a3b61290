"""A real PostgreSQL server for the tests, started once per pytest session with scripts/postgres.sh.

Use: ``from tests.helpers.pg_server import postgres_url, postgres_db_url  # noqa: F401`` in tests/conftest.py (or
a test module).

- ``postgres_url`` (session): SQLAlchemy URL of database ``dse_test`` on a throwaway server (127.0.0.1, random
  port and password), stopped and removed at the end of the session.
- ``postgres_db_url`` (function): a fresh, empty database on that server for one test, dropped afterwards.

If the server cannot start, tests that use it are skipped with the script's error as the reason, except when the
environment variable ``CI`` is set: then they fail (never a silent skip in CI). The server is shared through
``config.stash``, so importing the fixtures in several modules still starts one server.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.helpers import ROOT

SCRIPT = ROOT / "scripts" / "postgres.sh"
_SERVER = pytest.StashKey[tuple[str | None, str | None]]()


def _start(config: pytest.Config) -> tuple[str | None, str | None]:
    """Start the server once per session: (url, None) or (None, error)."""
    if _SERVER in config.stash:
        return config.stash[_SERVER]
    # as root the server runs as another OS user, which must traverse DIR's parents: /tmp, not a private $TMPDIR
    parent = "/tmp" if hasattr(os, "geteuid") and os.geteuid() == 0 and os.path.isdir("/tmp") else None
    directory = tempfile.mkdtemp(prefix="dse-pg-", dir=parent)

    def stop() -> None:
        subprocess.run(["bash", str(SCRIPT), "stop", directory], capture_output=True, timeout=180, check=False)
        shutil.rmtree(directory, ignore_errors=True)  # made by mkdtemp above: also gone after a failed start

    try:
        proc = subprocess.run(["bash", str(SCRIPT), "start", directory], capture_output=True, text=True,
                              timeout=900, check=False)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode == 0 and lines and lines[-1].startswith("postgresql://"):
            result: tuple[str | None, str | None] = (lines[-1], None)
        else:
            err = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
            result = (None, f"scripts/postgres.sh start exited {proc.returncode}: {err}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        result = (None, f"scripts/postgres.sh start failed: {exc}")
    config.add_cleanup(stop)
    config.stash[_SERVER] = result
    return result


def postgres_url_or_skip(config: pytest.Config) -> str:
    """The session server's URL; pytest.skip (or pytest.fail when CI is set) if it cannot start."""
    url, error = _start(config)
    if url is None:
        msg = f"PostgreSQL test server unavailable: {error}"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set, so this fails instead of skipping)")
        pytest.skip(msg)
    return url


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> str:
    """SQLAlchemy URL of the session's PostgreSQL database ``dse_test``."""
    return postgres_url_or_skip(request.config)


@pytest.fixture
def postgres_db_url(postgres_url: str) -> Iterator[str]:
    """A fresh empty database on the session server for one test (dropped afterwards)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = make_url(postgres_url).set(drivername="postgresql+psycopg2")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
