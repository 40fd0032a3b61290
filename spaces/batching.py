"""Batching: the scheduler knobs of a continuous-batching engine (vLLM, TensorRT-LLM, SGLang).

- ``max_batch_size``: most sequences in flight per replica (vLLM ``max_num_seqs``).
- ``max_num_tokens``: most tokens one iteration carries (vLLM ``max_num_batched_tokens``); it must be at
  least ``max_batch_size`` (every running sequence decodes one token per iteration; vLLM refuses less).
- ``chunked_prefill``: long prompts are split into chunks mixed with decode tokens. Without it a whole prompt
  goes into one iteration, so ``max_num_tokens >= input_len`` is required (when ``input_len`` is given), and
  ``max_num_tokens >= input_len + output_len``, the longest request, when ``output_len`` is given too: vLLM
  refuses a token budget below its maximum model length without chunking (``SchedulerConfig``; `dse deploy`
  sets ``--max-model-len`` to the longest request), and a prompt filling the whole budget waits until no
  sequence decodes.
- ``batching`` (only when more than continuous batching is asked for): ``"continuous"`` (iteration-level: requests
  join and leave the running batch every iteration) or ``"static"`` (request-level: a batch runs until its last
  request finishes and nobody joins meanwhile); `serving.Scheduler(batching=...)`. With both policies
  ``chunked_prefill`` is a knob of continuous batching only (``when="batching == 'continuous'"``): a static batch's
  rows run the objective's default, since the analytical model prices a static batch's prefill alike either way
  (two trials of one configuration otherwise).
"""
from __future__ import annotations

from collections.abc import Sequence

import dse
from dse import SpaceError

from .hardware import check_count

MAX_BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024)
MAX_NUM_TOKENS = (2048, 4096, 8192, 16384)
BATCHING = ("continuous", "static")


def _counts(label: str, values: Sequence[int]) -> list[int]:
    vals = sorted({check_count(f"{label} value", v) for v in values})
    if not vals:
        raise SpaceError(f"{label} must list at least one positive integer, got {list(values)!r}")
    return vals


def unchunked_tokens(input_len: int | None, output_len: int | None) -> int | None:
    """The token budget an iteration without chunked prefill needs (tokens): ``input_len`` (a whole prompt), plus
    ``output_len`` where given (the longest request, see the module docstring); None without ``input_len``."""
    if input_len is None:
        if output_len is not None:
            raise SpaceError(f"output_len={output_len!r} is given without input_len: the rule without chunked "
                             f"prefill needs the prompt length (input_len, tokens) too")
        return None
    return check_count("input_len", input_len) + (0 if output_len is None else check_count("output_len", output_len))


def batching(max_batch_sizes: Sequence[int] = MAX_BATCH_SIZES, max_num_tokens: Sequence[int] = MAX_NUM_TOKENS,
             chunked_prefill: Sequence[bool] = (True, False), *, input_len: int | None = None,
             output_len: int | None = None, batching: Sequence[str] = ("continuous",)) -> dse.Space:
    """Space of ``max_batch_size`` (sequences), ``max_num_tokens`` (tokens per iteration) and
    ``chunked_prefill`` (bool), with the rules in the module docstring; and ``batching`` (the policies listed,
    a subset of ``BATCHING``) unless only ``"continuous"`` is asked for (the default: the space has no
    ``batching`` parameter and the objective runs continuous batching)."""
    chunked = list(dict.fromkeys(chunked_prefill))
    if not chunked or any(not isinstance(c, bool) for c in chunked):
        raise SpaceError(f"chunked_prefill must list True and/or False, got {list(chunked_prefill)!r}")
    policies = list(dict.fromkeys(batching)) if not isinstance(batching, str) else [batching]
    bad = [p for p in policies if p not in BATCHING]
    if bad or not policies:
        raise SpaceError(f"batching={list(batching) if not isinstance(batching, str) else batching!r}: "
                         f"{bad or 'empty'} not allowed; valid policies: {list(BATCHING)}")
    cons = ["max_num_tokens >= max_batch_size"]
    if (longest := unchunked_tokens(input_len, output_len)) is not None and False in chunked:
        cons.append(f"chunked_prefill or max_num_tokens >= {longest}")
    params = dict(
        max_batch_size=dse.Categorical(_counts("max_batch_sizes", max_batch_sizes)),
        max_num_tokens=dse.Categorical(_counts("max_num_tokens", max_num_tokens)),
    )
    if policies != ["continuous"]:
        params["batching"] = dse.Categorical(policies)
    both = len(policies) > 1
    params["chunked_prefill"] = dse.Categorical(chunked, when="batching == 'continuous'" if both else None)
    return dse.Space(params, constraints=cons)
