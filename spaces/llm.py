"""``llm_serving``: the whole deployment space of one LLM, composed from the smaller builders.

Parameters, in grid order: gpu, n_gpus | tp, pp, [dp], [ep] | weight_dtype, act_dtype, kv_dtype |
[mode, prefill_replicas] | max_batch_size, max_num_tokens, chunked_prefill.

Cross-part constraints added here: TP x PP x DP == n_gpus; in aggregated mode DP == 1 unless ``replicas=True``
(identical replicas have the same per-GPU and per-user metrics in the analytical model, so by default the
space does not enumerate copies; ``n_gpus`` is then the size of one model instance); in disaggregated mode
``prefill_replicas < dp`` (both pools non-empty).
"""
from __future__ import annotations

from collections.abc import Sequence

import dse
from dse import SpaceError
from objectives.catalog import GPU, Model

from .batching import MAX_BATCH_SIZES, MAX_NUM_TOKENS
from .batching import batching as batching_space
from .compose import compose
from .hardware import hardware
from .parallelism import parallelism
from .quantization import KV_DTYPES, quantization
from .serving import serving


def llm_serving(model: str | Model, gpus: Sequence[str | GPU] | str, max_gpus: int = 8, *,
                n_gpus: Sequence[int] | None = None, tp: Sequence[int] | None = None,
                pp: Sequence[int] | None = None, ep: Sequence[int] | None = None,
                formats: Sequence[str] | None = None, kv_dtypes: Sequence[str] = KV_DTYPES,
                max_batch_sizes: Sequence[int] = MAX_BATCH_SIZES, max_num_tokens: Sequence[int] = MAX_NUM_TOKENS,
                chunked_prefill: Sequence[bool] = (True, False), modes: Sequence[str] = ("agg",),
                replicas: bool = False, input_len: int | None = None,
                batching: Sequence[str] = ("continuous",),
                engines: Sequence[str] | None = None) -> dse.Space:
    """The deployment space of ``model`` on ``gpus`` with at most ``max_gpus`` GPUs.

    Arguments restrict the knobs of the builders (see :func:`spaces.hardware`, :func:`spaces.parallelism`,
    :func:`spaces.quantization`, :func:`spaces.batching`, :func:`spaces.serving`). ``modes``: ("agg",),
    ("disagg",) or both. ``replicas``: enumerate DP > 1 in aggregated mode too. ``input_len`` (tokens): adds
    the rule that without chunked prefill one iteration must hold a whole prompt. ``batching``: scheduler
    policies, ``("continuous", "static")`` adds a ``batching`` knob (aggregated mode only). ``engines``: serving
    engines as a search dimension (``["vllm", "sglang", "trtllm"]``, optionally ``"name==version"``): the cost
    model uses each engine's measured kernel profile where the GPU has one (else the roofline); unknown engines
    are refused here.
    """
    modes = tuple(dict.fromkeys(modes))
    with_dp = replicas or "disagg" in modes
    parts = [
        hardware(gpus, max_gpus, n_gpus=n_gpus),
        parallelism(model, max_gpus, tp=tp, pp=pp, dp=with_dp, ep=ep),
        quantization(gpus, formats=formats, kv_dtypes=kv_dtypes),
    ]
    cons = ["tp * pp * dp == n_gpus" if with_dp else "tp * pp == n_gpus"]
    if modes != ("agg",):
        parts.append(serving(modes, max_gpus))
        if "disagg" in modes:
            cons.append("prefill_replicas < dp")
    if with_dp and not replicas:
        cons.append("dp == 1" if "agg" not in modes else ("dp == 1 or mode == 'disagg'" if len(modes) > 1 else "dp == 1"))
    # in disaggregated mode the prefill pool runs whole prompts and the decode pool no prompts: chunking is an
    # aggregated-mode knob
    when = {"chunked_prefill": "mode == 'agg'"} if "disagg" in modes and len(modes) > 1 else {}
    policies = [batching] if isinstance(batching, str) else list(dict.fromkeys(batching))
    if policies != ["continuous"] and "disagg" in modes:
        if len(modes) == 1:
            raise SpaceError(f"batching={policies}: static batching is modelled in aggregated mode only; add 'agg' "
                             f"to modes or keep batching=('continuous',)")
        when["batching"] = "mode == 'agg'"
    parts.append(batching_space(max_batch_sizes, max_num_tokens, chunked_prefill, input_len=input_len,
                                batching=policies))
    if engines is not None:
        from objectives.profiles import resolve_engine
        names = [str(e) for e in dict.fromkeys(engines)]
        if not names:
            raise SpaceError("engines=[]: give at least one of 'vllm', 'sglang', 'trtllm' (or leave it None)")
        for e in names:
            try:
                resolve_engine(e)
            except ValueError as exc:
                raise SpaceError(f"engines: {exc}") from None
        parts.append(dse.Space(engine=dse.Categorical(names)))
    return compose(*parts, constraints=cons, when=when)
