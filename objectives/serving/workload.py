"""Seeded serving workloads: closed-loop concurrency, open-loop Poisson/gamma arrivals, length distributions, traces.

A `Workload` is a description; `Workload.requests()` draws the concrete requests (arrival times in seconds,
input and output lengths in tokens) from independent seeded streams, so changing the rate with the same seed
stretches the same arrival pattern and keeps the same lengths.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
import pandas as pd

from ..inference.lockstep import BENCHMARK_OUTPUT_SPREAD
from ..inference.resolve import context_invalid, serves_past_context
from .traces import Trace, read_trace

_DIST_KINDS = ("uniform", "normal", "lognormal")
_ARRIVALS = ("poisson", "gamma")
DEFAULT_N_REQUESTS = 2000
#: Tokens per hash block of a synthetic shared prefix (``Workload.shared_prefix``): vLLM's KV-cache block,
#: ``CacheConfig.DEFAULT_BLOCK_SIZE = 16`` (vllm/config/cache.py @ 002f10e0cfa1373a19a0d2756598a34b700d20e5), the
#: granularity of its prefix-cache hits
SHARED_PREFIX_BLOCK_TOKENS = 16
TRACE_COLUMNS = ("arrival_s", "input_tokens", "output_tokens")   # dse's own trace layout (serving.traces)
#: ``Workload.output_spread``'s default: a closed loop's fixed output length is drawn within +-2 % per request
#: (chosen leaving one model out on the silicon slice's benchmark runs, docs/profiles.md twenty-eighth round); one
#: value with the closed form's attention-DP arrival windows (`inference.lockstep`)
DEFAULT_OUTPUT_SPREAD = BENCHMARK_OUTPUT_SPREAD
#: spawn key of the output spread's own seeded stream (`Workload.requests`; keys 0-2 are the arrivals', the prompts'
#: and the outputs' streams, 3 is left for a client-side stream), so that drawing the spread moves no other draw
_SPREAD_STREAM = 4


# ---- field validation shared by Workload, Dist and the scheduler/pool/SLO settings --------------------------------
# Each check raises TypeError for a wrong type and ValueError for a bad value; the message names the owner, the
# field and the value, and says what is valid.

def check_int(owner: str, name: str, v: object, lo: int = 1, none_ok: bool = False, what: str = "") -> None:
    """An integer >= lo (numpy integers accepted, bools refused); None only when `none_ok`."""
    if v is None and none_ok:
        return
    unit = f" ({what})" if what else ""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{owner} {name}={v!r}: must be an integer >= {lo}{unit}"
                        + (" or None" if none_ok else "") + f", not {type(v).__name__}")
    if v < lo:
        raise ValueError(f"{owner} {name}={v!r}: must be an integer >= {lo}{unit}")


def check_real(owner: str, name: str, v: object, *, gt: float | None = None, ge: float | None = None,
               le: float | None = None, lt: float | None = None, inf_ok: bool = False, none_ok: bool = False,
               what: str = "") -> None:
    """A real number (int/float, numpy too; bools and strings refused), not NaN, finite unless `inf_ok`, within
    the given bounds; None only when `none_ok`."""
    if v is None and none_ok:
        return
    rng = " and ".join(f"{op} {b:g}" for op, b in ((">", gt), (">=", ge), ("<=", le), ("<", lt)) if b is not None)
    desc = f"a number {rng}".strip() + (f" ({what})" if what else "") + (" or None" if none_ok else "")
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner} {name}={v!r}: must be {desc}, not {type(v).__name__}")
    f = float(v)
    if math.isnan(f) or (math.isinf(f) and not inf_ok) or (gt is not None and not f > gt) \
            or (ge is not None and not f >= ge) or (le is not None and not f <= le) or (lt is not None and not f < lt):
        raise ValueError(f"{owner} {name}={v!r}: must be {desc}")


def check_choice(owner: str, name: str, v: object, choices: tuple[str, ...]) -> None:
    """One of `choices` (strings)."""
    if not isinstance(v, str):
        raise TypeError(f"{owner} {name}={v!r}: must be one of {', '.join(choices)}, not {type(v).__name__}")
    if v not in choices:
        raise ValueError(f"{owner} {name}={v!r}: valid values are {', '.join(choices)}")


def check_bool(owner: str, name: str, v: object) -> None:
    """True or False (numpy bools accepted)."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{owner} {name}={v!r}: must be True or False, not {type(v).__name__}")


@dataclass(frozen=True)
class Dist:
    """A token-length distribution; draws are rounded to integers and clipped to [max(1, min), max].

    - ``Dist("uniform", low=128, high=4096)``: integers uniform in [low, high] (both inclusive).
    - ``Dist("normal", mean=1024, std=256)``.
    - ``Dist("lognormal", mean=1024, std=1500)``: mean and standard deviation of the lengths themselves
      (not of their logarithm); heavy right tail when std > mean.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    std: float | None = None
    min: int = 1
    max: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.kind, str) and self.kind not in _DIST_KINDS:
            raise ValueError(f"Dist kind {self.kind!r} is unknown; valid kinds: {', '.join(_DIST_KINDS)}")
        check_choice("Dist", "kind", self.kind, _DIST_KINDS)
        for name in ("low", "high", "mean", "std"):
            check_real("Dist", name, getattr(self, name), ge=0, none_ok=True, what="tokens")
        check_int("Dist", "min", self.min, lo=1, what="tokens")
        check_int("Dist", "max", self.max, lo=1, none_ok=True, what="tokens")
        if self.kind == "uniform":
            if self.low is None or self.high is None:
                raise ValueError("Dist('uniform') needs low= and high= (token counts, low <= high)")
            if not (1 <= self.low <= self.high):
                raise ValueError(f"Dist('uniform', low={self.low}, high={self.high}): need 1 <= low <= high")
        else:
            if self.mean is None or self.std is None:
                raise ValueError(f"Dist({self.kind!r}) needs mean= and std= (tokens)")
            if not self.mean >= 1 or not self.std >= 0:
                raise ValueError(f"Dist({self.kind!r}, mean={self.mean}, std={self.std}): need mean >= 1, std >= 0")
        if self.max is not None and self.max < self.min:
            raise ValueError(f"Dist max={self.max} is below min={self.min}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` integer lengths (tokens), int64."""
        if self.kind == "uniform":
            assert self.low is not None and self.high is not None  # __post_init__ requires them for this kind
            x = rng.integers(int(self.low), int(self.high), size=n, endpoint=True).astype(np.float64)
        elif self.kind == "normal":
            assert self.mean is not None and self.std is not None  # __post_init__ requires them for this kind
            x = rng.normal(self.mean, self.std, size=n)
        else:
            assert self.mean is not None and self.std is not None  # __post_init__ requires them for this kind
            m, s = float(self.mean), float(self.std)
            sigma2 = math.log1p((s / m) ** 2)
            x = rng.lognormal(math.log(m) - sigma2 / 2, math.sqrt(sigma2), size=n)
        x = np.rint(x)
        return np.clip(x, self.min, self.max if self.max is not None else np.inf).astype(np.int64)


Length = int | Dist


class Requests(NamedTuple):
    """Concrete requests: arrival_s (s) is None for closed-loop workloads (arrivals follow completions);
    hash_ids / hash_offsets (the prompt block ids of request i are hash_ids[hash_offsets[i]:hash_offsets[i+1]],
    blocks of ``block_tokens`` tokens) only for traces that carry them (Mooncake)."""

    arrival_s: np.ndarray | None
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    hash_ids: np.ndarray | None = None
    hash_offsets: np.ndarray | None = None
    block_tokens: int = 0


@dataclass(frozen=True)
class Workload:
    """What clients send.

    - ``concurrency=N``: closed loop, as benchmark clients measure (N users; each sends its next request the
      moment it has its previous one's last token, the host time after the GPU's finish included; all N start at
      t=0; an ``arrival`` process beside it is refused).
    - ``rate=r`` (requests/s): open loop. ``arrival="poisson"`` (exponential gaps) or ``"gamma"`` with
      coefficient of variation ``cv`` (cv > 1: bursty; a cv other than 1 without ``arrival="gamma"`` is refused).
      ``rate=math.inf`` sends every request at t=0.
    - ``trace``: a `serving.Trace`, or a path / DataFrame in any layout `serving.read_trace` knows (Azure
      2023/2024, Mooncake JSONL, BurstGPT, Vidur, dse's arrival_s/input_tokens/output_tokens). Its arrival times
      are used unless ``concurrency`` or ``rate`` is given (then only its lengths, and hash ids, are used;
      ``input_len`` / ``output_len``, and ``arrival`` / ``cv`` without ``rate``, are refused beside it);
      ``Trace.scale_rate`` / ``sample`` / ``head`` / ``window`` replay it faster or in part. Stored as a `Trace`.
    - ``input_len`` / ``output_len``: tokens, fixed or a `Dist`. ``n_requests``: how many (default 2000, or
      the whole trace).
    - ``shared_prefix``: tokens (counted in each prompt) that every request's prompt starts with, e.g. a system
      prompt; 0 (default): nothing shared. Requests then carry hash blocks of `SHARED_PREFIX_BLOCK_TOKENS` tokens
      (the prefix's blocks shared, the rest of each prompt its own), which prefix caching reuses in the simulator
      and the analytical model (`serving.prefix`). A trace with hash ids states its own shared prefixes (refused
      with it); a trace without them takes it as for drawn lengths.
    - ``output_spread``: a closed loop with a fixed (integer) ``output_len`` draws each request's output length
      uniformly from the integers within +-``output_spread`` of it (a share: 0.02 is +-2 %, at least one token
      either side; the mean is kept), from a seeded stream of its own. Benchmark clients that all send the same
      lengths do not stay in lockstep: the first round is a wave, later rounds mostly are not, where exactly equal
      lengths make simulated clients finish together and send their prompts in one wave every round. Default
      `DEFAULT_OUTPUT_SPREAD`; 0: every output exactly ``output_len``. Only the drawn requests (`requests`, hence
      `serving.simulate`) see it: the analytical model and `steady_state` price the stated length, whose start-up
      wave the closed form weighs by its fitted share. Open-loop, trace and `Dist` lengths have no use for it: a
      value other than 0 or the default is refused there.
    """

    concurrency: int | None = None
    rate: float | None = None
    arrival: str = "poisson"
    cv: float = 1.0
    input_len: Length = 2048
    output_len: Length = 256
    n_requests: int | None = None
    seed: int = 0
    shared_prefix: int = 0
    output_spread: float = DEFAULT_OUTPUT_SPREAD
    trace: str | Path | pd.DataFrame | Trace | None = field(default=None, compare=False, repr=False)
    trace_sha256: str = field(default="", init=False)   # identifies the trace in comparisons, hashes and repr

    def __post_init__(self) -> None:
        check_int("Workload", "concurrency", self.concurrency, lo=1, none_ok=True, what="users")
        check_real("Workload", "rate", self.rate, gt=0, inf_ok=True, none_ok=True,
                   what="requests/s; math.inf: all at t=0")
        if self.concurrency is not None and self.rate is not None:
            raise ValueError(f"Workload: give concurrency ({self.concurrency}) or rate ({self.rate}), not both")
        if self.concurrency is None and self.rate is None and self.trace is None:
            raise ValueError("Workload needs concurrency= (closed loop), rate= (open loop, req/s) or trace=")
        check_choice("Workload", "arrival", self.arrival, _ARRIVALS)
        check_real("Workload", "cv", self.cv, gt=0, what="coefficient of variation of the arrival gaps")
        if self.cv != 1.0 and self.arrival != "gamma":
            raise ValueError(f"Workload cv={self.cv!r} shapes gamma arrival gaps only; give arrival='gamma' with it "
                             f"(arrival={self.arrival!r} ignores it) or leave cv=1")
        if self.concurrency is not None and self.arrival != "poisson":
            raise ValueError(f"Workload arrival={self.arrival!r}: a closed loop (concurrency={self.concurrency}) "
                             f"sends each user's next request when its last one finishes, with no arrival process; "
                             f"give rate= for {self.arrival} arrivals, or leave arrival='poisson' and cv=1")
        for name in ("input_len", "output_len"):
            v = getattr(self, name)
            if isinstance(v, Dist):
                continue
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"Workload {name}={v!r}: must be an integer >= 1 (tokens) or a serving.Dist, "
                                f"not {type(v).__name__}")
            if v < 1:
                raise ValueError(f"Workload {name}={v!r}: must be an integer >= 1 (tokens) or a serving.Dist")
        check_int("Workload", "n_requests", self.n_requests, lo=1, none_ok=True)
        check_int("Workload", "seed", self.seed, lo=0)
        check_int("Workload", "shared_prefix", self.shared_prefix, lo=0, what="tokens every prompt starts with")
        check_real("Workload", "output_spread", self.output_spread, ge=0, lt=1,
                   what="share of a closed loop's fixed output_len within which each output is drawn; 0: exact")
        if self.output_spread not in (0, DEFAULT_OUTPUT_SPREAD) and not self._spreads_outputs:
            raise ValueError(f"Workload output_spread={self.output_spread!r} spreads a closed loop's fixed (integer) "
                             f"output_len; this workload ({self._lengths_desc()}) has no use for it: drop it")
        if self.trace is not None and not isinstance(self.trace, (str, Path, pd.DataFrame, Trace)):
            raise TypeError(f"Workload trace={self.trace!r:.80}: must be a serving.Trace, a trace file path or a "
                            f"pandas DataFrame")
        if self.trace is not None:
            _check_trace_fields(self)
            t = read_trace(self.trace)
            if not t.has_arrivals and self.concurrency is None and self.rate is None:
                raise ValueError(f"Workload trace {t.source} has no arrival times: give rate= (requests/s) or "
                                 f"concurrency= (users)")
            if self.shared_prefix and t.hash_ids is not None:
                raise ValueError(f"Workload shared_prefix={self.shared_prefix}: trace {t.source} carries hash ids, "
                                 f"which state its own shared prefixes; leave shared_prefix=0")
            object.__setattr__(self, "trace", t)
            object.__setattr__(self, "trace_sha256", t.sha256())
        longest = _longest_prompt(self)
        if self.shared_prefix and longest is not None and self.shared_prefix > longest:
            raise ValueError(f"Workload shared_prefix={self.shared_prefix} tokens: the longest prompt is {longest} "
                             f"tokens, and the shared prefix is counted in each prompt; give at most {longest} (a "
                             f"prompt shorter than the prefix is all prefix)")

    @property
    def closed_loop(self) -> bool:
        return self.concurrency is not None

    @property
    def _spreads_outputs(self) -> bool:
        """Whether ``output_spread`` applies: a closed loop of drawn requests with an integer ``output_len``."""
        return self.concurrency is not None and self.trace is None and not isinstance(self.output_len, Dist)

    def _lengths_desc(self) -> str:
        """How this workload sends, for messages: its loop and where its output lengths come from."""
        loop = f"concurrency={self.concurrency}" if self.concurrency is not None else (
            f"rate={self.rate}" if self.rate is not None else "the trace's own arrivals")
        outs = "a trace's outputs" if self.trace is not None else (
            "a Dist output_len" if isinstance(self.output_len, Dist) else f"output_len={self.output_len}")
        return f"{loop}, {outs}"

    @property
    def size(self) -> int:
        """Number of requests the workload sends."""
        if self.trace is not None:
            n = len(self._trace)
            return min(n, self.n_requests) if self.n_requests is not None else n
        return self.n_requests if self.n_requests is not None else DEFAULT_N_REQUESTS

    def longest_request(self) -> tuple[int, int | None] | None:
        """(tokens, request index) of the longest request the workload sends, prompt + output: a trace's longest
        among its first ``size`` requests (with its position in arrival order), fixed lengths' sum (index None), or
        the sum of the upper bounds of `Dist` lengths (a ``max``, or a uniform's ``high``); None where a `Dist` is
        unbounded (`exceeds_context` then checks the requests drawn)."""
        if self.trace is not None:
            n = self.size
            total = np.asarray(self._trace.input_tokens[:n], dtype=np.int64) + self._trace.output_tokens[:n]
            i = int(np.argmax(total))
            return int(total[i]), i
        bounds = [_upper(v) for v in (self.input_len, self.output_len)]
        return None if None in bounds else (sum(cast(int, b) for b in bounds), None)

    def exceeds_context(self, model: Any, engine: Any = None) -> str | None:
        """Why ``engine`` (a name, None: the default vLLM) refuses this workload on ``model`` (a catalog `Model`): a
        request longer than the model's context (`context_refusal`, TensorRT-LLM serving past it); None when every
        one fits. A trace's longest (`longest_request`) is named by its
        file and line (`Trace.where`), fixed lengths and bounded `Dist` lengths by their upper bounds. An unbounded
        `Dist` (normal, lognormal without ``max``) is judged on the requests the workload sends (`requests`' own
        seeded draws, which `serving.simulate` sends): where any of them exceeds the context it is refused with the
        share of them that do (the distribution's mass above the context, as drawn), never clipped or dropped
        silently: the engines refuse such a request (vLLM and SGLang answer an error for a prompt and output past
        --max-model-len / --context-length, they do not truncate it) and pricing the rest would price another
        workload. ``Dist(..., max=)`` bounds the lengths (draws clipped there)."""
        longest = self.longest_request()
        if longest is not None:
            tokens, i = longest
            if i is not None:
                return context_refusal(model, tokens, f", {self._trace.where(i)}", engine=engine)
            return context_refusal(model, tokens, fix="shorten input_len / output_len (a Dist's max= or high=)",
                                   engine=engine)
        context = _context(model)
        if not context:
            return None
        inp, out = self._drawn_lengths()
        total = inp + out
        over = context_invalid(context, total, _past(engine))
        if not over.any():
            return None
        i = int(np.argmax(total))
        names = ("input_len", "output_len")
        bounds = [_upper(getattr(self, name)) for name in names]
        unbounded = " and ".join(name for name, b in zip(names, bounds, strict=True) if b is None)
        plural = "s" if bounds.count(None) == 2 else ""
        fix = (f"bound the {unbounded} Dist{plural} with max= (draws clipped there), the prompt's and output's "
               f"bounds summing to at most {context} tokens")
        if bounds.count(None) == 1 and (other := max(b or 0 for b in bounds)) < context:
            fix += f": {unbounded}=Dist(..., max={context - other})"
        return context_refusal(model, int(total[i]),
                               f", request {i} of the {len(total)} drawn from the unbounded {unbounded} (seed "
                               f"{self.seed}), one of {int(over.sum())} ({100.0 * over.mean():.3g} %) above the "
                               f"context", fix=fix, engine=engine)

    def mean_lengths(self) -> tuple[float, float]:
        """Mean input and output length (tokens) of the requests the workload sends: the trace's (its first
        ``size`` requests), else the means of ``input_len`` / ``output_len`` (a `Dist`'s mean after rounding
        and clipping, estimated from 20,000 seeded draws)."""
        if self.trace is not None:
            n = self.size
            return float(self._trace.input_tokens[:n].mean()), float(self._trace.output_tokens[:n].mean())
        return _mean_length(self.input_len, self.seed), _mean_length(self.output_len, self.seed)

    def variability(self) -> tuple[float, float]:
        """Squared coefficients of variation (variance / mean^2) of the open-loop inter-arrival gaps and of the
        prompt lengths of the requests the workload sends, the two inputs of Kingman's G/G/1 wait (a queue waits
        (ca^2 + cs^2) / 2 times as long as an M/M/1 queue of the same load): gaps 1 for Poisson arrivals, cv^2 for
        gamma ones, a trace's own gaps (its first ``size`` requests; 1 where it has fewer than three arrivals or all
        at once); lengths 0 when fixed, else the trace's or a `Dist`'s (20,000 seeded draws). Closed loop and
        all-at-once workloads have no gaps to measure: 1."""
        inp: np.ndarray | None = None
        gaps: np.ndarray | None = None
        if self.trace is not None:
            n = self.size
            inp = self._trace.input_tokens[:n].astype(np.float64)
            arr = self._trace.arrival_s
            gaps = np.diff(arr[:n]) if arr is not None and self.rate is None and self.concurrency is None else None
        elif isinstance(self.input_len, Dist):
            inp = self.input_len.sample(np.random.default_rng(self.seed), 20_000).astype(np.float64)
        ca2 = self.cv ** 2 if self.rate is not None and self.arrival == "gamma" else 1.0
        if gaps is not None and len(gaps) >= 2 and gaps.mean() > 0:
            ca2 = float(gaps.var() / gaps.mean() ** 2)
        cs2 = float(inp.var() / inp.mean() ** 2) if inp is not None else 0.0
        return ca2, cs2

    def _own_arrivals(self) -> np.ndarray | None:
        """The arrival times (s, float64, in the trace's order) of a trace replayed with its own arrivals (its first
        ``size`` requests); None for every other workload, a trace without times or fewer than 3 requests."""
        if self.trace is None or self.rate is not None or self.concurrency is not None:
            return None
        arr = self._trace.arrival_s
        if arr is None or self.size < 3:
            return None
        return np.asarray(arr[:self.size], dtype=np.float64)

    def _replayed_arrivals(self) -> tuple[np.ndarray, float] | None:
        """The sorted arrival times (s) of a trace replayed with its own arrivals (`_own_arrivals`) and their span
        (s); None for every other workload, a trace without times, fewer than 3 requests or no span."""
        own = self._own_arrivals()
        if own is None:
            return None
        a = np.sort(own)
        span = float(a[-1] - a[0])
        return (a, span) if span > 0 else None

    def arrival_dispersion(self, windows_s: np.ndarray, demodulate: int | None = None) -> np.ndarray | None:
        """Index of dispersion of counts (variance / mean of the number of arrivals in a window) of a trace replayed
        with its own arrival times (its first ``size`` requests), one value per window of ``windows_s`` seconds;
        None for every other workload (Poisson: 1 at every window, gamma renewal arrivals: from 1 in short
        windows to cv^2 in long ones). The arrivals' burstiness as a queue feels it over its own time scale, where
        the gaps' squared CV (`variability`) weighs a few long pauses as heavily as a storm of requests. A window
        longer than 1/20 of the trace's span (too few windows to count) reads as the longest shorter one.
        ``demodulate``: the index within that many windows of equal length (`arrival_profile`): time warped so
        that every window carries the mean rate (a window's arrivals spread over a span in proportion to its
        count), the rate's swings across windows taken out."""
        got = self._replayed_arrivals()
        if got is None:
            return None
        a, span = got
        if demodulate is not None:
            prof = self.arrival_profile(demodulate)
            assert prof is not None                # the same trace, arrivals and span
            edges = a[0] + span * np.arange(demodulate + 1) / demodulate
            cum = np.concatenate([[0.0], np.cumsum(prof)]) / demodulate      # share of the requests up to each edge
            a = a[0] + np.interp(a, edges, cum) * span
        w = np.minimum(np.asarray(windows_s, dtype=np.float64), span / 20.0)
        out = np.empty(len(w))
        for i, tau in enumerate(w):            # a few dozen windows, once per workload (not the hot path)
            full = int(span // tau)
            counts = np.bincount(np.minimum(((a - a[0]) // tau).astype(np.int64), full), minlength=full + 1)[:full]
            out[i] = counts.var() / counts.mean() if counts.mean() > 0 else 1.0
        return out

    def _windows(self, windows: int, who: str) -> np.ndarray | None:
        """Each request's window (0 .. ``windows`` - 1) of a trace replayed with its own arrival times (its first
        ``size`` requests, in arrival order): the span cut into ``windows`` windows of equal length; None for every
        other workload (`_replayed_arrivals`). ``who``: the caller named in a bad ``windows``' message."""
        check_int(who, "windows", windows)
        got = self._replayed_arrivals()
        if got is None:
            return None
        a, span = got
        return np.minimum(((a - a[0]) / span * windows).astype(np.int64), windows - 1)

    def arrival_profile(self, windows: int) -> np.ndarray | None:
        """How a trace replayed with its own arrival times (its first ``size`` requests) spreads its requests over
        its span: the span cut into ``windows`` windows of equal length, each window's count over the mean count
        (mean 1; a window of twice the mean rate reads 2). None for every other workload, as
        `arrival_dispersion`."""
        k = self._windows(windows, "Workload.arrival_profile")
        if k is None:
            return None
        counts = np.bincount(k, minlength=windows).astype(np.float64)
        return counts / counts.mean()

    def prompt_profile(self, windows: int) -> np.ndarray | None:
        """The mean prompt length of each of `arrival_profile`'s windows over the run's mean prompt (1 where a window
        holds no request): a trace whose storms bring longer prompts than its quiet stretches reads above 1 there.
        None where `arrival_profile` is."""
        k = self._windows(windows, "Workload.prompt_profile")
        arr = self._own_arrivals() if k is not None else None
        if k is None or arr is None:
            return None
        order = np.argsort(arr, kind="stable")   # arrival order, as k
        tokens = np.asarray(self._trace.input_tokens[:self.size], dtype=np.float64)[order]
        counts = np.bincount(k, minlength=windows).astype(np.float64)
        sums = np.bincount(k, weights=tokens, minlength=windows)
        return np.where(counts > 0, sums / np.maximum(counts, 1.0) / max(float(tokens.mean()), 1e-300), 1.0)

    def arrival_batches(self) -> tuple[float, float] | None:
        """Batches of requests sharing one arrival time in a trace replayed with its own arrival times (its first
        ``size`` requests): (E[X], E[X^2] / E[X]) of the number X of requests at each distinct arrival time (both 1
        without ties); None for every other workload. Coarse timestamps (Mooncake's: about 9 requests a
        timestamp, E[X^2] / E[X] about 10) make batches that a queue serves one after another, and the batches
        themselves may come far more regularly than their requests' counts suggest."""
        arr = self._own_arrivals()
        if arr is None:
            return None
        _, counts = np.unique(arr, return_counts=True)
        x = counts.astype(np.float64)
        return float(x.mean()), float((x * x).sum() / x.sum())

    @property
    def _trace(self) -> Trace:
        """The trace (a `Trace` once __post_init__ has read it; only called when trace is not None)."""
        return cast(Trace, self.trace)

    @property
    def fixed_lengths(self) -> bool:
        return self.trace is None and not isinstance(self.input_len, Dist) and not isinstance(self.output_len, Dist)

    def _drawn_lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Input and output lengths (tokens, int64) of the ``size`` requests a workload without a trace sends:
        ``input_len`` / ``output_len`` drawn from their own seeded streams, a closed loop's fixed output spread by
        ``output_spread`` (`spread_lengths`)."""
        n = self.size
        _, s_in, s_out = np.random.SeedSequence(self.seed).spawn(3)
        inp = _lengths(self.input_len, np.random.default_rng(s_in), n)
        out = _lengths(self.output_len, np.random.default_rng(s_out), n)
        if self.output_spread and self._spreads_outputs:
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(_SPREAD_STREAM,)))
            out = spread_lengths(int(cast(int, self.output_len)), self.output_spread, rng, n)
        return inp, out

    def requests(self) -> Requests:
        """Draw the requests (deterministic for a given seed)."""
        n = self.size
        s_arr = np.random.SeedSequence(self.seed).spawn(3)[0]
        hid = off = None
        bt = 0
        if self.trace is not None:
            t = self._trace if n == len(self._trace) else self._trace.head(n)
            inp, out = t.input_tokens, t.output_tokens
            arr = t.arrival_s if self.concurrency is None and self.rate is None else None
            if t.hash_ids is not None:
                hid, off, bt = t.hash_ids, t.hash_offsets, t.block_tokens
        else:
            inp, out = self._drawn_lengths()
            arr = None
        if self.rate is not None:
            arr = arrival_times(n, self.rate, self.arrival, self.cv, np.random.default_rng(s_arr))
        if self.shared_prefix and hid is None:
            hid, off = shared_prefix_blocks(inp, self.shared_prefix)
            bt = SHARED_PREFIX_BLOCK_TOKENS
        return Requests(arr, inp, out, hid, off, bt)


def _context(model: Any) -> int:
    """The model's context in tokens (``max_position``, its config's max_position_embeddings; 0 where unknown)."""
    return int(getattr(model, "max_position", 0) or 0)


def _past(engine: Any) -> bool:
    """Whether ``engine`` (a name; None: the default vLLM) serves past the model's context
    (`inference.resolve.serves_past_context`, the rule `estimate` applies)."""
    return engine is not None and bool(serves_past_context([engine])[0])


def context_refusal(model: Any, tokens: int, which: str = "",
                    fix: str = "shorten the requests, or cut the trace (Trace.take, head, window)",
                    engine: Any = None) -> str | None:
    """Why ``engine`` (a name; None: the default vLLM) refuses a request of ``tokens`` tokens (prompt and output) on
    ``model`` (a catalog `Model`): it exceeds the model's context (`_context`; 0 where unknown: never refused) on
    an engine that does not serve past it (`inference.resolve.context_invalid`, TensorRT-LLM does); None when it
    fits. ``which`` names the request in the message (e.g. ", line 9 of trace file 'x.csv'"), ``fix`` says what to
    do. The one check of the objective, `simulate`, `capacity` and `dse deploy`."""
    context = _context(model)
    if not context_invalid(context, tokens, _past(engine)):
        return None
    who = "the engines refuse it" if engine is None else f"engine {engine!r} refuses it"
    return (f"the workload's longest request ({tokens} tokens of prompt and output{which}) exceeds "
            f"{model.name}'s context of {context} tokens (max_position_embeddings): {who} (TensorRT-LLM serves "
            f"past it, inference.resolve.CONTEXT_PAST_ENGINES); {fix}")


def _upper(v: Length) -> int | None:
    """The largest token count a length takes: a fixed one itself; a `Dist`'s ``max``, or a uniform's ``high``
    (None for an unbounded normal or lognormal)."""
    if not isinstance(v, Dist):
        return int(v)
    highs = [int(math.floor(h)) for h in (v.max, v.high if v.kind == "uniform" else None) if h is not None]
    return min(highs) if highs else None


def _check_trace_fields(w: Workload) -> None:
    """Refuse the fields a trace workload would ignore: lengths (the trace gives every request's), and an arrival
    process beside the trace's own arrival times (replayed unless rate= or concurrency= is given). Lengths equal to
    the defaults cannot be told from omitted ones (what `serving.capacity` passes along)."""
    default = {f.name: f.default for f in fields(Workload)}
    given = [f"{name}={getattr(w, name)!r}" for name in ("input_len", "output_len")
             if isinstance(getattr(w, name), Dist) or getattr(w, name) != default[name]]
    if given:
        raise ValueError(f"Workload {', '.join(given)}: a trace gives every request's prompt and output lengths, so "
                         f"these would be ignored; drop them (or drop trace= for drawn lengths)")
    if w.rate is None and w.concurrency is None and (w.arrival != "poisson" or w.cv != 1.0):
        raise ValueError(f"Workload arrival={w.arrival!r}, cv={w.cv!r}: the trace's own arrival times are replayed "
                         f"(Trace.scale_rate / to_rate replay them faster), so these would be ignored; give rate= "
                         f"(requests/s) to send the trace's requests at {w.arrival} arrivals instead")


def _longest_prompt(w: Workload) -> int | None:
    """The longest prompt ``w`` can send (tokens): the trace's longest, a fixed ``input_len``, a `Dist`'s ``max``
    (or a uniform one's ``high``); None where it has no bound."""
    if isinstance(w.trace, Trace):
        return int(w.trace.input_tokens.max())
    v = w.input_len
    if not isinstance(v, Dist):
        return int(v)
    bounds = [b for b in (v.max, v.high if v.kind == "uniform" else None) if b is not None]
    return int(min(bounds)) if bounds else None


def shared_prefix_blocks(input_tokens: np.ndarray, shared: int,
                         block_tokens: int = SHARED_PREFIX_BLOCK_TOKENS) -> tuple[np.ndarray, np.ndarray]:
    """Hash blocks (ids, CSR offsets) of prompts of ``input_tokens`` tokens that all start with the same ``shared``
    tokens: each prompt's ceil(length / block_tokens) blocks, its whole blocks inside the shared prefix numbered
    0, 1, ... alike in every prompt, every other block an id of its own."""
    inp = np.asarray(input_tokens, dtype=np.int64)
    counts = -(-inp // block_tokens)
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    total = int(off[-1])
    pos = np.arange(total, dtype=np.int64) - np.repeat(off[:-1], counts)      # block index inside its prompt
    common = np.repeat(np.minimum(inp, shared) // block_tokens, counts)
    base = shared // block_tokens + 1
    return np.where(pos < common, pos, base + np.arange(total, dtype=np.int64)), off


def spread_lengths(length: int, spread: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` integer lengths (tokens, int64) uniform over ``length`` +- h, h = round(``spread`` x ``length``) but at
    least 1 and at most ``length`` - 1 (so the mean stays ``length`` and every draw >= 1; a 1-token length stays
    1); ``spread`` 0: all ``length``."""
    h = min(max(1, round(spread * length)), length - 1) if spread > 0 else 0
    if h <= 0:
        return np.full(n, length, dtype=np.int64)
    return Dist("uniform", low=length - h, high=length + h).sample(rng, n)


def _mean_length(v: Length, seed: int) -> float:
    if isinstance(v, Dist):
        return float(v.sample(np.random.default_rng(seed), 20_000).mean())
    return float(v)


def _lengths(v: Length, rng: np.random.Generator, n: int) -> np.ndarray:
    if isinstance(v, Dist):
        return v.sample(rng, n)
    return np.full(n, int(v), dtype=np.int64)


def arrival_times(n: int, rate: float, arrival: str = "poisson", cv: float = 1.0,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """Open-loop arrival times in seconds (first request at t=0): gaps with mean 1/rate.

    Poisson: exponential gaps. Gamma: shape 1/cv**2, scale cv**2/rate (cv = std/mean of the gaps).
    The unit-rate gaps are drawn first and divided by the rate, so the same seed at another rate gives the
    same pattern stretched in time.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    if math.isinf(rate):
        return np.zeros(n)
    if arrival == "poisson":
        gaps = rng.standard_exponential(n)
    else:
        k = 1.0 / (cv * cv)
        gaps = rng.standard_gamma(k, n) / k
    gaps[0] = 0.0
    return np.cumsum(gaps) / rate


def burstgpt_like(n_requests: int = DEFAULT_N_REQUESTS, rate: float = 1.0, seed: int = 0, *,
                  cv: float = 3.0, max_input: int = 16384, max_output: int = 4096) -> Workload:
    """A synthetic trace shaped like BurstGPT (Wang et al., "BurstGPT: A Real-World Workload Dataset to Optimize
    LLM Serving Systems", arXiv:2401.17644; Azure OpenAI GPT traces).

    The paper models burstiness with Gamma-distributed request inter-arrival times and token lengths with a
    Zipf (power-law) shape; its public trace has request lengths from a few tokens to ~31k and responses up to
    ~12.5k, typically hundreds. This generator uses (our parameter choices, not fitted to the trace, which is
    not downloaded):

    - arrivals: Gamma inter-arrival gaps with mean 1/rate and coefficient of variation ``cv`` (default 3: bursty);
    - input tokens: Zipf-like power law, Pareto with tail index 1.2 and scale 200 tokens, clipped to [1, max_input];
    - output tokens: lognormal, median 250 and log-std 0.9, clipped to [1, max_output].

    Returns a `Workload` holding the drawn trace.
    """
    check_int("burstgpt_like", "n_requests", n_requests, lo=1)
    check_real("burstgpt_like", "rate", rate, gt=0, what="requests/s")
    check_int("burstgpt_like", "seed", seed, lo=0)
    check_real("burstgpt_like", "cv", cv, gt=0)
    check_int("burstgpt_like", "max_input", max_input, lo=1, what="tokens")
    check_int("burstgpt_like", "max_output", max_output, lo=1, what="tokens")
    s_arr, s_in, s_out = np.random.SeedSequence(seed).spawn(3)
    arr = arrival_times(n_requests, rate, "gamma", cv, np.random.default_rng(s_arr))
    pareto = np.random.default_rng(s_in).pareto(1.2, n_requests)
    inp = np.clip(np.rint(200.0 * (1.0 + pareto) - 150.0), 1, max_input).astype(np.int64)
    out = np.clip(np.rint(np.random.default_rng(s_out).lognormal(math.log(250.0), 0.9, n_requests)),
                  1, max_output).astype(np.int64)
    df = pd.DataFrame({"arrival_s": arr, "input_tokens": inp, "output_tokens": out})
    return Workload(trace=df, seed=seed)
