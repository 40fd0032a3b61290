"""The disaggregated handoff (xPyD): what splitting prefill and decode adds to a request between its prefill and
its first token, in one place for the simulator (`simulate`), the analytical serving model (`ServingModel`,
`disagg_closed_loop`) and the silicon slice's predictions (`objectives.calibration.silicon`).

- the engine's P/D front end: how many API-server passes (parsing, tokenization, admission) a request makes, in
  units of the engine's per-request host time (`engine_ttft_ms`);
- the KV read (`kv_read_ms`): the engine's KV connector's latency per request (the fitted ``engine_kv_ms``) and
  the bytes at the link's rate between the pools' GPUs (`inference.comm.kv_transfer_gbs`), or the connector's
  where it is slower (the fitted ``engine_kv_gbs``; 0: not known), of the deployment's engine whichever pool's GPU
  has no profile (`connector_engines`);
- the decode worker's iteration boundaries, the iterations its scheduler takes to learn that a read is done
  (`kv_notice_steps`) and the iteration that emits the first token, or none where the engine sends the prefill's
  token at admission (`handoff_ms`, `first_token_forwards`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ..inference.core import prepare
from ..inference.estimate import arrival_wait_iters
from ..inference.speculative import as_speculative, with_speculative
from ..profiles import engine_key, overlaps_in_role, per_engine

#: API-server passes (request parsing, tokenization / the multimodal processor, scheduling admission, the response
#: path back) a disaggregated request makes, per engine's P/D front end, in units of the engine's per-request host
#: time. vLLM's P/D proxy (tests/v1/kv_connector/nixl_integration/toy_proxy_server.py, `_handle_completions`) posts
#: the client's request body, prompt text included, to a prefill OpenAI server (max_tokens=1, non-streaming, whose
#: response it reads whole) and then the same body plus kv_transfer_params to a decode OpenAI server, which parses,
#: tokenizes and admits it again: two passes. TensorRT-LLM's rows here run under NVIDIA Dynamo (the
#: ai-dynamo/tensorrtllm-runtime image in their `silicon_data_source`), whose frontend parses and tokenizes a request
#: once (ai-dynamo/dynamo docs/design_docs/disagg_serving.md, "Router Orchestration"), but whose prefill and decode
#: workers each submit it to their own TensorRT-LLM executor and return its output through Dynamo's request plane,
#: the prefill worker's context-only response read whole before the decode leg starts (components/backends/trtllm/
#: src/dynamo/trtllm/request_handlers/handlers.py: PrefillHandler.generate and DecodeHandler.generate each run
#: handler_base.generate_locally -> `engine.llm.generate_async`): the admission and the response path, what a pass
#: is besides the tokenization, twice; two passes less one tokenization, counted as two (tokenizing a prompt of a
#: few thousand tokens is a small part of a pass). Engines not listed: one
DISAGG_FRONT_END_PASSES = {"vllm": 2.0, "trtllm": 2.0}


def front_end_passes(engines: Any) -> np.ndarray:
    """API-server passes of a disaggregated request per entry of `engines` (engine names; None / roofline: 1)."""
    return np.array([DISAGG_FRONT_END_PASSES.get(engine_key(e), 1.0) for e in np.ravel(engines)])


def _engine_terms(pool_kw: Mapping[str, Any], n: int, eff: Any
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(host ms of one API-server pass, the model's own ms before its first token (``attn_ttft_ms``), ``ttft_wave``,
    resolved engine name, the API server's ms per sequence running on a rank of its scheduler (``engine_stream_us``
    x the ranks whose sequences it streams, ``Coeffs.stream_ranks``), the iterations a request arriving at a busy
    scheduler waits beyond the one in progress (`inference.estimate.arrival_wait_iters`: the one formed ahead where
    the engine overlaps, ``Coeffs.overlap``, with `pool_kw`'s ``speculative`` where the release keeps the loop with
    it, `inference.speculative.with_speculative`; not with pp > 1; else 0)) of each of `n`
    deployments, from one `prepare` of their `inference.estimate` arguments `pool_kw` (roofline rows: no host
    time, wave 1, no lag)."""
    kw = pool_kw
    prep = prepare(kw["model"], kw["gpu"], kw.get("tp", 1), kw.get("pp", 1), kw.get("weight_dtype"),
                   kw.get("act_dtype"), kw.get("kv_dtype"), ep=kw.get("ep", 1), eff=eff, engine=kw.get("engine"),
                   attn_dp=kw.get("attn_dp", 1), eplb=kw.get("eplb", False),
                   moe_act_dtype=kw.get("moe_act_dtype"), moe_a2a=kw.get("moe_a2a"))
    if prep is None:
        return np.zeros(n), np.zeros(n), np.ones(n), np.full(n, "roofline", dtype=object), np.zeros(n), np.zeros(n)
    # speculative decoding keeps the overlap loop only where the release does (``Coeffs.overlap``, as the closed form
    # and the simulator's `StepModel.overlap_scheduler` have it)
    prep = with_speculative(prep, as_speculative(kw.get("speculative")))

    def per_row(x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if prep.inv is not None and x.ndim > 0:  # a factorized preparation: one value per distinct configuration
            x = x[prep.inv]
        return np.broadcast_to(x, (n,)).copy()
    # Prepared.column gathers a factorized preparation's rows itself
    engines = np.asarray(prep.engine_names, dtype=object)[prep.column("engine_code", np.int64)]
    # a request finding the scheduler busy (two clients a scheduler: `arrival_wait_iters`' busy share 1) waits
    # for the iteration in progress and, where the engine overlaps, the one formed ahead of it
    ahead = np.asarray(arrival_wait_iters(prep, 2.0), dtype=float) - 1.0
    return (per_row(prep.coeffs.ttft_s) * 1e3, per_row(prep.coeffs.ttft_model_s) * 1e3, per_row(prep.coeffs.wave),
            np.broadcast_to(engines, (n,)).copy(), per_row(prep.coeffs.stream_s * prep.coeffs.stream_ranks) * 1e3,
            per_row(ahead))


class HostTime(NamedTuple):
    """A request's host time before its first token (`inference.estimate.host_ttft_s`), per deployment: ``fixed_ms``
    one API-server pass plus the model's own ``attn_ttft_ms``; ``stream_ms`` per sequence running on a rank of its
    scheduler (``engine_stream_us`` x the ranks its API server fronts)."""
    fixed_ms: np.ndarray
    stream_ms: np.ndarray

    def at(self, N: Any, rows: Any = slice(None)) -> np.ndarray:
        """The host time (ms) of the deployments `rows` with `N` sequences running on each rank (per row)."""
        return self.fixed_ms[rows] + self.stream_ms[rows] * np.asarray(N, dtype=float)


def host_time(pool_kw: Mapping[str, Any], n: int, eff: Any) -> tuple[HostTime, np.ndarray]:
    """(`HostTime` of `n` deployments, the start-up wave's share of the mean ``ttft_wave``), one `prepare` of their
    `inference.estimate` arguments `pool_kw` (`eff` an Efficiency), as the closed form reads them (roofline rows: no
    host time, wave 1): for a caller that prices several occupancies of the same deployments."""
    host, model, wave, _, stream, _ = _engine_terms(pool_kw, n, eff)
    return HostTime(host + model, stream), wave


def host_ms(pool_kw: Mapping[str, Any], n: int, eff: Any, N: Any = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(a request's host time in ms before its first token, `inference.estimate.host_ttft_s`: one API-server pass,
    the model's own ``attn_ttft_ms`` and the output of the sequences its API server streams, `N` running on each
    rank of its scheduler (per row; 0: none counted); the start-up wave's share of the mean ``ttft_wave``) of `n`
    deployments (`pool_kw`: their `inference.estimate` arguments; `eff` an Efficiency), as the closed form reads
    them (`prepare`'s step coefficients; roofline rows: no host time, wave 1)."""
    t, wave = host_time(pool_kw, n, eff)
    return t.at(N), wave


def front_end(pool_kw: Mapping[str, Any], n: int, eff: Any
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(host ms, the start-up wave's share, engine, overlap lag) of `n` disaggregated deployments' requests at their
    prefill pools (`pool_kw`: the pools' `inference.estimate` arguments; `eff` an Efficiency): the engine's
    per-request host time once per pass of its P/D front end (`front_end_passes`) plus the model's own once
    (`host_ms`), ``ttft_wave``, the engine that costs each deployment (the `engine` argument with the default, None /
    "auto", resolved per GPU as `prepare` resolves it), so that engine-level behaviour (KV connector) follows the
    engine the step times come from, and the steps formed ahead that a prompt reaching a busy prefill worker waits
    for beyond the one in progress (the aggregated closed form's `inference.estimate.arrival_wait_iters`: 1 where
    the engine forms its next batch while the current one runs, ``Coeffs.overlap``, and keeps that loop on its
    prefill servers, `profiles.overlaps_in_role`; 0 on TensorRT-LLM's context servers, with pp > 1, or where no
    engine prices the pool), as the simulator's prefill replicas lag (`Scheduler.overlaps(cost, "prefill")`), but
    for its attention-DP ranks stepping in lockstep (`serving.engine._Group`, attn_dp > 1), which the simulator does
    not lag and this does (vLLM and SGLang schedule each rank with its own loop). One `prepare` for all four."""
    host, model, wave, engines, _, ahead = _engine_terms(pool_kw, n, eff)
    keeps = per_engine(engines, lambda e: overlaps_in_role(e, "prefill"))
    return host * front_end_passes(engines) + model, wave, engines, ahead * keeps


def connector_engines(prefill_engines: Any, decode_engines: Any) -> np.ndarray:
    """The engine whose KV connector moves each deployment's prompts (its ``engine_kv_ms`` / ``engine_kv_gbs``),
    from the engines that cost its prefill and decode pools: the decode pool's, else, where that pool is priced on
    the roofline (no profile of its GPU), the prefill pool's; "roofline" only where both are.

    One engine serves both pools of a P/D deployment and its connector runs on both sides, so a pool's GPU without
    a profile does not take the connector away: an MI300X prefill pool (roofline) with an H100 decode pool (vLLM)
    hands its KV over vLLM's NixlConnector. The decode side is read first because that is where the handoff's
    latency falls: vLLM's NixlConnector has the decode worker post the NIXL reads when its scheduler admits the
    request (`start_load_kv` -> `_read_blocks`, after the first-contact `_nixl_handshake` with the prefill engine)
    and poll their completion once per engine step (`get_finished` -> `_pop_done_transfers`), the prefill worker
    only holding the blocks until the read's notification (`request_finished`; vllm/distributed/kv_transfer/
    kv_connector/v1/nixl_connector.py). Auto-resolved engines differ only between a profiled and a roofline
    pool (`auto_engine`), and a named engine is both pools', so the order moves no deployment whose pools are
    both profiled."""
    pre = np.asarray(prefill_engines, dtype=object)
    dec = np.broadcast_to(np.asarray(decode_engines, dtype=object), pre.shape)
    roof = np.array([engine_key(e) == "roofline" for e in dec.ravel()], dtype=bool).reshape(pre.shape)
    return np.where(roof, pre, dec)


def connector_gbs(link_gbs: Any, engines: Any, eff: Any) -> np.ndarray:
    """GB/s (per GPU, as `link_gbs`) at which a prompt's KV moves between the pools: the link's, or the engine's
    KV connector's where the efficiency factors know it and it is slower (``engine_kv_gbs[engine]`` of `eff`, an
    Efficiency; 0: not known)."""
    conn = eff.engine_table("engine_kv_gbs", engines, 0.0)
    link = np.asarray(link_gbs, dtype=float)
    return np.where(conn > 0, np.minimum(link, conn), link)


def connector_ms(engines: Any, eff: Any) -> np.ndarray:
    """The engine's KV connector's latency per request (ms; ``engine_kv_ms[engine]`` of `eff`, 0: not known)
    per entry of `engines`."""
    return eff.engine_table("engine_kv_ms", engines, 0.0)


def kv_read_ms(kv_bytes: Any, link_gbs: Any, engines: Any, eff: Any) -> np.ndarray:
    """ms to move a prompt's KV shard of `kv_bytes` (per GPU) from its prefill worker to its decode worker over a
    link of `link_gbs` GB/s per GPU, through the engine's KV connector (alpha-beta): its latency per request
    (`connector_ms`) plus the bytes at the link's rate, or the connector's where slower (`connector_gbs`)."""
    rate = connector_gbs(link_gbs, engines, eff)
    return connector_ms(engines, eff) + np.asarray(kv_bytes, dtype=float) / (rate * 1e9) * 1e3


#: engines whose decode worker sends a handed-off request's first token when it schedules the request after its KV
#: has arrived, before that iteration's forward: TensorRT-LLM's generation server returns the context server's
#: token (carried in the request's disaggregated params) from `_handle_first_token_response`, which the executor loop
#: calls for the scheduled generation requests at their first decoding iteration ahead of `_forward_step`
#: (tensorrt_llm/_torch/pyexecutor/py_executor.py), and Dynamo's decode worker streams that response to the client
#: (handler_base.generate_locally). vLLM's decode server instead loads all but the prompt's last token and computes
#: that one in a forward that samples the first token (the NixlConnector scheduler; vllm-project/vllm#50913 proposes
#: seeding the prefill's token instead). Engines not listed: the forward
FIRST_TOKEN_AT_ADMISSION = ("trtllm",)


def first_token_forwards(engines: Any) -> np.ndarray:
    """Decode iterations between a handed-off request's admission with its KV in place and its first token, per
    entry of `engines` (engine names; None / roofline: 1): 0 where the engine sends the prefill's token at once
    (`FIRST_TOKEN_AT_ADMISSION`), else 1."""
    return np.array([0.0 if engine_key(e) in FIRST_TOKEN_AT_ADMISSION else 1.0 for e in np.ravel(engines)])


#: engines whose decode worker's scheduler learns that a handed-off request's KV read is done from the output of a
#: step that polled it, one step after the poll, not at the boundary where the read is seen done. vLLM: the worker
#: polls its NIXL reads in each step's `execute_model`, right after launching the step's forward
#: (`KVConnectorModelRunnerMixin._get_kv_connector_output` -> ``get_transfer_results`` / NixlConnectorWorker
#: `get_finished`; vllm/v1/worker/kv_connector_model_runner_mixin.py), and returns them with that step's
#: ModelRunnerOutput (``kv_connector_output.finished_recving``); the scheduler reads them in `update_from_output`
#: (`Scheduler._update_from_kv_xfer_finished`) and moves the request from WAITING_FOR_REMOTE_KVS to the batch at
#: its next `schedule` (`_update_waiting_for_remote_kv`; vllm/v1/core/sched/scheduler.py). Under async scheduling
#: (`EngineCore.step_with_batch_queue`, a queue of two) the worker prepares and launches step K while K - 1 runs,
#: so K's poll waits for K - 1 and K before the scheduler sees it, and the scheduler has then already formed K + 1:
#: two steps more (`kv_notice_steps`). An idle worker's engine core keeps stepping empty batches while a read is in
#: flight (`has_requests`; `kv_connector_no_forward` polls at once): nothing to wait for. Engines not listed: the
#: request joins the step formed at the boundary where its read is seen done (TensorRT-LLM checks its transfers,
#: `_check_disagg_gen_transfer_status`, as its executor loop forms the next batch)
KV_NOTICE_ENGINES = ("vllm",)


def kv_notice_steps(engines: Any, overlap: Any) -> np.ndarray:
    """Decode steps between the boundary where a busy decode worker's poll sees a handed-off request's KV read done
    and the step that schedules the request, per entry of `engines` (engine names; None / roofline: 0) whose decode
    pool forms its next step while the current one runs where `overlap` (per entry, 0 / 1, or the pool's
    `inference.estimate.arrival_wait_iters` share): 1 + 2 x overlap for the engines of `KV_NOTICE_ENGINES`, else 0."""
    polled = per_engine(np.ravel(np.asarray(engines, dtype=object)), lambda n: engine_key(n) in KV_NOTICE_ENGINES)
    return polled * (1.0 + 2.0 * np.broadcast_to(np.asarray(overlap, dtype=float), polled.shape))


def decode_overlap(decode_kw: Mapping[str, Any], n: int, eff: Any) -> tuple[np.ndarray, np.ndarray]:
    """(engine, steps formed ahead: 1 where the pool forms its next step while the current one runs, ``Coeffs.
    overlap`` as `inference.estimate.arrival_wait_iters` reads it, not with pp > 1, and keeps that loop on its decode
    servers, `profiles.overlaps_in_role`; else 0) of `n` disaggregated deployments' decode pools (`decode_kw`: their
    `inference.estimate` arguments; `eff` an Efficiency), one `prepare`."""
    _, _, _, engines, _, ahead = _engine_terms(decode_kw, n, eff)
    return engines, ahead * per_engine(engines, lambda e: overlaps_in_role(e, "decode"))


def handoff_ms(step_ms: Any, xfer_ms: Any, occupancy: Any, forwards: Any = 1.0, notice: Any = 0.0) -> Any:
    """Time (ms) from a prompt's prefill to its first token at the decode worker, which decodes iterations of
    `step_ms` at a mean `occupancy` of sequences per rank; `xfer_ms`: the KV read on the link; `forwards`: the
    iterations from the admission after the read to the first token (`first_token_forwards`: 1, the forward that
    samples it; 0, the prefill's token sent at admission); `notice`: the iterations a busy worker's scheduler
    takes to learn of the finished read (`kv_notice_steps`; 0: at the boundary that sees it).

    A busy worker (decoding anything: chance 1 - exp(-occupancy), occupancies Poisson) admits the request at its
    next iteration boundary (half an iteration on average), allocates its blocks and starts the read there (vLLM's
    NIXL connector: start_load_kv in the step that schedules it), sees the read done at the first boundary after
    it (one iteration when the read is shorter than half of one, else the read plus half an iteration: a
    continuous form of the boundary's ceiling), schedules the request `notice` iterations later and sends the first
    token `forwards` iterations after that. An idle worker starts at once and wakes when the KV is in: the read and
    `forwards` iterations. The simulator runs the same steps."""
    step = np.asarray(step_ms, dtype=float)
    xfer = np.asarray(xfer_ms, dtype=float)
    fwd = np.asarray(forwards, dtype=float) * step
    late = np.asarray(notice, dtype=float) * step
    busy = -np.expm1(-np.asarray(occupancy, dtype=float))
    return busy * (0.5 * step + np.maximum(step, xfer + 0.5 * step) + late + fwd) + (1.0 - busy) * (xfer + fwd)


__all__ = ["DISAGG_FRONT_END_PASSES", "FIRST_TOKEN_AT_ADMISSION", "KV_NOTICE_ENGINES", "connector_engines",
           "connector_gbs", "connector_ms", "decode_overlap", "first_token_forwards", "front_end", "front_end_passes",
           "handoff_ms", "host_ms", "kv_notice_steps", "kv_read_ms"]
