"""Measure whole forward steps of a dense decoder in plain PyTorch on the local GPU, to check the model's composition.

    python -m objectives.profiles.reference_step --out steps.csv [--model meta-llama/Llama-3.1-8B] [--device cuda]
                                                 [--quick] [--layers N]
    python -m objectives.profiles.reference_step --compare steps.csv [--engine torch]

The kernel tables of `objectives.profiles.collect` time one kernel at a time. The model composes a step from them
(every GEMM of a layer, attention, the LM head, small per-layer kernels). This module times that composition as a
real implementation runs it: the catalog model's decoder layers with random bf16 weights (RMSNorm, fused QKV,
rotary embedding, a preallocated KV cache, `scaled_dot_product_attention` with GQA, output projection, fused
gate/up, SiLU x up, down projection, residuals), the final norm and the LM head on the last token of each
sequence, one CUDA graph per step, timed with CUDA events (median of repeats after warm-up), so no host time is
in the figure.

Rows (one per measured step; latency in ms): model, device, torch version, phase ("decode" | "prefill"), batch
(sequences), tokens (new tokens in the step), kv_len (cached tokens each decoding sequence reads, before its new
one; 0 for prefill), isl (prompt tokens per sequence for prefill; 0 for decode), layers (decoder layers run),
latency_ms.

`--compare` prints, for each row, the `StepModel` time of the same step under `--engine` (default ``torch``: the
profile collected with PyTorch on that GPU, where host time is zero since the step is one graph) and the ratio
measured / predicted, per phase and batch.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

COLUMNS = ["model", "device", "torch", "phase", "batch", "tokens", "kv_len", "isl", "layers", "latency_ms"]
DECODE_BATCH = (1, 8, 32, 64, 128)
DECODE_KV = (1024, 4096)
PREFILL_ISL = (512, 2048, 8192)


class _Decoder:
    """Random-weight decoder of a catalog model's shape (dense, grouped-query attention, gated MLP)."""

    def __init__(self, m: Any, layers: int, device: str, dtype: Any) -> None:
        import torch
        g = torch.Generator(device=device).manual_seed(0)
        h, d, nq, nkv = m.hidden, m.head_dim, m.n_heads, m.n_kv_heads
        std = 0.02

        def w(*shape: int) -> Any:
            return torch.randn(*shape, generator=g, device=device, dtype=dtype) * std
        self.m, self.layers, self.device, self.dtype = m, layers, device, dtype
        self.qkv = [w((nq + 2 * nkv) * d, h) for _ in range(layers)]
        self.o = [w(h, nq * d) for _ in range(layers)]
        self.gate_up = [w(2 * m.ffn, h) for _ in range(layers)]
        self.down = [w(h, m.ffn) for _ in range(layers)]
        self.norm1 = [torch.ones(h, device=device, dtype=dtype) for _ in range(layers)]
        self.norm2 = [torch.ones(h, device=device, dtype=dtype) for _ in range(layers)]
        self.final_norm = torch.ones(h, device=device, dtype=dtype)
        self.head = w(m.vocab, h)

    def kv_cache(self, batch: int, length: int) -> list[tuple[Any, Any]]:
        import torch
        shape = (batch, self.m.n_kv_heads, length, self.m.head_dim)
        return [(torch.zeros(shape, device=self.device, dtype=self.dtype),
                 torch.zeros(shape, device=self.device, dtype=self.dtype)) for _ in range(self.layers)]

    def rotary(self, start: int, n: int) -> tuple[Any, Any]:
        import torch
        d = self.m.head_dim
        inv = 1.0 / (500000.0 ** (torch.arange(0, d, 2, device=self.device, dtype=torch.float32) / d))
        ang = torch.arange(start, start + n, device=self.device, dtype=torch.float32)[:, None] * inv[None, :]
        return torch.cos(ang).to(self.dtype), torch.sin(ang).to(self.dtype)

    @staticmethod
    def _rope(x: Any, cos: Any, sin: Any) -> Any:
        import torch
        x1, x2 = x[..., ::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)

    def forward(self, x: Any, cache: list[tuple[Any, Any]], pos: int, cos: Any, sin: Any) -> Any:
        """x: (batch, new tokens, hidden); the new tokens sit at positions pos.. of every sequence."""
        import torch.nn.functional as F
        m = self.m
        b, t, _ = x.shape
        nq, nkv, d = m.n_heads, m.n_kv_heads, m.head_dim
        for i in range(self.layers):
            hn = F.rms_norm(x, (m.hidden,), self.norm1[i])
            qkv = F.linear(hn, self.qkv[i]).view(b, t, nq + 2 * nkv, d)
            q, k, v = qkv.split((nq, nkv, nkv), dim=2)
            q = self._rope(q, cos[:, None, :], sin[:, None, :]).transpose(1, 2)
            k = self._rope(k, cos[:, None, :], sin[:, None, :]).transpose(1, 2)
            kc, vc = cache[i]
            kc[:, :, pos:pos + t] = k
            vc[:, :, pos:pos + t] = v.transpose(1, 2)
            a = F.scaled_dot_product_attention(q, kc[:, :, :pos + t], vc[:, :, :pos + t], is_causal=t > 1,
                                               enable_gqa=True)
            x = x + F.linear(a.transpose(1, 2).reshape(b, t, nq * d), self.o[i])
            hn = F.rms_norm(x, (m.hidden,), self.norm2[i])
            gate, up = F.linear(hn, self.gate_up[i]).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, self.down[i])
        return F.linear(F.rms_norm(x[:, -1], (m.hidden,), self.final_norm), self.head)


def measure(model: str = "meta-llama/Llama-3.1-8B", device: str | None = None, layers: int | None = None,
            quick: bool = False, decode_batch: Sequence[int] = DECODE_BATCH, decode_kv: Sequence[int] = DECODE_KV,
            prefill_isl: Sequence[int] = PREFILL_ISL) -> pd.DataFrame:
    """Step latencies (ms) of `model` (catalog name; dense decoders only) on `device` (default: cuda if present).
    `layers`: decoder layers built (default all; the LM head is always there); `quick`: tiny shapes for CPU."""
    import torch

    from objectives.profiles.collect import Timer, cpu_name, resolve_device
    dev = resolve_device(device)
    timer = Timer(dev, warmup=3, repeats=10, inner=1)   # a whole step per graph replay
    m = _shape(model)
    if (m.n_experts or m.kv_lora_rank or m.n_linear_attn_layers or getattr(m, "n_ffn_only_layers", 0)
            or m.sliding_window):
        raise ValueError(f"reference_step measures dense full-attention decoders; {m.name} has experts, MLA, "
                         "linear or sliding-window attention")
    if quick:
        decode_batch, decode_kv, prefill_isl = (1, 2), (16,), (16,)
    n_layers = m.n_layers if layers is None else int(layers)
    if not 1 <= n_layers <= m.n_layers:
        raise ValueError(f"--layers must be in 1..{m.n_layers} for {m.name}, got {layers}")
    dtype = torch.bfloat16 if dev.startswith("cuda") else torch.float32
    dec = _Decoder(m, n_layers, dev, dtype)
    name = torch.cuda.get_device_name(dev) if dev.startswith("cuda") else cpu_name()
    rows: list[dict[str, Any]] = []
    with torch.inference_mode():
        for kv in decode_kv:
            for b in decode_batch:
                cache = dec.kv_cache(b, kv + 1)
                x = torch.randn(b, 1, m.hidden, device=dev, dtype=dtype)
                cos, sin = dec.rotary(kv, 1)
                lat = timer(partial(dec.forward, x, cache, kv, cos, sin))
                rows.append(dict(phase="decode", batch=b, tokens=b, kv_len=kv, isl=0, latency_ms=lat))
                log.info("decode batch=%d kv=%d: %.3f ms", b, kv, lat)
                del cache
        for isl in prefill_isl:
            cache = dec.kv_cache(1, isl)
            x = torch.randn(1, isl, m.hidden, device=dev, dtype=dtype)
            cos, sin = dec.rotary(0, isl)
            lat = timer(partial(dec.forward, x, cache, 0, cos, sin))
            rows.append(dict(phase="prefill", batch=1, tokens=isl, kv_len=0, isl=isl, latency_ms=lat))
            log.info("prefill isl=%d: %.3f ms", isl, lat)
            del cache
    df = pd.DataFrame(rows)
    df.insert(0, "model", m.hf_id or m.name)
    df.insert(1, "device", name)
    df.insert(2, "torch", str(torch.__version__))
    df["layers"] = n_layers
    return df[COLUMNS]


#: the model fields `measure` reads (a JSON object with them stands in for a catalog name)
SHAPE_FIELDS = ("name", "n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "ffn", "vocab")


def _shape(model: str | Path) -> Any:
    """A catalog model, or the shape in a JSON file of SHAPE_FIELDS (e.g. written by `--write-shape` on a
    machine with the full package, for a GPU machine with only PyTorch)."""
    if str(model).endswith(".json"):
        import json
        from types import SimpleNamespace
        d = json.loads(Path(model).read_text())
        missing = [f for f in SHAPE_FIELDS if f not in d]
        if missing:
            raise ValueError(f"{model}: missing shape fields {missing}; expected {list(SHAPE_FIELDS)}")
        return SimpleNamespace(**{f: d[f] for f in SHAPE_FIELDS}, hf_id=d.get("hf_id", d["name"]), n_experts=0,
                               kv_lora_rank=0, n_linear_attn_layers=0, sliding_window=0)
    from objectives import catalog
    return catalog.model(str(model))


def compare(steps: pd.DataFrame | str | Path, gpu: str | None = None, engine: str = "torch") -> pd.DataFrame:
    """`steps` (a `measure` frame or its CSV) with `predicted_ms` (the StepModel's time of the same step on `gpu`,
    default: the catalog GPU of the rows' device, under `engine`), `ratio` = measured / predicted and `source`."""
    from objectives import catalog
    from objectives.inference import StepModel
    from objectives.profiles import GPU_OF_SYSTEM
    from objectives.profiles.collect import system_name
    df = pd.read_csv(steps) if isinstance(steps, (str, Path)) else steps.copy()
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{steps if isinstance(steps, (str, Path)) else 'steps'}: missing columns {missing}; "
                         f"expected {COLUMNS}")
    out = []
    for (model, device, layers), grp in df.groupby(["model", "device", "layers"], sort=False):
        m = catalog.model(str(model))
        if int(layers) != m.n_layers:
            m = dataclasses.replace(m, n_layers=int(layers))
        system = system_name(str(device))
        if gpu is None and system not in GPU_OF_SYSTEM:
            raise ValueError(f"no catalog GPU for device {device!r} (system {system!r}); pass gpu=")
        g = gpu or GPU_OF_SYSTEM[system]
        sm = StepModel(m, g, tp=1, weight_dtype="bf16", engine=engine)
        T = grp["isl"].where(grp["phase"] == "prefill", 0).astype(float).to_numpy()
        A = T * (T + 1) / 2
        D = grp["batch"].where(grp["phase"] == "decode", 0).astype(float).to_numpy()
        K = D * (grp["kv_len"].astype(float).to_numpy() + 1)
        pred = sm.time_ms(T, A, D, K, n_prefill_seqs=(T > 0).astype(float))
        out.append(grp.assign(gpu=g, engine=sm.engine, source=sm.source, predicted_ms=pred,
                              ratio=grp["latency_ms"].to_numpy() / pred))
    return pd.concat(out, ignore_index=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m objectives.profiles.reference_step",
                                description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", help="CSV to write the measured steps to")
    g.add_argument("--compare", help="CSV of measured steps to compare with the model")
    g.add_argument("--write-shape", help="write --model's shape to this JSON file (for --model FILE.json on a "
                   "machine without the package's dependencies) and exit")
    p.add_argument("--model", default="meta-llama/Llama-3.1-8B", help="catalog model (dense decoder) or a shape "
                   "JSON file")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:<i> (default: cuda when available)")
    p.add_argument("--layers", type=int, default=None, help="decoder layers built (default: all)")
    p.add_argument("--quick", action="store_true", help="tiny shapes (CPU tests)")
    p.add_argument("--gpu", default=None, help="with --compare: catalog GPU (default: from the rows' device)")
    p.add_argument("--engine", default="torch", help="with --compare: engine profile (default: torch)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if a.write_shape:
            import json
            m = _shape(a.model)
            shape = {f: getattr(m, f) for f in SHAPE_FIELDS} | {"hf_id": m.hf_id or m.name}
            Path(a.write_shape).write_text(json.dumps(shape, indent=1) + "\n")
        elif a.out:
            df = measure(a.model, a.device, a.layers, a.quick)
            df.to_csv(a.out, index=False)
            print(df.to_string(index=False))
        else:
            r = compare(a.compare, a.gpu, a.engine)
            cols = ["phase", "batch", "kv_len", "isl", "latency_ms", "predicted_ms", "ratio", "source"]
            print(r[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            for phase, grp in r.groupby("phase"):
                print(f"{phase}: median measured/predicted {grp['ratio'].median():.3f} "
                      f"(min {grp['ratio'].min():.3f}, max {grp['ratio'].max():.3f})")
    except ValueError as e:
        p.error(str(e))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
