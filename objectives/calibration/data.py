"""Loading and classifying the published measurements (../shared/calibration/published_measurements.csv).

Each row gets a `kind` that says how the model predicts it, or why it is not part of the static fit:

- ``static``: static-batching throughput with an explicit batch (TensorRT-LLM 0.5-0.9 gptSessionBenchmark,
  launch blogs) -> `inference.estimate(batch_size=...)` throughput (total or per GPU).
- ``ttft``: first-token latency at a stated batch (batch 1 tables, batch-64 blog rows) -> `estimate` ttft_ms
  (TTFT tables are measured with one output token).
- ``latency``: `trtllm-bench latency` rows (batch 1): ttft_ms, itl_ms (-> tpot_ms), e2e_latency_ms.
- ``ifb``: max-throughput rows (all requests issued at once, in-flight batching, batch chosen by the engine)
  -> `inference.max_throughput` (max_batch_size / max_num_tokens parsed from the note when the run set them).
- ``serving``: rows with a concurrency (NIM) or an offered request rate (TensorRT-LLM + Triton QPS tables, and
  the vLLM 0.5.4 benchmark_serving rows, "request rate inf" over 320 ShareGPT prompts of variable length):
  they belong to the serving simulator (issue 4), not to the static fit.
- ``excluded``: MLPerf rows (variable-length datasets without published mean lengths in the files transcribed,
  several without TP or precision) and static rows whose output length the source leaves blank.

Rows without a dtype never reach the fit (they are all MLPerf or vLLM rows); a blank kv_dtype follows the
model's default rule (the activation dtype: fp8 KV with fp8, as the TensorRT-LLM docs state for FP8 runs).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "calibration" / "published_measurements.csv"

KINDS = ("static", "ttft", "latency", "ifb", "serving", "excluded")


def data_path(path: str | Path | None = None) -> Path:
    """The calibration CSV: `path`, else <repo>/../shared/calibration/published_measurements.csv."""
    p = Path(path) if path is not None else DEFAULT_DATA
    if not p.exists():
        raise FileNotFoundError(
            f"calibration data not found at {p}; pass --data PATH (the file is "
            f"<repo>/../shared/calibration/published_measurements.csv in this workplace)")
    return p


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: TensorRT-LLM releases in order: 0.x is release x; 1.0 follows 0.21 (the last 0.x release), so 1.y is 22 + y
LAST_ZERO_RELEASE = 21


def release_index(engine: str) -> float:
    """Position of a TensorRT-LLM release in the release sequence, from an `engine` label of the published table
    ("TensorRT-LLM 0.13.0" -> 13, "TensorRT-LLM 0.7a" -> 7, "TensorRT-LLM 1.0 (...)" -> 22, "TensorRT-LLM 1.1/1.2
    (...)" -> 23.5, the mean of a range); NaN for any other engine (vLLM, NIM, MLPerf submissions) and for a
    TensorRT-LLM major version the sequence does not hold yet. Raises TypeError for a non-string label."""
    if not isinstance(engine, str):
        raise TypeError(f"engine label must be a string, got {engine!r}")
    m = re.match(r"TensorRT-LLM (\d+)\.(\d+)(?:[.\w]*)(?:/(\d+)\.(\d+))?", engine.strip())
    if not m:
        return float("nan")

    def idx(major: str, minor: str) -> float:
        return {0: float(minor), 1: float(LAST_ZERO_RELEASE + 1 + int(minor))}.get(int(major), float("nan"))
    lo = idx(m.group(1), m.group(2))
    return lo if m.group(3) is None else (lo + idx(m.group(3), m.group(4))) / 2.0


def _num(note: str, pattern: str) -> float:
    m = re.search(pattern, note, flags=re.I)
    return float(m.group(1)) if m else np.nan


def classify(df: pd.DataFrame) -> pd.DataFrame:
    """Add `kind`, `why` (for excluded/serving rows), `family_key` (engine family) and engine run settings."""
    df = df.copy()
    note = df["source_note"].fillna("").astype(str)
    engine = df["engine"].fillna("").astype(str)
    metric = df["metric"].astype(str)
    kind = np.full(len(df), "", dtype=object)
    why = np.full(len(df), "", dtype=object)
    serving = df["concurrency"].notna() | note.str.contains(r"QPS|request rate", case=False, regex=True)
    mlperf = engine.str.contains("MLPerf")
    is_tput = metric.isin(["throughput_out_tok_s", "throughput_out_tok_s_per_gpu", "requests_per_s"])
    ifb = ~serving & ~mlperf & df["batch_size"].isna() & is_tput
    latency = ~serving & ~mlperf & note.str.contains("trtllm-bench latency|benchmarking-default-performance", regex=True) \
        & metric.isin(["ttft_ms", "itl_ms", "e2e_latency_ms"])
    ttft = ~serving & ~mlperf & ~latency & (metric == "ttft_ms") & df["batch_size"].notna()
    static = ~serving & ~mlperf & is_tput & df["batch_size"].notna()
    no_len = df["input_len"].isna() | (df["output_len"].isna() & ~ttft)
    kind[:] = "excluded"
    why[:] = "unclassified"
    for mask, k, w in ((static, "static", ""), (ttft, "ttft", ""), (latency, "latency", ""), (ifb, "ifb", ""),
                       (serving, "serving", "concurrency or offered request rate: serving simulator (issue 4)"),
                       (mlperf, "excluded", "MLPerf variable-length dataset (no fixed ISL/OSL), excluded from fit")):
        kind[mask.to_numpy()] = k
        why[mask.to_numpy()] = w
    bad_len = no_len.to_numpy() & np.isin(kind, ["static", "ttft", "latency", "ifb"])
    kind[bad_len] = "excluded"
    why[bad_len] = "input or output length not given by the source"
    df["kind"] = kind
    df["why"] = why
    df["output_len_eff"] = df["output_len"].fillna(1.0)  # TTFT tables: measured with one output token
    # engine run settings stated in the note (TensorRT-LLM tuning guide); defaults otherwise
    df["max_batch_size"] = [_num(n, r"max batch size (\d+)") for n in note]
    df["max_num_tokens"] = [_num(n, r"max num tokens (\d+)") for n in note]
    # engine build (objectives.inference.resolve.PROFILES): the TensorRT-LLM 0.16 tuning guide's "Baseline" engine
    # (trtllm-build default flags; notes say "Baseline" / "baseline engine") and its tuned engines (page
    # tuning-max-batch-size-and-max-num-tokens: multiple profiles, GEMM plugin, reduce fusion; predicted on
    # TensorRT-LLM's measured profile, `predict.row_engines`); every other row comes from a benchmark table that
    # does not state its build flags ("standard")
    df["engine_profile"] = np.where(note.str.contains(r"\bBaseline\b|baseline engine", regex=True), "baseline",
                                    np.where(note.str.contains("tuning-max-batch-size-and-max-num-tokens",
                                                               regex=False), "tuned", "standard"))
    df["engine_family"] = engine_families(engine)
    return df


#: an engine label's family by its leading name, case-insensitive ("TensorRT-LLM 0.13.0", "vLLM 0.5.4", "SGLang
#: 0.5.9", "NVIDIA NIM 1.8.0"), first match wins
_FAMILIES = ((r"^(?:tensorrt[-_ ]?llm|trt[-_]?llm)\b", "trtllm"), (r"^vllm\b", "vllm"), (r"^sglang\b", "sglang"),
             (r"\bnim\b", "nim"))


def engine_families(labels: pd.Series) -> np.ndarray:
    """The engine family of each published row's `engine` label (`_FAMILIES`); "" for a label naming none."""
    low = labels.fillna("").astype(str).str.strip().str.lower()
    return np.select([low.str.contains(pat, regex=True).to_numpy() for pat, _ in _FAMILIES],
                     [fam for _, fam in _FAMILIES], "").astype(object)


def load(path: str | Path | None = None) -> tuple[pd.DataFrame, Path]:
    """(classified rows, resolved path)."""
    p = data_path(path)
    return classify(pd.read_csv(p)), p
