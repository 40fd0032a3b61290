"""The shipped flag lists of the serving engines (objectives/data/engine_flags/*.json) and the check of a command.

Each list holds, per command of one release, every option string its argument parser accepts (with, where the
source says so, whether it takes no value, whether ``--no-FLAG`` is accepted, and the valid choices), the
repository, the commit and how it was extracted (``objectives/deploy/extract_flags.py``).
"""
from __future__ import annotations

import functools
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dse import DSEError

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "engine_flags"


class DeployError(DSEError, ValueError):
    """A launch configuration that cannot be made: unknown engine or trial, or an engine that cannot run it."""


def _vkey(v: str) -> tuple:
    """Sort key of a release string (`profiles.release_key`: 0.5.14 > 0.5.9, 1.3.0rc20 > 1.3.0rc3, a build label
    such as 'main-00209af1' after every version)."""
    from objectives.profiles import release_key

    return release_key(v)


@dataclass(frozen=True)
class FlagList:
    """One shipped list: ``commands`` maps a command (e.g. "vllm serve") to {flag: {switch, negatable, choices,
    nargs, type, json_keys}} (nargs: argparse's, where the source gives a literal one, absent: one value; type:
    "int", "float" or "json", absent: a string; json_keys: the fields of the config class a JSON value holds)."""

    engine: str
    version: str
    repository: str
    commit: str
    source: str
    commands: dict[str, dict[str, dict[str, Any]]]
    yaml: dict[str, Any]
    path: Path

    def flags(self, command: str) -> dict[str, dict[str, Any]]:
        """The flags of ``command``; DeployError naming the commands this list has."""
        try:
            return self.commands[command]
        except KeyError:
            raise DeployError(f"{self.engine} {self.version} flag list has no command {command!r}; it has "
                              f"{sorted(self.commands)}") from None

    def has(self, command: str, flag: str) -> bool:
        return flag in self.flags(command)

    def choices(self, command: str, flag: str) -> list[Any] | None:
        return self.flags(command).get(flag, {}).get("choices")

    def label(self) -> str:
        return f"{self.engine} {self.version} ({self.repository} @ {self.commit})"


@functools.cache
def _all() -> tuple[FlagList, ...]:
    out = []
    for f in sorted(DATA_DIR.glob("*.json")):
        d = json.loads(f.read_text())
        out.append(FlagList(d["engine"], d["version"], d.get("repository", ""), str(d.get("commit", "")),
                            d.get("source", ""), {c: v["flags"] for c, v in d["commands"].items()},
                            d.get("yaml", {}), f))
    return tuple(out)


def shipped(engine: str | None = None) -> list[FlagList]:
    """Every shipped flag list (of ``engine``: "vllm", "sglang", "trtllm", "vllm-router", "sglang-router")."""
    return [fl for fl in _all() if engine is None or fl.engine == engine]


def flag_list(engine: str, version: str | None = None) -> tuple[FlagList, bool]:
    """The flag list of ``engine`` at ``version`` and whether it is that exact release.

    Without an exact list, the newest shipped list not newer than ``version`` is used (else the oldest), so a
    caller can say which release the commands were checked against.
    """
    lists = sorted(shipped(engine), key=lambda fl: _vkey(fl.version))
    if not lists:
        raise DeployError(f"no flag list shipped for engine {engine!r}; shipped: {sorted({f.engine for f in _all()})}")
    if version is None:
        return lists[-1], True
    for fl in lists:
        if fl.version == version:
            return fl, True
    older = [fl for fl in lists if _vkey(fl.version) <= _vkey(version)]
    return (older[-1] if older else lists[0]), False


def unknown_flags(argv: Sequence[str] | str, flags: dict[str, dict[str, Any]]) -> list[str]:
    """Option tokens of ``argv`` (a token list or a shell line) that ``flags`` does not have, plus values outside a
    flag's choices or not of its type (an int, a float, JSON of the recorded config fields), as ``--flag=value``.
    ``--flag=value`` and ``--no-flag`` (for negatable flags) are understood.
    """
    tokens = shlex.split(argv) if isinstance(argv, str) else list(argv)
    bad: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if not tok.startswith("-") or tok in ("-", "--") or _is_number(tok):
            continue
        name, eq, inline = tok.partition("=")
        rec = flags.get(name)
        if rec is None and name.startswith("--no-") and flags.get("--" + name[5:], {}).get("negatable"):
            continue
        if rec is None:
            bad.append(name)
            continue
        if rec.get("switch"):
            continue
        value = inline if eq else (tokens[i] if i < len(tokens) else None)
        if not eq and value is not None and not (value.startswith("-") and not _is_number(value)):
            i += 1
        ch = rec.get("choices")
        if value is not None and ((ch is not None and value not in [str(c) for c in ch]) or not _readable(rec, value)):
            bad.append(f"{name}={value}")
    return bad


def _readable(rec: dict[str, Any], value: str) -> bool:
    """Whether a flag of record ``rec`` reads ``value`` as its recorded type (int, float, JSON holding only the
    recorded config fields); True for strings."""
    kind = rec.get("type")
    try:
        if kind == "int":
            int(value)
        elif kind == "float":
            float(value)
        elif kind == "json":
            doc = json.loads(value)
            keys = rec.get("json_keys")
            return keys is None or (isinstance(doc, dict) and set(doc) <= set(keys))
    except ValueError:
        return False
    return True


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
