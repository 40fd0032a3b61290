"""Composition of :class:`dse.Space` pieces: merge parameters and constraints into one space.

``dse.Space`` has no merge operation (it is an immutable, ordered set of parameters), so the domain builders
compose here: parameters keep the order of the parts (first occurrence wins the position), a parameter that
appears in several parts must be defined identically in each (e.g. the ``gpu`` choice both ``hardware`` and
``quantization`` carry), and constraints are concatenated without duplicates, followed by the extra
cross-part constraints given by the caller.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dse
from dse import SpaceError
from dse.space import Param

Constraint = str | Callable[..., Any]

#: composed spaces with at most this many points before their rules are counted when built (a few ms to ~0.1 s)
COUNT_LIMIT = 2e7


def compose(*parts: dse.Space, constraints: Sequence[Constraint] = (), when: Mapping[str, str] | None = None) -> dse.Space:
    """One space holding every parameter and constraint of ``parts`` plus the extra ``constraints``.

    ``when`` adds conditions across parts: parameter name -> condition over parameters placed before it (e.g.
    ``{"chunked_prefill": "mode == 'agg'"}``); the parameter must not have a condition already.

    Raises :class:`dse.SpaceError` when a parameter name is shared by two parts with different definitions
    (naming both definitions), when no part is given, or when the rules exclude every configuration (naming
    them).
    """
    if not parts:
        raise SpaceError("compose() needs at least one dse.Space part")
    params: dict[str, Param] = {}
    cons: list[Constraint] = []
    for i, part in enumerate(parts):
        if not isinstance(part, dse.Space):
            raise TypeError(f"compose(): part {i} must be a dse.Space, got {type(part).__name__}")
        for name, p in part.params.items():
            if name in params and params[name] != p:
                raise SpaceError(
                    f"compose(): parameter {name!r} is defined differently in two parts: {params[name]!r} and {p!r}"
                )
            params.setdefault(name, p)
        for c in part.constraints:
            if c not in cons:
                cons.append(c)
    for c in constraints:
        if c not in cons:
            cons.append(c)
    for name, cond in (when or {}).items():
        if name not in params:
            raise SpaceError(f"compose(): when= names {name!r}, which is not a parameter; parameters: {list(params)}")
        if params[name].when is not None:
            raise SpaceError(f"compose(): parameter {name!r} already has the condition {params[name].when!r}")
        params[name] = Param.from_dict({**params[name].to_dict(), "when": cond})
    space = dse.Space(params, constraints=cons)
    # rules that exclude every configuration are refused here, not left to a study that would run no trial (a
    # space too large to count quickly is left to the optimizer, which refuses it the same way)
    if space.is_discrete and math.prod(float(p.n_values) for p in params.values()) <= COUNT_LIMIT \
            and space.size == 0:
        raise space.no_feasible_point()
    return space


def one_of(name: str, values: Sequence[Any]) -> str:
    """The expression ``name in (v1, v2, ...)`` (``False`` when ``values`` is empty), for generated constraints."""
    vals = list(dict.fromkeys(values))
    if not vals:
        return "False"
    inner = ", ".join(repr(v) for v in vals)
    return f"{name} in ({inner},)"
