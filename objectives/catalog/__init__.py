"""Catalog of GPUs and LLMs, every number with its source.

Data: objectives/data/gpus.toml (one `[[gpu]]` table per accelerator, each number as {value, source, note})
and objectives/data/models/*.json (the published config.json fields plus "name", "hf_id", "aliases", "source").

The module-level functions act on ONE default `Catalog`, loaded from the shipped data on first use
(`default_catalog()`). `register_gpu`, `register_model` and `load_gpu_file` here therefore add to that shared
default; code that wants isolation makes its own instance (`default_catalog().copy()`, `Catalog.from_data()`)
and calls the same methods on it. `with_prices` never mutates: it returns a new `Catalog`.

    from objectives import catalog
    catalog.gpu("H100")                        # GPU record (aliases, case/separator-insensitive)
    catalog.model("meta-llama/Llama-3.1-70B")  # Model record (catalog names, aliases, Hugging Face ids)
    t = catalog.gpu_table(names)               # dict of numpy columns, one row per name (vectorized)
    cheap = catalog.with_prices({"H100": 2.0}) # a Catalog copy; use cheap.gpu_table(...)
    catalog.system("GB200")                    # its system: 72-GPU NVLink domain, 400 Gb/s per GPU scale-out

Systems (objectives/data/systems/systems.toml, `objectives.catalog.systems`): per GPU, the scale-up domain and its bandwidth
and the scale-out network per GPU, each with its source; the one topology source of inference, serving, training
and the spaces.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from os import PathLike
from typing import Any

import numpy as np

from . import model_math
from .errors import CatalogError
from .gpu_records import read_gpu_file, validate_gpu
from .hf_config import SUPPORTED_MODEL_TYPES, model_from_hf_config
from .store import DATA_DIR, Catalog, default_catalog
from .systems import DEFAULT_SCALE_UP, System, gpus_per_host, node_counts, system, systems, topology
from .types import DTYPE_BYTES, DTYPES, GPU, Model, Sourced

__all__ = [
    "DTYPE_BYTES", "DTYPES", "GPU", "Model", "Sourced", "CatalogError", "Catalog", "DATA_DIR",
    "SUPPORTED_MODEL_TYPES", "default_catalog", "gpu", "gpus", "gpu_sources", "model", "models",
    "model_from_hf_config", "register_gpu", "register_model", "load_gpu_file", "read_gpu_file", "validate_gpu",
    "gpu_table", "model_table", "with_prices", "model_math",
    "System", "system", "systems", "topology", "node_counts", "DEFAULT_SCALE_UP", "gpus_per_host",
]


def gpu(name: str) -> GPU:
    """The GPU for a canonical name or alias ("H100", "h100_sxm", "H100-SXM5-80GB"); unknown: `CatalogError`."""
    return default_catalog().gpu(name)


def gpus() -> list[str]:
    """Canonical GPU names."""
    return default_catalog().gpus()


def gpu_sources(name: str) -> dict[str, Sourced]:
    """Every number of a GPU with its source URL and note."""
    return default_catalog().gpu_sources(name)


def model(name: str) -> Model:
    """The model for a catalog name, alias or Hugging Face id; unknown: `CatalogError` with close matches."""
    return default_catalog().model(name)


def models() -> list[str]:
    """Catalog model names."""
    return default_catalog().models()


def register_gpu(gpu: GPU | Mapping[str, Any], *, overwrite: bool = False) -> GPU:
    """Validate and add a GPU to the DEFAULT catalog (see the module docstring); returns the stored record."""
    return default_catalog().register_gpu(gpu, overwrite=overwrite)


def register_model(model: Model | Mapping[str, Any], *, overwrite: bool = False) -> Model:
    """Add a model (a `Model` or a config mapping) to the DEFAULT catalog; returns the stored record."""
    return default_catalog().register_model(model, overwrite=overwrite)


def load_gpu_file(path: str | PathLike[str], *, overwrite: bool = False) -> list[GPU]:
    """Register the GPUs of a TOML data file (same format as the shipped one) in the DEFAULT catalog."""
    return default_catalog().load_gpu_file(path, overwrite=overwrite)


def gpu_table(names: Iterable[str] | str) -> dict[str, np.ndarray]:
    """Vectorized GPU lookup over the default catalog (see `Catalog.gpu_table` for the columns)."""
    return default_catalog().gpu_table(names)


def model_table(names: Iterable[str] | str) -> dict[str, np.ndarray]:
    """Vectorized model lookup over the default catalog (see `Catalog.model_table` for the columns)."""
    return default_catalog().model_table(names)


def with_prices(overrides: Mapping[str, float], *, source: str = "user override", date: str = "") -> Catalog:
    """A copy of the default catalog with some GPU prices (USD per GPU-hour) replaced; the default is unchanged."""
    return default_catalog().with_prices(overrides, source=source, date=date)
