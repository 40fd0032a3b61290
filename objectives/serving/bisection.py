"""Vectorized bisection that tests several halvings per call, for the serving model's searches over occupancy and
request rate (`analytical.ServingModel`).

Each test there is a vectorized cost-model call whose fixed cost (tens of numpy calls per operation) dominates for
a few configurations: one halving per call made a capacity search of one configuration cost ~150 calls.
`bisect` tests, in one call, every midpoint the next L halvings can visit (2**L - 1 per row, the binary tree of
the search), then walks the tree with the answers. The midpoints are computed with the same arithmetic as one
halving at a time, so the result is exactly what `steps` one-at-a-time halvings give, whatever the test is
(monotone or not), in ceil(steps / L) calls; L shrinks as the rows grow, down to plain bisection where the
batch alone fills a call.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: most halvings tested per call (2**4 - 1 = 15 points per row)
MAX_LEVELS = 4
#: rows per call below which more points are added per row: a test's fixed cost (the cost model's numpy calls, the
#: same for one row or many) matches the per-row cost of about this many rows, so fewer halvings over more points
#: cost less up to here (`python benchmarks/flagship.py`: the burst loop's re-solved occupancies of a few hundred
#: rows and the front's capacity searches; docs/profiles.md)
TARGET_ROWS = 2048


def levels_for(n: int, remaining: int, max_rows: int | None = None) -> int:
    """Halvings per call for ``n`` rows: the most (at most MAX_LEVELS and ``remaining``) whose 2**L - 1 points per
    row fit in max(max_rows, n) rows (None: TARGET_ROWS)."""
    max_rows = TARGET_ROWS if max_rows is None else max_rows
    room = max(max_rows, n) // max(n, 1)
    L = 1
    while L < min(MAX_LEVELS, remaining) and 2 ** (L + 1) - 1 <= room:
        L += 1
    return L


def bisect(lo: np.ndarray, hi: np.ndarray, go_up: Callable[[np.ndarray], np.ndarray], steps: int, *,
           geometric: bool = False, max_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` halvings of each row's interval [lo, hi]; returns the final (lo, hi).

    ``go_up(x)``: ``x`` of shape (n, m), m candidate points per row, -> bool array (n, m), True where the answer
    lies above the point (lo moves up to it), False where it does not (hi moves down to it). Midpoints are
    0.5 (lo + hi), or sqrt(lo hi) with ``geometric``. ``max_rows``: see `levels_for`."""
    lo = np.asarray(lo, dtype=float).copy()
    hi = np.asarray(hi, dtype=float).copy()
    n = len(lo)
    if n == 0:
        return lo, hi
    rows = np.arange(n)
    top = levels_for(n, steps, max_rows)
    width = 2 ** top - 1
    done = 0
    while done < steps:
        L = min(top, steps - done)
        los, his = lo[:, None], hi[:, None]
        mids = []
        for _ in range(L):
            mid = np.sqrt(los * his) if geometric else 0.5 * (los + his)
            mids.append(mid)
            # node j's children at the next level: 2 j (lo, mid) and 2 j + 1 (mid, hi)
            los = np.stack([los, mid], axis=2).reshape(n, -1)
            his = np.stack([mid, his], axis=2).reshape(n, -1)
        x = np.concatenate(mids, axis=1)                          # breadth-first: level l at 2**l - 1 ...
        # every call asks the same number of points per row (a shorter last round repeats its first point): the
        # same rows each time, so the cost model's prepared coefficients (`reusing_prepared`) are reused
        x = np.concatenate([x, np.repeat(x[:, :1], width - x.shape[1], axis=1)], axis=1)
        up = np.asarray(go_up(x), dtype=bool).reshape(n, -1)
        pos = np.zeros(n, dtype=np.int64)
        for level in range(L):
            k = 2 ** level - 1 + pos
            u, m = up[rows, k], x[rows, k]
            lo = np.where(u, m, lo)
            hi = np.where(u, hi, m)
            pos = 2 * pos + u
        done += L
    return lo, hi
