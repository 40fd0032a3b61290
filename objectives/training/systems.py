"""Training systems: scale-up domain size, scale-out network per GPU and host link, with their sources.

Data: objectives/data/training/systems.toml (one ``[[system]]`` table per catalog GPU, every number a
``{value, source, note}`` table). A GPU without an entry trains inside one domain of `DEFAULT_SCALE_UP` GPUs over
its catalog link (`GPU.link_bw_gbs`) and has no scale-out network: `estimate` then needs ``scale_out_gbps=`` for
layouts that span more GPUs.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SYSTEMS_FILE = Path(__file__).resolve().parents[1] / "data" / "training" / "systems.toml"
#: scale-up domain assumed for a GPU without a systems entry (an 8-GPU server; its link is the catalog's)
DEFAULT_SCALE_UP = 8
_FIELDS = ("scale_up_gpus", "scale_out_gbps", "host_link_gbs")


@dataclass(frozen=True)
class System:
    """How the GPUs of one catalog entry are wired for training (numbers with `sources`)."""

    gpu: str
    name: str
    scale_up_gpus: int          # GPUs per scale-up domain (NVLink / Infinity Fabric)
    scale_out_gbps: float       # scale-out network per GPU, Gb/s per direction
    host_link_gbs: float        # GPU <-> host, GB/s per direction
    sources: dict


@lru_cache(maxsize=1)
def systems() -> dict[str, System]:
    """Catalog GPU name -> `System`, read once from the shipped TOML file."""
    with SYSTEMS_FILE.open("rb") as fh:
        doc = tomllib.load(fh)
    out: dict[str, System] = {}
    for e in doc["system"]:
        vals, srcs = {}, {}
        for f in _FIELDS:
            cell = e[f]
            if not isinstance(cell, dict) or not str(cell.get("source", "")).startswith("https://"):
                raise ValueError(f"{SYSTEMS_FILE.name}: {e['gpu']}.{f} needs a {{value, source}} table with a URL")
            vals[f], srcs[f] = cell["value"], cell["source"]
        out[e["gpu"]] = System(gpu=e["gpu"], name=e["name"], scale_up_gpus=int(vals["scale_up_gpus"]),
                               scale_out_gbps=float(vals["scale_out_gbps"]),
                               host_link_gbs=float(vals["host_link_gbs"]), sources=srcs)
    return out


def system(gpu: str) -> System | None:
    """The `System` of a catalog GPU name (canonical), or None when the file has none."""
    return systems().get(gpu)
