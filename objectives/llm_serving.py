"""The LLM serving objective: a study's ``evaluate`` over deployment knobs, at analytical or simulated fidelity,
and the step that confirms an analytical front in the simulator.

    obj = objectives.llm_serving_objective("Llama-3.1-70B",
                                           workload=serving.Workload(rate=4.0, input_len=2048, output_len=256),
                                           slo=serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99"))
    study = dse.create_study("x", space, objectives={"tok_s_per_user": "max", "usd_per_mtok": "min"},
                             constraints=obj.constraints)
    study.optimize(obj)
    # or, the front confirmed in the simulator: every point on it meets the SLO when simulated
    study.optimize(obj.confirming({"tok_s_per_user": "max", "usd_per_mtok": "min"}), batch_size=len(space.grid()))

Configuration columns read (from the space, else ``defaults``, else the default in brackets): gpu, tp [1],
pp [1], dp [1], ep [1], weight_dtype [None: the checkpoint's format, `inference.resolve`'s rule: fp8 for an FP8
checkpoint, bf16 for an unquantized one; as `inference.estimate`, ``dse capacity`` and ``dse deploy``], act_dtype
[the inference model's rule], kv_dtype [idem],
mode [agg], prefill_replicas (disagg), attn_dp [1] (attention data-parallel ranks per replica: a replica runs on
tp x pp x attn_dp GPUs, ep spreads the experts over its tp x attn_dp GPUs), prefill_gpu, prefill_tp, prefill_ep and
prefill_attn_dp (disagg: the prefill pool's GPU type, TP, EP and attention DP per worker [gpu, tp, ep, attn_dp];
gpu, tp, ep, attn_dp and dp - prefill_replicas workers are then the decode pool), max_batch_size [256],
max_num_tokens [8192], chunked_prefill [True], batching [continuous], engine [None: the GPU's newest vLLM
profile, the roofline where it has none; "roofline" for the closed form], eplb [False] (True or False: an
expert-parallel load balancer, vLLM / SGLang ``--enable-eplb`` or TensorRT-LLM's MoE load balancer, in every pool;
pools with ep > 1 are costed at balanced expert load, ep == 1 ones are unaffected, and an ep that does not divide
the experts runs with one anyway; passed to every `inference.estimate` / `max_throughput` call of the analytical
model and to `serving.simulate`), moe_act_dtype [None: "auto"] ("auto", "bf16" or "mxfp8": the activations MXFP4
experts such as gpt-oss's compute with in every pool, TensorRT-LLM OVERRIDE_QUANT_ALGO, SGLang
``--flashinfer-mxfp4-moe-precision``, vLLM VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8; "auto" each engine's default
kernel; other experts ignore it; `inference.estimate`), moe_a2a [None: "auto"] ("auto", "allgather" or "deepep":
how every pool's EP group across attention-DP ranks exchanges its tokens, SGLang ``--moe-a2a-backend``, vLLM
``--all2all-backend``; "auto" each engine's rule; a value other than "auto" on a dense model, without such an EP
group or on an engine that does not run it gives fits 0 with a reason; `inference.estimate`), prefix_caching [True] (True or False: reuse the KV of
prompt blocks already computed, vLLM ``--enable-prefix-caching``, SGLang's radix cache, TensorRT-LLM's
``kv_cache_config.enable_block_reuse``; True by default, as every one of these engines defaults it; it changes
only workloads whose requests carry prompt hash blocks, a Mooncake trace: the analytical model's hit rate is
`serving.prefix`'s, the simulator's ``Scheduler(prefix_caching=)``; docs/prefix_caching.md), adp_balance [False]
(True or False: TensorRT-LLM's attention-DP balance, ``attention_dp_config.enable_balance`` at its default
iterations: it holds the attention-DP ranks' prompts back until they run together, `inference.max_throughput`'s
``adp_balance`` and the simulator's ``Scheduler(adp_balance=)``; it changes only aggregated MoE deployments with
attn_dp > 1; TensorRT-LLM alone has it, other engines' rows read it as a what-if and `dse deploy` refuses it there),
speculative [None: off] (speculative decoding on the aggregated replicas and the decode pool, whose prefill
pool runs the draft layer's prefill of each prompt, a what-if of
acceptance rates the user gives: an `inference.Speculative`, its label "method:draft_tokens:acceptance" such as
"mtp:3:0.8,0.6,0.4" or "eagle:2:0.7", a mapping of its fields, or None / "off"; `spaces.llm_serving`'s
``speculative`` knob holds the labels; "mtp" on a model whose config declares no MTP module is refused; priced by
`inference.speculative`: k drafts and a verify of k + 1 tokens per decode iteration, 1 + a1 + a1 a2 + ... tokens
emitted, the draft layer's weights and KV, k draft tokens' slots a decoding sequence; `inference.max_throughput`
and `serving.simulate` take it; `dse deploy` launches each engine's speculative flags).

Metrics (one row per configuration): ttft_ms, tpot_ms, e2e_ms (means, ms) and their p50/p90/p99
(``ttft_ms_p99``, ...), tok_s_per_gpu (output tokens/s per GPU), tok_s_per_user (1000 / tpot_ms),
throughput_tok_s (whole deployment), requests_per_s (completed), usd_per_mtok (USD per million output tokens),
joules_per_tok (J per output token), mem_per_gpu_gib (GiB), batch_size (sequences in flight per decode
replica), quality (accuracy recovery of the precision format vs bf16, %; ``objectives.accuracy``), fits (1.0
when the deployment runs), n_gpus, slo_attainment (fraction of requests meeting the SLO's per-request bounds),
goodput_req_s (requests/s meeting them), prefix_hit_rate (share of prompt tokens served from the prefix cache, 0..1;
0 where caching is off or the workload's requests carry no hash blocks) and, with ``capacity=True``, capacity_req_s (highest open-loop rate
meeting the SLO, requests/s; computed for the configurations that meet the SLO under the workload, NaN for the
others). Analytical fidelity: `serving.ServingModel` (objectives/serving/analytical.py).
Simulated fidelity: one ``serving.simulate`` run per configuration; a workload sent all at once with no
concurrency is simulated closed-loop at the analytical batch (dp x N users). A workload arriving at a rate or as a
trace's own times has its per-request latencies and attainment measured over the run's steady part, as
`serving.capacity` judges a rate (`serving.capacity.steady_run`; throughput stays the whole run's); a closed loop
and requests sent all at once are measured whole.

Uncertainty bands (``interval=0.8``): ``<m>_lo`` / ``<m>_hi`` for m in `BANDED` (the split-conformal prediction
interval of `objectives.uncertainty`, keyed by each configuration's source, engine and GPU family; the simulated
fidelity scales the same band around the simulated value). Robust SLOs (``confidence=0.9``): the SLO must hold at
the one-sided 90 % bound, i.e. the constraints are the SLO's metrics with ``_hi`` (``ttft_ms_p99_hi <= SLO``) and
the band level 2 x 0.9 - 1 = 0.8. The engine's spelling does the same: ``constraints={"ttft_ms_p99": ("<=", 2000,
0.9)}`` sets the band level 0.8, and ``obj.constraints`` hands the study those constraints (checked by the engine on
``ttft_ms_p99_hi``). A study ranks by the pessimistic end by naming it as an objective, e.g.
``objectives={"tok_s_per_gpu_lo": "max", "usd_per_mtok_hi": "min"}``.
"""
from __future__ import annotations

import dataclasses
import html
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import dse
import dse.fidelity
from dse import ObjectiveError

from . import serving
from .catalog.carry import CarriesModel
from .inference.core import reusing_prepared
from .metric_units import METRIC_UNITS
from .provenance import SERVING_DATA, data_digest, setup_digest
from .serving.analytical import Deployments, ServingModel
from .serving.capacity import SETTLE_RUNS, replays, steady_judged, steady_run, steady_slots
from .serving.simulator import STEADY_RUNS

log = logging.getLogger(__name__)

VERSION = "2"
FIDELITIES = ("analytical", "simulated")

#: Defaults for configuration columns a space does not have.
DEFAULTS: dict[str, Any] = {
    "tp": 1, "pp": 1, "dp": 1, "ep": 1, "weight_dtype": None, "act_dtype": None, "kv_dtype": None,
    "mode": "agg", "prefill_replicas": None, "max_batch_size": 256, "max_num_tokens": 8192, "chunked_prefill": True,
    "batching": "continuous", "engine": None, "prefill_gpu": None, "prefill_tp": None,
    "attn_dp": 1, "prefill_ep": None, "prefill_attn_dp": None, "eplb": False, "moe_act_dtype": None,
    "prefix_caching": True, "moe_a2a": None, "prefill_pp": None, "prefill_weight_dtype": None,
    "prefill_act_dtype": None, "prefill_kv_dtype": None, "adp_balance": False, "speculative": None,
}

#: Metrics every fidelity returns.
METRICS = ("ttft_ms", "tpot_ms", "tok_s_per_gpu", "tok_s_per_user", "throughput_tok_s", "usd_per_mtok",
           "joules_per_tok", "mem_per_gpu_gib", "batch_size", "quality", "fits", "n_gpus", "prefix_hit_rate")
_OPTIONAL = ("weight_dtype", "act_dtype", "kv_dtype", "moe_act_dtype", "moe_a2a", "prefill_replicas", "engine", "prefill_gpu", "prefill_tp", "prefill_ep",
             "prefill_attn_dp", "prefill_pp", "prefill_weight_dtype", "prefill_act_dtype", "prefill_kv_dtype",
             "speculative")
#: Metrics that get ``_lo`` / ``_hi`` bands with ``interval=``: metric -> (band metric, sign; -1 = inverse)
BANDED: dict[str, tuple[str, int]] = {
    "ttft_ms": ("ttft", 1), "tpot_ms": ("tpot", 1), "e2e_ms": ("e2e", 1), "tok_s_per_gpu": ("throughput", 1),
    "tok_s_per_user": ("tpot", -1), "throughput_tok_s": ("throughput", 1), "usd_per_mtok": ("throughput", -1),
    "joules_per_tok": ("throughput", -1),
    **{f"{m}_ms_{p}": (m, 1) for m in ("ttft", "tpot", "e2e") for p in ("p50", "p90", "p99")}}


# ---------------------------------------------------------------------------------------------------------------
# The knob adapter: a study's configuration columns -> serving.Deployments
# ---------------------------------------------------------------------------------------------------------------

def _column(df: pd.DataFrame, name: str, defaults: Mapping[str, Any], n: int) -> np.ndarray:
    """Column ``name`` of the batch with missing values (inactive parameters) filled from the defaults."""
    default = defaults.get(name, DEFAULTS.get(name))
    if name not in df.columns:
        if default is None and name not in _OPTIONAL:
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
    """A degree or batch-limit column as int64: whole numbers >= 1 (2.0 and "2" are 2); a fractional, missing or
    non-positive value raises ObjectiveError naming the column and the value (truncating tp=2.5 to 2 costed
    another deployment)."""
    try:
        f = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ObjectiveError(f"column {name!r} must hold integers, got {x[:3].tolist()}") from None
    bad = ~(f >= 1) | (f % 1 != 0)
    if bad.any():
        raise ObjectiveError(f"column {name!r}: {np.asarray(x, dtype=object)[bad][0]!r} must be a whole number >= 1")
    return f.astype(np.int64)


def deployments(df: pd.DataFrame, defaults: Mapping[str, Any] | None = None) -> Deployments:
    """The deployments a DataFrame of study configurations describes (missing knobs from ``defaults``, then
    `DEFAULTS`); ObjectiveError naming the bad column and the valid values."""
    defaults = defaults or {}
    n = len(df)
    c = {k: _column(df, k, defaults, n) for k in ("gpu", *DEFAULTS)}
    mode = np.asarray(c["mode"], dtype=object)
    dis = mode == "disagg"
    pr = np.where(dis, pd.to_numeric(pd.Series(c["prefill_replicas"], dtype=object), errors="coerce")
                  .fillna(0).to_numpy(float), 0).astype(np.int64)
    try:
        return Deployments(
            gpu=np.asarray(c["gpu"], dtype=object), tp=_ints(c["tp"], "tp"), pp=_ints(c["pp"], "pp"),
            dp=_ints(c["dp"], "dp"), ep=_ints(c["ep"], "ep"), weight_dtype=np.asarray(c["weight_dtype"], dtype=object),
            act_dtype=np.asarray(c["act_dtype"], dtype=object), kv_dtype=np.asarray(c["kv_dtype"], dtype=object),
            mode=mode, prefill_replicas=pr, max_batch_size=_ints(c["max_batch_size"], "max_batch_size"),
            max_num_tokens=_ints(c["max_num_tokens"], "max_num_tokens"),
            chunked_prefill=np.asarray(c["chunked_prefill"], dtype=bool),
            batching=np.asarray(c["batching"], dtype=object),
            engine=np.array([None if e is None or (isinstance(e, float) and e != e) else str(e) for e in c["engine"]],
                            dtype=object),
            prefill_gpu=np.asarray(c["prefill_gpu"], dtype=object), prefill_tp=np.asarray(c["prefill_tp"], dtype=object),
            attn_dp=_ints(c["attn_dp"], "attn_dp"), prefill_ep=np.asarray(c["prefill_ep"], dtype=object),
            prefill_attn_dp=np.asarray(c["prefill_attn_dp"], dtype=object),
            eplb=np.asarray(c["eplb"], dtype=object), moe_act_dtype=np.asarray(c["moe_act_dtype"], dtype=object),
            prefix_caching=np.asarray(c["prefix_caching"], dtype=object),
            moe_a2a=np.asarray(c["moe_a2a"], dtype=object),
            # the prefill pool's own PP and dtypes (disaggregated mode; missing: the decode pool's)
            **{k: np.asarray(c[k], dtype=object) for k in ("prefill_pp", "prefill_weight_dtype", "prefill_act_dtype",
                                                           "prefill_kv_dtype")},
            adp_balance=np.asarray(c["adp_balance"], dtype=object),
            speculative=c["speculative"],
        )
    except ValueError as exc:
        raise ObjectiveError(str(exc)) from None


def _quality(resolved: pd.DataFrame) -> np.ndarray:
    """Accuracy recovery (%) of each configuration's resolved precision format (objectives.accuracy)."""
    from . import accuracy

    q = accuracy.quality(resolved["weight_dtype"].astype(str).to_numpy(object),
                         resolved["act_dtype"].astype(str).to_numpy(object),
                         resolved["kv_dtype"].astype(str).to_numpy(object))
    return np.asarray(q, dtype=float)


# ---------------------------------------------------------------------------------------------------------------
# The objective
# ---------------------------------------------------------------------------------------------------------------

class LLMServingObjective(CarriesModel):
    """A study's ``evaluate`` for serving one LLM (see the module docstring); build it with
    :func:`llm_serving_objective`. Callable on a DataFrame of configurations (``@dse.vectorized``).

    Attributes: model, workload (serving.Workload), slo (serving.SLO), fidelity, prices, defaults, n_requests,
    capacity (add capacity_req_s), constraints (metric -> (op, bound): the SLO and ``fits == 1``; or the
    ``constraints=`` given, with ``fits == 1``), dse_band_level (the level of its ``_lo`` / ``_hi`` bands, None
    without: the engine checks it against constraints met with a confidence).
    """

    def __init__(self, model: str, workload: serving.Workload, slo: serving.SLO, fidelity: str,
                 prices: Mapping[str, float] | None, defaults: Mapping[str, Any], n_requests: int,
                 capacity: bool = False, interval: float | None = None, confidence: float | None = None,
                 profile: str | None = None, constraints: Mapping[str, tuple] | None = None) -> None:
        self.model = model
        self.carry_model()   # its record travels into worker processes (`catalog.carry.CarriesModel`)
        self.profile = profile
        # the shipped data's digest, and a calibrated profile's hash (`dse calibrate`), go into the provenance
        efficiency, version = None, f"{VERSION}+data.{data_digest(SERVING_DATA)}"
        inputs: dict[str, Any] = {}
        if profile is not None:
            from .calibration.calibrate import load_profile, profile_provenance
            efficiency = load_profile(profile)
            version = f"{version}+profile.{str(efficiency.meta['sha256'])[:12]}"  # the factors' hash
            inputs = {"calibrated_profile": profile_provenance(profile, efficiency)}
        self.interval = interval
        self.confidence = confidence
        self.given_constraints = dict(constraints) if constraints is not None else None
        self.workload = workload
        self.slo = slo
        self.fidelity = fidelity
        from .catalog import gpu as catalog_gpu
        # keyed by canonical name, as the cost model looks prices up (an alias, "B60", prices "Arc-Pro-B60")
        self.prices = {catalog_gpu(k).name: v for k, v in prices.items()} if prices else None
        self._unpriced_warned: set[str] = set()   # GPUs whose missing price was logged (`_warn_unpriced`)
        self.defaults = dict(defaults)
        self.n_requests = n_requests
        self.capacity = capacity
        # the analytical model queues a run of as many requests as the simulator sends (its backlog grows with them)
        sized = workload if workload.n_requests is not None or workload.trace is not None else \
            dataclasses.replace(workload, n_requests=n_requests)
        self.serving_model = ServingModel(model, sized, self.prices, efficiency)
        self.input_len, self.output_len = self.serving_model.input_len, self.serving_model.output_len
        # ... and what else the numbers depend on: a study resumed with another workload is refused (`setup_digest`)
        parts = {"model": model, "workload": workload, "slo": slo, "prices": sorted((self.prices or {}).items()),
                 "defaults": sorted(self.defaults.items()), "n_requests": n_requests, "capacity": capacity,
                 "interval": interval, "confidence": confidence,
                 "constraints": None if constraints is None else sorted((self.given_constraints or {}).items())}
        setup = setup_digest(*parts.values())
        # ... each of them in words, so that a study refused on resume names the one that changed
        # (`dse.evaluation.objective_differences`)
        inputs["setup"] = {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
                           for k, v in parts.items()}
        dse.vectorized(self, name=f"llm_serving/{fidelity}", version=f"{version}+setup.{setup}", inputs=inputs,
                       units=METRIC_UNITS)
        self.dse_band_level = interval   # declared to the engine (dse.ObjectiveSpec.check_objective)

    def __repr__(self) -> str:
        return (f"llm_serving_objective({self.model!r}, fidelity={self.fidelity!r}, input_len={self.input_len:g}, "
                f"output_len={self.output_len:g}, slo={self.slo})")

    def at_fidelity(self, fidelity: str, n_requests: int | None = None) -> LLMServingObjective:
        """The same objective (model, workload, SLO, prices, defaults) at another fidelity."""
        return LLMServingObjective(self.model, self.workload, self.slo, fidelity, self.prices, self.defaults,
                                   n_requests or self.n_requests, self.capacity, self.interval, self.confidence,
                                   self.profile, self.given_constraints)

    @property
    def constraints(self) -> dict[str, tuple]:
        """Constraints for ``dse.create_study(constraints=...)``: the ``constraints=`` given to
        `llm_serving_objective` (``(op, bound, confidence)`` ones checked by the engine on the band ends) and
        ``fits == 1``; else the SLO's bounds on its statistic (``ttft_ms_p99 <= ...`` or ``ttft_ms <= ...`` for
        means) and ``fits == 1``, with a ``confidence`` on the upper band ends (``ttft_ms_p99_hi``: the SLO met
        with that confidence)."""
        if self.given_constraints is not None:
            return {**self.given_constraints, "fits": self.given_constraints.get("fits", ("==", 1.0))}
        end = "_hi" if self.confidence is not None else ""
        return {**{m + end: c for m, c in self.slo.constraints.items()}, "fits": ("==", 1.0)}

    @reusing_prepared()
    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(df, pd.DataFrame):
            raise ObjectiveError(f"the LLM serving objective takes a DataFrame of configurations, got {type(df).__name__}")
        if len(df) == 0:
            bands = [m + e for m in BANDED for e in ("_lo", "_hi")] if self.interval is not None else []
            return pd.DataFrame({m: np.zeros(0) for m in (*METRICS, *bands)})
        d = deployments(df.reset_index(drop=True), self.defaults)
        _check_speculative(d, self.model)
        if self.fidelity == "analytical":
            return self.analytical(d)
        return self.simulated(d)

    # -- analytical ------------------------------------------------------------------------------------------
    def analytical(self, d: Deployments) -> pd.DataFrame:
        """Metrics of every configuration from the analytical serving model."""
        mt = self.serving_model.evaluate(d, self.slo)
        self._warn_unpriced(d)
        resolved = mt.attrs.get("resolved")
        if resolved is not None:
            # a disaggregated deployment's prefill pool computes the prompt's KV cache: the lower of its pools'
            pre = mt.attrs.get("resolved_prefill")
            q = _quality(resolved) if pre is None else np.minimum(_quality(resolved), _quality(pre))
            mt.insert(mt.columns.get_loc("fits"), "quality", q)
        if self.capacity:
            # only where the SLO holds at the workload's own load (the others hold less than it: NaN)
            cap = np.full(len(d), np.nan)
            good = (mt["fits"].to_numpy(float) == 1.0).copy()
            for metric, (_, bound) in self.slo.constraints.items():
                good &= mt[metric].to_numpy(float) <= bound
            ok = np.flatnonzero(good)
            if len(ok):
                cap[ok] = self.serving_model.capacity(d.take(ok), self.slo, tol=0.02)
            mt["capacity_req_s"] = cap
        if self.interval is not None and resolved is not None:
            from .uncertainty import load_bands
            bands = load_bands().intervals({m: mt[m].to_numpy(float) for m in BANDED}, BANDED, self.interval,
                                           kind="inference", source=resolved["source"], engine=resolved["engine"],
                                           gpu=resolved["gpu"])
            for k, v in bands.items():
                mt[k] = v
        mt.attrs = {}
        return mt

    def _warn_unpriced(self, d: Deployments) -> None:
        """Log, once per GPU, that a GPU of these deployments has no catalog price (`catalog.has_price`) and no
        `prices` override: its rows' usd_per_mtok is NaN, which fails any trial that needs the metric (dse refuses
        non-finite metric values) rather than ranking it."""
        from .catalog import gpu as catalog_gpu
        from .catalog.gpu_records import has_price
        given = set(self.prices or {})
        warned = self._unpriced_warned
        for name in dict.fromkeys(str(g) for g in (*d.gpu, *d.prefill_gpu) if g is not None):
            rec = catalog_gpu(name)
            if rec.name not in given and rec.name not in warned and not has_price(rec):
                warned.add(rec.name)
                log.warning("%s has no public on-demand price in the catalog: usd_per_mtok is NaN for its "
                            "configurations (a study that needs it fails those trials as non-finite); pass "
                            "prices={%r: <USD per GPU-hour>} to llm_serving_objective", rec.name, rec.name)

    # -- simulated -------------------------------------------------------------------------------------------
    def simulated(self, d: Deployments) -> pd.DataFrame:
        """Metrics of every configuration from the discrete-event simulator (one run per configuration; a
        configuration the simulator cannot run keeps its analytical values and fits = 0)."""
        ana = self.analytical(d)
        rows = [self._simulate_one(d, i, ana.iloc[i]) for i in range(len(ana))]
        sim = pd.DataFrame(rows, index=ana.index)
        out = ana.copy()
        for c in sim.columns:
            if c in out.columns:
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
                                    n_requests=self.n_requests, seed=w.seed, shared_prefix=w.shared_prefix,
                                    output_spread=w.output_spread)
        if w.n_requests is None and w.trace is None:
            return serving.Workload(concurrency=w.concurrency, rate=w.rate, arrival=w.arrival, cv=w.cv,
                                    input_len=w.input_len, output_len=w.output_len, n_requests=self.n_requests,
                                    seed=w.seed, shared_prefix=w.shared_prefix, output_spread=w.output_spread)
        return w

    def _simulate_one(self, d: Deployments, i: int, analytical: pd.Series) -> dict[str, Any]:
        """Simulated metrics of configuration ``i`` of ``d``. A workload that arrives at a rate or as a trace's
        own times is judged on its run's steady part, as `serving.capacity` judges a rate
        (`capacity.steady_run`: the batches' warm-up and drain left out; a run without a steady part, or one still
        filling its batches, is run again longer, up to `capacity.SETTLE_RUNS` x `STEADY_RUNS` x the deployment's
        slots, where the objective's ``n_requests`` sized it: a workload's own count or trace is run as given). A
        closed loop and requests sent all at once are judged on the whole run."""
        nan = float("nan")
        if not analytical["fits"]:
            return {"fits": 0.0}
        cfg = d.row(i)
        dp = int(cfg["dp"])
        adp = int(cfg["attn_dp"])
        # the policy the analytical model models, chunked or not (serving.scheduler.MODELLED_POLICY)
        sched = serving.Scheduler.of_knobs(max_batch_size=int(cfg["max_batch_size"]),
                                           max_num_tokens=int(cfg["max_num_tokens"]),
                                           chunked_prefill=bool(cfg["chunked_prefill"]), batching=str(cfg["batching"]),
                                           prefix_caching=bool(cfg["prefix_caching"]),
                                           adp_balance=bool(cfg["adp_balance"]))
        kw: dict[str, Any] = dict(weight_dtype=cfg["weight_dtype"], act_dtype=cfg["act_dtype"],
                                  kv_dtype=cfg["kv_dtype"], workload=self._workload_for(analytical, dp * adp),
                                  scheduler=sched, slo=self.slo)
        if cfg["mode"] == "disagg":
            n_p = int(cfg["prefill_replicas"])
            # each pool its own GPU type, TP, PP, EP, attention DP and dtypes; the decode pool takes the deployment's
            pdt = [v if isinstance(v, str) else None for v in (cfg["prefill_weight_dtype"], cfg["prefill_act_dtype"],
                                                                  cfg["prefill_kv_dtype"])]
            kw.update(mode="disagg", prefill=serving.Pool(gpu=cfg["prefill_gpu"], tp=int(cfg["prefill_tp"]),
                                                          pp=int(cfg["prefill_pp"]), ep=int(cfg["prefill_ep"]),
                                                          attn_dp=int(cfg["prefill_attn_dp"]), n_workers=n_p,
                                                          weight_dtype=pdt[0], act_dtype=pdt[1], kv_dtype=pdt[2]),
                      decode=serving.Pool(n_workers=dp - n_p))
        else:
            kw.update(mode="agg", dp=dp)
        wl: serving.Workload = kw.pop("workload")

        def run(n: int, discard: int | str) -> dict[str, Any]:
            return serving.simulate(self.model, cfg["gpu"], int(cfg["tp"]), int(cfg["pp"]), engine=cfg["engine"],
                                    ep=int(cfg["ep"]), attn_dp=adp, profile=self.profile, eplb=bool(cfg["eplb"]),
                                    moe_act_dtype=str(cfg["moe_act_dtype"]), moe_a2a=str(cfg["moe_a2a"]),
                                    speculative=cfg["speculative"], workload=wl if n == wl.size else dataclasses.replace(wl, n_requests=n),
                                    discard=discard, **kw)
        try:
            if steady_judged(wl):
                sized = self.workload.n_requests is None and self.workload.trace is None   # n_requests ours to raise
                m, _, _ = steady_run(run, wl.size, self.slo, stationary=not replays(wl), most=(lambda: STEADY_RUNS
                                     * SETTLE_RUNS * steady_slots(self.serving_model, d.take(np.array([i]))))
                                     if sized else None)
            else:
                m = run(wl.size, 0)
        except ValueError as exc:   # the simulator refuses a replica it cannot run (e.g. no room for KV)
            return {"fits": 0.0, "reason": str(exc).splitlines()[0]}
        tpot = float(m["tpot_ms_mean"])
        n_gpus = float(m["n_gpus"])
        price = float(analytical["usd_per_mtok"]) * float(analytical["throughput_tok_s"])  # USD/Mtok x tok/s
        tput = float(m["throughput_tok_s"])
        out: dict[str, Any] = {}
        for name in ("ttft", "tpot", "e2e"):
            out[f"{name}_ms"] = float(m[f"{name}_ms_mean"])
            for p in ("p50", "p90", "p99"):
                out[f"{name}_ms_{p}"] = float(m[f"{name}_ms_{p}"])
        out.update({
            "tok_s_per_gpu": tput / n_gpus, "tok_s_per_user": 1e3 / tpot if tpot > 0 else nan,
            "throughput_tok_s": tput, "requests_per_s": float(m["requests_per_s"]),
            "usd_per_mtok": price / tput if tput > 0 else nan,
            "joules_per_tok": float(analytical["joules_per_tok"]) * float(analytical["throughput_tok_s"]) / tput
            if tput > 0 else nan,
            "slo_attainment": float(m["slo_attainment"]), "goodput_req_s": float(m["goodput_req_s"]),
            # NaN where nothing was looked up (caching off, no hash blocks): no prompt token served from cache
            "prefix_hit_rate": float(np.nan_to_num(m["prefix_cache_hit_rate"], nan=0.0)),
        })
        return out

    # -- the study report ------------------------------------------------------------------------------------
    def report_sections(self, study: Any) -> list[tuple[str, str]]:
        """The study report's section (`dse.report.objective_sections`): where the served latency of the front's
        knee and of its cheapest point (least usd_per_mtok) goes, by component (`inference.served_breakdown` at
        the point's batch in flight and the workload's mean lengths; with speculative decoding its draft / verify
        split, `inference.breakdown.SPEC_TERMS`; under a closed-loop workload its clients, ``concurrency``, as the
        objective prices them: the same TTFT and TPOT as the front's). Aggregated deployments only. Then the GPU
        prices behind usd_per_mtok (`price_section`)."""
        front = study.pareto()
        if front.empty:
            return []
        return [*self._latency_section(study, front), *self.price_section(study)]

    def price_section(self, study: Any) -> list[tuple[str, str]]:
        """The report's table of the USD per GPU-hour behind usd_per_mtok: each GPU type the study's trials ran
        on (decode and prefill pools), its price and where it comes from (``prices=`` given to the objective, or
        the catalog's quote with its month and source)."""
        from .catalog import gpu as catalog_gpu
        trials = study.trials
        names = [str(v) for c in ("gpu", "prefill_gpu") if c in trials.columns
                 for v in pd.unique(trials[c].dropna()) if str(v)]
        recs = {r.name: r for r in (catalog_gpu(n) for n in dict.fromkeys(names))}
        if not recs:
            return []
        rows = []
        for name, rec in recs.items():
            if self.prices and name in self.prices:
                usd, where = float(self.prices[name]), "prices= given to llm_serving_objective"
            else:
                usd = float(rec.price_usd_per_hour)
                src = rec.sources.get("price_usd_per_hour", "")
                where = "catalog" + (f", {rec.price_date}" if rec.price_date else "") + (f": {src}" if src else "")
            shown = "no public price (cost metrics NaN)" if usd != usd else f"{usd:.2f}"
            rows.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(shown)}</td>"
                        f"<td>{html.escape(where)}</td></tr>")
        note = ("<p class=\"sub\">usd_per_mtok = USD per GPU-hour x GPUs / output tokens per hour (in millions), "
                "at these on-demand prices; <code>llm_serving_objective(prices={gpu: usd_per_hour})</code> sets "
                "others.</p>")
        table = ("<table><thead><tr><th>GPU</th><th>USD per GPU-hour</th><th>source</th></tr></thead><tbody>"
                 + "".join(rows) + "</tbody></table>")
        return [("GPU prices behind usd_per_mtok", note + table)]

    def _latency_section(self, study: Any, front: pd.DataFrame) -> list[tuple[str, str]]:
        """`report_sections`' "Where the latency goes" section ([] where no front point is aggregated)."""
        from .inference.breakdown import served_breakdown, served_html
        picks = [("knee", study.knee())]
        if "usd_per_mtok" in front.columns:
            cheap = front.loc[front["usd_per_mtok"].astype(float).idxmin()]
            if int(cheap["number"]) == int(picks[0][1]["number"]):
                picks = [("knee and cheapest", cheap)]
            else:
                picks.append(("cheapest", cheap))
        points, sm = [], self.serving_model
        for label, row in picks:
            d = deployments(pd.DataFrame([row[study.space.names]]).reset_index(drop=True), self.defaults)
            if d.mode[0] == "disagg":   # the breakdown prices one aggregated replica
                continue
            N = float(row["batch_size"]) if "batch_size" in row and np.isfinite(float(row["batch_size"])) else None
            # a closed loop's clients split the request cycle at the first token as `ServingModel.evaluate` prices
            # them (`_at(clients=)`: max_throughput's concurrency over the deployment's dp replicas); without them
            # max_throughput's open-loop steady state gave another TPOT than the front's
            conc = self.workload.concurrency
            clients = {} if conc is None or not (d.batching[0] == "continuous" and bool(d.chunked_prefill[0])) \
                else {"concurrency": conc, "dp": int(d.dp[0])}
            bd = served_breakdown(**sm._kw(d), **clients, input_len=self.input_len, output_len=self.output_len,
                                  max_num_tokens=d.max_num_tokens, gpu_memory_utilization=sm.gpu_memory_utilization,
                                  kv_capacity_tokens=sm.kv_capacity_tokens, prefix_caching=d.prefix_caching,
                                  adp_balance=d.adp_balance,
                                  **({} if N is None else {"max_batch_size": max(math.ceil(N - 1e-9), 1)}))
            spec = d.speculative[0]
            points.append((f"{label} (trial {int(row['number'])}"
                           + ("" if spec is None else f", speculative {spec.label}") + ")", bd))
        if not points:
            return []
        note = ("<p class=\"sub\">The steady state <code>inference.max_throughput</code> prices at each point's "
                "batch in flight (<code>inference.served_breakdown</code>, the workload's mean prompt and output): "
                "a prefill-carrying iteration and a pure decode step by component, and the mean TTFT and TPOT they "
                "make (a closed loop's clients as the study prices them; the front's percentiles and an open loop's "
                "queueing come on top); with speculative decoding the draft layer's "
                "forwards (draft, draft_prefill) beside the verify's kernels, in token time. <code>dse breakdown "
                "--served</code> prints the same.</p>")
        return [("Where the latency goes (served steady state)", note + served_html(points))]

    # -- multi-fidelity --------------------------------------------------------------------------------------
    def confirming(self, objectives: Mapping[str, str], *, max_rounds: int = 50) -> ConfirmedLLMServing:
        """This objective with its front confirmed in the simulator (``dse.fidelity.Confirming``): each batch is
        screened analytically, its front simulated (this objective at simulated fidelity), and configurations that
        miss the SLO in simulation leave the front (reason in metric ``confirm_reason``), until the batch's front
        holds only simulated configurations meeting the SLO. ``objectives``: the study's objectives. The
        constrained metrics (the SLO's percentiles, fits) and the other metrics of the checked configurations are
        the simulated ones; the objectives keep their analytical values (simulated values in
        ``<objective>_simulated``), so that a systematic few-percent difference between the fidelities does not
        reorder the whole front; an objective that the SLO also bounds (e.g. minimizing ``ttft_ms_p99`` under a p99
        TTFT bound) takes its simulated value, on which the bound is judged (its analytical one in
        ``<objective>_screen``). The SLO's metrics and the mean TTFT and TPOT keep their analytical values as
        ``<metric>_screen`` too (`ConfirmedLLMServing.gaps`). Give the study the whole grid in one batch for the
        fewest simulations."""
        return ConfirmedLLMServing(self, objectives, max_rounds)


class ConfirmedLLMServing(dse.fidelity.Confirming):
    """:meth:`LLMServingObjective.confirming`: the objective, its front confirmed in the simulator. Attributes as
    `dse.fidelity.Confirming`, plus ``objective`` and its model, workload and slo."""

    def __init__(self, objective: LLMServingObjective, objectives: Mapping[str, str], max_rounds: int = 50) -> None:
        #: the metrics `gaps` compares: the SLO's, then the mean TTFT and TPOT
        self.gap_metrics = tuple(dict.fromkeys([*objective.slo.constraints, "ttft_ms", "tpot_ms"]))
        # a configuration the simulator refuses gets fits = 0 and the simulator's own words in metric "reason"
        super().__init__(objective, objective.at_fidelity("simulated"), objectives, objective.constraints,
                         label="simulated", max_rounds=max_rounds, failure="reason", keep=self.gap_metrics)
        self.objective = objective
        self.model, self.workload, self.slo = objective.model, objective.workload, objective.slo

    def gaps(self, front: pd.DataFrame) -> pd.DataFrame:
        """How far the analytical model was from the simulator on the simulated rows of ``front`` (a study's
        stored front, `study.pareto()`): per metric of ``gap_metrics`` (the SLO's percentiles, then the mean TTFT
        and TPOT), n, median and max of |analytical - simulated| / simulated (`dse.fidelity.screening_gaps`)."""
        return dse.fidelity.screening_gaps(front, self.gap_metrics, "simulated")

    @reusing_prepared()
    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        """`dse.fidelity.Confirming`'s call in one `reusing_prepared` block: the check's analytical pass over
        the front's configurations gathers the coefficients the screen prepared for them."""
        return super().__call__(df)

    def report_sections(self, study: Any) -> list[tuple[str, str]]:
        """The objective's report sections (`LLMServingObjective.report_sections`), after one on how far the
        analytical model was from the simulator on the front (`gaps`)."""
        gaps = self.gaps(study.pareto())
        gaps = gaps[gaps["n"] > 0]
        if gaps.empty:
            return self.objective.report_sections(study)
        rows = "".join(f"<tr><td>{html.escape(str(m))}</td><td>{int(g['n'])}</td><td>{100 * g['median']:.1f}</td>"
                       f"<td>{100 * g['max']:.1f}</td></tr>" for m, g in gaps.iterrows())
        table = ("<p class=\"sub\">|analytical - simulated| / simulated over the front's simulated points (the "
                 "screen's values kept as <code>&lt;metric&gt;_screen</code>).</p><table><thead><tr><th>metric</th>"
                 f"<th>points</th><th>median %</th><th>max %</th></tr></thead><tbody>{rows}</tbody></table>")
        return [("Analytical vs simulated on the front", table), *self.objective.report_sections(study)]

    def report(self, study: Any, detail: Callable[[pd.DataFrame], str] | None = None) -> str | None:
        """How the simulation changed `study`'s front, read from its stored trials (a resumed study says it too):
        "front confirmed in simulation: N configurations simulated[ (detail)], K missed the SLO and left the front
        [ (the constraints they violated)]", `detail` given the simulated trials; None before any confirmation."""
        stored = dse.fidelity.stored_confirmation(study.trials, "simulated")
        if stored is None:
            return None
        sim, left, why = stored
        more = f" ({detail(sim)})" if detail is not None else ""
        return (f"front confirmed in simulation: {len(sim)} configurations simulated{more}, {len(left)} missed the "
                f"SLO and left the front{' (' + ', '.join(why) + ')' if why else ''}")

    def gap_report(self, study: Any) -> str | None:
        """`gaps` of `study`'s front in one line: "analytical vs simulated on the front's N simulated points,
        median |a - s| / s: ttft_ms_p99 x % (max y %), ..."; None where no front point was simulated."""
        front = study.pareto()
        text = dse.fidelity.gaps_text(self.gaps(front))
        if not text:
            return None
        n = int((front["fidelity"] == "simulated").sum()) if "fidelity" in front else 0
        return f"analytical vs simulated on the front's {n} simulated points, median |a - s| / s: {text}"

    def after_text(self, study: Any, detail: Callable[[pd.DataFrame], str] | None = None, note: str = "") -> str:
        """What a confirmed study's ``after`` step prints: `report` (its ``detail``, then ``note`` appended) and
        `gap_report`, one a line, those that say something ("" where neither does); both read the stored trials, so
        a resumed study says them too."""
        lines = [] if (text := self.report(study, detail)) is None else [text + note]
        if (gaps := self.gap_report(study)) is not None:
            lines.append(gaps)
        return "\n".join(lines)


def llm_serving_objective(model: str, workload: serving.Workload | Mapping[str, Any] | None = None,
                          slo: serving.SLO | Mapping[str, Any] | None = None, fidelity: str = "analytical",
                          prices: Mapping[str, float] | None = None, *, defaults: Mapping[str, Any] | None = None,
                          n_requests: int = 2000, capacity: bool = False, interval: float | None = None,
                          confidence: float | None = None, profile: str | None = None,
                          constraints: Mapping[str, tuple] | None = None) -> LLMServingObjective:
    """The evaluate function of an LLM serving study (see the module docstring for metrics and models).

    Args:
        model: catalog name or Hugging Face id of the LLM.
        workload: ``serving.Workload`` or a mapping of its fields; default: 2048 input / 256 output tokens sent
            all at once (``rate=inf``). ``rate=r`` (requests/s, Poisson or gamma arrivals) or a trace gives the
            model its queueing; ``concurrency`` a closed loop.
        slo: ``serving.SLO`` or a mapping (``{"ttft_ms_p99": 2000, "tpot_ms_p99": 200}`` or
            ``{"ttft_ms": 2000, "tpot_ms": 200, "percentile": "p99"}``); default mean TTFT <= 2000 ms and mean
            TPOT <= 50 ms.
        fidelity: "analytical" (vectorized, ~µs per configuration) or "simulated" (discrete-event simulation of
            ``n_requests`` requests per configuration, ~0.02-1 s each).
        prices: {gpu name: USD per GPU-hour} overrides of the catalog prices.
        defaults: values for knobs the space does not have (e.g. {"gpu": "H100-SXM-80GB"}).
        n_requests: requests per simulation when the workload does not say.
        capacity: add ``capacity_req_s``, the highest open-loop request rate at which each configuration still
            meets the SLO in the analytical model (a vectorized search; ~10x the cost of one evaluation).
        interval: band level strictly between 0 and 1 (e.g. 0.8): adds ``<m>_lo`` / ``<m>_hi`` metrics for m in
            `BANDED` (stored with the study; plots draw them as error bars on the front).
        confidence: strictly between 0.5 and 1 (e.g. 0.9): the SLO must hold with that confidence; `constraints`
            then bound the SLO metrics' ``_hi`` ends and the band level is 2 x confidence - 1 (``interval``, if
            given too, must equal it).
        profile: a calibrated profile file (`dse calibrate RESULTS -o f.json`): its engine factors over the shipped
            fit in the analytical model and the simulator; its hash is part of the objective's version stored with
            the study's provenance.
        constraints: the study's metric constraints, e.g. ``{"ttft_ms_p99": ("<=", 2000, 0.9)}`` (the engine's
            spelling: ``(op, bound)``, or ``(op, bound, confidence)`` met with that confidence, checked on the
            metric's ``_hi`` end for ``<=``, ``_lo`` for ``>=``); a confidence sets the band level as
            ``confidence=`` does (one confidence for all of them, `BANDED` metrics only; ``confidence=`` and
            ``interval=``, if given too, must agree). ``objective.constraints`` returns them with ``fits == 1``.
            With ``slo=`` given too, every metric the SLO bounds must be among them (ObjectiveError otherwise:
            the study checks these constraints, not the SLO's).
    """
    from .catalog import model as model_record

    if fidelity not in FIDELITIES:
        raise ObjectiveError(f"fidelity={fidelity!r}: valid fidelities are {FIDELITIES} (multi-fidelity: "
                             f"objective.confirming(objectives) or objectives.multi_fidelity(study, objective))")
    record = model_record(model)
    name = record.name
    if workload is None:
        workload = serving.Workload(rate=math.inf, input_len=2048, output_len=256)
    elif isinstance(workload, Mapping):
        w = dict(workload)
        known = [f.name for f in dataclasses.fields(serving.Workload) if f.init]
        if unknown := [k for k in w if k not in known]:
            raise ObjectiveError(f"workload names unknown field(s) {unknown}; valid: {', '.join(known)} "
                                 f"(serving.Workload)")
        if "concurrency" not in w and "rate" not in w and "trace" not in w:
            w["rate"] = math.inf
        workload = serving.Workload(**w)
    if not isinstance(workload, serving.Workload):
        raise ObjectiveError(f"workload must be a serving.Workload or a mapping of its fields, got {workload!r:.100}")
    slo_given = slo is not None
    try:
        slo = serving.SLO(ttft_ms=2000.0, tpot_ms=50.0) if slo is None else serving.SLO.parse(slo)
    except (TypeError, ValueError) as exc:
        raise ObjectiveError(str(exc)) from None
    defaults = dict(defaults or {})
    unknown = [k for k in defaults if k not in DEFAULTS and k != "gpu"]
    if unknown:
        raise ObjectiveError(f"defaults name unknown knobs {unknown}; valid: {['gpu', *DEFAULTS]}")
    _check_defaults(defaults)
    if defaults.get("speculative") is not None:
        from .inference.speculative import as_speculative, model_refusal
        if (why := model_refusal(as_speculative(defaults["speculative"]), record)) is not None:
            raise ObjectiveError(f"defaults speculative={defaults['speculative']!r}: {why}")
    # judged on the defaults' engine (None: the GPU's vLLM); dse deploy and simulate refuse it too, on their own engine
    if (refusal := workload.exceeds_context(record, defaults.get("engine"))) is not None:
        raise ObjectiveError(f"workload: {refusal}")
    if isinstance(n_requests, bool) or not isinstance(n_requests, int) or n_requests < 1:
        raise ObjectiveError(f"n_requests={n_requests!r} must be a positive integer")
    from .uncertainty import check_level, level_for_confidence
    if constraints is not None:
        constraints, confidence = _constraint_confidence(constraints, confidence)
        # the given constraints are the study's: an SLO bound left out of them would go unchecked
        unchecked = {m: c for m, c in slo.constraints.items() if m not in constraints} if slo_given else {}
        if unchecked:
            bounds = ", ".join(f"{m} {op} {b:g}" for m, (op, b) in unchecked.items())
            raise ObjectiveError(f"constraints={constraints} replace the SLO's bounds as the study's constraints, so "
                                 f"the SLO's {bounds} would not be checked: add {sorted(unchecked)} to constraints= "
                                 f"(with the same bound, or a confidence), or give slo= alone")
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
    try:
        return LLMServingObjective(name, workload, slo, fidelity, prices, defaults, n_requests, bool(capacity),
                                   interval, confidence, profile, constraints)
    except ValueError as exc:  # a bad profile file: named with what is wrong
        raise ObjectiveError(str(exc)) from None


#: the knobs `_check_defaults` checks, by kind: catalog GPUs, dtypes, degrees and batch limits (whole numbers >= 1;
#: the prefill pool's may be None: the decode pool's), yes / no knobs, and categorical ones with their valid values
_GPU_KNOBS = ("gpu", "prefill_gpu")
_DTYPE_KNOBS = ("weight_dtype", "act_dtype", "kv_dtype", "prefill_weight_dtype", "prefill_act_dtype",
                "prefill_kv_dtype")
_INT_KNOBS = ("tp", "pp", "dp", "ep", "attn_dp", "max_batch_size", "max_num_tokens", "prefill_replicas", "prefill_tp",
              "prefill_ep", "prefill_attn_dp", "prefill_pp")
_BOOL_KNOBS = ("chunked_prefill", "adp_balance")
#: knobs that must be a bool itself, with what it means
_STRICT_BOOL_KNOBS = {"eplb": "an expert-parallel load balancer on or off",
                      "prefix_caching": "prefix caching on, every engine's default, or off"}
_CHOICE_KNOBS = {"mode": ("agg", "disagg"), "batching": ("continuous", "static")}


def _check_defaults(defaults: Mapping[str, Any]) -> None:
    """Refuse, when the objective is built, a default knob value that every configuration taking it would fail
    on (each trial of a space without that column), naming the knob, the value and the valid ones: the checks a
    trial's column meets (the catalog's GPU names, `inference.resolve`'s dtypes and engine names, whole numbers
    >= 1, True / False). Combinations (an engine's versions on a GPU, a layout) stay the trials' to judge: a
    space's own columns may replace the defaults they depend on."""
    from .catalog import CatalogError
    from .catalog import gpu as gpu_record
    from .inference.core import engine_codes
    from .inference.measured import MOE_A2A, MOE_ACT_DTYPES
    from .inference.resolve import DTYPES, choice_codes, flag
    from .inference.speculative import as_speculative
    for k, v in defaults.items():
        try:
            if k in _STRICT_BOOL_KNOBS and not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"must be True or False ({_STRICT_BOOL_KNOBS[k]})")
            if k == "moe_act_dtype" and v is not None and v not in MOE_ACT_DTYPES:
                raise ValueError(f"valid: {', '.join(MOE_ACT_DTYPES)} or None (the MXFP4 experts' activations; None "
                                 f"and 'auto': each engine's default kernel)")
            if k == "moe_a2a" and v is not None and v not in MOE_A2A:
                raise ValueError(f"valid: {', '.join(MOE_A2A)} or None (the EP token exchange; None and 'auto': each "
                                 f"engine's rule)")
            if k in _GPU_KNOBS and v is not None:
                gpu_record(v)
            elif k in _DTYPE_KNOBS:
                choice_codes(k, v, DTYPES, allow_none=True)
            elif k == "engine":
                engine_codes(v)
            elif k in _INT_KNOBS and (v is not None or not k.startswith("prefill_")):
                _ints(np.array([v], dtype=object), k)
            elif k in _BOOL_KNOBS:
                flag(k, v)
            elif k in _CHOICE_KNOBS and v not in _CHOICE_KNOBS[k]:
                raise ValueError(f"valid: {', '.join(_CHOICE_KNOBS[k])}")
            elif k == "speculative":
                as_speculative(v)
        except (CatalogError, ValueError, TypeError) as exc:
            msg = str(exc).removeprefix(f"column {k!r}: ")
            raise ObjectiveError(f"defaults {k}={v!r}: {msg}") from None


def _check_speculative(d: Deployments, model: str) -> None:
    """ObjectiveError where a configuration asks for speculative decoding the model cannot run (`speculative.
    model_refusal`: "mtp" without an MTP module), naming the field and the model."""
    from .catalog import model as model_record
    from .inference.speculative import model_refusal
    specs = [s for s in pd.unique(d.speculative) if s is not None]
    if specs:
        record = model_record(model)
        for s in specs:
            if (why := model_refusal(s, record)) is not None:
                raise ObjectiveError(f"column 'speculative' {s.label!r}: {why}")


def _constraint_confidence(constraints: Mapping[str, Any], confidence: Any) -> tuple[dict[str, tuple], Any]:
    """The validated study constraints and the one confidence they (and ``confidence=``) ask for; ObjectiveError
    naming what disagrees."""
    from dse.objective import check_constraints

    cons = check_constraints(constraints)
    confs = {m: c[2] for m, c in cons.items() if len(c) == 3}
    unbanded = sorted(m for m in confs if m not in BANDED)
    if unbanded:
        raise ObjectiveError(f"constraints on {unbanded} have a confidence, but only these metrics have band ends: "
                             f"{list(BANDED)}")
    if len(set(confs.values())) > 1:
        raise ObjectiveError(f"constraints ask for confidences {confs}: the objective returns bands at one level, so "
                             "give every constraint the same confidence")
    if confs:
        c = next(iter(confs.values()))
        if confidence is not None and confidence != c:
            raise ObjectiveError(f"confidence={confidence!r} and the constraints' confidence {c:g} ({confs}) disagree; "
                                 "give one of them")
        confidence = c
    return cons, confidence


# ---------------------------------------------------------------------------------------------------------------
# Multi-fidelity report (read-only): how the front changes when simulated
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class MultiFidelityResult:
    """What :func:`multi_fidelity` found.

    Attributes:
        analytical: the analytical front (one row per trial: parameters and analytical metrics; in a study
            whose front was confirmed, ``objective.confirming``, each simulated metric's analytical value from its
            ``<metric>_screen`` column).
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


def multi_fidelity(study: Any, objective: LLMServingObjective, *, top: int | None = None,
                   path: str | None = None, n_requests: int | None = None) -> MultiFidelityResult:
    """Re-evaluate the study's Pareto front (the ``top`` first points, all by default) with the discrete-event
    simulator and report how the front changed, without changing the study (``objective.confirming(...)`` is the
    objective that confirms the front as it is evaluated). The simulated metrics are written to ``path`` (Parquet; default
    ``<study db dir>/<study>-simulated.parquet`` for a SQLite study, none otherwise)."""
    from dse.pareto import nondominated_mask

    if not isinstance(objective, LLMServingObjective):
        raise ObjectiveError(f"objective must come from llm_serving_objective(), got {type(objective).__name__}")
    front = study.pareto()
    if front.empty:
        raise ObjectiveError(f"study {study.name!r} has no feasible front to re-evaluate")
    if top is not None:
        front = front.head(int(top))
    # a confirmed study stores its checked metrics simulated: compare the analytical ones (``<metric>_screen``)
    front = dse.fidelity.screening_values(front.reset_index(drop=True))
    params = front[study.space.names]
    sim = objective.at_fidelity("simulated", n_requests)(params)
    sim = sim.drop(columns=[c for c in sim.columns if c in params.columns])
    table = pd.concat([front[["number", *study.space.names]], sim], axis=1)
    cons = dict(study.constraints)
    table["feasible"] = study.spec.violation(table) == 0 if cons else True
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


__all__ = ["LLMServingObjective", "ConfirmedLLMServing", "MultiFidelityResult", "llm_serving_objective", "multi_fidelity", "deployments",
           "DEFAULTS", "METRICS", "BANDED"]
