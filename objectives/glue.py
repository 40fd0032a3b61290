"""The objective glue: a study's ``evaluate`` for LLM serving, at analytical or simulated fidelity.

    obj = objectives.llm_serving_objective("Llama-3.1-70B",
                                           workload=serving.Workload(rate=math.inf, input_len=2048, output_len=256),
                                           slo=serving.SLO(ttft_ms=2000, tpot_ms=50))
    study = dse.create_study("x", space, objectives={"tok_s_per_gpu": "max", "usd_per_mtok": "min"},
                             constraints=obj.constraints)
    study.optimize(obj)
    objectives.multi_fidelity(study, obj)      # re-run the front in the discrete-event simulator

Configuration columns read (from the space, else ``defaults``, else the default in brackets): gpu, tp [1],
pp [1], dp [1], ep [1], weight_dtype [bf16], act_dtype [the inference model's rule], kv_dtype [idem],
mode [agg], prefill_replicas (disagg), max_batch_size [256], max_num_tokens [8192], chunked_prefill [True],
batching [continuous] (or static: `serving.Scheduler(batching=...)`).

Metrics (one row per configuration): ttft_ms, tpot_ms (ms), tok_s_per_gpu (output tokens/s per GPU),
tok_s_per_user (1000 / tpot_ms), throughput_tok_s (whole deployment), usd_per_mtok (USD per million output
tokens), joules_per_tok (J per output token), mem_per_gpu_gib (GiB), batch_size (sequences in flight per decode
replica), quality (accuracy recovery of the precision format vs bf16, %; from ``objectives.accuracy``),
fits (1.0 when the deployment runs, else 0.0), n_gpus.

Analytical fidelity (vectorized numpy, public ``objectives.inference`` calls only):

- agg + chunked prefill: ``inference.max_throughput`` (steady state of in-flight batching; sequences in flight
  N = min(max_batch_size, KV-cache capacity, ceil(concurrency / dp) when the workload has a concurrency)).
- agg without chunked prefill (prefill-first scheduling, vLLM v0): each cycle of N requests runs ceil(N / k)
  prefill-only iterations of k = max(1, max_num_tokens // input_len) prompts (``inference.estimate`` of a
  static batch of k prompts) and output_len - 1 pure decode steps at N sequences; decodes stall during
  prefills. TTFT = one prefill iteration + half a decode step of waiting. Cost scales with 1 / throughput at
  the GPU-hour price; energy per token scales the same way (same mean power as the chunked steady state).
- agg with ``batching == 'static'``: a batch of N requests runs ceil(N / k) prefill iterations and then decodes
  until its longest output is done (E[max of N output lengths] from the workload's lengths or trace); decode
  steps cost t(1) + (n - 1) x slope at n running sequences (slope from estimates at 1 and N), the batch
  shrinking as requests finish; each of the N users per replica spends one cycle per request (TTFT = cycle -
  (output_len - 1) x TPOT).
- disagg (``prefill_replicas`` of ``dp`` replicas prefill, the rest decode; same tp x pp per replica):
  prefill capacity k / t_prefill(k) requests per replica, decode capacity N / ((output_len - 1) x t_decode(N))
  per replica; the deployment serves the smaller of the two pool capacities. A prefill-bound deployment decodes
  at the lower occupancy that rate gives (one more estimate at that batch). TTFT = t_prefill(k) (the first token
  is emitted by the prefill worker, as the simulator counts it); the KV transfer (per-GPU KV bytes over the
  GPU's scale-up link) delays the second token and is spread over the TPOT. Queueing is not modelled: use the
  simulated fidelity for tails.

Simulated fidelity: ``serving.simulate`` per configuration (a discrete-event run of ``workload``); metrics are
the means (ttft_ms = ttft_ms_mean, ...) plus p99 tails (ttft_ms_p99, tpot_ms_p99) and slo_attainment. A
workload with ``rate=inf`` and no concurrency is simulated closed-loop at the analytical batch (dp x N users).

Uncertainty bands (``interval=0.8``): ``<m>_lo`` / ``<m>_hi`` for m in `BANDED` (the split-conformal prediction
interval of `objectives.uncertainty`, keyed by each configuration's source, engine and GPU family; the simulated
fidelity scales the same band around the simulated value). Robust SLOs (``confidence=0.9``): the SLO must hold at
the one-sided 90 % bound, i.e. the constraints are ``ttft_ms_hi <= SLO`` and ``tpot_ms_hi <= SLO`` with the band
level 2 x 0.9 - 1 = 0.8. A study ranks by the pessimistic end by naming it as an objective, e.g.
``objectives={"tok_s_per_gpu_lo": "max", "usd_per_mtok_hi": "min"}``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import dse
from dse import ObjectiveError

from . import inference, serving
from .catalog import gpu_table
from .inference.comm import kv_transfer_gbs

GIB = float(2**30)
VERSION = "1"
FIDELITIES = ("analytical", "simulated")

#: Defaults for configuration columns a space does not have.
DEFAULTS: dict[str, Any] = {
    "tp": 1, "pp": 1, "dp": 1, "ep": 1, "weight_dtype": "bf16", "act_dtype": None, "kv_dtype": None,
    "mode": "agg", "prefill_replicas": None, "max_batch_size": 256, "max_num_tokens": 8192, "chunked_prefill": True,
    "batching": "continuous", "engine": None,
}

#: Metrics every fidelity returns.
METRICS = ("ttft_ms", "tpot_ms", "tok_s_per_gpu", "tok_s_per_user", "throughput_tok_s", "usd_per_mtok",
           "joules_per_tok", "mem_per_gpu_gib", "batch_size", "quality", "fits", "n_gpus")
#: Metrics that get ``_lo`` / ``_hi`` bands with ``interval=``: metric -> (band metric, sign; -1 = inverse)
BANDED: dict[str, tuple[str, int]] = {
    "ttft_ms": ("ttft", 1), "tpot_ms": ("tpot", 1), "tok_s_per_gpu": ("throughput", 1), "tok_s_per_user": ("tpot", -1),
    "throughput_tok_s": ("throughput", 1), "usd_per_mtok": ("throughput", -1), "joules_per_tok": ("throughput", -1)}


def _length(v: Any) -> float:
    """A workload length (int or serving.Dist) as its mean, tokens."""
    if isinstance(v, (int, np.integer)):
        return float(v)
    mean = getattr(v, "mean", None)
    if mean is None:
        raise ObjectiveError(f"workload length {v!r} must be an integer or a serving.Dist with a mean")
    return float(mean() if callable(mean) else mean)


def _column(df: pd.DataFrame, name: str, defaults: Mapping[str, Any], n: int) -> np.ndarray:
    """Column ``name`` of the batch with missing values (inactive parameters) filled from the defaults."""
    default = defaults.get(name, DEFAULTS.get(name))
    if name not in df.columns:
        if default is None and name not in ("act_dtype", "kv_dtype", "prefill_replicas", "engine"):
            raise ObjectiveError(f"configurations lack {name!r}: add it to the space or pass defaults={{{name!r}: ...}}")
        out = np.empty(n, dtype=object)
        out[:] = [default] * n
        return out
    col = df[name].to_numpy()
    if col.dtype == object or col.dtype.kind == "f":
        miss = pd.isna(col)
        if miss.any():
            col = col.astype(object)
            col[miss] = default
    return col


def _ints(x: np.ndarray, name: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=float).astype(np.int64)
    except (TypeError, ValueError):
        raise ObjectiveError(f"column {name!r} must hold integers, got {x[:3].tolist()}") from None


@dataclass(frozen=True)
class Batch:
    """The knobs of a batch of configurations as numpy arrays (dtypes as object arrays, None = model default)."""

    gpu: np.ndarray
    tp: np.ndarray
    pp: np.ndarray
    dp: np.ndarray
    ep: np.ndarray
    weight_dtype: np.ndarray
    act_dtype: np.ndarray
    kv_dtype: np.ndarray
    mode: np.ndarray
    prefill_replicas: np.ndarray
    max_batch_size: np.ndarray
    max_num_tokens: np.ndarray
    chunked_prefill: np.ndarray
    batching: np.ndarray
    engine: np.ndarray          # serving engine whose measured kernel profile costs the step (None: roofline)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, defaults: Mapping[str, Any]) -> "Batch":
        n = len(df)
        c = {k: _column(df, k, defaults, n) for k in ("gpu", *DEFAULTS)}
        mode = np.asarray(c["mode"], dtype=object)
        bad = sorted({str(m) for m in mode if m not in ("agg", "disagg")})
        if bad:
            raise ObjectiveError(f"mode {bad} not allowed; valid modes: 'agg', 'disagg'")
        dis = mode == "disagg"
        pr = np.where(dis, pd.to_numeric(pd.Series(c["prefill_replicas"], dtype=object), errors="coerce")
                      .fillna(0).to_numpy(float), 0).astype(np.int64)
        dp = _ints(c["dp"], "dp")
        if dis.any() and (np.any(pr[dis] < 1) or np.any(pr[dis] >= dp[dis])):
            i = int(np.flatnonzero(dis & ((pr < 1) | (pr >= dp)))[0])
            raise ObjectiveError(f"disagg configuration needs 1 <= prefill_replicas < dp, got prefill_replicas={pr[i]} "
                                 f"dp={dp[i]}")
        batching = _batching(c["batching"])
        if (dis & (batching == "static")).any():
            raise ObjectiveError("batching 'static' is modelled in aggregated mode only (mode 'agg'); disaggregated "
                                 "pools batch continuously")
        return cls(
            gpu=np.asarray(c["gpu"], dtype=object), tp=_ints(c["tp"], "tp"), pp=_ints(c["pp"], "pp"), dp=dp,
            ep=_ints(c["ep"], "ep"), weight_dtype=np.asarray(c["weight_dtype"], dtype=object),
            act_dtype=np.asarray(c["act_dtype"], dtype=object), kv_dtype=np.asarray(c["kv_dtype"], dtype=object),
            mode=mode, prefill_replicas=pr, max_batch_size=_ints(c["max_batch_size"], "max_batch_size"),
            max_num_tokens=_ints(c["max_num_tokens"], "max_num_tokens"),
            chunked_prefill=np.asarray(c["chunked_prefill"], dtype=bool),
            batching=batching,
            engine=np.array([None if e is None or (isinstance(e, float) and e != e) else str(e) for e in c["engine"]],
                            dtype=object),
        )

    def take(self, idx: np.ndarray) -> "Batch":
        return Batch(**{k: getattr(self, k)[idx] for k in self.__dataclass_fields__})

    def row(self, i: int) -> dict[str, Any]:
        return {k: getattr(self, k)[i] for k in self.__dataclass_fields__}


def _batching(col: np.ndarray) -> np.ndarray:
    """The batching column, checked: 'continuous' or 'static' (serving.Scheduler's batching policies)."""
    a = np.asarray(col, dtype=object)
    bad = sorted({str(v) for v in a if v not in ("continuous", "static")})
    if bad:
        raise ObjectiveError(f"batching {bad} not allowed; valid: 'continuous', 'static'")
    return a


def _expected_max(sorted_values: np.ndarray, n: np.ndarray) -> np.ndarray:
    """E[max of n independent draws] from the empirical distribution of `sorted_values`, for each n (vectorized
    over the distinct n)."""
    u, counts = np.unique(sorted_values, return_counts=True)
    cdf = np.cumsum(counts) / counts.sum()
    prev = np.concatenate([[0.0], cdf[:-1]])
    nn, inv = np.unique(np.maximum(np.asarray(n, dtype=float), 1.0), return_inverse=True)
    e = (u[None, :] * (cdf[None, :] ** nn[:, None] - prev[None, :] ** nn[:, None])).sum(axis=1)
    return e[inv]


def _quality(b: Batch, resolved: pd.DataFrame) -> np.ndarray | None:
    """Accuracy recovery (%) of each configuration's precision format, from objectives.accuracy (None while that
    module is not installed: the metric is then left out)."""
    try:
        from . import accuracy
    except ImportError:
        return None

    q = accuracy.quality(resolved["weight_dtype"].astype(str).to_numpy(object),
                         resolved["act_dtype"].astype(str).to_numpy(object),
                         resolved["kv_dtype"].astype(str).to_numpy(object))
    q = q["quality"] if isinstance(q, (pd.DataFrame, Mapping)) else q
    return np.asarray(q, dtype=float)


class LLMServingObjective:
    """A study's ``evaluate`` for serving one LLM (see the module docstring); build it with
    :func:`llm_serving_objective`. Callable on a DataFrame of configurations (``@dse.vectorized``).

    Attributes: model, workload (serving.Workload), slo (serving.SLO), fidelity, prices, defaults,
    constraints (metric -> (op, bound): the SLO and ``fits == 1``), dse_name, dse_version.
    """

    def __init__(self, model: str, workload: serving.Workload, slo: serving.SLO, fidelity: str,
                 prices: Mapping[str, float] | None, defaults: Mapping[str, Any], n_requests: int,
                 interval: float | None = None, confidence: float | None = None) -> None:
        self.model = model
        self.interval = interval
        self.confidence = confidence
        self.workload = workload
        self.slo = slo
        self.fidelity = fidelity
        self.prices = dict(prices) if prices else None
        self.defaults = dict(defaults)
        self.n_requests = n_requests
        if workload.trace is not None:     # the trace's own lengths: means of the requests it sends, in whole tokens
            self.input_len, self.output_len = (float(max(1, round(x))) for x in workload.mean_lengths())
        else:
            self.input_len = _length(workload.input_len)
            self.output_len = _length(workload.output_len)
        # output lengths the workload draws (static batching runs a batch until its longest output is done)
        if workload.trace is not None:
            self._outputs = np.sort(np.asarray(workload.trace.output_tokens[:workload.size], dtype=float))
        elif isinstance(workload.output_len, serving.Dist):
            self._outputs = np.sort(workload.output_len.sample(np.random.default_rng(workload.seed), 20_000)
                                    .astype(float))
        else:
            self._outputs = np.array([float(workload.output_len)])
        # S(s) = P(output - 1 >= s), s >= 1 decode steps; _alive: S averaged over a request's decode steps, then
        # over requests (those with more than one output token)
        d = self._outputs - 1.0
        surv = 1.0 - np.searchsorted(d, np.arange(1.0, max(d[-1], 0.0) + 1.0), side="left") / len(d)
        dd = d[d >= 1].astype(np.int64)
        self._alive = float((np.cumsum(surv)[dd - 1] / dd).mean()) if len(dd) else 1.0
        dse.vectorized(self, name=f"llm_serving/{fidelity}", version=VERSION)

    def __repr__(self) -> str:
        return (f"llm_serving_objective({self.model!r}, fidelity={self.fidelity!r}, input_len={self.input_len:g}, "
                f"output_len={self.output_len:g}, slo={self.slo})")

    # -- what a study needs ---------------------------------------------------------------------------
    @property
    def constraints(self) -> dict[str, tuple[str, float]]:
        """SLO constraints for ``dse.create_study(constraints=...)``: TTFT, TPOT (ms) and ``fits == 1``; with a
        ``confidence``, on the upper band ends ``ttft_ms_hi`` / ``tpot_ms_hi`` (the SLO met with that confidence)."""
        out: dict[str, tuple[str, float]] = {}
        end = "_hi" if self.confidence is not None else ""
        if self.slo.ttft_ms is not None:
            out["ttft_ms" + end] = ("<=", float(self.slo.ttft_ms))
        if self.slo.tpot_ms is not None:
            out["tpot_ms" + end] = ("<=", float(self.slo.tpot_ms))
        out["fits"] = ("==", 1.0)
        return out

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(df, pd.DataFrame):
            raise ObjectiveError(f"the LLM serving objective takes a DataFrame of configurations, got {type(df).__name__}")
        if len(df) == 0:
            bands = [m + e for m in BANDED for e in ("_lo", "_hi")] if self.interval is not None else []
            return pd.DataFrame({m: np.zeros(0) for m in (*METRICS, *bands)})
        b = Batch.from_frame(df.reset_index(drop=True), self.defaults)
        if self.fidelity == "analytical":
            return self.analytical(b)
        return self.simulated(b)

    # -- analytical ---------------------------------------------------------------------------------
    def _common(self, b: Batch) -> dict[str, Any]:
        return dict(model=self.model, gpu=b.gpu, tp=b.tp, pp=b.pp, weight_dtype=b.weight_dtype,
                    act_dtype=b.act_dtype, kv_dtype=b.kv_dtype, ep=b.ep, prices=self.prices, engine=b.engine)

    def analytical(self, b: Batch) -> pd.DataFrame:
        """Metrics of every configuration of the batch from the analytical model (module docstring)."""
        isl, osl = self.input_len, self.output_len
        conc = self.workload.concurrency
        kw = self._common(b)
        dis = b.mode == "disagg"
        # sequences in flight per (decode) replica: the batch limit, capped by the users each replica gets
        replicas = np.where(dis, b.dp - b.prefill_replicas, b.dp)
        mbs = b.max_batch_size.astype(float)
        if conc is not None:
            mbs = np.minimum(mbs, np.ceil(conc / replicas))
        mt = inference.max_throughput(**kw, dp=b.dp, input_len=isl, output_len=osl, max_batch_size=mbs,
                                      max_num_tokens=b.max_num_tokens)
        N = mt["batch_size"].to_numpy(float)
        ttft = mt["ttft_ms"].to_numpy(float).copy()
        tpot = mt["tpot_ms"].to_numpy(float).copy()
        tput = mt["throughput_tok_s"].to_numpy(float).copy()
        mem = mt["mem_per_gpu_gib"].to_numpy(float).copy()
        fits = mt["fits"].to_numpy(bool).copy()
        n_gpus = mt["n_gpus"].to_numpy(float)
        plain = ~b.chunked_prefill & ~dis
        k = np.maximum(1.0, np.floor(b.max_num_tokens / isl))
        if plain.any() or dis.any():
            sub = np.flatnonzero(plain | dis)
            sb = b.take(sub)
            ks = np.minimum(k[sub], np.maximum(N[sub], 1.0))
            pf = inference.estimate(**self._common(sb), batch_size=ks, input_len=isl, output_len=1,
                                    max_num_tokens=sb.max_num_tokens)
            t_pf = pf["ttft_ms"].to_numpy(float)
            dec = inference.estimate(**self._common(sb), batch_size=N[sub], input_len=isl, output_len=osl,
                                     max_num_tokens=sb.max_num_tokens)
            t_dec = dec["tpot_ms"].to_numpy(float)
            p_mask = plain[sub]
            if p_mask.any():
                i = sub[p_mask]
                cycle = np.ceil(N[i] / ks[p_mask]) * t_pf[p_mask] + (osl - 1.0) * t_dec[p_mask]
                tput[i] = b.dp[i] * N[i] * osl / cycle * 1e3
                ttft[i] = t_pf[p_mask] + 0.5 * t_dec[p_mask]
                tpot[i] = (cycle - t_pf[p_mask]) / (osl - 1.0) if osl > 1 else t_dec[p_mask]
            d_mask = dis[sub]
            if d_mask.any():
                i = sub[d_mask]
                n_p = b.prefill_replicas[i].astype(float)
                n_d = (b.dp[i] - b.prefill_replicas[i]).astype(float)
                t_p, t_d = t_pf[d_mask], t_dec[d_mask]
                steps = max(osl - 1.0, 1.0)
                r_pre = n_p * ks[d_mask] / t_p                       # requests per ms the prefill pool can do
                r_dec = n_d * N[i] / (steps * t_d)                    # ... and the decode pool
                rate = np.minimum(r_pre, r_dec)
                # a prefill-bound deployment decodes fewer sequences at once: re-estimate at that occupancy
                bound = r_pre < r_dec
                if bound.any():
                    j = np.flatnonzero(bound)
                    occ = np.maximum(1.0, np.ceil(N[i][j] * rate[j] / r_dec[j]))
                    low = inference.estimate(**self._common(b.take(i[j])), batch_size=occ, input_len=isl,
                                             output_len=osl, max_num_tokens=b.max_num_tokens[i[j]])
                    t_d = t_d.copy()
                    t_d[j] = low["tpot_ms"].to_numpy(float)
                    N[i[j]] = occ
                kv_bytes = pf["kv_cache_gib"].to_numpy(float)[d_mask] * GIB / ks[d_mask]
                # each GPU's KV shard crosses the link between the pools' GPUs (one scale-up domain, else the
                # scale-out network: inference.comm.kv_transfer_gbs, per GPU here); no network known: not runnable
                tp_i = b.tp[i].astype(float)
                gname = b.gpu[i].astype(str)
                link = kv_transfer_gbs(gname, tp_i, gname, tp_i, tp_i * b.pp[i] * b.dp[i]) / tp_i
                no_net = ~np.isfinite(link)
                link = np.where(no_net, gpu_table(gname)["link_bw_gbs"].astype(float), link)
                fits[i] &= ~no_net
                xfer_ms = kv_bytes / (link * 1e9) * 1e3
                tput[i] = rate * osl * 1e3
                ttft[i] = t_p
                tpot[i] = t_d + xfer_ms / steps
                mem[i] = np.maximum(mem[i], pf["mem_per_gpu_gib"].to_numpy(float)[d_mask])
                fits[i] &= pf["fits"].to_numpy(bool)[d_mask]
        stat = (b.batching == "static") & ~dis
        if stat.any():
            # static batching: a batch of N runs ceil(N / k) prefill iterations of k prompts, then decodes until
            # its longest output is done (E[max of N output lengths] - 1 steps); finished requests wait for the
            # batch. A request's TPOT carries the prefill iterations after its own (half of the others on
            # average); its TTFT is the rest of the cycle, so that each of the N users per replica spends one
            # cycle per request (closed loop)
            i = np.flatnonzero(stat)
            sb = b.take(i)
            ks = np.minimum(k[i], np.maximum(N[i], 1.0))
            t_pf = inference.estimate(**self._common(sb), batch_size=ks, input_len=isl, output_len=1,
                                      max_num_tokens=sb.max_num_tokens)["ttft_ms"].to_numpy(float)
            t_n, t_1 = (inference.estimate(**self._common(sb), batch_size=bs, input_len=isl, output_len=osl,
                                           max_num_tokens=sb.max_num_tokens)["tpot_ms"].to_numpy(float)
                        for bs in (N[i], np.ones(len(i))))
            # the batch shrinks as its requests finish: over its E[max] - 1 decode steps it runs N (osl - 1)
            # sequence-steps; a decode step costs about t_1 + (n - 1) * slope at n sequences
            slope = np.where(N[i] > 1, (t_n - t_1) / np.maximum(N[i] - 1.0, 1.0), 0.0)
            steps = np.maximum(_expected_max(self._outputs, N[i]) - 1.0, max(osl - 1.0, 0.0))
            seq_steps = N[i] * max(osl - 1.0, 0.0)
            t_decode = steps * (t_1 - slope) + seq_steps * slope
            n_pf = np.ceil(N[i] / ks)
            cycle = n_pf * t_pf + t_decode
            tput[i] = b.dp[i] * N[i] * osl / cycle * 1e3
            # a request decodes beside 1 + (N - 1) S(s) sequences at its step s: mean over its life and over requests
            tpot[i] = t_1 + (N[i] - 1.0) * self._alive * slope + (n_pf - 1.0) * 0.5 * t_pf / max(osl - 1.0, 1.0)
            ttft[i] = cycle - max(osl - 1.0, 0.0) * tpot[i]
        if conc is not None:
            # closed loop (Little's law): each of the `conc` users cycles through wait + TTFT + decode, so at
            # throughput X (requests/s) a cycle lasts conc / X; what the service time does not fill is the wait for
            # a free slot, which the user sees as time to first token
            x_req = tput / osl                                          # requests/s
            e2e_ms = ttft + max(osl - 1.0, 0.0) * tpot
            ttft = ttft + np.maximum(0.0, conc / np.maximum(x_req, 1e-12) * 1e3 - e2e_ms)
        base = mt["throughput_tok_s"].to_numpy(float)
        scale = base / np.maximum(tput, 1e-12)
        out = pd.DataFrame({
            "ttft_ms": ttft, "tpot_ms": tpot, "tok_s_per_gpu": tput / n_gpus, "tok_s_per_user": 1e3 / tpot,
            "throughput_tok_s": tput, "usd_per_mtok": mt["usd_per_mtok"].to_numpy(float) * scale,
            "joules_per_tok": mt["joules_per_tok"].to_numpy(float) * scale, "mem_per_gpu_gib": mem,
            "batch_size": N, "fits": fits.astype(float), "n_gpus": n_gpus,
        })
        q = _quality(b, mt)
        if q is not None:
            out.insert(len(out.columns) - 2, "quality", q)
        out["reason"] = np.where(fits, "", mt["reason"].astype(str).to_numpy(object))
        out["source"] = mt["source"].astype(str).to_numpy(object)   # roofline | interpolated | extrapolated
        if self.interval is not None:
            from .uncertainty import load_bands
            bands = load_bands().intervals({m: out[m].to_numpy(float) for m in BANDED}, BANDED, self.interval,
                                           kind="inference", source=mt["source"], engine=mt["engine"], gpu=mt["gpu"])
            for k, v in bands.items():
                out[k] = v
        return out

    # -- simulated ----------------------------------------------------------------------------------
    def simulated(self, b: Batch) -> pd.DataFrame:
        """Metrics of every configuration from the discrete-event simulator (one run per configuration)."""
        ana = self.analytical(b)
        rows = []
        for i in range(len(ana)):
            rows.append(self._simulate_one(b.row(i), ana.iloc[i]))
        sim = pd.DataFrame(rows, index=ana.index)
        out = ana.copy()
        for c in sim.columns:
            if c in out.columns:   # a configuration the simulator could not run keeps its analytical values
                out[c] = sim[c].where(sim[c].notna(), out[c])
            else:
                out[c] = sim[c]
        if self.interval is not None:   # the band keeps its width relative to the value (the simulated one now)
            for m in BANDED:
                for e in ("_lo", "_hi"):
                    out[m + e] = out[m] * (ana[m + e] / ana[m])
        return out

    def _workload_for(self, analytical: pd.Series, dp: int) -> serving.Workload:
        w = self.workload
        if w.concurrency is None and (w.rate is None or math.isinf(w.rate)) and w.trace is None:
            users = max(1, int(round(analytical["batch_size"])) * dp)
            return serving.Workload(concurrency=users, input_len=w.input_len, output_len=w.output_len,
                                    n_requests=self.n_requests, seed=w.seed)
        if w.n_requests is None and w.trace is None:
            return serving.Workload(concurrency=w.concurrency, rate=w.rate, arrival=w.arrival, cv=w.cv,
                                    input_len=w.input_len, output_len=w.output_len, n_requests=self.n_requests,
                                    seed=w.seed)
        return w

    def _simulate_one(self, cfg: Mapping[str, Any], analytical: pd.Series) -> dict[str, float]:
        nan = float("nan")
        blank = {"ttft_ms_p99": nan, "tpot_ms_p99": nan, "slo_attainment": nan}
        if not analytical["fits"]:
            return {**blank, "fits": 0.0}
        dp = int(cfg["dp"])
        sched = serving.Scheduler(max_batch_size=int(cfg["max_batch_size"]), max_num_tokens=int(cfg["max_num_tokens"]),
                                  chunked_prefill=bool(cfg["chunked_prefill"]),
                                  policy="decode_priority" if cfg["chunked_prefill"] else "prefill_first",
                                  batching=str(cfg["batching"]))
        kw = dict(weight_dtype=cfg["weight_dtype"], act_dtype=cfg["act_dtype"], kv_dtype=cfg["kv_dtype"],
                  workload=self._workload_for(analytical, dp), scheduler=sched, slo=self.slo)
        if cfg["mode"] == "disagg":
            n_p = int(cfg["prefill_replicas"])
            kw.update(mode="disagg", prefill=serving.Pool(n_workers=n_p), decode=serving.Pool(n_workers=dp - n_p))
        else:
            kw.update(mode="agg", dp=dp)
        try:
            m = serving.simulate(self.model, cfg["gpu"], int(cfg["tp"]), int(cfg["pp"]), engine=cfg["engine"],
                                 ep=int(cfg["ep"]), **kw)
        except ValueError as exc:   # the simulator refuses a replica it cannot run (e.g. no room for KV)
            return {**blank, "fits": 0.0, "reason": str(exc).splitlines()[0]}
        tpot = float(m["tpot_ms_mean"])
        n_gpus = float(m["n_gpus"])
        price = float(analytical["usd_per_mtok"]) * float(analytical["throughput_tok_s"])  # USD/Mtok x tok/s
        tput = float(m["throughput_tok_s"])
        return {
            "ttft_ms": float(m["ttft_ms_mean"]), "tpot_ms": tpot, "ttft_ms_p99": float(m["ttft_ms_p99"]),
            "tpot_ms_p99": float(m["tpot_ms_p99"]), "tok_s_per_gpu": tput / n_gpus,
            "tok_s_per_user": 1e3 / tpot if tpot > 0 else nan, "throughput_tok_s": tput,
            "usd_per_mtok": price / tput if tput > 0 else nan,
            "joules_per_tok": float(analytical["joules_per_tok"]) * float(analytical["throughput_tok_s"]) / tput
            if tput > 0 else nan,
            "slo_attainment": float(m.get("slo_attainment", nan)),
        }


def llm_serving_objective(model: str, workload: serving.Workload | Mapping[str, Any] | None = None,
                          slo: serving.SLO | Mapping[str, float] | None = None, fidelity: str = "analytical",
                          prices: Mapping[str, float] | None = None, *, defaults: Mapping[str, Any] | None = None,
                          n_requests: int = 2000, interval: float | None = None,
                          confidence: float | None = None) -> LLMServingObjective:
    """The evaluate function of an LLM serving study (see the module docstring for metrics and models).

    Args:
        model: catalog name or Hugging Face id of the LLM.
        workload: ``serving.Workload`` or a mapping of its fields; default: 2048 input / 256 output tokens sent
            all at once (``rate=inf``: the max-throughput benchmark). With ``concurrency`` the analytical model caps
            the sequences in flight per replica at concurrency / replicas.
        slo: ``serving.SLO`` or {"ttft_ms": ..., "tpot_ms": ...}; default TTFT <= 2000 ms, TPOT <= 50 ms.
        fidelity: "analytical" (vectorized roofline, ~µs per configuration) or "simulated" (discrete-event
            simulation of ``n_requests`` requests per configuration, ~0.05-1 s each).
        prices: {gpu name: USD per GPU-hour} overrides of the catalog prices.
        defaults: values for knobs the space does not have (e.g. {"gpu": "H100-SXM-80GB"}).
        n_requests: requests per simulation when the workload does not say (enough for the closed-loop start,
            where every user sends at t=0, to weigh little in the means).
        interval: band level strictly between 0 and 1 (e.g. 0.8): adds ``<m>_lo`` / ``<m>_hi`` metrics for m in
            `BANDED` (stored with the study; plots draw them as error bars on the front).
        confidence: strictly between 0.5 and 1 (e.g. 0.9): the SLO must hold with that confidence; `constraints`
            then bound ``ttft_ms_hi`` / ``tpot_ms_hi`` and the band level is 2 x confidence - 1 (``interval``, if
            given too, must equal it).
    """
    from .catalog import model as model_record

    if fidelity not in FIDELITIES:
        raise ObjectiveError(f"fidelity={fidelity!r}: valid fidelities are {FIDELITIES} (multi-fidelity: "
                             f"objectives.multi_fidelity(study, objective))")
    name = model_record(model).name
    if workload is None:
        workload = serving.Workload(rate=math.inf, input_len=2048, output_len=256)
    elif isinstance(workload, Mapping):
        w = dict(workload)
        if "concurrency" not in w and "rate" not in w and "trace" not in w:
            w["rate"] = math.inf
        workload = serving.Workload(**w)
    if not isinstance(workload, serving.Workload):
        raise ObjectiveError(f"workload must be a serving.Workload or a mapping of its fields, got {workload!r:.100}")
    if slo is None:
        slo = serving.SLO(ttft_ms=2000.0, tpot_ms=50.0)
    elif isinstance(slo, Mapping):
        unknown = [k for k in slo if k not in ("ttft_ms", "tpot_ms")]
        if unknown:
            raise ObjectiveError(f"slo keys {unknown} unknown; valid keys: 'ttft_ms', 'tpot_ms'")
        slo = serving.SLO(**slo)
    if not isinstance(slo, serving.SLO):
        raise ObjectiveError(f"slo must be a serving.SLO or a mapping, got {slo!r:.100}")
    defaults = dict(defaults or {})
    unknown = [k for k in defaults if k not in DEFAULTS and k != "gpu"]
    if unknown:
        raise ObjectiveError(f"defaults name unknown knobs {unknown}; valid: {['gpu', *DEFAULTS]}")
    if isinstance(n_requests, bool) or not isinstance(n_requests, int) or n_requests < 1:
        raise ObjectiveError(f"n_requests={n_requests!r} must be a positive integer")
    from .uncertainty import check_level, level_for_confidence
    try:
        if interval is not None:
            interval = check_level(interval)
        if confidence is not None:
            need = level_for_confidence(confidence)
            if interval is not None and abs(interval - need) > 1e-9:
                raise ValueError(f"interval={interval!r} and confidence={confidence!r} disagree: the one-sided bound "
                                 f"at confidence c is the end of the band at level 2c - 1 = {need:g}; give one of "
                                 f"them")
            interval = need
    except ValueError as exc:
        raise ObjectiveError(str(exc)) from None
    return LLMServingObjective(name, workload, slo, fidelity, prices, defaults, n_requests, interval, confidence)


# ==============================================================================================================
# Multi-fidelity: screen analytically, re-evaluate the front in the simulator
# ==============================================================================================================


@dataclass
class MultiFidelityResult:
    """What :func:`multi_fidelity` found.

    Attributes:
        analytical: the analytical front (one row per trial: parameters and analytical metrics).
        simulated: the same configurations with the simulator's metrics (same row order), plus ``feasible``
            (the study's constraints re-checked on the simulated metrics) and ``on_front`` (non-dominated among
            the feasible simulated points).
        kept, dropped: trial numbers still on the front / off it after simulation (dominated or infeasible).
        errors: median relative error |sim - analytical| / sim of each objective and constrained metric.
        path: the Parquet file holding ``simulated`` (None when not written).
    """

    analytical: pd.DataFrame
    simulated: pd.DataFrame
    kept: list[int]
    dropped: list[int]
    errors: dict[str, float]
    path: Any = None

    def summary(self) -> str:
        """A few lines on how the front changed."""
        n = len(self.analytical)
        infeasible = int((~self.simulated["feasible"]).sum())
        err = ", ".join(f"{k} {v:.0%}" for k, v in self.errors.items())
        return (f"{n} analytical front points re-simulated: {len(self.kept)} stay on the front, {len(self.dropped)} "
                f"leave it ({infeasible} now violate a constraint); median |sim - analytical| / sim: {err}")


def _violates(values: pd.DataFrame, constraints: Mapping[str, tuple[str, float]]) -> np.ndarray:
    bad = np.zeros(len(values), dtype=bool)
    ops = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater, "==": np.equal}
    for metric, (op, bound) in constraints.items():
        v = pd.to_numeric(values[metric], errors="coerce").to_numpy(float)
        bad |= ~ops[op](v, bound)   # NaN compares False: violation
    return bad


def multi_fidelity(study: Any, objective: LLMServingObjective, *, top: int | None = None,
                   path: str | None = None, n_requests: int | None = None) -> MultiFidelityResult:
    """Two-step multi-fidelity search: the study screened the space analytically; re-evaluate its Pareto front
    (the ``top`` first points, all by default) with the discrete-event simulator and report how the front changed.

    ``objective`` is the study's analytical objective (its model, workload, SLO, prices and defaults are reused).
    The simulated metrics are written to ``path`` (Parquet; default ``<study db dir>/<study>-simulated.parquet``
    for a SQLite study, none otherwise) and returned in a :class:`MultiFidelityResult`.
    """
    from dse.pareto import nondominated_mask

    if not isinstance(objective, LLMServingObjective):
        raise ObjectiveError(f"objective must come from llm_serving_objective(), got {type(objective).__name__}")
    front = study.pareto()
    if front.empty:
        raise ObjectiveError(f"study {study.name!r} has no feasible front to re-evaluate")
    if top is not None:
        front = front.head(int(top))
    front = front.reset_index(drop=True)
    sim_obj = LLMServingObjective(objective.model, objective.workload, objective.slo, "simulated", objective.prices,
                                  objective.defaults, n_requests or objective.n_requests)
    params = front[study.space.names]
    sim = sim_obj(params)
    sim = sim.drop(columns=[c for c in sim.columns if c in params.columns])
    table = pd.concat([front[["number", *study.space.names]], sim], axis=1)
    cons = dict(study.constraints)
    table["feasible"] = ~_violates(table, cons) if cons else True
    names, dirs = list(study.objectives), list(study.objectives.values())
    on = np.zeros(len(table), dtype=bool)
    feas = table["feasible"].to_numpy(bool)
    if feas.any():
        on[np.flatnonzero(feas)] = nondominated_mask(table.loc[feas, names].to_numpy(float), dirs)
    table["on_front"] = on
    errors = {}
    for m in dict.fromkeys([*names, *[c for c in cons if c != "fits"]]):
        a = pd.to_numeric(front[m], errors="coerce").to_numpy(float)
        s = pd.to_numeric(table[m], errors="coerce").to_numpy(float)
        ok = np.isfinite(a) & np.isfinite(s) & (s != 0)
        errors[m] = float(np.median(np.abs(s[ok] - a[ok]) / np.abs(s[ok]))) if ok.any() else float("nan")
    if path is None and study.storage_url.startswith("sqlite:///"):
        from pathlib import Path

        path = str(Path(study.storage_url[len("sqlite:///"):]).resolve().parent / f"{study.name}-simulated.parquet")
    if path is not None:
        table.to_parquet(path, index=False)
    numbers = table["number"].astype(int)
    return MultiFidelityResult(front, table, numbers[on].tolist(), numbers[~on].tolist(), errors, path)
