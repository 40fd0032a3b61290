"""A study's ``evaluate`` for LLM training: configurations (gpu, n_gpus, tp, pp, cp, ep, vp, zero_stage, hybrid_shard,
recompute, micro_batch, precision, sequence_parallel) -> `estimate` metrics, one row per configuration, vectorized
(a row with zero_stage 3 and hybrid_shard True is evaluated as zero_stage="hybrid_shard").

    obj = training_objective("Llama-3.1-70B", seq_len=8192, global_batch=2048, tokens=15e12)
    study = dse.create_study("x", spaces.training("Llama-3.1-70B", ["H100", "B200"], max_gpus=16384, ...),
                             objectives={"time_to_train_h": "min", "usd_per_run": "min"}, constraints=obj.constraints)
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import dse

from ..catalog.carry import CarriesModel
from ..metric_units import METRIC_UNITS
from ..provenance import TRAINING_DATA, data_digest
from .model import estimate

VERSION = "1"
#: configuration columns read, with the default used when the space has no such parameter
DEFAULTS: dict[str, Any] = {"tp": 1, "pp": 1, "cp": 1, "ep": 1, "vp": 1, "zero_stage": 1, "recompute": "selective",
                            "micro_batch": 1, "precision": "bf16", "sequence_parallel": True, "offload": None}


class TrainingObjective(CarriesModel):
    """Callable on a DataFrame of configurations (``@dse.vectorized``); `constraints`: the run fits in memory. A model
    named by the catalog carries its record into the study's worker processes (`catalog.carry.CarriesModel`: one
    registered at run time is costed there too)."""

    def __init__(self, model: Any, *, seq_len: int, global_batch: int, tokens: float, finetune: str | None = None,
                 defaults: dict[str, Any] | None = None, uneven_pp: bool = False) -> None:
        self.model, self.seq_len, self.global_batch, self.tokens = model, seq_len, global_batch, tokens
        self.carry_model()
        self.uneven_pp = uneven_pp
        self.finetune = finetune
        self.defaults = {**DEFAULTS, **(defaults or {})}
        dse.vectorized(self, name="training/analytical", version=f"{VERSION}+data.{data_digest(TRAINING_DATA)}",
                       units=METRIC_UNITS)

    @property
    def constraints(self) -> dict[str, tuple[str, float]]:
        """``fits == 1``: weights, gradients, optimizer states, activations and buffers within GPU memory."""
        return {"fits": (">=", 1.0)}

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        """Metrics of every configuration row: the `estimate` columns (fits as 0.0/1.0) and `gpus` (= n_gpus)."""
        def col(name: str) -> Any:
            if name in df.columns:
                v = df[name].to_numpy()
                return v.astype(object) if v.dtype.kind in "OUS" or name in ("offload",) else v
            return self.defaults[name]
        zero = col("zero_stage")
        if "hybrid_shard" in df.columns:
            hyb = (df["hybrid_shard"].to_numpy(dtype=object) == True) & (np.asarray(zero) == 3)  # noqa: E712
            zero = np.where(hyb, "hybrid_shard", np.asarray(zero).astype(object)).astype(object)
        out = estimate(self.model, df["gpu"].to_numpy(dtype=object), df["n_gpus"].to_numpy(),
                       tp=col("tp"), pp=col("pp"), cp=col("cp"), ep=col("ep"), vp=col("vp"),
                       sequence_parallel=np.asarray(col("sequence_parallel")).astype(bool),
                       zero_stage=zero, recompute=col("recompute"), seq_len=self.seq_len,
                       micro_batch=col("micro_batch"), global_batch=self.global_batch, precision=col("precision"),
                       offload=col("offload"), finetune=self.finetune, tokens=self.tokens, uneven_pp=self.uneven_pp)
        out["fits"] = out["fits"].astype(float)
        out["gpus"] = df["n_gpus"].to_numpy(dtype=float)      # n_gpus as a metric (an objective of GPU count)
        out.index = df.index
        return out


def training_objective(model: Any, *, seq_len: int, global_batch: int, tokens: float, finetune: str | None = None,
                       defaults: dict[str, Any] | None = None, uneven_pp: bool = False) -> TrainingObjective:
    """The vectorized evaluate of a training study (see `TrainingObjective`; `uneven_pp` as in `estimate`)."""
    return TrainingObjective(model, seq_len=seq_len, global_batch=global_batch, tokens=tokens, finetune=finetune,
                             defaults=defaults, uneven_pp=uneven_pp)
