"""Predicting calibration rows with the analytical model (no measured number ever enters a prediction)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from objectives import inference
from objectives.inference.efficiency import Efficiency
from objectives.inference.estimate import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_NUM_TOKENS

STATIC_KINDS = ("static", "ttft", "latency", "ifb")


def mark_unknown(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose model or GPU the catalog does not know become kind 'excluded' (reason says which)."""
    from objectives import catalog

    df = df.copy()
    for col, fn in (("model", catalog.model), ("gpu", catalog.gpu)):
        known = {}
        for name in df[col].dropna().unique():
            try:
                fn(name)
                known[name] = True
            except Exception:  # noqa: BLE001 - any lookup failure means "not in the catalog"
                known[name] = False
        bad = df[col].map(known).fillna(False).to_numpy() == False  # noqa: E712
        m = bad & df["kind"].isin(STATIC_KINDS).to_numpy()
        df.loc[m, "why"] = f"{col} not in the catalog"
        df.loc[m, "kind"] = "excluded"
    return df


def _args(d: pd.DataFrame) -> dict:
    tp = d["tp"].fillna(1).to_numpy(float)
    pp = d["pp"].fillna(1).to_numpy(float)
    n = d["n_gpus"].fillna(1).to_numpy(float)
    return dict(model=d["model"].to_numpy(object), gpu=d["gpu"].to_numpy(object), tp=tp, pp=pp,
                weight_dtype=d["weight_dtype"].to_numpy(object),
                act_dtype=np.array([None if pd.isna(x) else x for x in d["act_dtype"]], dtype=object),
                kv_dtype=np.array([None if pd.isna(x) else x for x in d["kv_dtype"]], dtype=object),
                dp=np.maximum(np.round(n / (tp * pp)), 1.0),
                engine_profile=(d["engine_profile"].to_numpy(object) if "engine_profile" in d.columns
                                else "standard"))


def predict(df: pd.DataFrame, eff: Efficiency | None = None, engine: Any = None) -> np.ndarray:
    """Predicted value of each row's metric (NaN for serving/excluded rows), aligned with `df`; `engine` as in
    `inference.estimate` (None: the roofline with fitted factors)."""
    pred = np.full(len(df), np.nan)
    kind = df["kind"].to_numpy()
    metric = df["metric"].to_numpy()
    st = np.isin(kind, ["static", "ttft", "latency"])
    if st.any():
        d = df[st]
        out = inference.estimate(**_args(d), batch_size=d["batch_size"].to_numpy(float),
                                 input_len=d["input_len"].to_numpy(float),
                                 output_len=d["output_len_eff"].to_numpy(float), efficiency=eff, engine=engine)
        m = metric[st]
        v = np.select(
            [m == "throughput_out_tok_s", m == "throughput_out_tok_s_per_gpu", m == "ttft_ms", m == "itl_ms",
             m == "e2e_latency_ms"],
            [out["throughput_tok_s"], out["throughput_tok_s_per_gpu"], out["ttft_ms"], out["tpot_ms"],
             out["e2e_ms"]], np.nan)
        pred[st] = v
    ib = kind == "ifb"
    if ib.any():
        d = df[ib]
        out = inference.max_throughput(
            **_args(d), input_len=d["input_len"].to_numpy(float), output_len=d["output_len"].to_numpy(float),
            max_batch_size=d["max_batch_size"].fillna(DEFAULT_MAX_BATCH_SIZE).to_numpy(float),
            max_num_tokens=d["max_num_tokens"].fillna(DEFAULT_MAX_NUM_TOKENS).to_numpy(float), efficiency=eff,
            engine=engine)
        m = metric[ib]
        v = np.select([m == "throughput_out_tok_s", m == "throughput_out_tok_s_per_gpu", m == "requests_per_s"],
                      [out["throughput_tok_s"], out["throughput_tok_s_per_gpu"],
                       out["throughput_tok_s"] / d["output_len"].to_numpy(float)], np.nan)
        pred[ib] = v
    return pred


def ape(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    """Absolute percentage error, %."""
    return np.abs(pred - meas) / np.abs(meas) * 100.0
