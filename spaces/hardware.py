"""Hardware: which accelerator and how many of them.

    spaces.hardware(["H100", "H200", "L40S"], max_gpus=8)
    # Space(gpu=Categorical(['H100-SXM-80GB', 'H200-SXM-141GB', 'L40S']), n_gpus=Categorical([1, 2, 4, 8]))
    spaces.hardware(["H100", "GB200"], max_gpus=144)
    # n_gpus: 1, 2, 4, 8, then whole 8-GPU nodes for H100 (16, 24, ...) and 16, 32, 64, 72, 144 for GB200 NVL72

GPU names are resolved through the catalog (aliases and case are accepted; the space stores canonical names, so
the objective and the stored study agree on them). An unknown name fails with the catalog's close matches.

GPU counts follow the node shapes of each GPU's system (`objectives.catalog.node_counts`: powers of two inside the
scale-up domain, the whole domain, then whole domains), so a default space never offers the 5- or 6-GPU
deployments no one rents; a GPU whose system has no scale-out network stops at one domain. Other counts only
where the caller asks (``n_gpus=[...]``).
"""
from __future__ import annotations

from collections.abc import Sequence

import dse
from dse import SpaceError
from objectives import catalog
from objectives.catalog import GPU

from .compose import one_of


def check_count(label: str, value: object, low: int = 1) -> int:
    """A positive (>= low) integer argument, or SpaceError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SpaceError(f"{label} must be an integer >= {low}, got {value!r}")
    return value


def gpu_records(gpus: Sequence[str | GPU] | str) -> list[GPU]:
    """Catalog records for GPU names/aliases (a single name is accepted), without duplicates, in the given order."""
    if isinstance(gpus, (str, GPU)):
        gpus = [gpus]
    if not isinstance(gpus, Sequence) or not gpus:
        raise SpaceError(f"gpus must be a non-empty list of catalog GPU names, got {gpus!r}; known: {catalog.gpus()}")
    out: dict[str, GPU] = {}
    for g in gpus:
        rec = catalog.gpu(g.name if isinstance(g, GPU) else g)
        out.setdefault(rec.name, rec)
    return list(out.values())


def gpu_names(gpus: Sequence[str | GPU] | str) -> list[str]:
    """Canonical catalog names of ``gpus`` (see :func:`gpu_records`)."""
    return [g.name for g in gpu_records(gpus)]


def gpu_counts(max_gpus: int, n_gpus: Sequence[int] | None = None,
               gpus: Sequence[str | GPU] | str | None = None) -> list[int]:
    """The GPU counts to consider: ``n_gpus`` checked against ``max_gpus``, or the node-shape counts of ``gpus``
    up to ``max_gpus`` (their union; see the module docstring; an 8-GPU node's shapes when ``gpus`` is None)."""
    check_count("max_gpus", max_gpus)
    if n_gpus is None:
        names = gpu_names(gpus) if gpus is not None else [None]
        return sorted({c for g in names for c in _node_counts(g, max_gpus)})
    counts = sorted({check_count("n_gpus value", int(n) if not isinstance(n, bool) else n) for n in n_gpus})
    over = [n for n in counts if n > max_gpus]
    if over or not counts:
        raise SpaceError(f"n_gpus={list(n_gpus)!r} must be a non-empty list of counts in 1..max_gpus={max_gpus}")
    return counts


def _node_counts(gpu: str | None, max_gpus: int) -> list[int]:
    """Node-shape counts of one catalog GPU (`objectives.catalog.node_counts`; an 8-GPU node for None)."""
    if gpu is not None:
        return catalog.node_counts(gpu, max_gpus)
    dom = catalog.DEFAULT_SCALE_UP
    return [1 << k for k in range(31) if (1 << k) < dom and (1 << k) <= max_gpus] + list(range(dom, max_gpus + 1, dom))


def hardware(gpus: Sequence[str | GPU] | str, max_gpus: int = 8, *, n_gpus: Sequence[int] | None = None) -> dse.Space:
    """Space of ``gpu`` (canonical catalog names) and ``n_gpus`` (GPUs in the deployment): by default the counts
    that follow each GPU's node shapes up to ``max_gpus`` (a constraint keeps each GPU to its own), else the
    given counts."""
    names = gpu_names(gpus)
    counts = gpu_counts(max_gpus, n_gpus, names)
    cons = []
    if n_gpus is None:
        for g in names:
            own = _node_counts(g, max_gpus)
            if own != counts:
                cons.append(f"gpu != {g!r} or " + one_of("n_gpus", own))
    return dse.Space(dict(gpu=dse.Categorical(names), n_gpus=dse.Categorical(counts)), constraints=cons)
