"""Serving mode: aggregated (every replica prefills and decodes) or disaggregated (separate prefill and decode
pools, the KV cache handed over between them, as in DistServe / Splitwise / Dynamo).

``prefill_replicas`` (active only when ``mode == 'disagg'``) is the size of the prefill pool in replicas;
the decode pool holds the remaining ``dp - prefill_replicas`` replicas (``spaces.llm_serving`` adds the
constraint ``prefill_replicas < dp``).
"""
from __future__ import annotations

from collections.abc import Sequence

import dse
from dse import SpaceError
from dse.space import Param

from .hardware import check_count

MODES = ("agg", "disagg")


def serving(modes: Sequence[str] = MODES, max_replicas: int = 8) -> dse.Space:
    """Space of ``mode`` and, for ``'disagg'``, ``prefill_replicas`` in 1..max_replicas-1."""
    ms = list(dict.fromkeys(modes))
    bad = [m for m in ms if m not in MODES]
    if bad or not ms:
        raise SpaceError(f"modes={list(modes)!r}: {bad or 'empty'} not allowed; valid modes: {list(MODES)}")
    check_count("max_replicas", max_replicas)
    params: dict[str, Param] = {"mode": dse.Categorical(ms)}
    if "disagg" in ms:
        if max_replicas < 2:
            raise SpaceError(f"mode 'disagg' needs max_replicas >= 2 (a prefill and a decode pool), got {max_replicas}")
        params["prefill_replicas"] = dse.Int(1, max_replicas - 1, when="mode == 'disagg'")
    return dse.Space(params)
