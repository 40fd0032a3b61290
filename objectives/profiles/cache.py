"""An on-disk cache of the table groups `build.build_one` builds from aiconfigurator-core's full tables.

A profile built from the installed package's raw tables (`profiles.load` where the `profiles` extra is installed)
costs seconds of pandas work a process: the GEMM group on every first load, each other group (attention,
collectives, MoE, ...) on its first lookup. Every process pays it again (each `dse run` / CLI call, notebook
kernel, worker process), though the result is a pure function of the raw files, the builder's code and the
GPU's datasheet numbers. This cache keeps each built group as the exact arrays the build gives (float64 latencies,
axes and shape keys as built, the covered-cell masks), so a cached group is bit for bit the group a fresh build
gives.

Where: ``$DSE_CACHE_DIR`` when set (``off``, ``0``, ``none`` or empty turn the cache off), else
``$XDG_CACHE_HOME/dse`` (``~/.cache/dse`` without it; ``%LOCALAPPDATA%/dse/cache`` on Windows); under it
``profiles/``. Never inside the repository or the installed package.

Keyed (sha256) on everything a group's build reads: the source text of the builder's modules (build.py, grid.py,
profile.py: any code change rebuilds), the versions of numpy, pandas and pyarrow (their arithmetic and readers),
the raw-table folder and the path, size and modification time of every file under the system's folder and its
`build.TWIN_SYSTEMS` twin's (what Python's own bytecode cache trusts for a source file), and for the GEMM group
the GPU's datasheet numbers its static-FP8 / fused-FP4 tables read. The full key is stored in the file and
compared on reading: a file of another key, a truncated or corrupt one, or one that does not read as tables is
rebuilt and written again, never trusted. Writes go to a temporary file in the same folder and are renamed over
the target (atomic on POSIX and Windows), so processes building the same group at once each write a whole file
and readers never see a partial one; a write that fails (a read-only home, a full disk) leaves the build's result
in use and the cache untouched. Writing a group's file removes that group's files of other keys (a code or data
change's leftovers).

Only `profile._load` (what the cost model calls) reads the cache: `build.build_one` called directly (the tests
that patch a builder, `python -m objectives.profiles.build`) builds afresh unless asked.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from .grid import Table

log = logging.getLogger(__name__)

#: the file layout's version: bump it when `_pack` / `_unpack` change
FORMAT = 1
#: the environment variable naming the cache folder (or turning the cache off)
ENV = "DSE_CACHE_DIR"
_OFF = ("", "0", "off", "none", "false", "no")

Group = tuple[dict[str, Table], dict[str, np.ndarray]]


def cache_dir() -> Path | None:
    """The folder of the profile cache, None where it is turned off (``DSE_CACHE_DIR`` off / 0 / none / empty)."""
    env = os.environ.get(ENV)
    if env is not None:
        return None if env.strip().lower() in _OFF else Path(env).expanduser() / "profiles"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"]) / "dse" / "cache"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        if xdg and Path(xdg).is_absolute():
            base = Path(xdg) / "dse"
        else:
            try:    # no HOME and no passwd entry (a container's arbitrary uid): no cache, the build stays in use
                base = Path.home() / ".cache" / "dse"
            except (RuntimeError, KeyError, OSError):
                return None
    return base / "profiles"


def _versions() -> str:
    out = []
    for pkg in ("numpy", "pandas", "pyarrow"):
        try:
            out.append(f"{pkg}={version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg}=?")
    return ";".join(out)


def _code() -> bytes:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in ("build.py", "grid.py", "profile.py", "cache.py"):
        h.update(name.encode())
        h.update((here / name).read_bytes())
    return h.digest()


def tree_stamp(folder: Path) -> list[tuple[str, int, int]]:
    """(path relative to `folder`, size in bytes, modification time in ns) of every file under `folder`, sorted;
    empty where it does not exist."""
    out = []
    for dirpath, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(dirpath, f)
            st = os.stat(p)
            out.append((os.path.relpath(p, folder), st.st_size, st.st_mtime_ns))
    return sorted(out)


class GroupCache:
    """The cached groups of one profile build: `root` the raw-table folder, `folders` the system folders under it
    the build reads (the system's and its twin's), `system` / `engine` / `version` the profile."""

    def __init__(self, root: Path, folders: tuple[str, ...], system: str, engine: str, version: str,
                 where: Path) -> None:
        self.where = where
        self.prefix = f"{system}__{engine}__{version}"
        h = hashlib.sha256(f"format {FORMAT}; {_versions()}; root {Path(root).resolve()}; {self.prefix}".encode())
        h.update(_code())
        for folder in folders:
            h.update(json.dumps([folder, tree_stamp(Path(root) / folder)]).encode())
        self._base = h.hexdigest()

    @classmethod
    def for_build(cls, root: Path, folders: tuple[str, ...], system: str, engine: str,
                  version: str) -> GroupCache | None:
        """The cache of one build, None where the cache is off."""
        where = cache_dir()
        return None if where is None else cls(root, folders, system, engine, version, where)

    def key(self, group: str, extra: str = "") -> str:
        """The full key of `group` (`extra`: what else its build reads, e.g. the GPU's datasheet numbers)."""
        return hashlib.sha256(f"{self._base}; group {group}; {extra}".encode()).hexdigest()

    def get(self, group: str, build: Callable[[], Group], extra: str = "") -> Group:
        """`build()`'s group, read from the cache where a file of its key holds it, else built and written."""
        key = self.key(group, extra)
        path = self.where / f"{self.prefix}__{group}__{key[:16]}.npz"
        try:
            got = _unpack(path.read_bytes(), key)
        except FileNotFoundError:
            got = None
        except Exception as e:  # noqa: BLE001 -- any unreadable file is rebuilt, never trusted
            log.debug("profile cache: %s unreadable (%s: %s); rebuilding", path, type(e).__name__, e)
            got = None
        if got is not None:
            return got
        out = build()
        self._write(path, group, _pack(out, key))
        return out

    def _write(self, path: Path, group: str, data: bytes) -> None:
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
            tmp = None
            for old in path.parent.glob(f"{self.prefix}__{group}__*.npz"):
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError as e:
            log.debug("profile cache: could not write %s (%s)", path, e)
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass


def _pack(group: Group, key: str) -> bytes:
    """One group as an uncompressed .npz: every array as built (dtype and values), the names in their order."""
    tables, keys = group
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"key": key, "tables": [], "keys": list(keys)}
    for i, (name, t) in enumerate(tables.items()):
        meta["tables"].append([name, list(t.names), t.covered is not None])
        for j, a in enumerate(t.axes):
            arrays[f"t{i}a{j}"] = np.asarray(a)
        arrays[f"t{i}v"] = np.asarray(t.log_ms)
        if t.covered is not None:
            arrays[f"t{i}c"] = np.asarray(t.covered)
    for i, name in enumerate(keys):
        arrays[f"k{i}"] = np.asarray(keys[name])
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def _unpack(data: bytes, key: str) -> Group | None:
    """The group `_pack` wrote under `key`; None where the file holds another key."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        if meta.get("key") != key:
            return None
        tables = {}
        for i, (name, names, has_cov) in enumerate(meta["tables"]):
            tables[name] = Table(tuple(names), tuple(z[f"t{i}a{j}"] for j in range(len(names))), z[f"t{i}v"],
                                 z[f"t{i}c"] if has_cov else None)
        keys = {name: z[f"k{i}"] for i, name in enumerate(meta["keys"])}
    return tables, keys
