"""Kernel profiles with one table made slower: how a test checks which table a cost reads."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from objectives import profiles


def slow_table(monkeypatch: pytest.MonkeyPatch, name: str, factor: float) -> None:
    """From here on in the test (``monkeypatch``'s scope), every profile `profiles.load` returns has its table
    ``name`` ``factor`` x slower (its latencies times ``factor``, its axes and coverage as measured); a profile
    without that table as it is."""
    load = profiles.load

    def slow(*a, **kw):
        p = load(*a, **kw)
        t = None if p is None else p.table(name)
        if t is None:
            return p
        return dataclasses.replace(p, tables={**p.tables, name: dataclasses.replace(t, log_ms=t.log_ms + np.log(factor))})
    monkeypatch.setattr(profiles, "load", slow)
