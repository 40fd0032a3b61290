"""Speculative decoding (MTP / EAGLE drafts, chain verification) as a what-if knob: `Speculative` and its pricing.

A speculative decode iteration, as the engines run it with one draft chain (top-k 1):
- k draft forwards at batch D x 1 token each: SGLang `speculative/eagle_worker.py` `EAGLEWorker.draft_forward`
  (`--speculative-num-steps` k, the NEXTN / MTP module of DeepSeek, GLM, Qwen3.5 loaded as the draft model,
  `server_args._handle_speculative_decoding`), vLLM `v1/spec_decode/eagle.py` `EagleProposer.propose` (method "mtp"
  and "eagle3" alike, `num_speculative_tokens` k), TensorRT-LLM `_torch/speculative/mtp.py` `MTPWorker` (MTP with
  `num_nextn_predict_layers`, its "Eagle" mode reusing one MTP layer). A draft forward is one decoder layer plus the
  LM head: priced here as the target decode forward's per-layer share at the same batch and context plus one LM
  head at D rows, plus the layer's share of the collective latencies; its launches run in one CUDA graph (SGLang
  `EAGLEDraftCudaGraphRunner`, vLLM's and TensorRT-LLM's drafter graphs), so no host overhead is charged again.
  EAGLE-3's draft layer is priced the same (one decoder layer at the target's hidden size).
- one verify forward of the target over k + 1 tokens per sequence: the GEMMs, MoE routing and logits see D (k + 1)
  tokens (SGLang `EagleVerifyInput` / `ForwardMode.TARGET_VERIFY`, vLLM's rejection sampler over the k + 1 logits,
  TensorRT-LLM `MTPWorker` verification); its attention reads each sequence's KV cache once with k + 1 queries
  (FlashInfer / FA3 target_verify, vLLM FlashAttention varlen and FlashMLA q_len k + 1, TensorRT-LLM XQA
  spec-dec mode), priced as the decode step's KV read of the same context (the k extra queries' math is not
  priced apart: it under-counts attention where a decode is already compute-bound, MLA's 128 heads). The engine's
  host time per sequence stays per sequence, not per verified token.
- each sequence emits 1 + a1 + a1 a2 + ... + a1 ... ak tokens per iteration in expectation (chain acceptance with
  per-position conditional rates ai; the bonus token always), `expected_tokens`.
Memory: the draft layer's KV cache (one more attention layer per token) and weights (one more layer), and the k
draft tokens' slots each decoding sequence holds for the verify (`kv_factor`, `weight_factor`, `draft_slots`). Not
counted: on hybrid (linear-attention) models SGLang also reserves the linear layers' state once per draft token of
every running request for the verify (`model_executor/model_runner_kv_cache_mixin.py` `handle_max_mamba_cache`:
mamba_cache_per_req x max_running_requests x speculative_num_draft_tokens, taken from the memory before the pools
are sized), so the KV capacity of Qwen3.5 / Qwen3-Next under SGLang with speculative decoding is overstated.

Measured profiles read the verify's GEMM / attention tables at D (k + 1) tokens: interpolated like any other
lookup, not measured as a verify. Nothing here is fitted; the acceptance rates are the user's.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

import numpy as np
import pandas as pd

from .ops import StepCoeffs, forward_s, lm_head_s

Num = Any

#: the draft kinds priced: the model's own MTP module ("mtp": SGLang NEXTN / EAGLE on an MTP checkpoint, vLLM
#: method "mtp", TensorRT-LLM MTP) and an EAGLE / EAGLE-3 head ("eagle": one decoder layer trained on the target's
#: hidden states)
METHODS = ("mtp", "eagle")

#: SGLang's max running requests with speculative decoding where --max-running-requests is not given (the max
#: sequences it otherwise sizes by its KV pool): `server_args.py` `_handle_speculative_decoding` (EAGLE, EAGLE3,
#: NEXTN, STANDALONE), "Max running requests is reset to 48 for speculative decoding"; the engine behaviour
#: (`resolve.EngineBehaviour.spec_max_running`) reads it
SGLANG_MAX_RUNNING = 48


def rank_running(server: Num, attn_dp: Num) -> Num:
    """The max running requests of a scheduler (one attention-DP rank) of a server that runs `server` at most with
    speculative decoding (``EngineBehaviour.spec_max_running``): SGLang's model runner gives each DP-attention rank
    max_running_requests // dp_size (`model_executor/model_runner.py`, `init_memory_pool`), at least 1. Applied
    where the max sequences are left to the engine: `estimate.served_batch` (`max_throughput`), the simulator's
    replicas and pools (`serving.Scheduler.for_cost`) and the analytical serving model's defaults
    (`serving.Deployments.of`, the prefill pool at its own attention DP)."""
    return np.maximum(np.asarray(server, dtype=int) // np.asarray(attn_dp, dtype=int), 1)


def sglang_max_running(attn_dp: Num) -> Num:
    """SGLang's max running requests with speculative decoding a scheduler: `rank_running` of
    `SGLANG_MAX_RUNNING`."""
    return rank_running(SGLANG_MAX_RUNNING, attn_dp)


@dataclass(frozen=True)
class Speculative:
    """Speculative decoding with a chain of `draft_tokens` (k) drafted tokens per decode iteration.

    ``method``: "mtp" (the model's own multi-token-prediction module: needs a config with `num_nextn_predict_layers`
    or `mtp_num_hidden_layers`) or "eagle" (an EAGLE / EAGLE-3 draft head, any model). ``draft_tokens``: k >= 1
    (SGLang `--speculative-num-steps`, with `--speculative-eagle-topk 1` and `--speculative-num-draft-tokens` k + 1;
    vLLM `num_speculative_tokens`; TensorRT-LLM `num_nextn_predict_layers`). ``acceptance``: the per-position
    conditional acceptance rates (a1, ..., ak) in [0, 1] (the chance the i-th draft is accepted given the ones
    before it were); one value is used at every position."""

    method: str = "mtp"
    draft_tokens: int = 1
    acceptance: tuple[float, ...] = (0.8,)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Speculative method={self.method!r}: one of {METHODS} (a separate draft model is not "
                             f"priced)")
        k = self.draft_tokens
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"Speculative draft_tokens={k!r}: an integer >= 1 (tokens drafted per iteration)")
        acc = self.acceptance
        if isinstance(acc, (int, float, np.floating)) and not isinstance(acc, bool):
            acc = (float(acc),)
        if isinstance(acc, np.ndarray) and acc.ndim == 1:
            acc = tuple(acc.tolist())
        if not isinstance(acc, (tuple, list)):
            raise ValueError(f"Speculative acceptance={self.acceptance!r}: a number, a tuple, list or 1-D array of "
                             f"rates, not {type(self.acceptance).__name__}")
        if len(acc) not in (1, int(k)):
            raise ValueError(f"Speculative acceptance={self.acceptance!r}: {len(acc)} rates; one rate or {k} (one per "
                             f"draft position)")
        vals = tuple(float(a) for a in acc)
        if not all(0.0 <= a <= 1.0 for a in vals):
            raise ValueError(f"Speculative acceptance={self.acceptance!r}: each rate in [0, 1]")
        object.__setattr__(self, "acceptance", vals * int(k) if len(vals) == 1 else vals)
        object.__setattr__(self, "draft_tokens", int(k))

    @property
    def expected_tokens(self) -> float:
        """Tokens each sequence emits per decode iteration in expectation: 1 + a1 + a1 a2 + ... + a1 ... ak."""
        total, run = 1.0, 1.0
        for a in self.acceptance:
            run *= a
            total += run
        return total

    @property
    def label(self) -> str:
        """The knob's value in words, as a study's ``speculative`` column holds it and `as_speculative` reads it
        back: "method:k:a1,...,ak" ("mtp:3:0.8,0.6,0.4"; one rate where every position has it, "eagle:2:0.7")."""
        acc = self.acceptance
        rates = acc[:1] if len(set(acc)) == 1 else acc
        return f"{self.method}:{self.draft_tokens}:{','.join(f'{a:g}' for a in rates)}"


#: the label of speculative decoding off (`as_speculative` reads it, and None, as off)
OFF = "off"


def _parse(text: str) -> Speculative | None:
    """A `Speculative.label` ("mtp:3:0.8,0.6,0.4") or `OFF` as the knob; ValueError naming the form."""
    t = text.strip()
    if t.lower() in (OFF, "none", ""):
        return None
    parts = t.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        k, rates = int(parts[1]), tuple(float(a) for a in parts[2].split(","))
    except ValueError:
        raise ValueError(f"speculative={text!r}: 'off' or 'method:draft_tokens:acceptance', e.g. 'mtp:3:0.8,0.6,0.4' "
                         f"or 'eagle:2:0.7' (one rate at every position)") from None
    return Speculative(parts[0].strip(), k, rates)


def as_speculative(spec: Any) -> Speculative | None:
    """`spec` as a `Speculative`: None or "off" (off), a `Speculative`, its `Speculative.label` ("mtp:3:0.8,0.6,
    0.4": a study's column), or a mapping of its fields (e.g. {"method": "mtp", "draft_tokens": 3, "acceptance":
    [0.8, 0.6, 0.4]}). TypeError for anything else, ValueError for a bad value."""
    if spec is None or isinstance(spec, Speculative):
        return spec
    if isinstance(spec, float) and spec != spec:   # a missing entry of a column (NaN): off
        return None
    if isinstance(spec, str):
        return _parse(spec)
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"method", "draft_tokens", "acceptance"}
        if unknown:
            raise ValueError(f"speculative: unknown keys {sorted(unknown)}; method, draft_tokens, acceptance")
        d = dict(spec)
        if "acceptance" in d and isinstance(d["acceptance"], list):
            d["acceptance"] = tuple(d["acceptance"])
        return Speculative(**d)
    raise TypeError(f"speculative={spec!r:.80}: None, an inference.Speculative, its label ('mtp:3:0.8') or a "
                    f"mapping of its fields (`estimate` and `max_throughput` also take a list or array of them, one "
                    f"per row)")


def is_per_row(value: Any) -> bool:
    """Whether a ``speculative`` argument is one value per row (a list, tuple, array or Series of
    `as_speculative`'s forms) rather than one value for every row (None, a `Speculative`, a label, a mapping)."""
    return isinstance(value, (list, tuple, np.ndarray, pd.Series, pd.Index, pd.api.extensions.ExtensionArray))


def as_speculatives(values: Any) -> np.ndarray:
    """`as_speculative` of each entry of `values` (a sequence or array, any shape) as an object array of the same
    shape holding `Speculative` or None (off), one conversion per distinct entry; ValueError naming a bad one
    (TypeError for an entry of no valid form)."""
    nested = isinstance(values, (list, tuple))
    try:    # nested lists: their shape (np.shape reads it); a ragged one is refused below as a bad entry
        shape = np.shape(values) if nested or isinstance(values, np.ndarray) else (len(values),)
    except ValueError:
        shape = (len(values),)
    vals = np.empty(shape, dtype=object)
    vals[...] = values if nested or isinstance(values, np.ndarray) else list(values)
    flat = vals.ravel()
    out = np.empty(flat.shape, dtype=object)
    try:
        codes, uniq = pd.factorize(flat)   # None / NaN: code -1, off
    except TypeError:   # unhashable entries (mappings): one at a time
        out[:] = [as_speculative(v) for v in flat]
        return out.reshape(vals.shape)
    on = codes >= 0
    if on.any():
        conv = np.empty(len(uniq), dtype=object)
        conv[:] = [as_speculative(u) for u in uniq]
        out[on] = conv[codes[on]]
    return out.reshape(vals.shape)


#: the arguments of `estimate` / `max_throughput` that are not one per row (`per_row_spec`)
_NOT_ROWS = frozenset({"speculative", "prices", "efficiency", "profile", "interval", "moe_dp",
                       "gpu_memory_utilization"})

_P = ParamSpec("_P")
_R = TypeVar("_R")


def per_row_spec(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """`fn` (`estimate`, `max_throughput`: one ``speculative`` value for every row) taking
    ``speculative`` as one value per row too (`is_per_row`), broadcast with its other per-row arguments: the rows
    grouped by their distinct value, each group priced in one call of `fn` on its rows (the pricing attaches one
    `Speculative` to a whole preparation, `with_speculative`), their frames' rows put back in the rows' order.
    One value for every row calls `fn` as it is."""
    sig = inspect.signature(fn)
    call_fn: Callable[..., Any] = fn    # called by keyword with the bound arguments

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        spec = kwargs.get("speculative")
        if not is_per_row(spec):
            return fn(*args, **kwargs)
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        call = dict(bound.arguments)
        specs = as_speculatives(spec)
        rows = {k: v for k, v in call.items() if k not in _NOT_ROWS and v is not None and np.ndim(v) > 0}
        from .resolve import broadcast_shape
        shape = broadcast_shape(speculative=specs, **rows)
        flat = np.broadcast_to(specs, shape).ravel()
        codes, uniq = pd.factorize(flat)    # off: -1
        keys = [-1] if (codes < 0).any() else []
        keys += sorted(range(len(uniq)), key=lambda j: uniq[j].label)
        rows.setdefault("input_len", call["input_len"])   # every group's call one row per row of the group
        parts = []
        for j in keys:
            idx = np.flatnonzero(codes == j)
            sub = {k: np.broadcast_to(np.asarray(v), shape).ravel()[idx] for k, v in rows.items()}
            parts.append((idx, call_fn(**{**call, **sub, "speculative": None if j < 0 else uniq[j]})))
        if not parts:   # zero rows
            return cast(_R, call_fn(**{**call, "speculative": None}))
        return cast(_R, _stitched(parts))

    return wrapper


def _stitched(parts: list[tuple[np.ndarray, pd.DataFrame]]) -> pd.DataFrame:
    """The frames of `per_row_spec`'s groups (row indices, a frame each) as one, their rows at their indices: one
    gather per column (categorical columns over the union of the groups' categories, other columns in the first
    group's dtype)."""
    if len(parts) == 1:
        return parts[0][1]
    order = np.argsort(np.concatenate([idx for idx, _ in parts]), kind="stable")
    first = parts[0][1]
    cols: dict[str, Any] = {}
    for c in first.columns:
        col = [f[c] for _, f in parts]
        if isinstance(col[0].dtype, pd.CategoricalDtype):
            u = pd.api.types.union_categoricals([x.array for x in col])
            cols[c] = pd.Categorical.from_codes(u.codes[order], dtype=u.dtype)
        else:
            cols[c] = pd.array(np.concatenate([x.to_numpy() for x in col])[order], dtype=col[0].dtype)
    frame = pd.DataFrame(cols, copy=False)
    frame.attrs = dict(first.attrs)
    return frame


def model_refusal(spec: Speculative | None, record: Any) -> str | None:
    """Why the catalog model `record` cannot run `spec` (None where it can): "mtp" on a model whose config declares
    no MTP module (``Model.n_mtp_layers`` 0), naming the fields read."""
    if spec is None or spec.method != "mtp" or int(getattr(record, "n_mtp_layers", 0)) >= 1:
        return None
    return (f"speculative method='mtp' on {record.name}: its config.json declares no multi-token-prediction module "
            f"(Model.n_mtp_layers 0: num_nextn_predict_layers / mtp_num_hidden_layers is 0 or absent); use "
            f"method='eagle' with an EAGLE draft head")


def check_model(spec: Speculative, model: Any) -> None:
    """ValueError where `spec` asks for a draft `model` (the `estimate` / `StepModel` argument: names, records or an
    array of them) cannot run (`model_refusal`)."""
    if spec.method != "mtp":
        return
    from .resolve import resolve_records
    for m in resolve_records("model", model)[0]:
        if (why := model_refusal(spec, m)) is not None:
            raise ValueError(why)


def resolve_speculative(value: Any, model: Any) -> Speculative | None:
    """`value` as a `Speculative` (`as_speculative`), ValueError where `model` cannot run it (`check_model`): the
    `speculative` argument of `estimate`, `max_throughput` and `StepModel`."""
    spec = as_speculative(value)
    if spec is not None:
        check_model(spec, model)
    return spec


def kv_factor(n_layers: Num, n_lin: Num = 0.0) -> Num:
    """KV bytes per token with the draft layer's own cache, over those without: one more softmax-attention layer
    beside the model's n_layers - n_lin (SGLang's draft worker and vLLM's drafter keep the draft layer's KV in the
    same paged pool, per token of context)."""
    return 1.0 + 1.0 / np.maximum(np.asarray(n_layers, dtype=float) - n_lin, 1.0)


def weight_factor(n_layers: Num) -> Num:
    """Weights held with the draft layer, over those without: one more decoder layer's share (the LM head and
    embeddings are shared with the target, DeepSeek's MTP `shared_head`, EAGLE's reused embedding)."""
    return 1.0 + 1.0 / np.maximum(np.asarray(n_layers, dtype=float), 1.0)


def memory_terms(p: Any) -> tuple[Num, Num]:
    """(weights bytes per GPU, KV bytes per token of context per GPU) of the `core.Prepared` `p`, with the draft
    layer's where speculative decoding is attached (``p.spec``: `weight_factor`, `kv_factor`), else its own."""
    if p.spec is None:
        return p.weights_gpu, p.kv_tok_gpu
    return (p.weights_gpu * weight_factor(p.shape.n_layers),
            p.kv_tok_gpu * kv_factor(p.shape.n_layers, p.shape.n_lin))


def _head_s(c: StepCoeffs, S: Num, scalar: bool) -> Num:
    """Seconds of the LM head at S logit rows (`forward_s`' head term: closed form or measured curve)."""
    cv = c.curves
    if cv is None or not scalar:
        closed_s = lm_head_s(c, S, max if scalar else np.maximum)
        if cv is None:
            return closed_s
    from .measured import curve_at, curve_at1
    if scalar:
        return curve_at1(cv.head, S)
    t = curve_at(cv.head, S, cv.rows)
    closed = cv.closed_rows()
    return t if closed is None else np.where(closed, closed_s, t)


def _layer_share(c: StepCoeffs, n_layers: Num, full: Num, head: Num, seq_rows: Num) -> Num:
    """One decoder layer's share of a forward of `full` seconds whose LM head took `head`, plus that head: the
    forward less its head, fixed cost and host time per sequence (`seq_rows` rows charged `ovh_seq_s`), with the
    collective latencies' share, over `n_layers`."""
    return (full - head - c.fixed_s - seq_rows * c.ovh_seq_s + c.comm_fixed_s) / n_layers + head


def draft_s(c: StepCoeffs, n_layers: Num, D: Num, K: Num, scalar: bool = False) -> Num:
    """Seconds of ONE draft forward for D sequences reading K cached tokens in all: the decode forward's per-layer
    share (layers, collective latencies) plus an LM head at D rows (module docstring)."""
    if scalar:
        full = forward_s(c, 0.0, 0.0, D, K, D, max, pow)
    else:
        full = forward_s(c, 0.0, 0.0, D, K, D)
    return _layer_share(c, n_layers, full, _head_s(c, D, scalar), 2.0 * D)


def draft_extend_s(c: StepCoeffs, n_layers: Num, T: Num, A: Num, n_pf: Num, scalar: bool = False) -> Num:
    """Seconds of the draft layer's prefill of the prompt tokens an iteration carries (the "draft extend": SGLang
    `EAGLEWorker.forward_draft_extend`, vLLM's `EagleProposer.propose` over the prompt's positions, TensorRT-LLM's
    MTP layer over the context tokens): one decoder layer's share of the prompt forward (T tokens, A query-key
    pairs) plus the LM head at its `n_pf` finishing prompts' rows; 0 where T is 0. Its launches run in the
    iteration's graph or eagerly beside the target's, so no host overhead is charged again."""
    if scalar:
        if T <= 0:
            return 0.0
        full = forward_s(c, T, A, 0.0, 0.0, n_pf, max, pow)
    else:
        full = forward_s(c, T, A, 0.0, 0.0, n_pf)
    t = _layer_share(c, n_layers, full, _head_s(c, n_pf, scalar), n_pf)
    return t if scalar else np.where(np.asarray(T) > 0, t, 0.0)


def draft_slots(spec: Speculative | None, output_len: Num) -> Num:
    """KV-cache tokens a sequence holds beyond its context for the verify's k draft tokens (``Speculative.
    draft_tokens``), from its admission: k where it decodes (`output_len` > 1: more tokens than its prompt's
    first), 0 where it does not (a disaggregated prefill worker's request, a prompt alone) and where `spec` is
    None. vLLM allocates ``num_lookahead_tokens`` = num_speculative_tokens slots beside each running request's
    tokens, none at its first (prompt) schedule (vllm/v1/core/sched/scheduler.py ``schedule``,
    ``effective_lookahead_tokens``; kv_cache_manager.py ``allocate_slots``); SGLang allocates
    speculative_num_steps x topk slots a running request for the drafts the verify reads
    (`speculative/eagle_worker.py` ``EAGLEWorker._draft_preprocess_decode``). The one rule of the closed form
    (`estimate.served_batch`, `estimate`'s memory) and the simulator (`serving.Scheduler.kv_extra_blocks`)."""
    if spec is None:
        return 0.0 * np.asarray(output_len, dtype=float)
    return np.where(np.asarray(output_len, dtype=float) > 1.0, float(spec.draft_tokens), 0.0)


def verify_rows(spec: Speculative, D: Num) -> Num:
    """Tokens (and logit rows) the verify forward carries for D sequences: D (k + 1)."""
    return D * (spec.draft_tokens + 1.0)


def host_excess_s(c: StepCoeffs, spec: Speculative, D: Num) -> Num:
    """The host time per sequence `forward_s` would charge the verify's extra k tokens and k logit rows per
    sequence (it charges per decode row and per logit row): taken back, the engine's scheduler works per request."""
    return 2.0 * spec.draft_tokens * D * c.ovh_seq_s


def with_speculative(p: Any, spec: Speculative | None) -> Any:
    """The `core.Prepared` `p` with speculative decoding `spec` attached (itself where None), so that every forward
    priced through `estimate.replica_time_s` takes its decodes in token time. Each row's overlap loop
    (``Coeffs.overlap``) stays where its engine release keeps it with speculative decoding
    (`resolve.EngineBehaviour.spec_overlap`: vLLM's async scheduling with EAGLE / MTP, TensorRT-LLM's overlap
    scheduler with MTP / EAGLE-3, SGLang's from its V2 workers, `profiles.SPEC_OVERLAP_SINCE`) and is off elsewhere
    (SGLang's first speculative worker: `server_args._handle_speculative_decoding`, "Overlap scheduler is disabled
    because of using eagle3 or standalone speculative decoding"), whatever the model: SGLang's hybrid models, which
    it serves without the loop otherwise, leave it to the speculative worker (`profiles.NO_OVERLAP_LINEAR_KINDS`);
    its prefill batches already run alone (``prefill_alone``: the same function turns ``enable_mixed_chunk`` off,
    SGLang's default)."""
    if spec is None:
        return p
    from .resolve import engine_behaviour
    keeps = np.array([engine_behaviour(n).spec_overlap for n in p.engine_names], dtype=float)
    overlap = np.broadcast_arrays(keeps[np.asarray(p.engine_code)], np.asarray(p.coeffs.overlap))[0].copy()
    c = dataclasses.replace(p.coeffs, overlap=overlap)
    return dataclasses.replace(p, spec=spec, coeffs=c)


__all__ = ["Speculative", "METHODS", "OFF", "as_speculative", "as_speculatives", "is_per_row", "per_row_spec", "model_refusal", "check_model", "kv_factor",
           "weight_factor", "draft_s", "draft_extend_s", "draft_slots", "verify_rows", "host_excess_s",
           "sglang_max_running", "rank_running"]
