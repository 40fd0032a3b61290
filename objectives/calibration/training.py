"""Calibration of the training model: ``python -m objectives.calibration fit|report --kind training``.

Data: ../shared/calibration/training_measurements.csv (278 published rows: MosaicML llm-foundry, Megatron-LM README
tables 2020-2024, NeMo 24.07). Each row becomes one `training.estimate` configuration:

- GPU labels map to catalog GPUs (`GPU_OF`); model labels to shapes (`MODEL_SHAPES`, each with the document it
  comes from and the check made: parameter counts and, where a source prints both, FLOPs per token).
- Unstated fields follow documented rules (`row_config`): Megatron's "combined model-parallel size N" (Jan 2021) is
  tp = min(N, 8), pp = N / tp; an unstated micro-batch is global / dp without pipelining, else 1; unstated
  recompute is "full" for the 2020-2021 Megatron runs (their FLOP counts include the recompute) and "selective"
  for the later ones; zero_stage 3 for llm-foundry FSDP, 1 for NeMo and Megatron-Core 2024 (distributed
  optimizer), 0 before; vp from NeMo's "VP n" notes; unstated precision bf16; tp_comm_overlap where the source
  says so (Megatron-LM Jul 2024: "--tp-comm-overlap", the note's "overlap of DP/TP/PP comms enabled");
  flash_attention=False for the Megatron-LM READMEs of 2020-May 2022, which predate FlashAttention (`PRE_FLASH`).
- Every metric is a fixed multiple of throughput for a given configuration: tokens/s/GPU directly; step time as
  global_batch x seq_len / (step x n_gpus); TFLOP/s/GPU and MFU through the FORMULA EACH SOURCE USED
  (Megatron 2021: 96 B s l h^2 (1 + s/6h + V/16lh) per batch, counting recompute; Korthikanti 2022 MFU:
  72 B s l h^2 (1 + s/6h + V/12lh) of 312 TFLOP/s; Megatron-Core 2024: 72 l h^2 + 12 l h s + 6 h V per token).
  A configuration is scored once (its first metric in the order tokens/s, step time, TFLOP/s, MFU), and every row
  of it shares that error (the conversion is linear, so the error is the same in each metric).
- Excluded: the two Megatron 2024 strong-scaling rows (no TP/PP layout stated).

Fit: scipy least_squares on log(predicted / measured) tokens/s/GPU, soft-L1 loss, rows weighted 1/sqrt(rows of
their source) so no source dominates, a log-prior to the priors (weight `REG`); leave-one-source-out refits each
source out.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from objectives import catalog
from objectives.catalog import Model
from objectives.training import Factors, estimate
from objectives.training.factors import BOUNDS, FACTORS_FILE, PRIORS
from objectives.training.model import RESERVE_GIB

DATA = Path(__file__).resolve().parents[3] / "shared" / "calibration" / "training_measurements.csv"
MEGATRON = "https://github.com/NVIDIA/Megatron-LM"
FOUNDRY_YAML = "https://github.com/mosaicml/llm-foundry/tree/495218376830947dce625efabc4d86be7c47cc45/scripts/train/yamls/pretrain"
NEMO_CONF = "https://github.com/NVIDIA/NeMo/tree/v2.0.0/examples/nlp/language_modeling/conf"

#: sources older than FlashAttention (Dao et al., arXiv 2205.14135, May 2022): attention materializes its scores
PRE_FLASH = ("Megatron-LM@5281919", "Megatron-LM@152aab3", "Megatron-LM@50a4b5f", "Megatron-LM@2e90a34")
GPU_OF = {
    "V100 (DGX-2)": "V100-SXM2-32GB", "A100 (DGX-A100)": "A100-SXM-40GB", "A100 (Selene)": "A100-SXM-80GB",
    "A100-SXM-80GB (Selene)": "A100-SXM-80GB", "H100": "H100-SXM-80GB", "H100-80GB": "H100-SXM-80GB",
    "H100-SXM-80GB": "H100-SXM-80GB", "A100-80GB": "A100-SXM-80GB", "A100-40GB": "A100-SXM-40GB",
}


def _gpt(name: str, h: int, L: int, heads: int, vocab: int, source: str, ffn: int | None = None,
         kv: int | None = None, head_dim: int | None = None) -> Model:
    """A plain GPT-style shape (GELU MLP, tied embeddings) from its stated numbers."""
    return Model(name=name, n_layers=L, hidden=h, n_heads=heads, n_kv_heads=kv or heads,
                 head_dim=head_dim or h // heads, ffn=ffn or 4 * h, vocab=vocab, gated_mlp=False,
                 tie_embeddings=True, source=source)


#: model label of the CSV -> shape; the source and the check behind each
MODEL_SHAPES: dict[str, Model] = {
    # Megatron Sep 2020 scaling cases: (h, L) solved from the stated parameter counts with vocab 51200
    # (12 L h^2 + V h gives 1.160, 2.029, 4.234, 8.666 B for 1.16, 2.03, 4.24, 8.67 B); heads divide the TP degree
    # (they change neither FLOPs nor bytes)
    "GPT-2-style 1B (Megatron case)": _gpt("Megatron-2020-1.16B", 1920, 24, 16, 51200, MEGATRON),
    "GPT-2-style 2B (Megatron case)": _gpt("Megatron-2020-2.03B", 2304, 30, 24, 51200, MEGATRON),
    "GPT-2-style 4B (Megatron case)": _gpt("Megatron-2020-4.24B", 3072, 36, 32, 51200, MEGATRON),
    "GPT-2-style 8B (Megatron case)": _gpt("Megatron-2020-8.67B", 4096, 42, 32, 51200, MEGATRON),
    # MPT (llm-foundry yamls): d_model, n_layers, n_heads, vocab 50368, expansion 4, tied; checked against the
    # benchmark table's NumParams at seq 2048 (12 L h^2 + V h + 2048 h: 6.659, 12.854, 29.975, 64.862 B)
    "MPT-7b (llm-foundry yaml)": _gpt("MPT-7b", 4096, 32, 32, 50368, FOUNDRY_YAML),
    "MPT-13b (llm-foundry yaml)": _gpt("MPT-13b", 5120, 40, 40, 50368, FOUNDRY_YAML),
    "MPT-30b (llm-foundry yaml)": _gpt("MPT-30b", 7168, 48, 64, 50368, FOUNDRY_YAML),
    "MPT-70b (llm-foundry yaml)": _gpt("MPT-70b", 8192, 80, 64, 50368, FOUNDRY_YAML),
    # NeMo 24.07 models: NeMo configs; checked against the table itself (TFLOP/s / tokens/s = 6N + 12 L h s within
    # 0.2 % for each: 3.26e10, 1.28e11, 1.08e12 (GPT3), 5.14e10, 1.30e11, 2.10e12 (Nemotron))
    "GPT3-5B": _gpt("NeMo-GPT3-5B", 4096, 24, 32, 50304, NEMO_CONF),
    "GPT3-20B": _gpt("NeMo-GPT3-20B", 6144, 44, 48, 50304, NEMO_CONF),
    "GPT3-175B": _gpt("NeMo-GPT3-175B", 12288, 96, 96, 50304, NEMO_CONF),
    "Nemotron-8B": _gpt("Nemotron-8B", 4096, 32, 32, 256000, NEMO_CONF, ffn=16384),
    "Nemotron-22B": _gpt("Nemotron-22B", 6144, 40, 48, 256000, NEMO_CONF, ffn=24576),
    "Nemotron-340B": _gpt("Nemotron-4-340B", 18432, 96, 96, 256000, NEMO_CONF, ffn=73728, kv=8, head_dim=192),
}
#: NeMo labels of catalog models (same shapes: Llama 3 = Llama 3.1 text shapes)
CATALOG_OF = {"LLAMA2-7B": "Llama-2-7B", "LLAMA2-13B": "Llama-2-13B", "LLAMA2-70B": "Llama-2-70B",
              "LLAMA3-8B": "Llama-3.1-8B", "LLAMA3-70B": "Llama-3.1-70B"}
_SHAPE = re.compile(r"h=(\d+), L=(\d+), heads=(\d+)")


def model_of(label: str, vocab: int) -> Model:
    """The `Model` of a CSV model label (see `MODEL_SHAPES`; "(h=, L=, heads=)" labels carry their shape)."""
    if label in MODEL_SHAPES:
        return MODEL_SHAPES[label]
    base = re.sub(r" (SFT|LoRA)$", "", label)
    if base in CATALOG_OF:
        return catalog.model(CATALOG_OF[base])
    m = _SHAPE.search(label)
    if m:
        h, L, a = map(int, m.groups())
        return _gpt(f"GPT-h{h}-L{L}-v{vocab}", h, L, a, vocab, MEGATRON)
    raise KeyError(f"no shape for model label {label!r}")


def _framework(url: str) -> str:
    return "llm-foundry" if "llm-foundry" in url else "NeMo" if "NeMo" in url else "Megatron-LM"


def _source(url: str) -> str:
    """A short source label: framework and commit (the Megatron README versions are distinct sources)."""
    commit = re.search(r"blob/([0-9a-f]{7})", url)
    return f"{_framework(url)}@{commit.group(1) if commit else '?'}"


def load(path: str | Path | None = None) -> tuple[pd.DataFrame, Path]:
    """The calibration rows with the configuration columns `estimate` needs, the measured tokens/s/GPU each row
    implies, and `why` (non-empty: excluded, with the reason)."""
    p = Path(path) if path is not None else DATA
    if not p.exists():
        raise FileNotFoundError(f"training calibration file not found: {p} (pass --data PATH)")
    d = pd.read_csv(p)
    rows = [row_config(r) for r in d.itertuples(index=False)]
    cfg = pd.DataFrame(rows)
    out = pd.concat([d.reset_index(drop=True), cfg], axis=1)
    return out, p


def _num(x: Any, default: float) -> float:
    return default if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def row_config(r: Any) -> dict[str, Any]:
    """One CSV row -> estimate arguments (model, gpu, layout, ...), `source`, `tokens_meas`, `why`."""
    url, note, label = r.source_url, str(r.source_note), str(r.model)
    src = _source(url)
    vocab = 131072 if "vocab 131072" in note else 51200
    out: dict[str, Any] = {"source": src, "framework": _framework(url), "why": ""}
    n = _num(r.n_gpus, 1)
    tp, pp, cp = _num(r.tp, math.nan), _num(r.pp, math.nan), _num(r.cp, 1)
    mp = re.search(r"model-parallel size (\d+) given \(TP x PP split not stated\)", note)
    if mp and math.isnan(tp):
        k = int(mp.group(1))
        tp, pp = float(min(k, 8)), float(k // min(k, 8))
    if src.startswith("Megatron-LM@937571c") and math.isnan(tp):
        return {**out, "why": "layout (TP/PP) not stated by the source"}
    try:
        mdl = model_of(label, vocab)
    except KeyError as exc:
        return {**out, "why": str(exc)}
    tp, pp = (1.0 if math.isnan(tp) else tp), (1.0 if math.isnan(pp) else pp)
    if n % (tp * pp * cp):
        return {**out, "why": "the row's n_gpus is not a multiple of its tp x pp x cp (inconsistent transcription)"}
    dp = n / (tp * pp * cp)
    B = _num(r.global_batch, math.nan)
    mb = _num(r.micro_batch, math.nan)
    if math.isnan(mb):
        mb = B / dp if pp == 1 else 1.0
    rec = str(r.recompute) if isinstance(r.recompute, str) else ""
    if "checkpointing True" in rec:
        recompute = "full"
    elif "checkpointing False" in rec:
        recompute = "none"
    elif "selective" in rec:
        recompute = "selective"
    else:
        early = ("Megatron-LM@5281919", "Megatron-LM@152aab3", "Megatron-LM@50a4b5f")
        recompute = "full" if src in early else "selective"
    fw = out["framework"]
    zero = 3 if fw == "llm-foundry" else 1 if (fw == "NeMo" or src == "Megatron-LM@937571c") else 0
    sp = bool(fw == "NeMo" or src in ("Megatron-LM@937571c", "Megatron-LM@2e90a34"))
    vpm = re.search(r"VP (\d+)", note)
    vp = float(vpm.group(1)) if vpm and pp > 1 else 1.0
    prec_raw = str(r.precision) if isinstance(r.precision, str) else ""
    precision = "fp8" if "fp8" in prec_raw else "fp16" if "fp16" in prec_raw else "bf16"
    if "V100" in str(r.gpu):
        precision = "fp16"
    finetune = "lora" if label.endswith("LoRA") else "full" if label.endswith("SFT") else None
    s = _num(r.seq_len, 2048)
    cfg = dict(mdl=mdl, gpu=GPU_OF[str(r.gpu)], n_gpus=n, tp=tp, pp=pp, cp=cp, ep=1.0, vp=vp,
               sequence_parallel=sp, zero_stage=zero, recompute=recompute, seq_len=s, micro_batch=mb,
               global_batch=B, precision=precision, finetune=finetune,
               tp_comm_overlap=bool("DP/TP/PP comms enabled" in note),
               flash_attention=src not in PRE_FLASH)
    out.update({"c_" + k: v for k, v in cfg.items()})
    # measured tokens/s/GPU implied by the row's metric (the source's own formula; see the module docstring)
    v, metric = float(r.value), str(r.metric)
    L, h, V = mdl.n_layers, mdl.hidden, mdl.vocab
    if metric == "tokens_per_s_per_gpu":
        tok = v
    elif metric == "step_time_s":
        tok = B * s / v / n
    elif src in ("Megatron-LM@152aab3", "Megatron-LM@50a4b5f"):
        per_tok = 96.0 * L * h * h * (1 + s / (6 * h) + V / (16 * L * h))
        tok = (v if metric == "tflops_per_gpu" else v / 100.0 * 312.0) * 1e12 / per_tok
    elif src == "Megatron-LM@2e90a34":
        per_tok = 72.0 * L * h * h * (1 + s / (6 * h) + V / (12 * L * h))
        tok = v / 100.0 * 312e12 / per_tok
    elif src == "Megatron-LM@937571c":
        per_tok = 72.0 * L * h * h + 12.0 * L * h * s + 6.0 * h * V
        tok = (v if metric == "tflops_per_gpu" else v / 100.0 * 989.5) * 1e12 / per_tok
    else:
        tok = math.nan      # tflops / mfu rows of sources that also give tokens/s: scored through that row
    out["tokens_meas"] = tok
    return out


_CFG_KEYS = ("source", "c_gpu", "c_n_gpus", "c_tp", "c_pp", "c_cp", "c_vp", "c_seq_len", "c_micro_batch",
             "c_global_batch", "c_precision", "c_recompute", "c_zero_stage", "c_finetune")


def configurations(df: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct configuration (first metric in the order tokens/s, step time, TFLOP/s, MFU) with
    `config_id` mapping every CSV row to it."""
    d = df[df["why"] == ""].copy()
    d["model_name"] = [m.name for m in d["c_mdl"]]
    keys = ["model_name", *_CFG_KEYS]
    d["_k"] = ["|".join(map(str, t)) for t in d[keys].itertuples(index=False)]
    order = {"tokens_per_s_per_gpu": 0, "step_time_s": 1, "tflops_per_gpu": 2, "mfu_pct": 3}
    d["_o"] = d["metric"].map(order)
    best = d[d["tokens_meas"].notna()].sort_values("_o").drop_duplicates("_k")
    return best.reset_index(drop=True)


def _args(cfg: pd.DataFrame) -> dict[str, Any]:
    """estimate() keyword arguments (arrays) of configuration rows."""
    cols = ("mdl", "gpu", "n_gpus", "tp", "pp", "cp", "ep", "vp", "sequence_parallel", "zero_stage", "recompute",
            "seq_len", "micro_batch", "global_batch", "precision", "finetune", "tp_comm_overlap",
            "flash_attention")
    args = {c: np.array(list(cfg["c_" + c]), dtype=object) if c in ("mdl", "gpu", "recompute", "precision", "finetune")
            else cfg["c_" + c].to_numpy() for c in cols}
    args["sequence_parallel"] = args["sequence_parallel"].astype(bool)
    args["tp_comm_overlap"] = args["tp_comm_overlap"].astype(bool)
    args["flash_attention"] = args["flash_attention"].astype(bool)
    args["zero_stage"] = args["zero_stage"].astype(int)
    args["model"] = args.pop("mdl")
    return args


def predict(cfg: pd.DataFrame, fac: Factors) -> np.ndarray:
    """Predicted tokens/s/GPU of each configuration row."""
    return estimate(factors=fac, **_args(cfg))["tokens_per_s_per_gpu"].to_numpy()


#: weight of the log-prior pulling each factor to its prior, chosen by the leave-one-source-out MdAPE among 0.005 to
#: 0.5 and re-checked on the current model (figures in docs/training.md): a looser fit chases llm-foundry, the
#: largest source
REG = 0.2
#: factors fitted (dotted paths); the others keep their priors
FITTED = ("gemm_eff.volta.16bit", "gemm_eff.ampere.16bit", "gemm_eff.hopper.16bit", "gemm_eff.hopper.fp8",
          "gemm_dim_half", "gemm_m_half", "hop_latency_us", "attn_eff.ampere", "attn_eff.hopper", "elementwise_bytes",
          "layer_overhead_us", "step_overhead_s",
          "scale_up_bw_eff", "scale_out_bw_eff", "tp_overlap", "tp_comm_overlap_eff", "dp_overlap")
#: families without calibration rows take the fitted factors of the closest calibrated family
FALLBACK = {"ada": "hopper", "blackwell": "hopper", "blackwell-ultra": "hopper", "cdna2": "ampere",
            "cdna3": "hopper", "cdna4": "hopper", "gaudi3": "hopper"}


#: a calibrated family absent from a fit's rows (leave-one-source-out) takes this family's fitted figure
UNFIT_FALLBACK = {"volta": "ampere"}


def _with_fallbacks(fac: Factors) -> Factors:
    vals = {}
    for fam, src in FALLBACK.items():
        for g in ("16bit", "fp8", "fp4"):
            vals[f"gemm_eff.{fam}.{g}"] = fac.get(f"gemm_eff.{src}.{g}")
    for fam, src in {**FALLBACK, "volta": "ampere"}.items():
        vals[f"attn_eff.{fam}"] = fac.get(f"attn_eff.{src}")
    for g in ("fp8", "fp4"):   # fp8/fp4 of families without such rows: the fitted hopper fp8 figure
        for fam in ("volta", "ampere"):
            vals[f"gemm_eff.{fam}.{g}"] = fac.get("gemm_eff.hopper.fp8")
    vals["gemm_eff.hopper.fp4"] = fac.get("gemm_eff.hopper.fp8")
    return fac.with_values(vals)


def _prior(path: str) -> float:
    node: Any = PRIORS
    for k in path.split("."):
        node = node[k]
    return float(node)


def fit(cfg: pd.DataFrame, base: Factors | None = None, max_nfev: int = 200, reg: float = REG) -> Factors:
    """Fit `FITTED` on the configurations (log error, soft-L1, per-source weights, log-prior)."""
    base = base or Factors()
    meas = cfg["tokens_meas"].to_numpy(float)
    counts = cfg["source"].map(cfg["source"].value_counts()).to_numpy(float)
    w = 1.0 / np.sqrt(counts)
    lo = np.array([BOUNDS[p.split(".")[0]][0] for p in FITTED])
    hi = np.array([BOUNDS[p.split(".")[0]][1] for p in FITTED])
    x0 = np.clip(np.array([base.get(p) for p in FITTED]), lo + 1e-6, hi - 1e-6)
    # factors a subset cannot identify stay at the prior (e.g. fp8 without NeMo, volta without the 2020 rows)
    fams = set(catalog.gpu(g).family for g in cfg["c_gpu"])
    has_fp8 = (cfg["c_precision"] == "fp8").any()
    def identifiable(p: str) -> bool:
        kind, rest = p.split(".")[0], p.split(".")[1:]
        if kind in ("gemm_eff", "attn_eff") and rest[0] not in fams:
            return False
        if p.endswith(".fp8") and not has_fp8:
            return False
        if p == "tp_comm_overlap_eff" and not ((cfg["c_tp"] > 1) & cfg["c_tp_comm_overlap"].astype(bool)).any():
            return False
        return not (p in ("tp_overlap", "scale_up_bw_eff") and not (cfg["c_tp"] > 1).any())

    free = np.array([identifiable(p) for p in FITTED])
    prior = np.array([max(_prior(p), 1e-3) for p in FITTED])

    def make(xf: np.ndarray) -> Factors:
        x = x0.copy()
        x[free] = xf
        vals = dict(zip(FITTED, x, strict=True))
        # a family the fitted rows do not cover takes its nearest calibrated family's figure, as the uncalibrated
        # families of FALLBACK do (volta without the 2020 rows: ampere's)
        for p, ok in zip(FITTED, free, strict=True):
            parts = p.split(".")
            if not ok and parts[0] == "gemm_eff" and parts[1] in UNFIT_FALLBACK and parts[2] == "16bit":
                src = f"gemm_eff.{UNFIT_FALLBACK[parts[1]]}.16bit"
                if src in vals:
                    vals[p] = vals[src]
        return _with_fallbacks(base.with_values(vals))

    def resid(xf: np.ndarray) -> np.ndarray:
        pred = predict(cfg, make(xf))
        r = w * np.log(np.maximum(pred, 1e-9) / meas)
        x = x0.copy()
        x[free] = xf
        pr = math.sqrt(reg) * np.log(np.maximum(x[free], 1e-3) / prior[free])
        return np.concatenate([r, pr])

    res = least_squares(resid, x0[free], bounds=(lo[free], hi[free]), loss="soft_l1", f_scale=0.1,
                        max_nfev=max_nfev, diff_step=1e-3)
    return make(res.x)


def ape(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    return 100.0 * np.abs(pred / meas - 1.0)


def scored_rows(df: pd.DataFrame, cfg: pd.DataFrame, pred: np.ndarray) -> pd.DataFrame:
    """Every non-excluded CSV row with the APE of its configuration (see the module docstring)."""
    c = cfg.assign(pred=pred, ape=ape(pred, cfg["tokens_meas"].to_numpy(float)))
    d = df[df["why"] == ""].copy()
    d["model_name"] = [m.name for m in d["c_mdl"]]
    keys = ["model_name", *_CFG_KEYS]
    d["_k"] = ["|".join(map(str, t)) for t in d[keys].itertuples(index=False)]
    return d.merge(c[["_k", "pred", "ape"]], on="_k", how="left")


def mdape(d: pd.DataFrame, by: str) -> pd.DataFrame:
    g = d.groupby(by, dropna=False)["ape"]
    return pd.DataFrame({"rows": g.size(), "MdAPE_%": g.median().round(1), "max_%": g.max().round(1)})


def loso(cfg: pd.DataFrame, fac: Factors, max_nfev: int = 60) -> pd.DataFrame:
    """Leave-one-source-out: refit without each source (warm start from the priors), predict its configurations."""
    out = []
    for src in sorted(cfg["source"].unique()):
        train, test = cfg[cfg["source"] != src], cfg[cfg["source"] == src]
        f = fit(train, max_nfev=max_nfev)
        p = predict(test, f)
        out.append(test.assign(pred=p, ape=ape(p, test["tokens_meas"].to_numpy(float))))
    return pd.concat(out, ignore_index=True)


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def run(command: str, data: str | None, out: str | None, no_loso: bool = False, max_nfev: int = 200) -> str:
    """The CLI body for --kind training: fit writes the factors JSON; both return the tables as text (the CLI
    prints them)."""
    lines: list[str] = []
    say = lines.append
    df, path = load(data)
    cfg = configurations(df)
    target = Path(out) if out else FACTORS_FILE
    if command == "fit":
        fac = fit(cfg, max_nfev=max_nfev)
    else:
        fac = Factors.load(target)
    pred = predict(cfg, fac)
    rows = scored_rows(df, cfg, pred)
    rows["family"] = rows["c_gpu"].map(lambda g: catalog.gpu(g).family)
    fits = estimate_fits(cfg, fac)
    meta: dict[str, Any] = {
        "fit_date": _dt.date.today().isoformat(), "data_file": path.name, "data_sha256": sha256(path),
        "rows_in_file": int(len(df)), "rows_excluded": {k: int(v) for k, v in df.loc[df["why"] != "", "why"]
                                                        .value_counts().items()},
        "configurations_fitted": int(len(cfg)),
        "method": "scipy.optimize.least_squares, soft-L1 on log(pred/measured tokens/s/GPU), rows weighted "
                  f"1/sqrt(rows of their source), log-prior (weight REG = {REG:g}) to the priors of "
                  "objectives/training/factors.py",
        "fitted_factors": list(FITTED), "family_fallback": FALLBACK,
        "mdape_all_rows_%": round(float(rows["ape"].median()), 2),
        "mdape_by_source_%": {k: float(v) for k, v in rows.groupby("source")["ape"].median().round(1).items()},
        "published_configs_predicted_to_fit": f"{int(fits.sum())} of {len(fits)}",
    }
    say(f"{len(df)} rows, {int((df['why'] != '').sum())} excluded, {len(cfg)} configurations scored "
          f"({len(rows)} rows share their errors)\n")
    say(f"MdAPE by source (in-sample):\n{mdape(rows, 'source').to_string()}\n")
    say(f"MdAPE by GPU:\n{mdape(rows, 'c_gpu').to_string()}\n")
    say(f"MdAPE by metric:\n{mdape(rows, 'metric').to_string()}\n")
    say(f"overall MdAPE {rows['ape'].median():.1f} % over {len(rows)} rows")
    say(f"published configurations predicted to fit in memory: {int(fits.sum())} of {len(fits)}")
    mem = memory_check(fac=fac)
    say(f"\npeak memory and out-of-memory outcomes ({PEAK_MEMORY.name}, checked, not fitted):\n{mem.to_string()}")
    if command == "fit" and not no_loso:
        lt = loso(cfg, fac)
        lrows = scored_rows(df, lt.drop(columns=["pred", "ape"]), lt["pred"].to_numpy())
        by_src = lrows.groupby("source")["ape"].median().round(1)
        meta["loso_mdape_by_source_%"] = {k: float(v) for k, v in by_src.items()}
        meta["loso_mdape_all_rows_%"] = round(float(lrows["ape"].median()), 2)
        meta["loso_mdape_by_gpu_%"] = {k: float(v) for k, v in lrows.groupby("c_gpu")["ape"].median().round(1).items()}
        say(f"\nleave-one-source-out MdAPE by source:\n{mdape(lrows, 'source').to_string()}\n")
        say(f"leave-one-source-out MdAPE by GPU:\n{mdape(lrows, 'c_gpu').to_string()}\n")
        say(f"leave-one-source-out overall MdAPE {lrows['ape'].median():.1f} % over {len(lrows)} rows")
    if command == "fit":
        fac = Factors(fac.params, meta)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(fac.to_json() + "\n")
        from objectives.training import reload_default_factors
        if target.resolve() == FACTORS_FILE.resolve():
            reload_default_factors()
        say(f"wrote {target}")
    return "\n".join(lines)


def estimate_fits(cfg: pd.DataFrame, fac: Factors) -> np.ndarray:
    """`fits` of each published configuration (every one of them ran, so each should fit)."""
    return estimate(factors=fac, **_args(cfg))["fits"].to_numpy()


#: published peak memory and out-of-memory outcomes (torchtitan docs), for the memory check only: never fitted
PEAK_MEMORY = Path(__file__).resolve().parents[1] / "data" / "training" / "peak_memory.csv"


def memory_check(path: str | Path | None = None, fac: Factors | None = None) -> pd.DataFrame:
    """Each row of objectives/data/training/peak_memory.csv with the predicted memory per GPU, `fits` on the GPU of
    the run (the catalog GPU with the source's memory size) and the error against a reported peak (GiB, % of it).

    The rows are checked, not fitted: a run the source says went out of memory must not be predicted to fit, and a
    run that ran should fit; `err_%` = predicted / reported - 1 where the source reports its peak.

    torchtitan's figure is torch.cuda's peak *reserved* memory in GiB (metrics.py at 9dec370: "reserved_bytes.all.peak"
    / 2**30, logged as "memory: ... GiB"): the caching allocator's segments, which hold no CUDA context and none of
    NCCL's own buffers. `pred_gib` is therefore the model's memory per GPU without its runtime reserve (RESERVE_GIB,
    which stands for those), `pred_total_gib` with it (what `fits` compares with the GPU)."""
    d = pd.read_csv(Path(path) if path is not None else PEAK_MEMORY)
    est = estimate(model=d["model"].to_numpy(object), gpu=d["gpu"].to_numpy(object), n_gpus=d["n_gpus"].to_numpy(),
                   tp=d["tp"].to_numpy(), pp=d["pp"].to_numpy(), cp=d["cp"].to_numpy(),
                   zero_stage=d["zero_stage"].to_numpy(int), recompute=d["recompute"].to_numpy(object),
                   seq_len=d["seq_len"].to_numpy(), micro_batch=d["micro_batch"].to_numpy(),
                   global_batch=d["global_batch"].to_numpy(), precision=d["precision"].to_numpy(object),
                   cross_entropy=d["cross_entropy"].to_numpy(object), factors=fac)
    out = d[["model", "gpu", "gpu_mem_gb", "n_gpus", "tp", "cp", "recompute", "seq_len", "micro_batch", "precision",
             "outcome", "peak_gib"]].copy()
    out["pred_gib"] = (est["mem_per_gpu_gib"] - RESERVE_GIB).round(1).to_numpy()
    out["pred_total_gib"] = est["mem_per_gpu_gib"].round(1).to_numpy()
    # fits on the GPU of the run: the catalog GPU's numbers with the memory size the source states (GB = 1e9 bytes)
    out["fits"] = est["mem_per_gpu_gib"].to_numpy() <= d["gpu_mem_gb"].to_numpy() * 1e9 / 2**30
    out["err_%"] = (100.0 * (out["pred_gib"] / out["peak_gib"] - 1.0)).round(1)
    return out
