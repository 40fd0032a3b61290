"""Accuracy proxy: expected relative accuracy recovery (%) of a quantization format vs bf16, with sources.
(The test-time-scaling figures of the same file, per-sample success rates per model and task, are read by
`objectives.test_time`; `sources()` lists them too.)

    from objectives import accuracy
    accuracy.quality("fp8")                      # W8A8-FP -> 99.7
    accuracy.quality(["int4", "fp8"], kv_dtype="fp8")
    accuracy.sources()                           # DataFrame: format, recovery, source, note

quality = recovery(weight, act) x factor(kv) / 100, each figure from objectives/data/accuracy.json.
act_dtype None -> the weight dtype for fp8/int8/fp4/bf16/fp16 (the way engines run those checkpoints), bf16 for
int4 (weight-only). kv_dtype None -> 16-bit (the baseline KV cache). Unknown combinations raise ValueError
listing the known ones. `model` is accepted for the API but the figures have no size dependence (see the file).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent / "data" / "accuracy.json"


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[tuple[str, str], float], dict[str, float], tuple[dict, ...]]:
    raw = json.loads(DATA.read_text())
    wa = {(r["weight"], r["act"]): float(r["recovery_pct"]) for r in raw["weights_activations"]}
    kv = {r["kv"]: float(r["factor_pct"]) for r in raw["kv_cache"]}
    rows = tuple([{"kind": "weights/activations", "format": f"W:{r['weight']} A:{r['act']}",
                   "value_pct": r["recovery_pct"], "source": r["source"], "note": r.get("note", "")}
                  for r in raw["weights_activations"]]
                 + [{"kind": "kv cache", "format": f"KV:{r['kv']}", "value_pct": r["factor_pct"],
                     "source": r["source"], "note": r.get("note", "")} for r in raw["kv_cache"]]
                 # test-time scaling (objectives.test_time): per-sample success rates and the vote-model pairs
                 + [{"kind": "per-sample success", "format": f"{r['model']} {r['task']}", "value_pct": 100 * r["p"],
                     "source": r["source"], "note": r.get("note", "")} for r in raw.get("per_sample_success", [])]
                 + [{"kind": "pass@1 / cons@64", "format": f"{r['model']} AIME-2024",
                     "value_pct": 100 * r["cons64"], "source": raw["majority_vote_pairs"]["source"],
                     "note": f"cons@64 beside pass@1 = {100 * r['pass1']:.1f} %"}
                    for r in raw.get("majority_vote_pairs", {}).get("rows", [])])
    return wa, kv, rows


def kv_dtypes() -> tuple[str, ...]:
    """The KV-cache dtypes the quality proxy has a sourced figure for (accuracy.json ``kv_cache``)."""
    return tuple(_tables()[1])


def _default_act(w: str) -> str:
    return "bf16" if w == "int4" else w


def quality(weight_dtype: Any, act_dtype: Any = None, kv_dtype: Any = None, *, model: Any = None) -> Any:
    """Expected accuracy recovery in % of the bf16 model (100 = lossless). Arguments broadcast (scalars or arrays
    of dtype names; None entries take the defaults in the module docstring). Returns a float for scalar input,
    else an ndarray. Unknown format -> ValueError naming it and listing the known ones."""
    wa, kv, _ = _tables()
    w, a, k = np.broadcast_arrays(np.asarray(weight_dtype, dtype=object), np.asarray(act_dtype, dtype=object),
                                  np.asarray(kv_dtype, dtype=object))
    keys = np.array([f"{x}|{'' if y is None else y}|{'' if z is None else z}"
                     for x, y, z in zip(w.ravel(), a.ravel(), k.ravel())], dtype=object)
    uniq, inv = np.unique(keys.astype(str), return_inverse=True)
    vals = []
    for key in uniq:
        ws, as_, ks = key.split("|")
        as_ = as_ or _default_act(ws)
        ks = ks or "bf16"
        if (ws, as_) not in wa:
            known = ", ".join(f"{x}/{y}" for x, y in wa)
            raise ValueError(f"unknown quantization format weight={ws!r} act={as_!r}; known weight/act: {known}")
        if ks not in kv:
            raise ValueError(f"unknown kv_dtype {ks!r}; known: {', '.join(kv)}")
        vals.append(wa[(ws, as_)] * kv[ks] / 100.0)
    out = np.asarray(vals)[inv].reshape(w.shape)
    return float(out) if out.ndim == 0 else out


def per_sample_success(model: str, task: str) -> float:
    """Published per-sample success rate p (fraction, 0-1) of `model` on `task` at its full reasoning budget: the
    mean accuracy over repeated samples per problem (accuracy.json ``per_sample_success``; test-time scaling,
    `objectives.test_time`). Unknown pair -> ValueError listing the known ones."""
    rows = {(r["model"], r["task"]): float(r["p"]) for r in json.loads(DATA.read_text())["per_sample_success"]}
    if (model, task) not in rows:
        known = ", ".join(f"{m}/{t}" for m, t in rows)
        raise ValueError(f"no published per-sample success for model={model!r} task={task!r}; known: {known}")
    return rows[(model, task)]


def sources() -> pd.DataFrame:
    """Every figure with its source and how it was read."""
    return pd.DataFrame(list(_tables()[2]))


__all__ = ["quality", "sources", "per_sample_success"]
