"""``llm_serving``: the whole deployment space of one LLM, composed from the smaller builders.

Parameters, in grid order: gpu, n_gpus | tp, pp, [dp], [ep], [attn_dp] | weight_dtype, act_dtype, kv_dtype |
[mode, prefill_replicas, [prefill_gpu, prefill_tp, [prefill_attn_dp], [prefill_ep]]] | [eplb] | [moe_act_dtype] |
[moe_a2a] |
[prefix_caching] | max_batch_size, max_num_tokens, chunked_prefill | [batching] | [engine] | [adp_balance] |
[speculative].

Cross-part constraints added here: TP x PP x DP == n_gpus; in aggregated mode DP == 1 unless ``replicas=True``
(identical replicas have the same per-GPU and per-user metrics in the analytical model, so by default the
space does not enumerate copies; ``n_gpus`` is then the size of one model instance); in disaggregated mode
``prefill_replicas < dp`` (both pools non-empty). With ``prefill_gpus`` / ``prefill_tp`` (xPyD with pools of
their own): the prefill pool's ``prefill_gpu`` and ``prefill_tp`` (active in disaggregated mode; ``gpu`` and
``tp`` are then the decode pool's), GPUs counted per pool (prefill_replicas x prefill_tp x pp + decode workers x
tp x pp == n_gpus), and the precision rules of ``gpu`` applied to ``prefill_gpu`` too. With ``attn_dp`` /
``prefill_ep`` / ``prefill_attn_dp``: attention-DP ranks multiply a replica's GPUs (tp x pp x attn_dp), EP divides
tp x attn_dp, and the prefill pool's EP its own prefill_tp x prefill_attn_dp. With ``eplb``: the knob is active
only where a pool's EP is above 1 and divides the experts (elsewhere it changes nothing: no expert parallelism, or
redundant expert copies that run with a load balancer anyway), so the grid holds no duplicate trials.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

import dse
from dse import SpaceError
from dse.space import Param
from objectives import catalog
from objectives.catalog import GPU, Model

from .batching import MAX_BATCH_SIZES, MAX_NUM_TOKENS, unchunked_tokens
from .batching import batching as batching_space
from .compose import COUNT_LIMIT, compose, one_of
from .hardware import gpu_records, hardware
from .parallelism import ep_choices, model_record, parallelism, pick_pp, pick_tp
from .quantization import FORMATS, KV_DTYPES, OPT_IN_FORMATS, format_ok, idle_gpus, quantization
from .serving import serving

#: the most GPUs `_check_memory` looks for a layout at, to say how many would hold a model (GPUs)
_FIT_SEARCH_GPUS = 1024


def llm_serving(model: str | Model, gpus: Sequence[str | GPU] | str, max_gpus: int = 8, *,
                n_gpus: Sequence[int] | None = None, tp: Sequence[int] | None = None,
                pp: Sequence[int] | None = None, ep: Sequence[int] | None = None,
                formats: Sequence[str] | None = None, kv_dtypes: Sequence[str] = KV_DTYPES,
                max_batch_sizes: Sequence[int] = MAX_BATCH_SIZES, max_num_tokens: Sequence[int] = MAX_NUM_TOKENS,
                chunked_prefill: Sequence[bool] = (True, False), modes: Sequence[str] = ("agg",),
                replicas: bool = False, input_len: int | None = None, output_len: int | None = None,
                batching: Sequence[str] = ("continuous",),
                engines: Sequence[str] | None = None, prefill_gpus: Sequence[str | GPU] | str | None = None,
                prefill_tp: Sequence[int] | None = None, attn_dp: Sequence[int] | None = None,
                prefill_ep: Sequence[int] | None = None,
                prefill_attn_dp: Sequence[int] | None = None, eplb: Sequence[bool] | None = None,
                moe_act_dtypes: Sequence[str] | None = None,
                prefix_caching: Sequence[bool] | None = None, moe_a2a: Sequence[str] | None = None,
                prefill_pp: Sequence[int] | None = None, prefill_formats: Sequence[str] | None = None,
                adp_balance: Sequence[bool] | None = None, speculative: Sequence[Any] | None = None) -> dse.Space:
    """The deployment space of ``model`` on ``gpus`` with at most ``max_gpus`` GPUs.

    Arguments restrict the knobs of the builders (see :func:`spaces.hardware`, :func:`spaces.parallelism`,
    :func:`spaces.quantization`, :func:`spaces.batching`, :func:`spaces.serving`). ``modes``: ("agg",),
    ("disagg",) or both. ``replicas``: enumerate DP > 1 in aggregated mode too. ``input_len`` (tokens): adds
    the rule that without chunked prefill one iteration must hold a whole prompt (a disaggregated deployment's
    prefill pool runs without chunking: its ``max_num_tokens`` too); ``output_len`` (tokens) makes it the longest
    request, prompt + output (vLLM refuses less unchunked; `spaces.batching`). ``batching``: scheduler
    policies, ``("continuous", "static")`` adds a ``batching`` knob (aggregated mode only). ``engines``: serving
    engines as a search dimension (``["vllm", "sglang", "trtllm"]``, optionally ``"name==version"``): the cost
    model uses each engine's measured kernel profile where the GPU has one (else the roofline); unknown engines
    are refused here. ``prefill_gpus`` / ``prefill_tp`` (disaggregated mode): the prefill pool chooses its own GPU
    type (default: ``gpus``) and TP (default: the space's TP values) and the decode pool keeps ``gpu`` / ``tp``,
    e.g. H100 prefill with H200 decode; the pools' worker counts are ``prefill_replicas`` and
    ``dp - prefill_replicas``. ``attn_dp``: attention data-parallel ranks per replica as a knob (a replica runs on
    tp x pp x attn_dp GPUs and EP spreads the experts over its tp x attn_dp GPUs; in disaggregated mode the decode
    pool's). ``prefill_ep`` / ``prefill_attn_dp`` (disaggregated mode, MoE models for EP): the prefill pool's own
    EP and attention DP (default: the decode pool's ``ep`` / ``attn_dp``), e.g. prefill TP 8 EP 8 with a wide-EP
    decode pool. ``prefill_pp`` / ``prefill_formats`` (disaggregated mode): the prefill pool's own pipeline depth
    (default: the decode pool's ``pp``) and (weight, activation) format (names of `spaces.quantization.FORMATS`,
    each refused where no prefill GPU computes in it; default: the decode pool's ``weight_dtype`` /
    ``act_dtype``), as knobs ``prefill_pp``, ``prefill_weight_dtype``, ``prefill_act_dtype``, e.g. an fp8 prefill
    pool beside a bf16 decode pool. A prefill TP or PP given may be any the model splits into up to ``max_gpus``,
    whatever the decode pool's choices. The KV-cache dtype stays one for both pools: the KV moves as stored (vLLM's
    NixlConnector refuses a peer whose ``cache_dtype`` differs, `compute_nixl_compatibility_hash` in
    vllm/distributed/kv_transfer/kv_connector/v1/nixl_connector.py). With ``attn_dp`` and no ``ep``, the EP
    choices also hold each replica's whole tp x attn_dp (up to
    the experts), as wide-EP deployments run: EP 72 over 72 attention-DP ranks, with redundant expert copies where
    it does not divide the experts. ``eplb`` (MoE models): an expert-parallel load balancer as a knob, e.g.
    ``(False, True)`` (vLLM / SGLang ``--enable-eplb``, TensorRT-LLM's MoE load balancer; the cost model prices
    the experts at balanced load, `objectives.llm_serving_objective` knob ``eplb``, and `dse deploy` emits the
    engine's switch); active only where a pool (the decode pool's ``ep``, the prefill pool's ``prefill_ep``) has
    an EP above 1 that divides the experts, the only configurations it changes. ``moe_act_dtypes`` (models with
    MXFP4 experts: gpt-oss): the activations the experts compute with as a knob ``moe_act_dtype``, e.g.
    ``("auto", "bf16", "mxfp8")`` (`objectives.inference.measured.MOE_ACT_DTYPES`: "auto" each engine's default
    kernel; the objective's knob ``moe_act_dtype``, and `dse deploy` emits each engine's setting); active only
    where ``weight_dtype`` is fp4 (the MXFP4 checkpoint), and "mxfp8" only on GPUs with an MXFP8 MoE kernel
    (Blackwell). ``moe_a2a`` (MoE models with attention DP or EP): how an EP group across attention-DP ranks
    exchanges its tokens as a knob ``moe_a2a``, e.g. ``("allgather", "deepep")``
    (`objectives.inference.measured.MOE_A2A`: "auto" each engine's rule; SGLang ``--moe-a2a-backend``, vLLM
    ``--all2all-backend``; the objective's knob ``moe_a2a``, and `dse deploy` emits each engine's flags); active
    only where the (decode) pool's EP is above 1 and spans attention-DP ranks (attn_dp > 1 or ep not dividing tp),
    and with a prefill pool of its own a value other than "auto" only where that pool's EP does too (the knob
    applies to every pool); with ``engines``, a value only under the engines that run it
    (`objectives.inference.resolve.moe_a2a_invalid`: TensorRT-LLM no "deepep"). ``prefix_caching``: prefix caching as a knob, e.g. ``(False, True)`` (vLLM
    ``--enable-prefix-caching`` / ``--no-enable-prefix-caching``, SGLang ``--disable-radix-cache``, TensorRT-LLM
    ``kv_cache_config.enable_block_reuse``; every engine's default is on, and so is the objective's knob
    ``prefix_caching`` where the space has none); active in every configuration (every prefill rank holds a
    cache), it changes the predictions only under a workload whose requests carry prompt hash blocks (a Mooncake
    trace, `serving.prefix`): over a synthetic workload both values give the same trial, so leave it out there.
    ``adp_balance`` (MoE models, with ``attn_dp`` and an ``engines`` knob holding TensorRT-LLM): TensorRT-LLM's
    attention-DP balance as a knob, e.g. ``(False, True)`` (``attention_dp_config.enable_balance``; the objective's
    knob ``adp_balance``, `inference.max_throughput`'s, and `dse deploy` emits the YAML); active only where the
    engine is TensorRT-LLM, attn_dp > 1 and the mode aggregated, the only trials it changes (the other engines
    have no such balance and `dse deploy` refuses it there; without attention DP, or on a dense model, no ranks
    step in lockstep; a disaggregated prefill pool has no decodes to hold its prompts for, a decode pool no
    prompts). ``speculative``: speculative decoding as a knob, its values each None (off), an
    `objectives.inference.Speculative`, its label or a mapping of its fields, e.g. ``[None, Speculative("mtp", 3,
    (0.8, 0.6, 0.4)), "eagle:2:0.7"]``; the parameter holds their labels ("off", "mtp:3:0.8,0.6,0.4",
    "eagle:2:0.7": `Speculative.label`, which the objective's knob ``speculative`` reads back), active in every
    configuration (the aggregated replicas and the decode pool run the drafts); the acceptance rates are the
    user's what-if, not fitted.
    Values every trial would fail on
    are refused here: ``adp_balance`` on a dense model, without an attn_dp value above 1, without TensorRT-LLM among
    the ``engines``, without aggregated mode, or with values other than True / False; EP on a dense model, EP
    above the experts, a prefill EP that no prefill TP x attention DP is
    a multiple of; ``eplb`` on a dense model or with values other than True / False; ``moe_act_dtypes`` on a model
    without MXFP4 experts, in a space without fp4 weights, ``speculative`` with a value
    `objectives.inference.Speculative` refuses or "mtp" on a model without an MTP module (``Model.n_mtp_layers``
    0), with an unknown value, or "mxfp8" where no GPU of the
    space has the kernel; ``moe_a2a`` on a dense model, in a space without EP above 1, with an unknown value, or
    with a value none of the ``engines`` runs; with ``engines``,
    TensorRT-LLM's attention DP over tensor-parallel attention (it runs attention unsplit on each rank:
    `objectives.inference.resolve.layout_invalid`), in each pool; and a block-FP8 checkpoint at its own fp8 weights
    (each pool's: ``prefill_weight_dtype`` for a prefill pool with ``prefill_formats``) on a (tp, attn_dp, ep) whose TP shards its 128-wide weight blocks do not tile, under each engine and GPU
    (`objectives.inference.resolve.block_fp8_invalid`: vLLM refuses Qwen3-235B-A22B-FP8 at TP 8 without EP); and a
    model that no GPU of the space holds in any of its layouts and formats (its least memory above the whole GPU's,
    `_check_memory`: the message names the GPUs, the memory needed and what would hold it, more GPUs or a smaller
    format), as is one where only some of its GPUs hold it nowhere (naming them, the most GPUs of each the space
    offers, and the GPUs that hold it).
    """
    _lists(n_gpus=n_gpus, tp=tp, pp=pp, ep=ep, formats=formats, kv_dtypes=kv_dtypes, max_batch_sizes=max_batch_sizes,
           max_num_tokens=max_num_tokens, chunked_prefill=chunked_prefill, modes=modes, batching=batching,
           engines=engines, prefill_tp=prefill_tp, attn_dp=attn_dp, prefill_ep=prefill_ep,
           prefill_attn_dp=prefill_attn_dp, prefill_pp=prefill_pp, prefill_formats=prefill_formats)
    modes = tuple(dict.fromkeys(modes))
    if engines is not None:
        engines = _engine_names(engines)
    with_dp = replicas or "disagg" in modes
    par = parallelism(model, max_gpus, tp=tp, pp=pp, dp=with_dp, ep=ep)
    adp = "1"                                    # the attention-DP factor of a (decode) replica's GPU count
    if attn_dp is not None:
        wide = ep_choices(model_record(model), max_gpus, uneven=True) if ep is None else []
        par = _with_attn_dp(par, _degrees("attn_dp", attn_dp, max_gpus), wide)
        adp = "attn_dp"
    if ep is not None and "ep" in par.params:
        # an EP no replica's tp x attn_dp GPUs can hold would fail every configuration it is in
        groups = sorted({t * a for t in _choices(par, "tp")
                         for a in (_choices(par, "attn_dp") if "attn_dp" in par.params else [1])})
        never = [e for e in _choices(par, "ep") if not any(g % e == 0 for g in groups)]
        if never:
            valid = [e for e in ep_choices(model_record(model), max_gpus, uneven=True)
                     if any(g % e == 0 for g in groups)]
            raise SpaceError(f"ep={never} divides no replica's tp x attn_dp ({groups}): every configuration with "
                             f"it would fail; valid ep here: {valid} (or give attn_dp / tp values whose product "
                             f"it divides)")
    parts = [
        hardware(gpus, max_gpus, n_gpus=n_gpus),
        par,
        quantization(gpus, formats=formats, kv_dtypes=kv_dtypes, opt_in=_opt_in_formats(model)),
    ]
    own_pools = any(v is not None for v in (prefill_gpus, prefill_tp, prefill_ep, prefill_attn_dp, prefill_pp,
                                            prefill_formats))
    if own_pools and "disagg" not in modes:
        raise SpaceError(f"prefill_gpus / prefill_tp / prefill_ep / prefill_attn_dp / prefill_pp / prefill_formats "
                         f"give the prefill pool of a disaggregated deployment its own GPU, TP, EP, attention DP, PP "
                         f"and format; add 'disagg' to modes={list(modes)}")
    cons = [f"tp * pp * {adp} * dp == n_gpus" if with_dp else f"tp * pp * {adp} == n_gpus"]
    if own_pools:
        cons = [f"tp * pp * {adp} * dp == n_gpus or mode == 'disagg'"]
    if modes != ("agg",):
        parts.append(serving(modes, max_gpus))
        if "disagg" in modes:
            cons.append("prefill_replicas < dp")
    pool_params: list[str] = []
    if own_pools:
        pool, rules = _prefill_pool(model, max_gpus, parts[0], parts[1],
                                    gpus if prefill_gpus is None else prefill_gpus, prefill_tp, formats, kv_dtypes,
                                    prefill_pp, prefill_formats)
        p_pp = "prefill_pp" if prefill_pp is not None else "pp"
        extra, p_ep, p_adp, ep_rules = _prefill_parallel(model, par, pool, prefill_ep, prefill_attn_dp, adp, max_gpus)
        pool = dse.Space({**pool.params, **extra})
        pool_params = list(pool.params)
        parts.append(pool)
        cons.extend(rules + ep_rules)
        # GPUs per pool (the prefill parameters are inactive in aggregated mode, where this holds vacuously)
        cons.append(f"prefill_replicas * prefill_tp * {p_adp} * {p_pp} + (dp - prefill_replicas) * tp * {adp} * pp "
                    f"== n_gpus")
    if with_dp and not replicas and "agg" in modes:     # a disaggregated deployment needs its dp > 1 workers
        cons.append("dp == 1 or mode == 'disagg'" if "disagg" in modes else "dp == 1")
    # in disaggregated mode the prefill pool runs whole prompts and the decode pool no prompts: chunking is an
    # aggregated-mode knob
    when = {"chunked_prefill": "mode == 'agg'"} if "disagg" in modes else {}
    if "disagg" in modes and (longest := unchunked_tokens(input_len, output_len)) is not None:
        # ... so its token budget holds a whole prompt, as the aggregated rule without chunking (`batching`) says
        # (vLLM and TensorRT-LLM refuse a longer prompt unchunked; `dse deploy` launches the prefill pool so)
        cons.append(f"mode != 'disagg' or max_num_tokens >= {longest}")
    if own_pools and len(modes) > 1:
        when.update({name: "mode == 'disagg'" for name in pool_params})
    if eplb is not None:
        part, cond = _eplb(model, eplb, "prefill_ep" if prefill_ep is not None else None)
        parts.append(part)
        when["eplb"] = cond
    if moe_act_dtypes is not None:
        pool_gpus = [] if not own_pools else _choices(pool, "prefill_gpu")
        part, cond, rules = _moe_act(model, moe_act_dtypes, _choices(parts[2], "weight_dtype"),
                                     _choices(parts[0], "gpu"), pool_gpus, engines)
        parts.append(part)
        when["moe_act_dtype"] = cond
        cons.extend(rules)
    if moe_a2a is not None:
        part, cond, rules = _moe_a2a(model, moe_a2a, par, adp, engines,
                                     (p_ep, p_adp) if own_pools else None)
        parts.append(part)
        when["moe_a2a"] = cond
        cons.extend(rules)
    if prefix_caching is not None:
        parts.append(dse.Space(prefix_caching=dse.Categorical(_knob_values(
            "prefix_caching", prefix_caching, lambda v: isinstance(v, bool), "True / False, e.g. (False, True) "
            "(prefix caching off and on)"))))
    policies = [batching] if isinstance(batching, str) else list(dict.fromkeys(batching))
    if policies != ["continuous"] and "disagg" in modes:
        if len(modes) == 1:
            raise SpaceError(f"batching={policies}: static batching is modelled in aggregated mode only; add 'agg' "
                             f"to modes or keep batching=('continuous',)")
        when["batching"] = "mode == 'agg'"
        if len(policies) > 1:   # chunked_prefill has its own condition, batching == 'continuous' (agg mode only)
            when.pop("chunked_prefill", None)
    parts.append(batching_space(max_batch_sizes, max_num_tokens, chunked_prefill, input_len=input_len,
                                output_len=output_len, batching=policies))
    # each pool: its tp, attention-DP and EP parameters ("1" where the space has none), the condition it exists
    # under, its GPU and weight parameters
    pools: list[tuple[str, str, str, str | None, str, str]] = [
        ("tp", adp, "ep" if "ep" in par.params else "1", None, "gpu", "weight_dtype")]
    if own_pools:
        pools.append(("prefill_tp", p_adp, p_ep, "mode == 'disagg'", "prefill_gpu",
                      "prefill_weight_dtype" if prefill_formats is not None else "weight_dtype"))
    if engines is not None:
        names = list(engines)
        parts.append(dse.Space(engine=dse.Categorical(names)))
        gpu_choices = {"gpu": _choices(parts[0], "gpu")}
        if own_pools:
            gpu_choices["prefill_gpu"] = _choices(pool, "prefill_gpu")
        cons.extend(_engine_rules(names, gpu_choices))
        cons.extend(_layout_rules(names, [pl[:4] for pl in pools]))
    if adp_balance is not None:         # placed after the engine its condition names
        part, cond = _adp_balance(model, adp_balance, engines, par, modes)
        parts.append(part)
        when["adp_balance"] = cond
    if speculative is not None:
        parts.append(dse.Space(speculative=dse.Categorical(_speculative_labels(model, speculative))))
    # a model the space's GPUs hold in none of its layouts and formats: every trial would fail (out of memory)
    _check_memory(model, parts[0], par, parts[2], adp)
    # a block-FP8 checkpoint's weight blocks must tile every TP shard (in each pool, under each engine)
    choices = {n: _choices(part, n) for part in parts for n in part.params
               if isinstance(part.params[n], dse.Categorical)}
    cons.extend(_block_fp8_rules(model, engines, choices, pools))
    try:
        space = compose(*parts, constraints=cons, when=when)
    except SpaceError as exc:
        if n_gpus is None:
            raise
        # every count asked for may be one no layout reaches: then say so (the same space over the node shapes)
        try:
            shapes = compose(hardware(gpus, max_gpus), *parts[1:], constraints=cons, when=when)
        except SpaceError:
            raise exc from None           # something else excludes everything: the rules' own message
        _check_counts(shapes, n_gpus, with_dp, asked=True)
        raise
    if n_gpus is not None:
        _check_counts(space, n_gpus, with_dp)
    return space


def _check_memory(model: str | Model, hw: dse.Space, par: dse.Space, quant: dse.Space, adp: str) -> None:
    """Refuse a space whose GPUs hold ``model`` in none of its layouts and formats: at every (gpu, tp, pp,
    attention DP, EP, weight and activation format) of ``hw`` x ``par`` x ``quant`` (a decode pool's layout: every
    trial has one) the least memory a trial takes needs more than the whole GPU (`_lightest`: weights, runtime
    reserve, one token's KV cache and activations; every engine's pool is a share of the device), so every trial
    would fail (fits=0). The SpaceError names the model, each GPU, the memory its lightest configuration needs
    against the GPU's and what would hold it (`_memory_short`). Where only some of the GPUs hold it nowhere, every
    trial on those would fail as well: the space is refused too, naming them, the most GPUs of each it offers and
    the GPUs that hold it (a space refuses a combination that every trial would fail on). Layouts are the ones
    within the GPU counts offered (tp x pp x attention DP at most ``n_gpus``); spaces too large to enumerate
    (`spaces.compose.COUNT_LIMIT`) are left as they are."""
    try:
        base = compose(hw, par, quant, constraints=[f"tp * pp * {adp} <= n_gpus"])
    except SpaceError:
        return                                   # the composed space says why nothing is left
    if not base.is_discrete or math.prod(float(p.n_values) for p in base.params.values()) > COUNT_LIMIT:
        return
    keys = [k for k in ("gpu", "tp", "pp", "attn_dp", "ep", "weight_dtype", "act_dtype") if k in base.params]
    grid = base.grid()
    rows = grid[keys].drop_duplicates().reset_index(drop=True)
    if rows.empty:
        return
    judged, over, est = _lightest(model, rows)
    gpu = rows["gpu"].to_numpy()
    gpus = list(dict.fromkeys(gpu))
    none = [g for g in gpus if judged[gpu == g].any() and (over | ~judged)[gpu == g].all()]
    if not none:
        return
    m = model_record(model)
    why = "; ".join(_memory_short(m, g, est[judged & (gpu == g)], rows) for g in none)
    if len(none) < len(gpus):
        most = grid.groupby("gpu")["n_gpus"].max()
        counts = ", ".join(f"{int(most[g])} {g}" for g in none)
        held = [g for g in gpus if g not in none]
        raise SpaceError(f"{m.name} fits on none of {none} in any layout and format of the space (at most {counts} "
                         f"GPUs), so every trial on {'it' if len(none) == 1 else 'them'} would fail (out of memory): "
                         f"{why}. Valid: the GPUs that hold it, gpus={held}, or the GPU count or format named above")
    raise SpaceError(f"{m.name} fits on no GPU of this space in any of its layouts and formats, so every trial would "
                     f"fail (out of memory): {why}")


def _lightest(model: str | Model, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(judged, over, estimate) of ``model`` over ``rows`` (gpu, tp, pp and where present attn_dp, ep,
    weight_dtype, act_dtype) at the least memory a trial takes: `inference.estimate` of one request of one prompt and
    one output token on the closed form (the memory model is every engine's; no kernel profile is read). judged:
    the rows no other rule refuses (reason "" or out of memory); over: the rows whose memory per GPU exceeds the
    whole GPU's (which no engine's pool, a share of it, holds)."""
    from objectives import inference
    from objectives.inference.resolve import R_MEM, REASONS
    kw = {k: rows[k].to_numpy() for k in ("attn_dp", "ep", "weight_dtype", "act_dtype") if k in rows}
    est = inference.estimate(model, rows["gpu"].to_numpy(object), tp=rows["tp"].to_numpy(), pp=rows["pp"].to_numpy(),
                             batch_size=1, input_len=1, output_len=1, engine="roofline", **kw)
    judged = est["reason"].astype(str).isin(["", REASONS[R_MEM]]).to_numpy()
    mem = np.array([catalog.gpu(g).mem_gib for g in rows["gpu"]])
    return judged, est["mem_per_gpu_gib"].to_numpy() > mem, est


def _memory_short(m: Model, gpu: str, est: pd.DataFrame, rows: pd.DataFrame) -> str:
    """What ``gpu`` lacks to hold ``m`` (``est``: its judged rows of `_lightest`) and what would hold it: the fewest
    GPUs of its type in the space's formats (`_fewest_gpus`) and the formats it runs outside the space
    (`spaces.quantization.FORMATS`) that the space's layouts hold."""
    best = est.iloc[int(np.argmin(est["mem_per_gpu_gib"].to_numpy()))]
    layout = " ".join(f"{k}={int(best[k])}" for k in ("tp", "pp", "attn_dp", "ep") if k in rows)
    rec = catalog.gpu(gpu)
    text = (f"on {gpu} ({rec.mem_gib:.1f} GiB) its lightest configuration ({layout}, {best['weight_dtype']} weights) "
            f"needs {float(best['mem_per_gpu_gib']):.1f} GiB per GPU, its weights alone "
            f"{float(best['weights_gib']):.1f} GiB")
    fixes = []
    mine = rows[rows["gpu"] == gpu]
    pairs = list(dict.fromkeys(zip(mine["weight_dtype"], mine["act_dtype"], strict=True)))
    n = _fewest_gpus(m, gpu, pairs)
    if isinstance(n, tuple):
        fixes.append(f"at least {n[0]} {gpu} GPUs in {n[1]} (max_gpus >= {n[0]}, e.g. {n[2]})")
    else:
        text += f"; no number of {gpu} GPUs holds it in the space's formats ({n})"
    other = [(f, wa) for f, wa in FORMATS.items()
             if wa not in pairs and f not in OPT_IN_FORMATS and format_ok(rec, *wa)]
    if other:
        lay = mine.drop(columns=["weight_dtype", "act_dtype"]).drop_duplicates()
        cand = lay.merge(pd.DataFrame([wa for _, wa in other], columns=["weight_dtype", "act_dtype"]), how="cross")
        judged, over, _ = _lightest(m, cand)
        held = judged & ~over
        ok = [f for f, (w, a) in other
              if (held & (cand["weight_dtype"] == w).to_numpy() & (cand["act_dtype"] == a).to_numpy()).any()]
        if ok:
            fixes.append(f"a smaller format on the space's layouts (formats={ok})")
    return f"{text}; it would fit {''.join(f'with {f} or ' for f in fixes)}on a GPU with more memory"


def _fewest_gpus(m: Model, gpu: str, pairs: Sequence[tuple[str, str]]) -> tuple[int, str, str] | str:
    """(GPUs, weight format, layout) of the fewest ``gpu`` GPUs holding ``m`` (one replica of tp x pp, by
    `_lightest`) in one of the (weight_dtype, act_dtype) ``pairs``, up to `_FIT_SEARCH_GPUS`; where none does, why:
    the reason (`inference.resolve.REASONS`) of the smallest layout whose memory would hold it, or that none
    does."""
    from .parallelism import pp_choices, tp_choices
    tps = tp_choices(m, min(_FIT_SEARCH_GPUS, max(m.n_heads, 1)))
    layouts = [(t, p) for t in tps for p in pp_choices(m, _FIT_SEARCH_GPUS) if t * p <= _FIT_SEARCH_GPUS]
    rows = pd.DataFrame([(gpu, t, p, w, a) for t, p in layouts for w, a in pairs],
                        columns=["gpu", "tp", "pp", "weight_dtype", "act_dtype"])
    judged, over, est = _lightest(m, rows)
    size = (rows["tp"] * rows["pp"]).to_numpy()
    ok = judged & ~over
    if not ok.any():
        room = ~over & ~judged
        if not room.any():
            return f"out of memory up to {_FIT_SEARCH_GPUS} GPUs"
        j = int(np.flatnonzero(room)[np.argmin(size[room])])
        return f"from {int(size[j])} GPUs on, where its memory would hold it: {est['reason'].astype(str).iloc[j]}"
    j = int(np.flatnonzero(ok)[np.lexsort((rows["pp"].to_numpy()[ok], size[ok]))[0]])   # the fewest, least pp
    r = rows.iloc[j]
    return int(size[j]), str(r["weight_dtype"]), f"tp={int(r['tp'])} pp={int(r['pp'])}"


def _check_counts(space: dse.Space, n_gpus: Sequence[int], with_dp: bool, asked: bool = False) -> None:
    """Refuse GPU counts a user asked for (``n_gpus``) that no configuration of ``space`` runs on: the grid would
    drop them without a word (6 GPUs for a model whose TP and PP choices make no 6). ``asked``: ``space`` is the
    same space over the default node-shape counts (none of ``n_gpus`` reached at all). Spaces too large to
    enumerate at build time (`spaces.compose.COUNT_LIMIT`) are left as they are."""
    params = space.params
    if not space.is_discrete or math.prod(float(p.n_values) for p in params.values()) > COUNT_LIMIT:
        return
    reached = sorted({int(v) for v in space.grid()["n_gpus"].unique()})
    missing = [int(c) for c in dict.fromkeys(n_gpus) if int(c) not in reached]
    if missing:
        hint = "" if with_dp else "; replicas=True adds data-parallel replicas (3 GPUs = 3 replicas of TP 1)"
        which = "the node-shape counts it reaches" if asked else "the counts it does reach"
        raise SpaceError(f"n_gpus {missing}: no configuration of the space runs on that many GPUs (a replica is "
                         f"tp x pp x attn_dp GPUs of the TP {_choices(space, 'tp')} and PP {_choices(space, 'pp')} "
                         f"choices){hint}; {which}: {reached}")


def _opt_in_formats(model: str | Model) -> tuple[str, ...]:
    """The opt-in formats a default space of ``model`` offers: fp4 weights computed in 16 bits where its checkpoint
    is fp4 (gpt-oss's MXFP4 before Blackwell, `spaces.quantization.OPT_IN_FORMATS`)."""
    return OPT_IN_FORMATS if model_record(model).quant_weight_dtype == "fp4" else ()


def _prefill_pool(model: str | Model, max_gpus: int, hw: dse.Space, par: dse.Space,
                  prefill_gpus: Sequence[str | GPU] | str,
                  prefill_tp: Sequence[int] | None, formats: Sequence[str] | None,
                  kv_dtypes: Sequence[str], prefill_pp: Sequence[int] | None = None,
                  prefill_formats: Sequence[str] | None = None) -> tuple[dse.Space, list[str]]:
    """The ``prefill_gpu`` and ``prefill_tp`` parameters (with ``prefill_pp`` / ``prefill_formats``: the
    ``prefill_pp``, ``prefill_weight_dtype`` and ``prefill_act_dtype`` ones too; the pool's TP and PP by default
    the space's choices, given, any the model splits into up to ``max_gpus``, whatever the decode pool's), and the
    precision rules of
    ``gpu`` restated for ``prefill_gpu`` over the prefill pool's format (the decode pool's, or its own): a format the
    prefill GPU cannot run is refused here, not left to fail every trial."""
    names = _choices(hardware(prefill_gpus, 8), "gpu")         # catalog names, unknown GPUs refused
    m = model_record(model)
    tps = _choices(par, "tp") if prefill_tp is None else sorted(pick_tp(m, max_gpus, prefill_tp, "prefill_tp"))
    params: dict[str, Param] = {"prefill_gpu": dse.Categorical(list(names)), "prefill_tp": dse.Categorical(tps)}
    if prefill_pp is not None:
        params["prefill_pp"] = dse.Categorical(sorted(pick_pp(m, max_gpus, prefill_pp, "prefill_pp")))
    own = list(formats) if formats is not None else None
    if prefill_formats is not None:
        own = list(prefill_formats)
    idle = idle_gpus(gpu_records(names), own) if own is not None else []   # default: each runs bf16
    if idle:
        raise SpaceError(f"prefill_gpus {idle} run none of the formats {own}: no disaggregated "
                         f"configuration would use them; drop them or add a format they run")
    if prefill_formats is None:
        rules = quantization(list(dict.fromkeys([*_choices(hw, "gpu"), *names])), formats=formats,
                             kv_dtypes=kv_dtypes, opt_in=OPT_IN_FORMATS).constraints
        cons = [re.sub(r"\bgpu\b", "prefill_gpu", c) for c in rules
                if isinstance(c, str) and re.search(r"\bgpu\b", c)]
    else:
        # the prefill pool's own (weight, activation) format: quantization's parameters and rules over the prefill
        # GPUs, renamed to the pool's
        try:
            q = quantization(names, formats=prefill_formats, kv_dtypes=kv_dtypes, opt_in=OPT_IN_FORMATS)
        except SpaceError as exc:
            raise SpaceError(f"prefill {exc}") from None
        params.update(prefill_weight_dtype=q.params["weight_dtype"], prefill_act_dtype=q.params["act_dtype"])
        cons = [re.sub(r"\b(gpu|weight_dtype|act_dtype)\b", r"prefill_\1", c) for c in q.constraints
                if isinstance(c, str)]
    # the KV crosses a scale-out network between pools on two GPU types (`inference.comm.kv_transfer_gbs`): a GPU
    # whose system has none (a PCIe box) pairs only with its own type, inside its box
    both = list(dict.fromkeys([*_choices(hw, "gpu"), *names]))
    alone = [g for g, out in zip(both, catalog.topology(both)["scale_out_gbs"]) if not out > 0]
    if alone:
        cons.append(f"prefill_gpu == gpu or (prefill_gpu not in {tuple(alone)!r} and gpu not in {tuple(alone)!r})")
    return dse.Space(params), cons


def _degrees(label: str, given: Sequence[int], max_gpus: int) -> list[int]:
    """Integer degrees 1..max_gpus (unique, in order); SpaceError naming a bad value."""
    vals = list(dict.fromkeys(given))
    bad = [v for v in vals if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= max_gpus]
    if bad or not vals:
        raise SpaceError(f"{label}={list(given)!r}: {bad or 'empty'} not allowed; valid: integers 1..max_gpus="
                         f"{max_gpus}")
    return vals


def _lists(**knobs: Any) -> None:
    """SpaceError for a knob given one value where a sequence of values goes (``tp=8``: a TypeError; ``formats=
    "fp8"``: read as ['f', 'p', '8']), naming it and the list it likely meant."""
    for name, v in knobs.items():
        if v is not None and (isinstance(v, (str, bytes, bool, np.bool_)) or not hasattr(v, "__iter__")):
            raise SpaceError(f"{name}={v!r}: not a sequence; give the values to search as a list, e.g. "
                             f"{name}=[{v!r}]")


def _engine_names(engines: Sequence[str]) -> list[str]:
    """The ``engines`` knob's values: each engine once, under the name the cost model's rows carry
    (`profiles.engine_label`: " VLLM " and "vllm" are one, "vllm@0.24.0" is "vllm==0.24.0"); SpaceError naming
    an unknown one or an empty list."""
    from objectives.profiles import engine_label
    if not list(engines):
        raise SpaceError("engines=[]: give at least one of 'vllm', 'sglang', 'trtllm' (or leave it None)")
    try:
        return list(dict.fromkeys(engine_label(e) for e in engines))
    except ValueError as exc:
        raise SpaceError(f"engines: {exc}") from None


def _engine_rules(engines: Sequence[str], gpus: dict[str, list[Any]]) -> list[str]:
    """Constraints keeping each engine on the GPUs it can be costed on: a GPU with measured kernel profiles but
    none for this engine (or version) fails every trial (the `torch` profile exists for the H200 only, vLLM 0.14
    for the A100 only); a GPU with no profiles at all uses the roofline and stays, unless the engine does not run
    on its vendor (`profiles.ENGINE_VENDORS`: TensorRT-LLM on an AMD GPU is no deployment). An engine no GPU of the
    space can run is refused."""
    from objectives import catalog, profiles
    from objectives.inference.resolve import vendor_invalid
    rules = []
    for e in engines:
        name, ver = profiles.resolve_engine(e)
        vendors = profiles.ENGINE_VENDORS.get(name)
        for param, names in gpus.items():
            bad, foreign, versions = [], [], {}
            for g in names:
                have = profiles.available(g) if profiles.system_of(g) else None
                if vendor_invalid(name, catalog.gpu(g).vendor):
                    foreign.append(g)
                elif have is not None and (name not in have or (ver is not None and ver not in have[name])):
                    bad.append(g)
                    versions[g] = have.get(name, [])
            # a version asked for by name that no profiled GPU of the space has (a typo, a release not measured):
            # the space would keep only the GPUs without profiles, costed on the roofline whatever the version
            if ver is not None and versions and len(versions) == sum(bool(profiles.system_of(g)) for g in names):
                raise SpaceError(f"engines: {e!r}: no {name} {ver} kernel profile for any profiled {param} of this "
                                 "space; versions there: " + "; ".join(f"{g}: {', '.join(v) or 'none'}"
                                                                       for g, v in versions.items()))
            if len(foreign) == len(names):
                raise SpaceError(f"engines: {e!r} runs on {' / '.join(vendors or ())} GPUs only, and no {param} of "
                                 f"this space is one ({', '.join(map(str, names))})")
            bad += foreign
            if len(bad) == len(names):
                raise SpaceError(f"engines: {e!r} has no kernel profile for any {param} of this space "
                                 f"({', '.join(map(str, names))}); GPUs with a {name} profile: "
                                 f"{', '.join(_profiled(name)) or 'none'}")
            if bad:
                rules.append(f"engine != {e!r} or {param} not in ({', '.join(repr(b) for b in bad)},)")
    return rules


def _layout_rules(engines: Sequence[str], pools: Sequence[tuple[str, str, str, str | None]]) -> list[str]:
    """Constraints keeping each engine on the parallel layouts it runs (`inference.resolve.layout_invalid`, the
    rule's one home), in each pool: (its tp, attention-DP and EP expressions, the condition it exists under)."""
    from objectives.inference.resolve import layout_invalid
    rules = []
    for e in engines:
        for tp, adp, ep, cond in pools:
            pre = f"engine != {e!r}" + (f" or not ({cond})" if cond else "")
            if adp != "1" and layout_invalid(e, 2, 2, 1):          # attention DP over split attention
                rules.append(f"{pre} or {adp} == 1 or {tp} == 1")
            if ep != "1" and layout_invalid(e, 4, 1, 2):           # EP short of every rank
                rules.append(f"{pre} or {ep} == 1 or {ep} == {tp} * {adp}")
    return rules


def _block_fp8_rules(model: str | Model, engines: Sequence[str] | None, choices: dict[str, list[Any]],
                     pools: Sequence[tuple[str, str, str, str | None, str, str]]) -> list[str]:
    """Constraints keeping a block-FP8 checkpoint served in its own format (fp8 weights) on the layouts whose TP
    shards its 128 x 128 weight blocks tile (`inference.resolve.block_fp8_invalid`, the rule's one home), in each
    pool: (its tp, attention-DP and EP parameter names, "1" where the space has none, the condition it exists
    under, its GPU parameter, its weight-format parameter: ``prefill_weight_dtype`` for a prefill pool with a format
    of its own, each pool's guard on its own weights). ``choices``: each parameter's values. Every (tp, attn_dp) a
    rule names keeps the EP sizes that run there; where the rule differs by GPU (SGLang's padded MoE runner on
    SM100), per GPU."""
    from objectives.inference.ops import block_fp8_columns
    from objectives.inference.resolve import block_fp8_invalid, family_code
    m = model_record(model)
    pools = [pool for pool in pools if "fp8" in choices.get(pool[5], [])]
    if m.quant_scheme != "fp8_block" or not pools:
        return []
    c = block_fp8_columns(m)
    rules = []
    named: list[str | None] = list(engines) if engines else [None]
    for e in named:
        for tp, adp, ep, cond, gpu, weight in pools:
            guard = f"{weight} != 'fp8'" + (f" or engine != {e!r}" if e else "") + (f" or not ({cond})" if cond
                                                                                    else "")
            tps, adps = choices[tp], (choices[adp] if adp != "1" else [1])
            eps = choices[ep] if ep != "1" else [1]
            by_bad: dict[frozenset, list[Any]] = {}
            for g in choices[gpu]:
                code = family_code(catalog.gpu(g).family)
                bad = frozenset((t, a, x) for t in tps for a in adps for x in eps
                                if block_fp8_invalid(e or "roofline", code, c["arch_padded"], True, c["moe_ffn"],
                                                     c["n_experts"], c["attn_out"], c["dense_ffn"],
                                                     c["shared_ffn"], t, a, x))
                by_bad.setdefault(bad, []).append(g)
            for bad, gs in by_bad.items():
                where = f" or {gpu} not in ({', '.join(repr(g) for g in gs)},)" if len(by_bad) > 1 else ""
                for t, a in sorted({(t, a) for t, a, _ in bad}):
                    ok = [x for x in eps if (t, a, x) not in bad]
                    rules.append(f"{guard}{where} or {tp} != {t}" + (f" or {adp} != {a}" if adp != "1" else "")
                                 + (f" or {ep} in ({', '.join(map(str, ok))},)" if ok else ""))
    return rules


def _profiled(engine: str) -> list[str]:
    from objectives import profiles
    return [g for g in profiles.SYSTEMS if engine in profiles.available(g)]


def _choices(space: dse.Space, name: str) -> list[Any]:
    """The choices of categorical parameter ``name`` of ``space``."""
    p = space.params[name]
    assert isinstance(p, dse.Categorical)
    return list(p.choices)


def _with_attn_dp(par: dse.Space, adps: list[int], wide_ep: Sequence[int] = ()) -> dse.Space:
    """The parallelism part with an ``attn_dp`` knob: EP then spreads the experts over tp x attn_dp GPUs.
    ``wide_ep``: the EP degrees a replica-wide EP may take (within max_gpus and the experts); each replica's whole
    tp x attn_dp among them joins the EP choices."""
    cons = [("(tp * attn_dp) % ep == 0" if c == "tp % ep == 0" else c) for c in par.constraints]
    params = {**par.params, "attn_dp": dse.Categorical(adps)}
    if wide_ep and "ep" in par.params:
        groups = {t * a for t in _choices(par, "tp") for a in adps} & set(wide_ep)
        params["ep"] = dse.Categorical(sorted(set(_choices(par, "ep")) | groups))
    return dse.Space(params, constraints=cons)


def _prefill_parallel(model: str | Model, par: dse.Space, pool: dse.Space, prefill_ep: Sequence[int] | None,
                      prefill_attn_dp: Sequence[int] | None, adp: str, max_gpus: int
                      ) -> tuple[dict[str, dse.Categorical], str, str, list[str]]:
    """The prefill pool's ``prefill_ep`` / ``prefill_attn_dp`` knobs, the expressions of its EP and attention DP
    (its own knob, else the decode pool's), and its EP rule. Refuses what every trial would fail on: EP on a dense
    model, EP above the experts, an EP that no prefill TP x attention DP is a multiple of."""
    m = model_record(model)
    params: dict[str, dse.Categorical] = {}
    p_adp = adp
    adps = _choices(par, "attn_dp") if "attn_dp" in par.params else [1]
    if prefill_attn_dp is not None:
        adps = _degrees("prefill_attn_dp", prefill_attn_dp, max_gpus)
        params["prefill_attn_dp"] = dse.Categorical(adps)
        p_adp = "prefill_attn_dp"
    if not m.is_moe:
        if prefill_ep is not None and list(prefill_ep) != [1]:
            raise SpaceError(f"prefill_ep={list(prefill_ep)!r}: expert parallelism needs a mixture-of-experts model; "
                             f"{m.name} is dense")
        return params, "1", p_adp, []
    p_ep = "ep"
    eps = _choices(par, "ep")
    if prefill_ep is not None:
        valid = ep_choices(m, max_gpus, uneven=True)
        eps = _degrees("prefill_ep", prefill_ep, max_gpus)
        bad = [e for e in eps if e not in valid]
        if bad:
            raise SpaceError(f"prefill_ep={list(prefill_ep)!r}: {bad} not allowed (at most the {m.n_experts} "
                             f"experts of {m.name}); valid up to max_gpus={max_gpus}: {valid}")
        groups = sorted({t * a for t in _choices(pool, "prefill_tp") for a in adps})
        never = [e for e in eps if not any(g % e == 0 for g in groups)]
        if never:
            raise SpaceError(f"prefill_ep={never} divides no prefill worker's tp x attn_dp ({groups}): every "
                             f"configuration with it would fail; give prefill_tp / prefill_attn_dp values whose "
                             f"product it divides")
        params["prefill_ep"] = dse.Categorical(eps)
        p_ep = "prefill_ep"
    # the experts spread over the prefill worker's tp x attention-DP GPUs
    return params, p_ep, p_adp, [f"(prefill_tp * {p_adp}) % {p_ep} == 0"]


def _knob_values(label: str, values: Any, ok: Callable[[Any], bool], valid: str) -> list[Any]:
    """The distinct values (in order; numpy scalars as Python ones) of a categorical knob given as a sequence;
    SpaceError (a ValueError) for a scalar, an empty sequence or a value `ok` refuses, naming it and `valid`."""
    vals = None if isinstance(values, (str, bytes, bool, np.bool_)) or not hasattr(values, "__iter__") else \
        list(dict.fromkeys(v.item() if isinstance(v, np.generic) else v for v in values))
    bad = [v for v in vals or [] if not ok(v)]
    if vals is None or not vals or bad:
        what = "not a sequence" if vals is None else f"{bad or 'empty'} not allowed"
        raise SpaceError(f"{label}={values!r}: {what}; give a sequence of {valid}")
    return vals


def _eplb(model: str | Model, values: Sequence[bool], prefill_ep: str | None) -> tuple[dse.Space, str]:
    """The ``eplb`` knob and its condition: active where a pool's EP is above 1 and divides the experts (where it
    changes the deployment). ``prefill_ep``: the prefill pool's EP parameter when it has its own. SpaceError (a
    ValueError) for a dense model or a value that is not True / False."""
    m = model_record(model)
    vals = _knob_values("eplb", values, lambda v: isinstance(v, bool), "True / False, e.g. (False, True) (an "
                        "expert-parallel load balancer off and on)")
    if not m.is_moe:
        raise SpaceError(f"eplb={values!r}: an expert-parallel load balancer (EPLB) needs a mixture-of-experts "
                         f"model; {m.name} is dense")
    e = m.n_experts
    cond = " or ".join(f"({p} > 1 and {e} % {p} == 0)" for p in ("ep", *([prefill_ep] if prefill_ep else [])))
    return dse.Space(eplb=dse.Categorical(vals)), cond


def _speculative_labels(model: str | Model, values: Sequence[Any]) -> list[str]:
    """The ``speculative`` knob's values as their labels ("off", `Speculative.label`), each once; SpaceError (a
    ValueError) for a scalar, an empty sequence, a value `Speculative` refuses, or "mtp" on a model whose config
    declares no MTP module (every trial with it would fail), naming the field and the model."""
    from objectives.inference.speculative import OFF, Speculative, as_speculative, model_refusal
    if isinstance(values, (str, bytes, Speculative, dict)) or not hasattr(values, "__iter__") or not list(values):
        raise SpaceError(f"speculative={values!r}: give a sequence of None / inference.Speculative / labels, e.g. "
                         f"[None, Speculative('mtp', 3, (0.8,))]")
    m = model_record(model)
    labels = []
    for v in values:
        try:
            spec = as_speculative(v)
        except (TypeError, ValueError) as exc:
            raise SpaceError(f"speculative: {exc}") from None
        if (why := model_refusal(spec, m)) is not None:
            raise SpaceError(f"speculative={spec.label if spec else v!r}: {why}")
        labels.append(OFF if spec is None else spec.label)
    return list(dict.fromkeys(labels))


def _adp_balance(model: str | Model, values: Sequence[bool], engines: Sequence[str] | None, par: dse.Space,
                 modes: Sequence[str]) -> tuple[dse.Space, str]:
    """The ``adp_balance`` knob and its condition: active where the engine has the balance
    (`inference.lockstep.ADP_BALANCE_ENGINES`), attn_dp > 1 (the ranks of an MoE model step in lockstep) and the
    mode is aggregated, the trials it changes. SpaceError (a ValueError) for a value that is not True / False, a
    dense model, a space without attn_dp above 1, without such an engine among ``engines`` or without
    aggregated mode: every trial would be the same with either value, or fail (`dse deploy` refuses the balance on
    other engines)."""
    from objectives.inference.lockstep import ADP_BALANCE_ENGINES
    from objectives.profiles import engine_key
    vals = _knob_values("adp_balance", values, lambda v: isinstance(v, bool), "True / False, e.g. (False, True) "
                        "(TensorRT-LLM's attention-DP balance off and on)")
    m = model_record(model)
    why = None
    if not m.is_moe:
        why = f"{m.name} is dense: its attention-DP ranks never step in lockstep, so every value gives the same trial"
    elif "attn_dp" not in par.params or max(_choices(par, "attn_dp")) <= 1:
        why = "the space has no attn_dp above 1 (give attn_dp values): no ranks to balance"
    elif "agg" not in modes:
        why = ("a disaggregated pool has nothing to balance (the prefill pool runs no decodes to hold its prompts "
               "for, the decode pool no prompts); add 'agg' to modes")
    runs = [e for e in (engines or ()) if engine_key(e) in ADP_BALANCE_ENGINES]
    if why is None and not runs:
        why = (f"only {', '.join(ADP_BALANCE_ENGINES)} has an attention-DP balance (`dse deploy` refuses it on the "
               f"others); give engines=[..., 'trtllm'] (engines={None if engines is None else list(engines)})")
    if why is not None:
        raise SpaceError(f"adp_balance={values!r}: {why}")
    cond = f"{one_of('engine', runs)} and attn_dp > 1" + (" and mode == 'agg'" if "disagg" in modes else "")
    return dse.Space(adp_balance=dse.Categorical(vals)), cond


def _moe_a2a(model: str | Model, values: Sequence[str], par: dse.Space, adp: str, engines: Sequence[str] | None,
             prefill: tuple[str, str] | None) -> tuple[dse.Space, str, list[str]]:
    """The ``moe_a2a`` knob, its condition (active where the pool's EP group spans attention-DP ranks: ep > 1 with
    attention DP or not dividing tp; ``adp``: the attention-DP factor, a parameter name or "1") and its rules (a
    value other than "auto" in disaggregated mode only where the prefill pool's EP spans its attention-DP ranks
    too, ``prefill``: its (EP, attention-DP) expressions where it is a pool of its own; with ``engines``, each value
    only under the engines that run it, `objectives.inference.resolve.moe_a2a_invalid`, and not beside "auto" where
    it is what "auto" launches, `MOE_A2A_AUTO`: the same trial twice). SpaceError (a
    ValueError) for a dense model, a space without EP above 1, a value that is not one of `MOE_A2A`, or one that
    none of the ``engines`` runs."""
    from objectives.inference.measured import MOE_A2A, MOE_A2A_AUTO
    from objectives.inference.resolve import engine_key, moe_a2a_invalid

    m = model_record(model)
    vals = _knob_values("moe_a2a", values, lambda v: isinstance(v, str) and v in MOE_A2A,
                        f"{', '.join(MOE_A2A)}, e.g. ('allgather', 'deepep') (how an EP group across attention-DP "
                        f"ranks exchanges its tokens)")
    if not m.is_moe:
        raise SpaceError(f"moe_a2a={values!r}: the EP token exchange is a knob of mixture-of-experts models; "
                         f"{m.name} is dense, so every value would give the same trial")
    if "ep" not in par.params or max(_choices(par, "ep")) <= 1:
        raise SpaceError(f"moe_a2a={values!r}: the space has no EP above 1 (give ep or attn_dp values), so no "
                         f"configuration exchanges tokens between EP ranks")
    rules = []
    names = list(dict.fromkeys(str(x) for x in engines or ()))
    for v in (x for x in vals if x != "auto"):
        runs = [e for e in names if not moe_a2a_invalid(v, e, m.n_experts, 1, 2, 2)]
        if engines is not None and not runs:
            raise SpaceError(f"moe_a2a={values!r}: {v!r} runs under none of the engines {list(engines)} "
                             f"(objectives.inference.measured.MOE_A2A_ENGINES); every trial with it would fail")
        for e in names:
            # an engine that does not run it, or whose "auto" already launches it (the same trial twice)
            if e not in runs or ("auto" in vals and MOE_A2A_AUTO.get(engine_key(e)) == v):
                rules.append(f"moe_a2a != {v!r} or engine != {e!r}")
    if prefill is not None and len(vals) > (1 if "auto" in vals else 0):
        p_ep, p_adp = prefill
        rules.append(f"moe_a2a == 'auto' or mode != 'disagg' or ({p_ep} > 1 and ({p_adp} > 1 or "
                     f"prefill_tp % {p_ep} != 0))")
    cond = f"ep > 1 and ({adp} > 1 or tp % ep != 0)"
    return dse.Space(moe_a2a=dse.Categorical(vals)), cond, rules


def _moe_act(model: str | Model, values: Sequence[str], weights: Sequence[str], gpus: Sequence[str],
             prefill_gpus: Sequence[str], engines: Sequence[str] | None = None) -> tuple[dse.Space, str, list[str]]:
    """The ``moe_act_dtype`` knob, its condition (active where the experts are MXFP4: fp4 weights) and its rules
    ("mxfp8" only on GPUs with an MXFP4 x MXFP8 MoE kernel, `objectives.inference.measured.MXFP8_MOE_FAMILIES`, in
    each pool, and with an ``engines`` knob only under the engines that run that kernel there, `mxfp8_moe_able`:
    TensorRT-LLM alone on the RTX PRO 6000). SpaceError (a ValueError) for a model without MXFP4 experts, a space
    without fp4 weights, a value that is not one of `MOE_ACT_DTYPES`, or "mxfp8" where no GPU of the space can run
    it."""
    from objectives import catalog
    from objectives.inference.measured import MOE_ACT_DTYPES, MXFP8_MOE_FAMILIES, mxfp8_moe_able

    m = model_record(model)
    vals = _knob_values("moe_act_dtypes", values, lambda v: isinstance(v, str) and v in MOE_ACT_DTYPES,
                        f"{', '.join(MOE_ACT_DTYPES)}, e.g. ('auto', 'bf16', 'mxfp8') (the activations MXFP4 experts "
                        f"compute with)")
    if not m.has_mxfp4_experts:
        raise SpaceError(f"moe_act_dtypes={values!r}: the experts' activation precision is a knob of MXFP4 experts "
                         f"(gpt-oss); {m.name} has {'no MXFP4 experts' if m.is_moe else 'no experts (dense)'}, so "
                         f"every value would give the same trial")
    if "fp4" not in weights:
        raise SpaceError(f"moe_act_dtypes={values!r}: the space's weight formats {list(weights)} hold no fp4, so "
                         f"{m.name}'s experts are never MXFP4 there; add the 'fp4' format")
    rules = []
    if "mxfp8" in vals:
        for name, choices in (("gpu", gpus), ("prefill_gpu", prefill_gpus)):
            able = [g for g in choices if catalog.gpu(g).family in MXFP8_MOE_FAMILIES]
            if name == "gpu" and not able:
                raise SpaceError(f"moe_act_dtypes={values!r}: 'mxfp8' runs on none of the GPUs {list(choices)} (an "
                                 f"MXFP4 x MXFP8 MoE kernel needs a GPU of the families {list(MXFP8_MOE_FAMILIES)}); "
                                 f"every trial with it would fail")
            if choices and len(able) < len(choices):
                rules.append(f"moe_act_dtype != 'mxfp8' or weight_dtype != 'fp4' or {one_of(name, able)}")
            for e in dict.fromkeys(str(x) for x in engines or ()):
                lack = [g for g in able if not mxfp8_moe_able(catalog.gpu(g).family, e)]
                if lack:
                    rules.append(f"moe_act_dtype != 'mxfp8' or weight_dtype != 'fp4' or engine != {e!r} or "
                                 f"not {one_of(name, lack)}")
    return dse.Space(moe_act_dtype=dse.Categorical(vals)), "weight_dtype == 'fp4'", rules
