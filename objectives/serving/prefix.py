"""Prefix-cache hit rates of a workload whose requests carry prompt hash blocks (Mooncake's ``hash_ids``), at any
cache capacity at once: the analytical model's counterpart of the simulator's prefix cache (`serving.engine`).

The simulator keeps, per prefill replica, an LRU cache of hash blocks holding as many blocks as its KV cache
(``kv_blocks * kv_block_size // block_tokens``); a request's cached tokens are its leading blocks found there, up
to the first one missing, at most its prompt less one token; its blocks then enter the cache (its first block most
recent). An LRU cache of C blocks holds exactly the blocks whose stack distance (distinct blocks used since their
own last use) is below C (Mattson et al., "Evaluation techniques for storage hierarchies", IBM Systems Journal
9(2), 1970), so one pass over the requests in arrival order gives the hit tokens at every capacity: a request's
j-th block is served from a cache of C blocks when the largest stack distance among its first j + 1 blocks is
below C. `PrefixTable` holds those thresholds sorted with the tokens each adds; `hit_rate(capacity)` is a
``searchsorted`` over them, vectorized over deployments.

Requests spread over several replicas (ranks) each with its own cache are dealt round robin here (request i to
replica i mod R): the simulator's least-loaded routing is not cache-aware either, so the turns of one conversation
land on different replicas much as round robin puts them; the hit rate is then the pooled one of R streams.
Differences from the simulator: a request's blocks enter the cache at its arrival here, at the end of its prefill
there (a burst of requests sharing a prefix all miss it there until the first one is prefilled).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .workload import Workload


@dataclass(frozen=True)
class PrefixTable:
    """Hit tokens of one request stream as a step function of the cache capacity (blocks per replica).

    ``thresholds`` (sorted, blocks): a block is a hit in a cache of C blocks when its threshold is below C;
    ``cum_tokens``: prompt tokens served from cache with every threshold up to that one met (cumulative);
    ``prompt_tokens``: all prompt tokens looked up; ``block_tokens``: tokens per hash block."""

    thresholds: np.ndarray
    cum_tokens: np.ndarray
    prompt_tokens: float
    block_tokens: int

    def hit_tokens(self, capacity_blocks: np.ndarray) -> np.ndarray:
        """Prompt tokens served from cache (whole stream) with a cache of ``capacity_blocks`` blocks per replica."""
        c = np.asarray(capacity_blocks, dtype=float)
        k = np.searchsorted(self.thresholds, c, side="left")       # thresholds < c
        cum = np.concatenate([[0.0], self.cum_tokens])
        return cum[k]

    def hit_rate(self, capacity_blocks: np.ndarray) -> np.ndarray:
        """Share of prompt tokens served from cache (0..1) at ``capacity_blocks`` blocks per replica."""
        if self.prompt_tokens <= 0:
            return np.zeros(np.shape(capacity_blocks))
        return self.hit_tokens(capacity_blocks) / self.prompt_tokens


class _Fenwick:
    """Counts of marked positions; prefix sums in O(log n)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.t = [0] * (n + 1)

    def add(self, i: int, v: int) -> None:
        i += 1
        t, n = self.t, self.n
        while i <= n:
            t[i] += v
            i += i & -i

    def prefix(self, i: int) -> int:
        """Marked positions < i."""
        s = 0
        t = self.t
        while i > 0:
            s += t[i]
            i -= i & -i
        return s


def _stream(blocks: list[list[int]], prompts: list[int], block_tokens: int) -> tuple[list[float], list[float]]:
    """(threshold, tokens) of every looked-up block of one replica's requests, in arrival order."""
    n_acc = sum(len(b) for b in blocks)
    fw = _Fenwick(max(n_acc, 1))
    last: dict[int, int] = {}
    marked = 0
    pos = 0
    th: list[float] = []
    tok: list[float] = []
    inf = float("inf")
    for b, x in zip(blocks, prompts, strict=True):
        run = 0.0
        cap = x - 1                                      # at least one prompt token is computed
        for j, h in enumerate(b):
            if run < inf:                                # past the first miss every block misses
                p = last.get(h)
                run = max(run, inf if p is None else float(marked - fw.prefix(p + 1)))   # distinct blocks since
            gain = min((j + 1) * block_tokens, cap) - min(j * block_tokens, cap)
            if gain > 0:
                th.append(run)
                tok.append(float(gain))
        # the request's blocks enter the cache, its first block most recent (as the simulator inserts them)
        for h in reversed(b):
            p = last.get(h)
            if p is not None:
                fw.add(p, -1)
                marked -= 1
            fw.add(pos, 1)
            marked += 1
            last[h] = pos
            pos += 1
    return th, tok


def prefix_table(workload: Workload, replicas: int = 1) -> PrefixTable | None:
    """The `PrefixTable` of the requests ``workload`` sends, dealt round robin over ``replicas`` caches; None when
    its requests carry no hash blocks (no prefix is known to be shared: hit rate 0)."""
    req = workload.requests()
    if req.hash_ids is None or req.hash_offsets is None or req.block_tokens <= 0:
        return None
    if isinstance(replicas, bool) or not isinstance(replicas, (int, np.integer)) or replicas < 1:
        raise ValueError(f"replicas={replicas!r}: must be an integer >= 1 (prefix caches)")
    hid, off = req.hash_ids, req.hash_offsets
    inp = req.input_tokens.tolist()
    blocks = [hid[off[i]:off[i + 1]].tolist() for i in range(len(inp))]
    th: list[float] = []
    tok: list[float] = []
    for r in range(int(replicas)):
        a, b = _stream(blocks[r::replicas], inp[r::replicas], int(req.block_tokens))
        th += a
        tok += b
    order = np.argsort(np.asarray(th, dtype=float), kind="stable")
    return PrefixTable(np.asarray(th, dtype=float)[order], np.cumsum(np.asarray(tok, dtype=float)[order]),
                       float(np.sum(req.input_tokens)), int(req.block_tokens))


__all__ = ["PrefixTable", "prefix_table"]
