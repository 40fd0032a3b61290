"""Name normalization and close-match suggestions for catalog lookups."""
from __future__ import annotations

import difflib
import re
from typing import Iterable, Mapping

_NON_ALNUM = re.compile(r"[^0-9a-z]+")

#: Suffixes of Hugging Face model ids that do not change the shapes (fine-tunes, packaging), stripped on lookup.
_MODEL_SUFFIXES = ("instruct", "chat", "hf", "base", "it")
_DATE_SUFFIX = re.compile(r"[-_](?:\d{4})$")


def normalize(name: str) -> str:
    """Lower-case `name` and drop every non-alphanumeric character: "H100_SXM-80GB" -> "h100sxm80gb"."""
    return _NON_ALNUM.sub("", str(name).lower())


def model_name_candidates(name: str) -> list[str]:
    """Normalized keys to try for a model name, most specific first.

    "meta-llama/Meta-Llama-3.1-70B-Instruct" -> the full id, then "Meta-Llama-3.1-70B-Instruct",
    "Llama-3.1-70B-Instruct", and the same without the "-Instruct" suffix (also "-Chat", "-hf", "-Base",
    "-it" and a trailing 4-digit release date such as "-2507"), which fine-tunes share with the base shapes.
    """
    name = str(name).strip()
    out: list[str] = [name]
    if "/" in name:
        out.append(name.rsplit("/", 1)[1])
    for n in list(out):
        if n.lower().startswith("meta-"):
            out.append(n[5:])
    for n in list(out):
        stripped = n
        while True:
            before = stripped
            stripped = _DATE_SUFFIX.sub("", stripped)
            for suf in _MODEL_SUFFIXES:
                if stripped.lower().endswith(("-" + suf, "_" + suf)):
                    stripped = stripped[: -len(suf) - 1]
            if stripped == before:
                break
        if stripped != n:
            out.append(stripped)
    seen: dict[str, None] = {}
    for n in out:
        seen.setdefault(normalize(n), None)
    return list(seen)


def close_matches(name: str, keys: Mapping[str, str], n: int = 5) -> list[str]:
    """Display names of up to `n` entries whose normalized key (or display name) is close to `name`.

    `keys` maps normalized key -> display (canonical) name; several keys may share a display name.
    """
    query = normalize(name)
    hits = difflib.get_close_matches(query, list(keys), n=3 * n, cutoff=0.5)
    # substring matches ("h100" in "h100sxm80gb") are useful even when difflib ranks them low
    hits += [k for k in keys if query and (query in k or k in query)]
    out: list[str] = []
    for k in hits:
        display = keys[k]
        if display not in out:
            out.append(display)
        if len(out) == n:
            break
    return out


def unknown_name_message(kind: str, name: object, keys: Mapping[str, str], known: Iterable[str], hint: str) -> str:
    """The message of an unknown-name error: the bad value, close matches, and where to find all names."""
    matches = close_matches(str(name), keys)
    known = list(known)
    msg = f"unknown {kind} {name!r}"
    if matches:
        msg += f"; close matches: {', '.join(matches)}"
    msg += f". {len(known)} known (see {hint})"
    if len(known) <= 40:
        msg += f": {', '.join(known)}"
    return msg
