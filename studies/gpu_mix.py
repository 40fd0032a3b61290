"""GPU mix: the cheapest mix of GPU types serving the Azure 2023 conversation trace (Llama-3.1-70B, fp8) under
TTFT <= 2 s and TPOT <= 50 ms, requests routed by size, against the best single-GPU-type deployment.

Each trial allows a subset of seven replica types (H100 x2, H100 x4, H200, H200 x2, B200, A100-80GB x4, L40S x4:
use_<gpu>[_tp<N>] = 0/1), a utilization cap (the headroom each type keeps for bursts) and a request-size bucket
granularity; its metrics are those of the integer program over request-size buckets x replica types
(objectives.mix: Melange's formulation, scipy.optimize.milp) on capacities from the analytical model. The grid
covers all 1,016 valid trials in about half a minute. Objectives: USD per hour (min) and the number of types used
(min): the front runs from the best single type to the cheapest mix. The ``after`` step then simulates the
cheapest trial and the cheapest single-type trial on the whole trace with a size-aware router
(objectives.mix.verify: a type whose pool misses the SLO has its capacity derated and the program is solved again,
over the types the trial allows, until every pool reaches 90 % SLO attainment) and prints the comparison.

The trace is ../shared/traces/azure_llm_2023_conv.csv (19,366 requests, one hour) where present, else the
1,000-request sample shipped in objectives/data/traces; it is replayed at twice its recorded rate (~11 requests/s).

    dse run studies/gpu_mix.py
"""
import logging
from pathlib import Path

import dse
from dse import Categorical
from objectives import mix, serving

log = logging.getLogger(__name__)

MODEL = "Llama-3.1-70B"
WEIGHTS = "fp8"     # A100 runs it weight-only (fp8 weights, bf16 activations)
TYPES = [mix.ReplicaType("H100-SXM-80GB", tp=2), mix.ReplicaType("H100-SXM-80GB", tp=4),
         mix.ReplicaType("H200-SXM-141GB"), mix.ReplicaType("H200-SXM-141GB", tp=2), mix.ReplicaType("B200"),
         mix.ReplicaType("A100-SXM-80GB", tp=4), mix.ReplicaType("L40S", tp=4)]
SLO = serving.SLO(ttft_ms=2000, tpot_ms=50)
RATE_SCALE = 2.0
TARGET = 0.9        # fraction of requests within the SLO in the simulated check
FULL_TRACE = Path(__file__).resolve().parents[1] / ".." / "shared" / "traces" / "azure_llm_2023_conv.csv"


def _trace() -> serving.Trace:
    if FULL_TRACE.exists():
        return serving.read_trace(FULL_TRACE).scale_rate(RATE_SCALE)
    log.warning("gpu_mix: %s not found; using the shipped 1,000-request sample", FULL_TRACE)
    return serving.traces.load_sample("azure_conv_2023").scale_rate(RATE_SCALE)


TRACE = _trace()
evaluate = mix.MixObjective(MODEL, TRACE, SLO, TYPES, weight_dtype=WEIGHTS)
USE = [mix.use_param(t) for t in TYPES]

space = dse.Space(
    **{p: Categorical([0, 1]) for p in USE},
    max_utilization=Categorical([0.6, 0.7, 0.8, 0.9]),
    buckets=Categorical(["medium", "fine"]),
    constraints=[" + ".join(USE) + " >= 1"],
)


def compare_with_best_single(study) -> None:
    """Simulate the cheapest mix and the cheapest single-type trial with the size-aware router; print both."""
    res = study.results()
    ok = res[(res["state"] == "complete") & res["feasible"].astype(bool)]
    if ok.empty:
        print("no trial serves every request size within the SLO")
        return
    allowed = ok[USE].astype(int).sum(axis=1)
    # the mix: the cheapest trial allowing several types (ties: the one allowing the most, so that the simulated
    # check may move load to any of them); the single type: the cheapest trial allowing exactly one
    mixes = ok[allowed >= 2].assign(_allowed=allowed[allowed >= 2])
    best_mix = mixes.sort_values(["cost_usd_per_h", "_allowed"], ascending=[True, False]).iloc[0]
    singles = ok[allowed == 1]
    rows = []
    for label, row in (("cheapest mix", best_mix), ("best single type", singles.loc[singles["cost_usd_per_h"].idxmin()]
                                                   if not singles.empty else None)):
        if row is None:
            print(f"{label}: none serves every request size within the SLO")
            continue
        cfg = {p: row[p] for p in [*USE, "max_utilization", "buckets"]}
        plan = evaluate.plan(cfg)
        if plan is None:  # a feasible trial always has a plan; say so rather than fail on None
            print(f"{label}: trial {cfg} has no plan (it is not feasible)")
            continue
        planned = plan.describe()
        plan, sim = mix.verify(MODEL, plan, TRACE, SLO, target=TARGET, weight_dtype=WEIGHTS)
        m = sim.metrics
        rows.append((label, planned, plan.describe(), m))
        print(f"{label} (trial {int(row['number'])}, buckets={cfg['buckets']}, max_utilization="
              f"{cfg['max_utilization']}): planned {planned}; simulated with the size-aware router: {plan.describe()}, "
              f"SLO attainment {m['slo_attainment']:.3f}, TTFT p90 {m['ttft_ms_p90']:.0f} ms, TPOT p90 "
              f"{m['tpot_ms_p90']:.1f} ms, {m['usd_per_mtok']:.3f} USD per million output tokens")
        print(sim.pools.to_string(index=False, float_format="%.4g"))
    if len(rows) == 2:
        c_mix, c_single = rows[0][3]["cost_usd_per_h"], rows[1][3]["cost_usd_per_h"]
        print(f"simulated cost: mix ${c_mix:.2f}/h vs best single type ${c_single:.2f}/h "
              f"({100 * (c_mix - c_single) / c_single:+.1f} %); both meet the SLO for >= {TARGET:.0%} of requests")


study = dse.StudySpec(
    name="gpu_mix",
    description=__doc__.strip().splitlines()[0],
    space=space,
    objectives={"cost_usd_per_h": "min", "n_types_used": "min"},
    constraints=evaluate.constraints,
    evaluate=evaluate,
    optimizer="grid",
    show=[*USE, "max_utilization", "buckets", "cost_usd_per_h", "usd_per_mtok", "n_gpus", "n_types_used"],
    after=compare_with_best_single,
)

if __name__ == "__main__":
    import sys

    from dse.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))
