"""The scale-out network factors (the efficiency file's "roce" link: `ar_latency_us`, `ar_hop_us`, `ar_bw_eff`)
fitted on the only measured cross-node transfers at hand: DeepEP's internode dispatch / combine kernels, timed on
2, 4 and 8 HGX H100 nodes (aiconfigurator-core's `systems/data/{h100_sxm,h200_sxm}/comm/sglang/0.5.6.post2/
wideep_deepep_{ll,normal}_perf.parquet`, node_num 1-8, DeepSeek-V3's shape: hidden 7,168, top-8 of 256 experts;
kernel tables, not serving measurements; the h200 folder's rows equal the h100 folder's but for the device label). The serving rows cannot identify these factors: every silicon row labelled
beyond one node either repeats a deployment on one node or is one of ten MiniMax-M2.5 rows (docs/topology.md).

The model fitted is `comm.Links.alltoall`'s network stage: over k nodes a token crosses the network once per other
node holding one of its top-k experts ((k - 1)(1 - (1 - 1/k)^top_k) copies, DeepEP's per-node deduplication), at
the GPU's NIC rate x `ar_bw_eff`, after `ar_latency_us` + `ar_hop_us` x (k - 1) µs (`comm.allreduce_latency_s`).
- Latency: what the low-latency kernels (what engines run for decode) add over k nodes to the same kernels inside
  one node at the fewest tokens a rank, per dispatch or combine (their sum / 2), least squares in k - 1.
- Efficiency: the normal kernels' (prefill) growth per token from `BANDWIDTH_MIN_TOKENS` tokens a rank up, each
  token's network bytes over it, against the NIC's line rate (`catalog.System.scale_out_gbs`); the median over the
  node counts. A token's bytes are FP8 dispatch (hidden bytes plus one 4-byte scale per 128) and bf16 combine
  (2 x hidden), the formats DeepEP's kernels carry for block-FP8 models: bf16 dispatch would need more than the
  NIC's line rate at 2 and 4 nodes (`fit_scale_out`'s ``eff_bf16``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from objectives.inference.comm import remote_copies

#: where the multi-node DeepEP tables are (system, engine folder, version) under aiconfigurator-core's systems/data
INTERNODE_TABLES = (("h100_sxm", "sglang", "0.5.6.post2"), ("h200_sxm", "sglang", "0.5.6.post2"))
#: tokens a rank at or below which a low-latency kernel's time is its latency (the fewest the tables hold is 1-2)
LATENCY_MAX_TOKENS = 2
#: tokens a rank from which a normal kernel's time grows linearly with its bytes (bandwidth-bound)
BANDWIDTH_MIN_TOKENS = 1024
#: FP8 dispatch carries one float32 scale per this many activations (DeepEP's per-token, per-128-channel scales)
FP8_SCALE_BLOCK = 128


def internode_tables(root: Path | None = None) -> pd.DataFrame:
    """Rows of the multi-node DeepEP tables: system, kind ("ll" / "normal"), node_num, num_token (a rank), hidden,
    top_k, experts, and t_us, dispatch + combine (µs; the normal kernels' fastest SM setting). Empty when
    aiconfigurator-core is not installed or holds no such table."""
    from objectives.profiles.build import aiconfigurator_root, deepep_frames

    root = aiconfigurator_root() if root is None else root
    if root is None:
        return pd.DataFrame()
    parts = []
    for system, engine, version in INTERNODE_TABLES:
        for _, kind, cols, df in deepep_frames(root / system / "comm" / engine / version):
            t = sum(pd.to_numeric(df[c], errors="coerce") for c in cols.values())
            rows = pd.DataFrame({"system": system, "kind": kind, "node_num": df["node_num"].astype(int),
                                 "num_token": df["num_token"].astype(float), "hidden": df["hidden_size"].astype(float),
                                 "top_k": df["num_topk"].astype(float), "experts": df["num_experts"].astype(float),
                                 "t_us": t.astype(float)})
            rows = rows[np.isfinite(rows["t_us"]) & (rows["t_us"] > 0)]
            keys = ["system", "kind", "node_num", "num_token", "hidden", "top_k", "experts"]
            parts.append(rows.groupby(keys, as_index=False)["t_us"].min())
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def token_bytes(hidden: Any, fp8_dispatch: bool = True) -> Any:
    """Network bytes of one token's dispatch + combine copy: FP8 dispatch with its scales (or bf16) + bf16 combine."""
    h = np.asarray(hidden, dtype=float)
    dispatch = h + h / FP8_SCALE_BLOCK * 4.0 if fp8_dispatch else 2.0 * h
    return dispatch + 2.0 * h


def fit_scale_out(tables: pd.DataFrame, line_gbs: float) -> dict[str, Any]:
    """Fit the scale-out link's latency (µs, and µs per extra node) and share of the NIC's line rate `line_gbs`
    (GB/s per GPU per direction) on `internode_tables` rows of one system. Returns lat_us, hop_us, eff, and per
    node count the latency excess (µs per dispatch or combine) and the efficiency (``eff_by_nodes``, and
    ``eff_bf16`` under bf16 dispatch)."""
    if tables.empty:
        raise ValueError("no internode DeepEP rows (is aiconfigurator-core installed?)")
    ll = tables[tables["kind"] == "ll"]
    one = ll[ll["node_num"] == 1].set_index(["num_token", "hidden", "top_k", "experts"])["t_us"]
    multi = ll[(ll["node_num"] > 1) & (ll["num_token"] <= LATENCY_MAX_TOKENS)]
    multi = multi[multi.set_index(["num_token", "hidden", "top_k", "experts"]).index.isin(one.index)]
    if multi.empty:
        raise ValueError("no low-latency rows at one node and several nodes with the same shape and tokens")
    base = one.loc[list(multi[["num_token", "hidden", "top_k", "experts"]].itertuples(index=False))].to_numpy()
    excess = (multi["t_us"].to_numpy() - base) / 2.0           # per dispatch or combine
    x = multi["node_num"].to_numpy(float) - 1.0
    hop, lat = np.polyfit(x, excess, 1)
    normal = tables[(tables["kind"] == "normal") & (tables["node_num"] > 1)
                    & (tables["num_token"] >= BANDWIDTH_MIN_TOKENS)]
    eff: dict[int, float] = {}
    eff16: dict[int, float] = {}
    for (k, h, tk), g in normal.groupby(["node_num", "hidden", "top_k"]):
        if g["num_token"].nunique() < 2:
            continue
        slope_s = np.polyfit(g["num_token"].to_numpy(float), g["t_us"].to_numpy(float), 1)[0] * 1e-6
        copies = float(remote_copies(k, tk))
        eff[int(k)] = copies * float(token_bytes(h)) / slope_s / (line_gbs * 1e9)
        eff16[int(k)] = copies * float(token_bytes(h, fp8_dispatch=False)) / slope_s / (line_gbs * 1e9)
    if not eff:
        raise ValueError(f"no normal-kernel rows at {BANDWIDTH_MIN_TOKENS}+ tokens a rank on several nodes")
    latency_by_nodes = pd.Series(excess).groupby(multi["node_num"].to_numpy()).median()
    return {"lat_us": float(lat), "hop_us": float(hop), "eff": float(np.median(list(eff.values()))),
            "latency_by_nodes": {int(k): float(v) for k, v in latency_by_nodes.items()},
            "eff_by_nodes": eff, "eff_bf16": eff16}


def run(root: Path | None = None) -> str:
    """Fit `fit_scale_out` on each system's internode tables (its NIC rate from the catalog) and return a report."""
    from objectives import catalog, profiles

    tables = internode_tables(root)
    if tables.empty:
        return "no internode DeepEP tables (aiconfigurator-core not installed)"
    lines = []
    for system, t in tables.groupby("system"):
        gpu = profiles.GPU_OF_SYSTEM[system]
        sys_ = catalog.system(gpu)
        if sys_ is None:
            raise ValueError(f"{system}: catalog GPU {gpu} has no sourced system (no scale-out network)")
        line = sys_.scale_out_gbs
        f = fit_scale_out(t, line)
        lines.append(
            f"{system} ({gpu}, NIC {line:g} GB/s per GPU per direction): ar_latency_us {f['lat_us']:.1f}, "
            f"ar_hop_us {f['hop_us']:.2f}, ar_bw_eff {f['eff']:.2f}; latency added per dispatch or combine by "
            f"node count {', '.join(f'{k}: {v:.1f} us' for k, v in f['latency_by_nodes'].items())}; share of line "
            f"rate by node count {', '.join(f'{k}: {v:.2f}' for k, v in f['eff_by_nodes'].items())} (bf16 "
            f"dispatch: {', '.join(f'{k}: {v:.2f}' for k, v in f['eff_bf16'].items())})")
    return "\n".join(lines)
