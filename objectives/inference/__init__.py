"""Analytical, vectorized LLM inference cost model (per-layer roofline with fitted efficiency factors).

    from objectives import inference
    inference.estimate(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, batch_size, input_len, output_len)
    inference.max_throughput(model, gpu, tp, pp, weight_dtype, ..., input_len=..., output_len=...)
    inference.breakdown(model, gpu, ...)   # estimate's prefill forward and decode step, ms by component
    inference.served_breakdown(model, gpu, ...)   # max_throughput's steady state, ms by component
    inference.StepModel(model, gpu, tp, pp, weight_dtype).time_ms(n_prefill_tokens, prefill_attn_pairs,
                                                                  n_decode_seqs, decode_kv_tokens)

Modules: ops (per-layer FLOPs/bytes, the one step-time formula), efficiency (named fitted factors), comm
(collectives), memory, power, resolve (argument rules), core (shared preparation), estimate, breakdown (a step's time by component), step.
"""
from .breakdown import breakdown, served_breakdown
from .efficiency import Efficiency, default_efficiency, load_efficiency
from .estimate import estimate, max_throughput
from .speculative import Speculative
from .step import StepModel

__all__ = ["estimate", "max_throughput", "breakdown", "served_breakdown", "StepModel", "Speculative", "Efficiency", "load_efficiency", "default_efficiency"]
