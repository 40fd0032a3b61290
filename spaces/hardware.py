"""Hardware: which accelerator and how many of them.

    spaces.hardware(["H100", "H200", "L40S"], max_gpus=8)
    # Space(gpu=Categorical(['H100-SXM-80GB', 'H200-SXM-141GB', 'L40S']), n_gpus=Categorical([1, ..., 8]))

GPU names are resolved through the catalog (aliases and case are accepted; the space stores canonical names, so
the objective and the stored study agree on them). An unknown name fails with the catalog's close matches.
"""
from __future__ import annotations

from collections.abc import Sequence

import dse
from dse import SpaceError
from objectives import catalog
from objectives.catalog import GPU


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


def gpu_counts(max_gpus: int, n_gpus: Sequence[int] | None = None) -> list[int]:
    """The GPU counts to consider: ``n_gpus`` checked against ``max_gpus``, or every count 1..max_gpus."""
    check_count("max_gpus", max_gpus)
    if n_gpus is None:
        return list(range(1, max_gpus + 1))
    counts = sorted({check_count("n_gpus value", int(n) if not isinstance(n, bool) else n) for n in n_gpus})
    over = [n for n in counts if n > max_gpus]
    if over or not counts:
        raise SpaceError(f"n_gpus={list(n_gpus)!r} must be a non-empty list of counts in 1..max_gpus={max_gpus}")
    return counts


def hardware(gpus: Sequence[str | GPU] | str, max_gpus: int = 8, *, n_gpus: Sequence[int] | None = None) -> dse.Space:
    """Space of ``gpu`` (canonical catalog names) and ``n_gpus`` (GPUs in the deployment, 1..max_gpus, or the
    given counts)."""
    return dse.Space(
        gpu=dse.Categorical(gpu_names(gpus)),
        n_gpus=dse.Categorical(gpu_counts(max_gpus, n_gpus)),
    )
