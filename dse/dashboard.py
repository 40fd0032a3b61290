"""optuna-dashboard over a study's Optuna storage, bound to 127.0.0.1 unless told otherwise.

:func:`serve` starts the dashboard in a background thread and returns a handle with ``.url`` and ``.stop()``;
:func:`run` is the blocking variant for the CLI (Ctrl-C stops it). Both serve the application of the installed
``optuna_dashboard`` package (:func:`optuna_dashboard.wsgi`, the app its ``run_server`` runs) on a threaded
``wsgiref`` server: unlike ``run_server`` this server can be stopped and reports the port it bound when asked
for port 0 (a free one).

The dashboard has no authentication and can edit studies (notes, tells): keep it on the loopback interface
(the default); a non-loopback ``host`` is allowed but warns.
"""
from __future__ import annotations

import ipaddress
import logging
import socketserver
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .errors import DSEError, StorageError, StudyError

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["DashboardHandle", "serve", "run"]

DEFAULT_HOST = "127.0.0.1"


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # in-flight requests never keep the process alive
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - wsgiref's signature
        pass


@dataclass
class DashboardHandle:
    """A running dashboard. ``url`` is its address; ``stop()`` shuts it down (idempotent); usable as a
    context manager."""

    url: str
    host: str
    port: int
    _server: WSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def running(self) -> bool:
        """Whether the server thread is still serving."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, close the listening socket and wait (up to `timeout` s) for the server thread."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout)
        self._server.server_close()

    def __enter__(self) -> DashboardHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check_storage(url: Any) -> Any:
    """Validate an Optuna storage: a storage object as is, or an RDB URL whose SQLite file must already exist
    (an empty database is never created)."""
    from optuna.storages import BaseStorage

    if isinstance(url, BaseStorage):
        return url
    if not isinstance(url, str) or "://" not in url:
        raise StorageError(
            f"dashboard storage must be an SQLAlchemy URL such as 'sqlite:///studies/name.db' or "
            f"'postgresql://user@host/db', got {url!r}"
        )
    from .storage import sqlite_file

    db = sqlite_file(url)
    if db is None:      # not a SQLite file: an unparseable URL, another backend, or SQLite in memory
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError
        try:
            backend = make_url(url).get_backend_name()
        except ArgumentError as e:
            raise StorageError(f"cannot parse storage URL {url!r}: {e}") from None
        if backend == "sqlite":
            raise StorageError(f"storage URL {url!r} names no SQLite file; the dashboard needs a stored study")
    elif not db.is_file():
        raise StorageError(f"no SQLite database at {str(db.resolve())!r} (from storage URL {url!r})")
    return url


def _check_address(host: str, port: int) -> None:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise StudyError(f"port must be an integer in 0..65535 (0 picks a free port), got {port!r}")
    if not isinstance(host, str) or not host:
        raise StudyError(f"host must be an interface address such as '127.0.0.1', got {host!r}")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        warnings.warn(
            f"optuna-dashboard will listen on {host!r}, reachable from other machines; it has no authentication "
            "and can modify studies. Use host='127.0.0.1' (the default) unless you mean it.",
            stacklevel=3,
        )


def _make_server(optuna_storage_url: str | BaseStorage, host: str, port: int) -> WSGIServer:
    _check_address(host, port)
    url = _check_storage(optuna_storage_url)
    import optuna_dashboard

    try:
        app = optuna_dashboard.wsgi(url)
    except Exception as e:  # SQLAlchemy / Optuna errors opening the storage
        raise StorageError(f"cannot open Optuna storage {url!r} for the dashboard: {type(e).__name__}: {e}") from e
    try:
        return make_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    except OSError as e:
        raise DSEError(f"cannot listen on {host}:{port} for the dashboard: {e}") from e


def _url(server: WSGIServer) -> tuple[str, int, str]:
    addr, port = server.server_address[:2]
    host = addr.decode() if isinstance(addr, bytes) else str(addr)
    shown = f"[{host}]" if ":" in str(host) else host
    return str(host), int(port), f"http://{shown}:{port}/dashboard"


def serve(optuna_storage_url: str | BaseStorage, *, host: str = DEFAULT_HOST, port: int = 0) -> DashboardHandle:
    """Start optuna-dashboard on `optuna_storage_url` in a background thread and return its handle.

    Args:
        optuna_storage_url: an Optuna RDB storage URL (``sqlite:///path.db``, ``postgresql://...``; a SQLite
            file must exist) or an ``optuna.storages.BaseStorage`` (e.g. an ``InMemoryStorage`` holding a copy).
        host: interface to bind; ``127.0.0.1`` by default (others warn: the dashboard has no authentication).
        port: TCP port; 0 (default) picks a free one, readable from the handle's ``port`` / ``url``.

    Raises:
        StorageError: bad URL, missing SQLite file, or a storage Optuna cannot open.
        StudyError: bad host or port. DSEError: the address cannot be bound (e.g. port in use).
    """
    server = _make_server(optuna_storage_url, host, port)
    h, p, url = _url(server)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=f"dse-dashboard:{p}", daemon=True)
    thread.start()
    return DashboardHandle(url=url, host=h, port=p, _server=server, _thread=thread)


def run(optuna_storage_url: str | BaseStorage, *, host: str = DEFAULT_HOST, port: int = 8080,
        announce: Callable[[str], None] | None = None) -> None:
    """Serve optuna-dashboard in the foreground until Ctrl-C (the CLI's ``dse dashboard``).

    Its URL is logged (logger ``dse.dashboard``, INFO) and passed to ``announce`` (the CLI prints it)."""
    server = _make_server(optuna_storage_url, host, port)
    _, _, url = _url(server)
    logger.info("optuna-dashboard at %s", url)
    if announce is not None:
        announce(f"optuna-dashboard at {url} (Ctrl-C to stop)")
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
