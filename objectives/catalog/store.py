"""`Catalog`: a set of GPUs and models with alias lookup, registration, price overrides and vectorized tables.

There is no global mutable state beyond one lazily created default instance (see `default_catalog`), which the
module-level functions of `objectives.catalog` use. Code that registers its own GPUs or changes prices should
make its own instance (`default_catalog().copy()`, `Catalog.with_prices(...)`) and pass it around. Every
method is thread-safe: mutations (register_*) take a lock and drop the cached tables.
"""
from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from . import model_math
from .checks import validate_model
from .errors import CatalogError
from .gpu_records import gpu_from_mapping, read_gpu_file, validate_gpu
from .hf_config import model_from_hf_config
from .names import (
    device_name_candidates,
    model_name_candidates,
    normalize,
    quant_from_suffix,
    unknown_name_message,
    without_revision,
)
from .types import DTYPES, GPU, Model, Sourced

#: Directory of the shipped data (gpus.toml and models/*.json).
DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def _claim_names(key_map: Mapping[str, str], name: str, keys: Iterable[str], registered: bool, *, overwrite: bool,
                 what: str, keys_are: str, owner_is: str) -> dict[str, str]:
    """A copy of `key_map` (normalized name / alias -> canonical name) in which `keys` name `name`, the names an
    entry it replaces had dropped. CatalogError if `name` is `registered` and not `overwrite`, or a key already
    names another entry (`what`, `keys_are`, `owner_is`: the words of the message)."""
    if registered and not overwrite:
        raise CatalogError(f"{what} {name!r} is already in the catalog; pass overwrite=True to replace it")
    keys = list(keys)
    for k in keys:
        owner = key_map.get(k)
        if owner is not None and owner != name:
            raise CatalogError(f"{what} {name!r}: {keys_are} {k!r} already names {owner_is}{owner!r}")
    kept = {k: v for k, v in key_map.items() if v != name} if registered else dict(key_map)
    return {**kept, **dict.fromkeys(keys, name)}


def _format(m: Model) -> tuple[str, str, str]:
    """A checkpoint's weight format: (weight dtype, scheme, KV-cache dtype), as `quant_from_suffix` names them."""
    return m.quant_weight_dtype, m.quant_scheme, m.quant_kv_dtype


#: where an unknown model's message points: the shipped names, and the config.json any other model is read from
_MODELS_HINT = ("catalog.models(); a model not shipped is read from its config.json: give the path of that file or "
                "of its checkpoint folder as the model")


def _other_publisher(name: str, m: Model) -> bool:
    """Whether Hub id `name` ("owner/repo") is published by none of the owners of `m`'s Hub id and aliases (False
    where either names no owner)."""
    owners = {i.split("/", 1)[0].lower() for i in (m.hf_id, *m.aliases) if "/" in i}
    return "/" in name and bool(owners) and name.split("/", 1)[0].lower() not in owners


class Catalog:
    """GPUs and models by canonical name, alias or Hugging Face id.

    `Catalog.from_data()` loads the shipped data; `Catalog()` is empty. Lookups normalize names (case,
    '-', '_', ' ', '/' and '.' are ignored), so "H100", "h100_sxm" and "H100-SXM-80GB" resolve alike.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._gpus: dict[str, GPU] = {}
        self._gpu_sourced: dict[str, dict[str, Sourced]] = {}
        self._gpu_keys: dict[str, str] = {}        # normalized name/alias -> canonical name
        self._models: dict[str, Model] = {}
        self._model_keys: dict[str, str] = {}
        self._derived: set[str] = set()            # quantized variants derived from an id (`_quantized_variant`)
        self._looked_up: set[str] = set()          # registered by a lookup (variants, local checkpoints): not listed
        self._gpu_cols: dict[str, np.ndarray] | None = None
        self._model_cols: dict[str, np.ndarray] | None = None

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_data(cls, data_dir: str | PathLike[str] | None = None) -> Catalog:
        """A catalog with every `*.toml` GPU file in `data_dir` and every `models/*.json` model config."""
        d = Path(data_dir) if data_dir is not None else DATA_DIR
        cat = cls()
        for f in sorted(d.glob("*.toml")):
            for gpu, sourced in read_gpu_file(f):
                cat._add_gpu(gpu, sourced, overwrite=False)
        for f in sorted((d / "models").glob("*.json")):
            try:
                cat.register_model(model_from_hf_config(f))
            except CatalogError as exc:
                raise CatalogError(f"{f.name}: {exc}") from None
        return cat

    def copy(self) -> Catalog:
        """An independent catalog with the same entries (records are immutable, so this is cheap)."""
        with self._lock:
            new = Catalog()
            new._gpus = dict(self._gpus)
            new._gpu_sourced = dict(self._gpu_sourced)
            new._gpu_keys = dict(self._gpu_keys)
            new._models = dict(self._models)
            new._model_keys = dict(self._model_keys)
            new._derived = set(self._derived)
            new._looked_up = set(self._looked_up)
            return new

    # ---------------------------------------------------------------- GPUs
    def _add_gpu(self, gpu: GPU, sourced: Mapping[str, Sourced] | None, *, overwrite: bool) -> GPU:
        gpu = validate_gpu(gpu)
        keys = [normalize(gpu.name)] + [normalize(a) for a in gpu.aliases]
        with self._lock:
            names = _claim_names(self._gpu_keys, gpu.name, keys, gpu.name in self._gpus, overwrite=overwrite,
                                 what="GPU", keys_are="name or alias", owner_is="GPU ")
            self._gpus[gpu.name] = gpu
            self._gpu_sourced[gpu.name] = dict(sourced) if sourced else {
                k: Sourced(value=self._field_value(gpu, k), source=s) for k, s in gpu.sources.items()}
            self._gpu_keys = names
            self._gpu_cols = None
        return gpu

    @staticmethod
    def _field_value(gpu: GPU, key: str) -> float:
        if key.startswith("peak_tflops."):
            return gpu.peak_tflops.get(key.split(".", 1)[1], float("nan"))
        v = getattr(gpu, key, None)
        return float("nan") if v is None else v

    def register_gpu(self, gpu: GPU | Mapping[str, Any], *, overwrite: bool = False) -> GPU:
        """Add a GPU (a `GPU`, or a mapping in the data-file format) after validation; returns the stored record.

        Raises `CatalogError` naming the bad field, or if the name/an alias is taken (unless `overwrite`).
        """
        if isinstance(gpu, GPU):
            return self._add_gpu(gpu, None, overwrite=overwrite)
        rec, sourced = gpu_from_mapping(gpu)
        return self._add_gpu(rec, sourced, overwrite=overwrite)

    def load_gpu_file(self, path: str | PathLike[str], *, overwrite: bool = False) -> list[GPU]:
        """Register every GPU of a TOML data file (same format as objectives/data/gpus.toml); returns them."""
        return [self._add_gpu(g, s, overwrite=overwrite) for g, s in read_gpu_file(path)]

    def _gpu_name(self, name: str) -> str:
        canon = self._gpu_keys.get(normalize(name)) if isinstance(name, str) else None
        if canon is None and isinstance(name, str):
            canon = self._device_gpu(name)
        if canon is None:
            raise CatalogError(unknown_name_message("GPU", name, self._gpu_keys, self.gpus(), "catalog.gpus()"))
        return canon

    def _device_gpu(self, name: str) -> str | None:
        """The catalog GPU a driver's device name stands for (`names.device_name_candidates`: "NVIDIA H100 80GB HBM3"
        -> H100-SXM-80GB), resolved in code so the data file (and its digest in study versions) stays as it is;
        None where none matches. Memory the name gives must be the GPU's (GB, rounded), except a superchip's
        module memory without a memory type ("NVIDIA GH200 480GB": the Grace CPU's LPDDR5X counted); else
        `CatalogError` naming both."""
        for cand, size_gb, hbm in device_name_candidates(name):
            canon = self._gpu_keys.get(normalize(cand))
            if canon is None:
                continue
            g = self._gpus[canon]
            if size_gb is None or round(size_gb) == round(g.mem_gb) or \
                    (g.form_factor == "superchip" and not hbm and size_gb > g.mem_gb):
                return canon
            raise CatalogError(f"GPU {name!r}: the device name gives {size_gb:g} GB of memory, but the catalog's "
                               f"{canon} (matched by {cand!r}) has {g.mem_gb:g} GB; register the device "
                               f"(catalog.register_gpu) or give a catalog name (catalog.gpus())")
        return None

    def gpu(self, name: str) -> GPU:
        """The GPU for a canonical name, alias (case- and separator-insensitive) or a driver's device name
        ("NVIDIA H100 80GB HBM3", `_device_gpu`). Unknown: `CatalogError`."""
        return self._gpus[self._gpu_name(name)]

    def gpus(self) -> list[str]:
        """Canonical GPU names, in catalog order."""
        return list(self._gpus)

    def gpu_sources(self, name: str) -> dict[str, Sourced]:
        """Every number of a GPU with its source and note ("peak_tflops.bf16" -> Sourced(989.4, url, note))."""
        return dict(self._gpu_sourced[self._gpu_name(name)])

    def with_prices(self, overrides: Mapping[str, float], *, source: str = "user override",
                    date: str = "") -> Catalog:
        """A copy of this catalog with some GPU prices (USD per GPU-hour) replaced; this one is unchanged.

        Keys are GPU names or aliases; values must be finite and > 0. The new prices cite `source`.
        """
        if not isinstance(overrides, Mapping):
            raise CatalogError(f"price overrides must be a mapping GPU name -> USD per GPU-hour, got {overrides!r}")
        new = self.copy()
        for key, price in overrides.items():
            canon = new._gpu_name(key)
            old = new._gpus[canon]
            rec = dataclasses.replace(old, price_usd_per_hour=price, price_date=date,
                                      sources=MappingProxyType({**old.sources, "price_usd_per_hour": source}))
            sourced = dict(new._gpu_sourced[canon])
            sourced["price_usd_per_hour"] = Sourced(value=price, source=source)
            new._add_gpu(rec, sourced, overwrite=True)
        return new

    # ---------------------------------------------------------------- models
    def register_model(self, model: Model | Mapping[str, Any], *, overwrite: bool = False) -> Model:
        """Add a model (a `Model`, or a Hugging Face config mapping with optional name/hf_id/aliases/source).

        Raises `CatalogError` if the name, HF id or an alias is taken (unless `overwrite`) or a shape is invalid.
        """
        if not isinstance(model, Model):
            model = model_from_hf_config(model)
        validate_model(model)
        keys = {normalize(model.name)} | {normalize(a) for a in model.aliases}
        # an alias that is a Hub id also answers to its repository name ("deepseek-ai/DeepSeek-V3.1" -> "DeepSeek-V3.1")
        keys |= {normalize(a.rsplit("/", 1)[-1]) for a in model.aliases if "/" in a}
        if model.hf_id:
            keys |= {normalize(model.hf_id), normalize(model.hf_id.rsplit("/", 1)[-1])}
        with self._lock:
            names = _claim_names(self._model_keys, model.name, keys, model.name in self._models, overwrite=overwrite,
                                 what="model", keys_are="name, id or alias", owner_is="")
            self._models[model.name] = model
            self._model_keys = names
            self._model_cols = None
            self._looked_up.discard(model.name)   # registered by the user: listed
        return model

    def load_model_file(self, path: str | PathLike[str], *, name: str | None = None,
                        hf_quant_config: str | PathLike[str] | Mapping[str, Any] | None = None,
                        overwrite: bool = False) -> Model:
        """Register the model of a local config.json (plus optional name/hf_id/aliases/source keys), with the
        ModelOpt hf_quant_config.json shipped next to it when given (sets the checkpoint's weight format)."""
        return self.register_model(model_from_hf_config(path, name=name, hf_quant_config=hf_quant_config),
                                   overwrite=overwrite)

    def _find_model(self, name: str) -> str | None:
        for key in model_name_candidates(name):
            canon = self._model_keys.get(key)
            if canon is not None:
                return canon
        return None

    def _model_name(self, name: str) -> str:
        if isinstance(name, str):
            # a local checkpoint the name is the path of wins (the user points at that file; a folder named like a
            # shipped model, "models/Llama-3.1-8B", may hold another config), then the catalog's names
            local = self._local_checkpoint(name)
            if local is not None:
                return local
            # the id as written, then without a packaging revision ("...-FP4-v2": the same checkpoint format)
            for n in (name, without_revision(name)):
                if n is None:
                    continue
                canon = self._find_model(n)
                quant = quant_from_suffix(n)
                # a variant another publisher's id derived, or a shipped checkpoint of another publisher, whose
                # repository name is this id's answers only where its format is the one this id names
                # ("RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8" is not NVIDIA's ModelOpt checkpoint of that name)
                if canon is not None and not (quant is not None and _format(self._models[canon]) != quant[2:]
                                              and (canon in self._derived
                                                   or _other_publisher(n, self._models[canon]))):
                    return canon
                if quant is not None and self._find_model(quant[0]) is not None:
                    return self._quantized_variant(name, *quant)
            # a plain name that is no catalog name: a checkpoint folder of that name here ("ck" for "./ck")
            local = self._local_checkpoint(name, plain=True)
            if local is not None:
                return local
        raise CatalogError(self._unknown_model(name))

    def _unknown_model(self, name: object) -> str:
        """The unknown-model message: close matches among the listed names (`models`: not the records lookups
        derived), their count, and for a plain name the checkpoint folder that was looked for too."""
        keys = {k: v for k, v in self._model_keys.items() if v not in self._looked_up}
        msg = unknown_name_message("model", name, keys, self.models(), _MODELS_HINT)
        if isinstance(name, str) and "/" not in name and "\\" not in name and not name.endswith(".json"):
            msg += f"; nor a checkpoint folder: no {Path(name) / 'config.json'} in {Path.cwd()}"
        return msg

    def _local_checkpoint(self, name: str, plain: bool = False) -> str | None:
        """Register (once) the model of a local config.json or checkpoint folder named by its path, under that path
        as given (its Hub id and aliases left out: "_name_or_path" may name a shipped model); None where `name` is no
        such path (a folder without config.json included: the name is then looked up as usual). A name without a
        path separator is read only with `plain` (`_model_name`: after the catalog's names missed it). A config that
        cannot be costed raises `CatalogError` naming the field."""
        if name in self._models:
            return None  # a catalog name (or a path registered before): the lookup by key finds it
        if not plain and "/" not in name and "\\" not in name and not name.endswith(".json"):
            return None  # not a path (no file system access for plain names before the catalog's)
        p = Path(name).expanduser()
        if not ((p.is_dir() and (p / "config.json").is_file()) or (p.is_file() and p.suffix == ".json")):
            return None
        rec = dataclasses.replace(model_from_hf_config(p), name=name, hf_id="", aliases=())
        with self._lock:
            if name not in self._models:
                self.register_model(rec)
                self._looked_up.add(name)
        return name

    def _quantized_variant(self, name: str, base_id: str, tag: str, dtype: str, scheme: str, kv: str) -> str:
        """Register (once) and return the name of a quantized release of a known architecture: the base record
        with the checkpoint's weight format, named "<base>-<tag>" ("DeepSeek-R1-NVFP4"). Unknown base: the usual
        unknown-model error with close matches."""
        base = self._find_model(base_id)
        if base is None:
            raise CatalogError(self._unknown_model(name))
        variant = f"{base}-{tag}"
        with self._lock:
            have = self._models.get(variant)
            if have is not None and _format(have) != (dtype, scheme, kv):
                # another publisher's release under the same tag in another format (NVIDIA's per-tensor FP8 with
                # FP8 KV-cache scales, Meta's per-channel FP8): a record of its own, whichever id was asked first
                variant = f"{variant}-{scheme}" + (f"-kv-{kv}" if kv else "")
            if variant not in self._models:
                # the id is its Hub id unless its repository name already answers to another publisher's variant
                own = "/" in name and normalize(name.rsplit("/", 1)[-1]) not in self._model_keys
                rec = dataclasses.replace(self._models[base], name=variant, hf_id=name if own else "",
                                          aliases=(), quant_weight_dtype=dtype, quant_scheme=scheme,
                                          quant_kv_dtype=kv, quant_method="")
                self.register_model(rec)
                self._derived.add(variant)
                self._looked_up.add(variant)
                if "/" in name and not own:
                    self._model_keys.setdefault(normalize(name), variant)
            elif "/" in name:
                self._model_keys.setdefault(normalize(name), variant)
        return variant

    def model(self, name: str) -> Model:
        """The model for a catalog name, alias or Hugging Face id ("meta-llama/Llama-3.1-70B-Instruct"), or the path
        of a local config.json or checkpoint folder (`model_from_hf_config`, registered under that path).

        Fine-tunes resolve to their base shapes ("-Instruct", "-Thinking", "-2507", ...). A quantized release of a
        known architecture ("Qwen/Qwen3-235B-A22B-FP8", "nvidia/DeepSeek-R1-NVFP4") that is not shipped resolves to
        the base record with the weight format its id names (`quant_weight_dtype`, `quant_scheme`), registered in
        this catalog under "<base>-<tag>"; shipped checkpoints (their own config and quantization config) win.
        """
        return self._models[self._model_name(name)]

    def models(self) -> list[str]:
        """Catalog model names: the shipped ones and those registered (`register_model`); not the records a lookup
        made (a quantized release's "<base>-<tag>" variant, a local checkpoint's path), which `model` still finds,
        so the list does not grow with the lookups a process ran."""
        return [n for n in self._models if n not in self._looked_up]

    # ---------------------------------------------------------------- vectorized tables
    def _gpu_columns(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._gpu_cols is None:
                gs = list(self._gpus.values())
                cols: dict[str, np.ndarray] = {
                    f"peak_tflops_{dt}": np.array([g.peak_tflops.get(dt, 0.0) for g in gs], dtype=np.float64)
                    for dt in DTYPES}
                for f in ("mem_gb", "mem_bw_tbs", "link_bw_gbs", "tdp_w", "price_usd_per_hour"):
                    cols[f] = np.array([getattr(g, f) for g in gs], dtype=np.float64)
                cols["mem_gib"] = np.array([g.mem_gib for g in gs], dtype=np.float64)
                cols["idle_w"] = np.array([np.nan if g.idle_w is None else g.idle_w for g in gs], dtype=np.float64)
                for f in ("name", "vendor", "family", "link_type", "form_factor"):
                    cols[f] = np.array([getattr(g, f) for g in gs], dtype=object)
                cols["is_pcie"] = np.array([g.form_factor == "pcie" for g in gs], dtype=bool)
                for a in cols.values():
                    a.setflags(write=False)
                self._gpu_cols = cols
            return self._gpu_cols

    def _model_columns(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._model_cols is None:
                ms = list(self._models.values())
                cols: dict[str, np.ndarray] = {}
                for f in dataclasses.fields(Model):
                    vals = [getattr(m, f.name) for m in ms]
                    if f.type == "bool":
                        cols[f.name] = np.array(vals, dtype=bool)
                    elif f.type == "int":
                        cols[f.name] = np.array(vals, dtype=np.int64)
                    elif f.type == "str":
                        cols[f.name] = np.array(vals, dtype=object)
                for key, fn in model_math.DERIVED.items():
                    cols[key] = fn(cols)
                cols["is_moe"] = cols["n_experts"] > 0
                cols["is_mla"] = cols["kv_lora_rank"] > 0
                for a in cols.values():
                    a.setflags(write=False)
                self._model_cols = cols
            return self._model_cols

    @staticmethod
    def _take(names: Any, resolve, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arr = np.asarray(names, dtype=object)
        flat = arr.ravel()
        codes, uniques = pd.factorize(flat, use_na_sentinel=False)
        rows = np.array([resolve(u) for u in uniques], dtype=np.intp)
        idx = rows[codes]
        return {k: v[idx].reshape(arr.shape) for k, v in cols.items()}

    def gpu_table(self, names: Iterable[str] | str) -> dict[str, np.ndarray]:
        """Vectorized GPU lookup: one row per input name (any shape; a str gives 0-d arrays).

        Columns: peak_tflops_<dtype> for every dtype in `types.DTYPES` (TFLOP/s dense; 0.0 = unsupported),
        mem_gb (GB, datasheet), mem_gib (GiB: what the driver reports where the catalog has it, `GPU.mem_gib`), mem_bw_tbs (TB/s), link_bw_gbs (GB/s per direction), tdp_w (W),
        idle_w (W; NaN = not published, use the power model's default), price_usd_per_hour (USD),
        name/vendor/family/link_type/form_factor (object), is_pcie (bool).
        Unknown names raise `CatalogError` with close matches.
        """
        cols = self._gpu_columns()
        index = {n: i for i, n in enumerate(self._gpus)}
        return self._take(names, lambda u: index[self._gpu_name(u)], cols)

    def model_table(self, names: Iterable[str] | str) -> dict[str, np.ndarray]:
        """Vectorized model lookup: every `Model` field as a column (int64, bool or object) plus the derived
        columns of `model_math.DERIVED` (float64: total_params, active_params, ...), is_moe and is_mla."""
        for u in pd.unique(np.asarray(names, dtype=object).ravel()):
            self._model_name(u)  # resolves (and registers) quantized variants before the columns are built
        cols = self._model_columns()
        index = {n: i for i, n in enumerate(self._models)}
        return self._take(names, lambda u: index[self._model_name(u)], cols)


_default: Catalog | None = None
_default_lock = threading.Lock()


def default_catalog() -> Catalog:
    """The shipped catalog, loaded once on first use (thread-safe). Module-level functions act on it."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Catalog.from_data()
    return _default
