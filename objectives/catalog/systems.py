"""Systems: how the GPUs of one catalog entry are wired together (the one topology source of the cost models).

Data: objectives/data/systems/systems.toml, one ``[[system]]`` table per catalog GPU, every number a ``{value, source,
note}`` table. A system gives

- ``scale_up_gpus``: GPUs in one scale-up domain (NVLink/NVSwitch or Infinity Fabric): 8 for an HGX/DGX or
  MI300X node, 72 for a GB200/GB300 NVL72 rack;
- ``scale_up_gbs``: the domain's bandwidth per GPU per direction, GB/s: the GPU's catalog ``link_bw_gbs`` (its source
  is the GPU's, in gpus.toml; one number in one place);
- ``scale_out_gbps``: the scale-out network (InfiniBand / RoCE / Slingshot) per GPU per direction, Gb/s;
- ``host_link_gbs``: GPU <-> host memory per direction, GB/s;
- ``gpus_per_host``: GPUs of one host, the machine one OS runs on and numbers its GPUs from 0 in
  (CUDA_VISIBLE_DEVICES): 8 for an HGX/DGX server, 4 for a GB200/GB300 NVL72 compute tray (a 72-GPU NVLink domain
  over 18 hosts). `objectives.deploy` places replicas on hosts of this size.

A GPU without an entry is one domain of `DEFAULT_SCALE_UP` GPUs over its catalog link with no scale-out network
(`scale_out_gbps` 0): the inference model marks deployments of more GPUs as not runnable, training asks for
``scale_out_gbps=``, the spaces stop at one domain; its host is that same 8-GPU server (`gpus_per_host`).

    from objectives import catalog
    catalog.system("GB200").scale_up_gpus      # 72
    catalog.system("H100").scale_out_gbps      # 400.0 (Gb/s per GPU)
    catalog.gpus_per_host("GB200")             # 4 (one NVL72 compute tray)
    catalog.topology(["H100", "L40S"])         # vectorized: scale_up_gpus, scale_up_gbs, scale_out_gbs per name
"""
from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import CatalogError

SYSTEMS_FILE = Path(__file__).resolve().parents[1] / "data" / "systems" / "systems.toml"
#: scale-up domain assumed for a GPU without a systems entry (an 8-GPU server over the catalog link)
DEFAULT_SCALE_UP = 8
_FIELDS = ("scale_up_gpus", "scale_out_gbps", "host_link_gbs", "gpus_per_host")


@dataclass(frozen=True)
class System:
    """How the GPUs of one catalog entry are wired (every number has its document in `sources`)."""

    gpu: str                    # canonical catalog GPU name
    name: str                   # the system, e.g. "DGX H100 / HGX H100 8-GPU", "GB200 NVL72"
    scale_up_gpus: int          # GPUs per scale-up domain (NVLink / Infinity Fabric)
    scale_out_gbps: float       # scale-out network per GPU, Gb/s per direction
    host_link_gbs: float        # GPU <-> host, GB/s per direction
    sources: Mapping[str, str]  # field -> URL (scale_up_gbs: the GPU's link_bw_gbs source)
    scale_up_gbs: float = 0.0   # scale-up bandwidth per GPU per direction, GB/s (the GPU's catalog link_bw_gbs)
    gpus_per_host: int = DEFAULT_SCALE_UP   # GPUs of one host (server / compute tray), the file's value

    @property
    def scale_out_gbs(self) -> float:
        """The scale-out network per GPU per direction in GB/s (``scale_out_gbps / 8``)."""
        return self.scale_out_gbps / 8.0


def _read(path: Path) -> dict[str, System]:
    with path.open("rb") as fh:
        doc = tomllib.load(fh)
    out: dict[str, System] = {}
    for e in doc.get("system", []):
        vals, srcs = {}, {}
        for f in _FIELDS:
            cell = e.get(f)
            if not isinstance(cell, dict) or not str(cell.get("source", "")).startswith("https://"):
                raise CatalogError(f"{path.name}: {e.get('gpu')}.{f} needs a {{value, source}} table with a URL, "
                                   f"got {cell!r}")
            vals[f], srcs[f] = cell["value"], cell["source"]
        for f in ("scale_up_gpus", "gpus_per_host"):
            if not (isinstance(vals[f], int) and not isinstance(vals[f], bool) and vals[f] >= 1):
                raise CatalogError(f"{path.name}: {e['gpu']}.{f} = {vals[f]!r}: a whole number >= 1")
        for f in ("scale_out_gbps", "host_link_gbs"):
            if not (isinstance(vals[f], (int, float)) and vals[f] > 0):
                raise CatalogError(f"{path.name}: {e['gpu']}.{f} = {vals[f]!r}: a number > 0")
        out[e["gpu"]] = System(gpu=e["gpu"], name=e["name"], scale_up_gpus=int(vals["scale_up_gpus"]),
                               scale_out_gbps=float(vals["scale_out_gbps"]),
                               host_link_gbs=float(vals["host_link_gbs"]), sources=srcs,
                               gpus_per_host=int(vals["gpus_per_host"]))
    return out


@lru_cache(maxsize=1)
def _shipped() -> dict[str, System]:
    return _read(SYSTEMS_FILE)


def systems() -> dict[str, System]:
    """Catalog GPU name -> `System` of the shipped file (scale-up bandwidth from the default catalog's GPUs)."""
    return {name: _with_link(s) for name, s in _shipped().items()}


def _with_link(s: System) -> System:
    from . import default_catalog
    try:
        g = default_catalog().gpu(s.gpu)
    except CatalogError:  # a systems entry for a GPU the catalog does not know: refused loudly
        raise CatalogError(f"{SYSTEMS_FILE.name}: system {s.name!r} names GPU {s.gpu!r}, which is not in the "
                           f"catalog; known: {default_catalog().gpus()}") from None
    if s.scale_up_gbs == g.link_bw_gbs:
        return s
    return dataclasses.replace(s, scale_up_gbs=float(g.link_bw_gbs),
                               sources={**s.sources, "scale_up_gbs": g.sources.get("link_bw_gbs", "")})


def system(gpu: str) -> System | None:
    """The `System` of a catalog GPU (canonical name or alias), or None when the systems file has none.
    An unknown GPU name raises the catalog's `CatalogError` with close matches."""
    from . import default_catalog
    name = default_catalog().gpu(gpu).name if gpu not in _shipped() else gpu
    s = _shipped().get(name)
    return None if s is None else _with_link(s)


def gpus_per_host(gpu: str) -> int:
    """GPUs of one host (server or compute tray) of a catalog GPU (canonical name or alias): its system's
    ``gpus_per_host``, else `DEFAULT_SCALE_UP` (the 8-GPU server assumed for a GPU without a systems entry, the
    same machine its scale-up domain is). An unknown GPU name raises the catalog's `CatalogError`."""
    s = system(gpu)
    return s.gpus_per_host if s is not None else DEFAULT_SCALE_UP


def topology(gpus: Iterable[str] | str) -> dict[str, np.ndarray]:
    """Per GPU name (canonical or alias): ``scale_up_gpus`` (GPUs per domain; `DEFAULT_SCALE_UP` without a system),
    ``scale_up_gbs`` (GB/s per GPU per direction, the catalog link), ``scale_out_gbs`` (GB/s per GPU per direction;
    0 = no scale-out network known) as float arrays, one row per name. Looked up once per distinct name."""
    from . import default_catalog
    names = [gpus] if isinstance(gpus, str) else list(gpus)
    uniq: dict[str, tuple[float, float, float] | None] = {n: None for n in names}
    for n in uniq:
        g = default_catalog().gpu(n)
        s = system(g.name)
        uniq[n] = (float(s.scale_up_gpus) if s else float(DEFAULT_SCALE_UP), float(g.link_bw_gbs),
                   float(s.scale_out_gbs) if s else 0.0)
    rows = np.array([uniq[n] for n in names], dtype=float).reshape(len(names), 3)
    return {"scale_up_gpus": rows[:, 0], "scale_up_gbs": rows[:, 1], "scale_out_gbs": rows[:, 2]}


def node_counts(gpu: str, max_gpus: int) -> list[int]:
    """GPU counts that follow the node shapes of ``gpu``'s system, up to ``max_gpus``: the powers of two below the
    scale-up domain (1, 2, 4, ... inside one HGX node or NVL72 rack), the whole domain, then whole domains
    (8, 16, 24, ... for 8-GPU nodes; 72, 144, ... for NVL72). A GPU without a scale-out network stops at one
    domain."""
    s = system(gpu)
    dom = s.scale_up_gpus if s else DEFAULT_SCALE_UP
    out = [1 << k for k in range(0, 31) if (1 << k) < dom and (1 << k) <= max_gpus]
    if dom <= max_gpus:
        out.append(dom)
        if s is not None:
            out.extend(dom * k for k in range(2, max_gpus // dom + 1))
    return out
