"""The study registry: create, open, list and delete studies in a storage (the module API ``dse.create_study``,
``dse.load_study``, ``dse.list_studies``, ``dse.delete_study``)."""
from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__
from .errors import DSEError, StudyError
from .objective import ObjectiveSpec
from .space import Space
from .storage import BaseStorage, default_url, open_storage, sqlite_file
from .study import Study

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise StudyError(
            f"study name {name!r} is not valid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def _study_meta(space: Space, spec: ObjectiveSpec, description: str | None) -> dict:
    return {
        "space": space.to_dict(),
        "space_fingerprint": space.fingerprint(),
        **spec.to_dict(),
        "dse_version": __version__,
        "created_at": time.time(),
        "description": description or "",
    }


def create_study(
    name: str,
    space: Space,
    objectives: Mapping[str, str],
    *,
    constraints: Mapping[str, Sequence] | None = None,
    storage: str | BaseStorage | None = None,
    load_if_exists: bool = True,
    description: str | None = None,
) -> Study:
    """Create a study (or open the existing one of that name, if its space and objectives are the same).

    Args:
        name: letters, digits, '.', '_' or '-'.
        space: the :class:`dse.Space` searched.
        objectives: metric -> "min" | "max".
        constraints: metric -> (op, bound), e.g. ``{"ttft_ms": ("<=", 500)}``: violating trials are stored as
            infeasible and never on the front. ``(op, bound, confidence)``, e.g. ``("<=", 500, 0.9)``, meets it
            with that confidence (0.5 < confidence < 1): it is checked on the metric's pessimistic band end,
            ``ttft_ms_hi`` (``<=``, ``<``) or ``<metric>_lo`` (``>=``, ``>``), which the objective returns from a
            band at level 2 x confidence - 1; a trial without it fails, naming it.
        storage: None (SQLite file ``studies/<name>.db``), ``":memory:"`` (this process only, nothing written to
            disk: keep the returned Study, as ``load_study(name, storage=":memory:")`` opens a new, empty database),
            any SQLAlchemy URL, a path to a .db file, or a storage.
        load_if_exists: reopen a study of that name; False raises StudyError if it exists.
    """
    _check_name(name)
    if not isinstance(space, Space):
        raise StudyError(f"space must be a dse.Space, got {type(space).__name__}")
    spec = ObjectiveSpec.build(objectives, constraints, space.names)
    st = storage if isinstance(storage, BaseStorage) else open_storage(storage, name)
    rec = st.get_study(name)
    if rec is not None:
        if not load_if_exists:
            raise StudyError(f"study {name!r} already exists in {st.url}; use load_study() or load_if_exists=True")
        _check_same(rec, space, spec, st.url)
        return Study(st, rec, space, spec)
    try:
        st.create_study(name, _study_meta(space, spec, description))
    except StudyError:
        pass  # another process created it between our check and insert: fall through and compare
    rec = st.get_study(name)
    if rec is None:
        raise StudyError(f"study {name!r} could not be created in {st.url}: it is absent right after its insert")
    _check_same(rec, space, spec, st.url)
    return Study(st, rec, space, spec)


def _check_same(rec: Mapping, space: Space, spec: ObjectiveSpec, url: str) -> None:
    meta = rec.get("meta") or {}
    if meta.get("space_fingerprint") != space.fingerprint():
        stored = Space.from_dict(meta["space"], callables=_callables(space)) if "space" in meta else None
        diff = _space_diff(stored, space) if stored is not None else "stored space unreadable"
        raise StudyError(
            f"study {rec['name']!r} in {url} was created with a different space ({diff}); use another study name, "
            "or dse.delete_study() first. Nothing stored was changed."
        )
    stored_spec = ObjectiveSpec.from_dict(meta)
    if stored_spec.objectives != spec.objectives or stored_spec.constraints != spec.constraints:
        raise StudyError(
            f"study {rec['name']!r} in {url} has objectives {stored_spec.objectives} and constraints "
            f"{dict(stored_spec.constraints)}; got {spec.objectives} and {dict(spec.constraints)}. "
            "Use another study name. Nothing stored was changed."
        )


def _callables(space: Space) -> dict:
    return {getattr(c, "__name__", None) or type(c).__name__: c for c in space.constraints if callable(c)}


def _space_diff(a: Space, b: Space) -> str:
    an, bn = set(a.names), set(b.names)
    if an != bn:
        return f"stored parameters {sorted(an)}, given {sorted(bn)}"
    for n in a.names:
        if a.params[n].to_dict() != b.params[n].to_dict():
            return f"parameter {n!r}: stored {a.params[n]!r}, given {b.params[n]!r}"
    return f"constraints: stored {list(map(str, a.constraints))}, given {list(map(str, b.constraints))}"


def _existing_storage(storage: str | BaseStorage | None, name: str | None = None) -> BaseStorage:
    """`storage` opened (None: `name`'s default), refusing a SQLite file that does not exist: opening it would
    create an empty database there, so a misspelt name would leave a file behind."""
    if isinstance(storage, BaseStorage):
        return storage
    url = storage if storage is not None else None if name is None else default_url(name)
    if url is not None and (f := sqlite_file(url)) is not None and not f.is_file():
        there = sorted(p.stem for p in f.parent.glob("*.db")) if f.parent.is_dir() else []
        what = f"no study named {name!r}: " if name is not None else ""
        raise StudyError(f"{what}no study database {str(f)!r} (nothing was created); study databases in "
                         f"{str(f.parent)!r}: {there} (`dse list`; --storage names another)")
    return open_storage(storage, name)


def locate_study(name: str, storage: str | BaseStorage | None = None) -> tuple[str, str | BaseStorage]:
    """(study name, storage) of ``name`` as `load_study` opens it: ``storage`` as given; without one, a ``name``
    ending .db / .sqlite / .sqlite3 is that file (the study named by its stem, or the one study it holds), and a
    study name is looked up where `dse run` writes it (``<name>.db`` beside the study file: the current folder
    first), then ``studies/<name>.db`` (`create_study`'s default). StudyError naming the places looked in when
    none exists (nothing is created)."""
    if storage is not None:
        return name, storage
    if isinstance(name, str) and (sqlite_file(name) is not None or "/" in name or os.sep in name):
        f = sqlite_file(name) or Path(name)
        if not f.is_file():
            raise StudyError(f"no study database {name!r} (nothing was created)")
        st = open_storage(str(f))
        names = list(st.list_studies()["name"])
        st.close()
        return (f.stem if f.stem in names or len(names) != 1 else str(names[0])), str(f)
    _check_name(name)
    places = [Path(f"{name}.db"), Path(default_url(name).removeprefix("sqlite:///"))]
    for f in places:
        if f.is_file():
            return name, f"sqlite:///{f.as_posix()}"
    looked = " or ".join(repr(f"./{f.as_posix()}" if f.parent == Path(".") else f.as_posix()) for f in places)
    there = sorted({p.stem for f in places if f.parent.is_dir() for p in f.parent.glob("*.db")})
    raise StudyError(f"no study named {name!r}: no study database {looked} (nothing was created; `dse run FILE.py` "
                     f"writes <name>.db beside its study file); study databases there: {there} (`dse list`; "
                     f"--storage names another)")


def load_study(
    name: str,
    *,
    storage: str | BaseStorage | None = None,
    callables: Mapping[str, Callable] | None = None,
) -> Study:
    """Open a stored study to inspect it or add trials; the space is rebuilt from what was stored.

    ``storage`` None: where `locate_study` finds ``name`` (./<name>.db, where `dse run` writes it beside a study
    file run from this folder, then studies/<name>.db; a ``name`` ending .db is that file).
    Constraints given as callables cannot be stored: pass them back in `callables` (function name -> function).
    """
    name, storage = locate_study(name, storage)
    _check_name(name)
    st = _existing_storage(storage, name)
    rec = st.get_study(name)
    if rec is None:
        names = list(st.list_studies()["name"]) if hasattr(st, "list_studies") else []
        raise StudyError(f"no study named {name!r} in {st.url}; studies there: {names}")
    meta = rec.get("meta") or {}
    space = Space.from_dict(meta["space"], callables=callables)
    spec = ObjectiveSpec.from_dict(meta)
    return Study(st, rec, space, spec)


def list_studies(storage: str | BaseStorage | None = None, root: str | os.PathLike = "studies") -> pd.DataFrame:
    """Studies in a storage; with storage=None, every SQLite study file under `root`."""
    if storage is not None:
        st = _existing_storage(storage)
        df = st.list_studies()
        df.insert(1, "storage", st.url)
        return df
    frames = []
    for db in sorted(Path(root).glob("*.db")):
        try:
            st = open_storage(f"sqlite:///{db}")
            df = st.list_studies()
            df.insert(1, "storage", st.url)
            frames.append(df)
            st.close()
        except DSEError:
            continue
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["name", "storage", "n_trials"])


def delete_study(name: str, *, storage: str | BaseStorage | None = None) -> None:
    """Delete a study and its trials."""
    name, storage = locate_study(name, storage)
    _check_name(name)
    st = _existing_storage(storage, name)
    if st.get_study(name) is None:
        raise StudyError(f"no study named {name!r} in {st.url}")
    st.delete_study(name)
