"""``training``: the layouts, precisions and recompute policies that can train one LLM on a set of GPUs.

Parameters, in grid order: gpu, n_gpus | tp, pp, cp, [ep], vp | zero_stage, [hybrid_shard], recompute, micro_batch,
precision. ``hybrid_shard`` (HSDP: ZeRO-3 inside each scale-up domain, replicas across domains) is a boolean active
only where zero_stage == 3; `training_objective` passes such rows to `estimate` as zero_stage="hybrid_shard".
(sequence parallelism is always on where tp > 1: it never costs time in the training model and saves memory.)

Validity rules (the ones `objectives.training.estimate` enforces, so no point of the space raises):

- tp divides the attention heads and divides (or is a multiple of) the KV heads; choices up to the GPU's
  scale-up domain (8 on an HGX/DGX node) unless ``tp=`` says otherwise.
- pp x vp divides the layers (even stages); vp > 1 only with pp > 1, and interleaving needs the micro-batches per
  replica to be a multiple of pp.
- cp splits the sequence into 2 x cp equal chunks (load-balanced ring attention).
- ep (MoE models only) divides the experts and dp x cp = n_gpus / (tp x pp).
- n_gpus is a multiple of tp x pp x cp, and the global batch is divisible by dp x micro_batch.
- the precision runs on the GPU (bf16 not on V100, fp8 needs Ada/Hopper/CDNA 3 or newer, mxfp8/nvfp4 Blackwell
  or CDNA 4); a GPU without a scale-out network in objectives/data/systems/systems.toml stays within one domain.
"""
from __future__ import annotations

from collections.abc import Sequence

import dse
from dse import SpaceError
from objectives import catalog
from objectives.catalog import GPU, Model
from objectives.training.model import PRECISIONS, RECOMPUTE, _runs
from objectives.training.systems import DEFAULT_SCALE_UP, system

from .hardware import check_count


def _model(model: str | Model) -> Model:
    return model if isinstance(model, Model) else catalog.model(model)


def _domain(gpu: str) -> int:
    """GPUs per scale-up domain of a catalog GPU's training system (the default for GPUs without one)."""
    sysm = system(gpu)
    return sysm.scale_up_gpus if sysm is not None else DEFAULT_SCALE_UP


def _pick(label: str, given: Sequence | None, valid: list, rule: str) -> list:
    if given is None:
        return valid
    vals = list(dict.fromkeys(given))
    bad = [v for v in vals if v not in valid]
    if bad or not vals:
        raise SpaceError(f"{label}={list(given)!r}: {bad or 'empty'} not allowed ({rule}); valid: {valid}")
    return vals


def training(model: str | Model, gpus: Sequence[str | GPU] | str, max_gpus: int = 1024, *, global_batch: int,
             seq_len: int, n_gpus: Sequence[int] | None = None, tp: Sequence[int] | None = None,
             pp: Sequence[int] | None = None, cp: Sequence[int] | None = None, ep: Sequence[int] | None = None,
             vp: Sequence[int] = (1, 2, 4), zero_stages: Sequence[int | str] = (1, 3, "hybrid_shard"),
             recompute: Sequence[str] = ("selective", "full"), micro_batches: Sequence[int] = (1, 2, 4),
             precisions: Sequence[str] = ("bf16", "fp8"), uneven_pp: bool = False) -> dse.Space:
    """The training space of ``model`` on ``gpus`` with up to ``max_gpus`` GPUs, for ``global_batch`` sequences of
    ``seq_len`` tokens per step. ``n_gpus`` defaults to the powers of two from 8 to ``max_gpus``; the other
    keyword arguments restrict each knob (each value must obey the module's rules). ``uneven_pp``: allow pipeline
    stages of unequal size (pp x vp need not divide the layers; evaluate with ``uneven_pp=True`` too)."""
    m = _model(model)
    if isinstance(gpus, (str, GPU)):
        gpus = [gpus]
    recs = [g if isinstance(g, GPU) else catalog.gpu(g) for g in gpus]
    if not recs:
        raise SpaceError("gpus must be a non-empty list of catalog GPU names")
    names = list(dict.fromkeys(g.name for g in recs))
    check_count("max_gpus", max_gpus)
    check_count("global_batch", global_batch)
    check_count("seq_len", seq_len)
    counts = list(dict.fromkeys(n_gpus)) if n_gpus is not None else (
        [2 ** k for k in range(3, 31) if 2 ** k <= max_gpus] or [max_gpus])
    for c in counts:
        check_count("n_gpus value", c)
        if c > max_gpus:
            raise SpaceError(f"n_gpus value {c} exceeds max_gpus={max_gpus}")
    dom = max(_domain(g) for g in names)
    tp_ok = [t for t in range(1, dom + 1) if m.n_heads % t == 0 and (m.n_kv_heads % t == 0 or t % m.n_kv_heads == 0)]
    tps = _pick("tp", tp, tp_ok if tp is None else sorted(set(tp_ok) | {t for t in tp if m.n_heads % t == 0 and (
        m.n_kv_heads % t == 0 or t % m.n_kv_heads == 0)}), f"must divide the {m.n_heads} heads and the "
        f"{m.n_kv_heads} KV heads (or be a multiple of them)")
    pp_ok = [p for p in (1, 2, 4, 8, 16, 32, 64)
             if p <= min(max_gpus, m.n_layers) and (uneven_pp or m.n_layers % p == 0)]
    pps = _pick("pp", pp, pp_ok if pp is None else [p for p in range(1, m.n_layers + 1)
                                                    if uneven_pp or m.n_layers % p == 0],
                f"must divide the {m.n_layers} layers" + ("" if uneven_pp else " (or pass uneven_pp=True)"))
    # default: chunks of at least 2048 tokens per GPU (shorter ones leave ring attention exposed)
    cp_ok = [c for c in (1, 2, 4, 8, 16) if seq_len % (2 * c) == 0 and (c == 1 or seq_len // c >= 2048)]
    cps = _pick("cp", cp, cp_ok if cp is None else [c for c in range(1, 65) if seq_len % (2 * c) == 0],
                f"must split seq_len={seq_len} into 2 x cp equal chunks")
    if m.n_experts:
        ep_ok = [e for e in (1, 2, 4, 8, 16, 32, 64) if m.n_experts % e == 0]
        eps = _pick("ep", ep, ep_ok if ep is None else [e for e in range(1, m.n_experts + 1) if m.n_experts % e == 0],
                    f"must divide the {m.n_experts} experts")
    elif ep not in (None, (1,), [1]):
        raise SpaceError(f"ep={list(ep)!r}: {m.name} is dense (no experts); valid: [1]")
    vps = _pick("vp", vp, [v for v in range(1, 65)], "a positive integer")
    zs = _pick("zero_stages", zero_stages, [0, 1, 2, 3, "hybrid_shard"],
               "ZeRO stage 0-3 (3 = FSDP) or 'hybrid_shard' (HSDP)")
    # hybrid sharding is ZeRO-3 with a replica dimension: zero_stage 3 plus a boolean active only there
    hsdp = [h for h, on in ((False, 3 in zs), (True, "hybrid_shard" in zs)) if on]
    zs = sorted({3 if z == "hybrid_shard" else int(z) for z in zs})
    rcs = _pick("recompute", recompute, list(RECOMPUTE), "a recompute mode")
    mbs = [check_count("micro_batches value", b) for b in micro_batches]
    precs = _pick("precisions", precisions, list(PRECISIONS), "a training precision")
    runnable = {p: [g.name for g in recs if _runs(p, g)] for p in precs}
    precs = [p for p in precs if runnable[p]]
    if not precs:
        raise SpaceError(f"none of precisions={list(precisions)!r} runs on {names}")
    params: dict = {
        "gpu": dse.Categorical(names), "n_gpus": dse.Categorical(counts),
        "tp": dse.Categorical(tps), "pp": dse.Categorical(pps), "cp": dse.Categorical(cps),
    }
    if m.n_experts:
        params["ep"] = dse.Categorical(eps)
    params.update({"vp": dse.Categorical(vps), "zero_stage": dse.Categorical(zs)})
    if True in hsdp:
        params["hybrid_shard"] = dse.Categorical(hsdp, when="zero_stage == 3")
    params.update({"recompute": dse.Categorical(rcs), "micro_batch": dse.Categorical(mbs),
                   "precision": dse.Categorical(precs)})
    G, L = int(global_batch), m.n_layers
    dp = "(n_gpus // (tp * pp * cp))"
    cons = [
        "n_gpus % (tp * pp * cp) == 0",
        f"{G} % ({dp} * micro_batch) == 0",
        f"pp * vp <= {L}" if uneven_pp else f"{L} % (pp * vp) == 0",
        "vp == 1 or pp > 1",
        f"vp == 1 or ({G} // ({dp} * micro_batch)) % pp == 0",
    ]
    if m.n_experts:
        cons.append("(n_gpus // (tp * pp)) % ep == 0")
    for p, ok in runnable.items():
        if len(ok) < len(names):
            cons.append(f"precision != '{p}' or gpu in {tuple(ok)!r}")
    closed = [g for g in names if system(g) is None]
    if closed:
        cons.append(f"gpu not in {tuple(closed)!r} or n_gpus <= {DEFAULT_SCALE_UP}")
    return dse.Space(params, constraints=cons)
