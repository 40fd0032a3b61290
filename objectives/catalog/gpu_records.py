"""Building and validating `GPU` records from the data-file format (TOML), with a source for every number.

Data-file format (one `[[gpu]]` table per accelerator; see objectives/data/gpus.toml)::

    [[gpu]]
    name = "H100-SXM-80GB"
    vendor = "nvidia"
    family = "hopper"
    form_factor = "sxm"
    link_type = "nvlink"
    aliases = ["H100", "h100_sxm"]
    peak_tflops.bf16 = { value = 989.4, source = "https://...", note = "1,979 with sparsity, halved" }
    mem_gb = { value = 80, source = "https://..." }
    mem_bw_tbs = { value = 3.35, source = "https://..." }
    link_bw_gbs = { value = 450, source = "https://...", note = "900 GB/s bidirectional" }
    tdp_w = { value = 700, source = "https://..." }
    price_usd_per_hour = { value = 2.99, source = "https://...", date = "2025-06" }
    idle_w = { value = 70, source = "https://..." }          # optional
    mem_device_mib = { value = 81559, source = "https://..." }  # optional: nvidia-smi memory.total, MiB

`price_usd_per_hour` may be left out where no public on-demand price exists: the price is then NaN (unknown),
so cost metrics are NaN until a price is set (`Catalog.with_prices`). `idle_w` may be left out (None), and so may
`mem_device_mib` (the memory the driver reports; without it `GPU.mem_gib` reads the datasheet's GB).
Every number is a `{value, source}` table (plus an optional `note`); a bare number is refused, so no number
enters the catalog without the document it was read from. `register_gpu` accepts the same mapping, or a
`GPU` whose `sources` has an entry for every number ("peak_tflops.<dtype>" for the peaks).
"""
from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import CatalogError
from .types import DTYPES, GPU, Sourced

#: Scale-up link kinds the cost models know.
LINK_TYPES = ("nvlink", "xgmi", "pcie", "roce")
#: Form factors ("pcie" makes `is_pcie` true in `gpu_table`).
FORM_FACTORS = ("sxm", "pcie", "oam", "superchip", "")
#: Vendors.
VENDORS = ("nvidia", "amd", "intel")
#: Numeric scalar fields of `GPU` that must carry a source (the optional ones only when given).
NUMBER_FIELDS = ("mem_gb", "mem_bw_tbs", "link_bw_gbs", "tdp_w", "price_usd_per_hour", "idle_w", "mem_device_mib")
#: Fields a data-file entry may leave out (idle_w, mem_device_mib -> None, price -> NaN meaning "no public price").
OPTIONAL_FIELDS = ("idle_w", "price_usd_per_hour", "mem_device_mib")
#: Optional fields whose absence is None on the `GPU`.
_NONE_WHEN_ABSENT = ("idle_w", "mem_device_mib")
_TEXT_FIELDS = ("name", "vendor", "family", "form_factor", "link_type")
_DATE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _bad(gpu_name: str, field: str, value: object, valid: str) -> CatalogError:
    return CatalogError(f"GPU {gpu_name!r}: field {field!r} = {value!r} is invalid; expected {valid}")


def _sourced(gpu_name: str, field: str, raw: object) -> Sourced:
    """A `{value, source, note}` table of the data format -> `Sourced`, checked."""
    if not isinstance(raw, Mapping):
        raise _bad(gpu_name, field, raw, "a table {value = <number>, source = \"<URL or document>\"}"
                   " (every number needs its source)")
    unknown = set(raw) - {"value", "source", "note", "date"}
    if unknown:
        raise _bad(gpu_name, field, dict(raw), f"only the keys value, source, note, date (not {sorted(unknown)})")
    if "value" not in raw:
        raise _bad(gpu_name, field, dict(raw), "a 'value' key")
    src = raw.get("source", "")
    if not isinstance(src, str) or not src.strip():
        raise _bad(gpu_name, f"{field}.source", src, "a non-empty source (URL or document) for the number")
    return Sourced(value=raw["value"], source=src.strip(), note=str(raw.get("note", "")))


def gpu_from_mapping(data: Mapping[str, Any]) -> tuple[GPU, dict[str, Sourced]]:
    """One data-file entry -> (validated `GPU`, field -> `Sourced` with notes). Raises `CatalogError`."""
    if not isinstance(data, Mapping):
        raise CatalogError(f"a GPU entry must be a table/mapping, got {type(data).__name__}: {data!r}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CatalogError(f"GPU entry without a valid 'name' (got {name!r}): {dict(data)!r}")
    allowed = set(_TEXT_FIELDS) | set(NUMBER_FIELDS) | {"peak_tflops", "aliases"}
    unknown = set(data) - allowed
    if unknown:
        raise _bad(name, sorted(unknown)[0], data[sorted(unknown)[0]], f"one of the fields {sorted(allowed)}")
    peaks_raw = data.get("peak_tflops", {})
    if not isinstance(peaks_raw, Mapping) or not peaks_raw:
        raise _bad(name, "peak_tflops", peaks_raw, f"a non-empty table of dtype -> {{value, source}}, dtypes in {DTYPES}")
    sourced: dict[str, Sourced] = {}
    for dt, raw in peaks_raw.items():
        sourced[f"peak_tflops.{dt}"] = _sourced(name, f"peak_tflops.{dt}", raw)
    for f in NUMBER_FIELDS:
        if f in data:
            sourced[f] = _sourced(name, f, data[f])
        elif f not in OPTIONAL_FIELDS:
            raise _bad(name, f, None, "a {value, source} table (required)")
    price_date = str(data["price_usd_per_hour"].get("date", "")) if "price_usd_per_hour" in data else ""
    gpu = GPU(
        name=name.strip(),
        vendor=data.get("vendor", ""),
        family=data.get("family", ""),
        peak_tflops={dt: sourced[f"peak_tflops.{dt}"].value for dt in peaks_raw},
        mem_gb=sourced["mem_gb"].value,
        mem_bw_tbs=sourced["mem_bw_tbs"].value,
        link_bw_gbs=sourced["link_bw_gbs"].value,
        link_type=data.get("link_type", ""),
        tdp_w=sourced["tdp_w"].value,
        price_usd_per_hour=(sourced["price_usd_per_hour"].value if "price_usd_per_hour" in sourced
                            else float("nan")),
        price_date=price_date,
        aliases=tuple(data.get("aliases", ())),
        form_factor=data.get("form_factor", ""),
        idle_w=sourced["idle_w"].value if "idle_w" in sourced else None,
        mem_device_mib=sourced["mem_device_mib"].value if "mem_device_mib" in sourced else None,
        sources={k: s.source for k, s in sourced.items()},
    )
    return validate_gpu(gpu), sourced


def _positive(gpu_name: str, field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise _bad(gpu_name, field, value, "a finite number > 0")
    return float(value)


def validate_gpu(gpu: GPU) -> GPU:
    """Check a `GPU` (positive finite numbers, known dtypes, a source for every number, known link type,
    form factor and vendor, a YYYY-MM price date) and return it with floats and read-only mappings.
    A NaN price means "no public price" and needs no source.

    Raises `CatalogError` naming the bad field, its value and what would be valid.
    """
    if not isinstance(gpu, GPU):
        raise CatalogError(f"expected a GPU record, got {type(gpu).__name__}: {gpu!r}")
    name = gpu.name
    if not isinstance(name, str) or not name.strip():
        raise CatalogError(f"GPU name must be a non-empty string, got {name!r}")
    if gpu.vendor not in VENDORS:
        raise _bad(name, "vendor", gpu.vendor, f"one of {VENDORS}")
    if not isinstance(gpu.family, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", gpu.family):
        raise _bad(name, "family", gpu.family, "a lower-case architecture name such as 'hopper', 'cdna3'")
    if gpu.link_type not in LINK_TYPES:
        raise _bad(name, "link_type", gpu.link_type, f"one of {LINK_TYPES}")
    if gpu.form_factor not in FORM_FACTORS:
        raise _bad(name, "form_factor", gpu.form_factor, f"one of {FORM_FACTORS}")
    if gpu.price_date and not _DATE.match(str(gpu.price_date)):
        raise _bad(name, "price_date", gpu.price_date, "'YYYY-MM' (the month of the price quote)")
    if not isinstance(gpu.aliases, (tuple, list)) or not all(isinstance(a, str) and a.strip() for a in gpu.aliases):
        raise _bad(name, "aliases", gpu.aliases, "a list of non-empty strings")
    if not isinstance(gpu.peak_tflops, Mapping) or not gpu.peak_tflops:
        raise _bad(name, "peak_tflops", gpu.peak_tflops, f"a non-empty mapping dtype -> TFLOP/s, dtypes in {DTYPES}")
    peaks = {}
    for dt, v in gpu.peak_tflops.items():
        if dt not in DTYPES:
            raise _bad(name, f"peak_tflops.{dt}", v, f"a dtype in {DTYPES}")
        peaks[dt] = _positive(name, f"peak_tflops.{dt}", v)
    price = gpu.price_usd_per_hour
    price_unknown = isinstance(price, float) and math.isnan(price)
    nums = {f: getattr(gpu, f) for f in NUMBER_FIELDS
            if not (f in _NONE_WHEN_ABSENT and getattr(gpu, f) is None)
            and not (f == "price_usd_per_hour" and price_unknown)}
    # keyword arguments of dataclasses.replace by field name (Any: mypy cannot tie the names to the float fields)
    clean: dict[str, Any] = {f: _positive(name, f, v) for f, v in nums.items()}
    if "idle_w" in clean and clean["idle_w"] >= clean["tdp_w"]:
        raise _bad(name, "idle_w", gpu.idle_w, f"a power below tdp_w = {gpu.tdp_w} W")
    sources = dict(gpu.sources or {})
    for key in [f"peak_tflops.{dt}" for dt in peaks] + list(clean):
        src = sources.get(key)
        if not isinstance(src, str) or not src.strip():
            raise _bad(name, f"sources[{key!r}]", src, f"a non-empty source (URL or document) for {key}")
    return dataclasses.replace(
        gpu, name=name.strip(), peak_tflops=MappingProxyType(peaks), aliases=tuple(gpu.aliases),
        sources=MappingProxyType(sources), **clean,
    )


def has_price(gpu: GPU) -> bool:
    """False when the catalog has no public on-demand price for `gpu` (price is NaN)."""
    return math.isfinite(gpu.price_usd_per_hour)


def read_gpu_file(path: str | PathLike[str]) -> list[tuple[GPU, dict[str, Sourced]]]:
    """Parse a GPU data file (TOML with `[[gpu]]` tables) into validated records, without registering them."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise CatalogError(f"GPU data file not found: {str(p)!r}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"GPU data file {str(p)!r} is not valid TOML: {exc}") from None
    entries = doc.get("gpu")
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"GPU data file {str(p)!r} has no [[gpu]] tables (keys found: {sorted(doc)})")
    out = []
    for entry in entries:
        try:
            out.append(gpu_from_mapping(entry))
        except CatalogError as exc:
            raise CatalogError(f"{p.name}: {exc}") from None
    return out
