"""spaces/: every builder's grid against a brute-force enumeration written from the catalog rules directly, and
no invalid point in grids or random samples."""
import itertools
import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dse
import spaces
from objectives import catalog, inference
from spaces.quantization import FORMATS, OPT_IN_FORMATS

#: the formats a space offers unless asked for more (the opt-in ones only by name or for an fp4 checkpoint)
DEFAULT_FORMATS = [wa for f, wa in FORMATS.items() if f not in OPT_IN_FORMATS]

GPUS = ["H100-SXM-80GB", "A100-SXM-80GB", "B200", "L40S", "MI300X", "Gaudi3"]


def missing(v):
    return v is None or (isinstance(v, float) and math.isnan(v))


def computes(gpu: str, dtype: str) -> bool:
    g = catalog.gpu(gpu)
    peaks = {k: v for k, v in g.peak_tflops.items() if v and v > 0}
    if dtype in ("bf16", "fp16"):
        return "bf16" in peaks or "fp16" in peaks
    return dtype in peaks


def tp_valid(m, tp):
    # DeepSeek-V4's grouped output projection: each rank holds whole groups
    groups_ok = not m.is_compressed_attention or m.o_groups % tp == 0
    return m.n_heads % tp == 0 and (tp >= m.n_kv_heads or m.n_kv_heads % tp == 0) and groups_ok


def rows(df: pd.DataFrame) -> set:
    return {tuple(None if missing(v) else v for v in r) for r in df.itertuples(index=False, name=None)}


# ---------------------------------------------------------------------------------------------------- hardware
def test_hardware_grid_and_aliases():
    s = spaces.hardware(["H100", "h100_sxm", "L40S"], max_gpus=4)
    assert s.names == ["gpu", "n_gpus"]
    assert s.params["gpu"].choices == ("H100-SXM-80GB", "L40S")      # aliases resolved, duplicates dropped
    assert len(s.grid()) == 2 * 3 == s.size                           # node shapes: 1, 2, 4 (no 3-GPU deployments)
    assert spaces.hardware("B200", 8, n_gpus=[2, 8]).params["n_gpus"].choices == (2, 8)


def test_hardware_bad_input():
    with pytest.raises(catalog.CatalogError, match="H1OO"):
        spaces.hardware(["H1OO"], 8)
    with pytest.raises(dse.SpaceError, match="max_gpus"):
        spaces.hardware(["H100"], 0)
    with pytest.raises(dse.SpaceError, match="n_gpus"):
        spaces.hardware(["H100"], 4, n_gpus=[8])
    with pytest.raises(dse.SpaceError, match="gpus"):
        spaces.hardware([], 4)


# ------------------------------------------------------------------------------------------------- parallelism
def brute_parallel(m, max_gpus, dp=True):
    out = set()
    for tp, pp in itertools.product(range(1, max_gpus + 1), repeat=2):
        for d in (range(1, max_gpus + 1) if dp else [None]):
            for ep in (range(1, max_gpus + 1) if m.n_experts else [None]):
                if not tp_valid(m, tp) or m.n_layers % pp:
                    continue
                if tp * pp * (d or 1) > max_gpus:
                    continue
                if ep is not None and (m.n_experts % ep or tp % ep):
                    continue
                out.add(tuple(x for x in (tp, pp, d, ep) if x is not None))
    return out


def test_parallelism_llama70b():
    s = spaces.parallelism("Llama-3.1-70B", 8)
    assert s.params["tp"].choices == (1, 2, 4, 8)
    assert s.params["pp"].choices == (1, 2, 4, 5, 8)          # divisors of the 80 layers
    assert "ep" not in s.names
    assert rows(s.grid()) == brute_parallel(catalog.model("Llama-3.1-70B"), 8)


def test_parallelism_moe_has_ep_inside_tp():
    m = catalog.model("Qwen3-235B-A22B")
    s = spaces.parallelism(m.name, 8, dp=False)
    assert s.names == ["tp", "pp", "ep"]
    g = s.grid()
    assert len(g) == len(brute_parallel(m, 8, dp=False))
    assert rows(g) == brute_parallel(m, 8, dp=False)
    assert (g["tp"] % g["ep"] == 0).all() and (m.n_experts % g["ep"] == 0).all()
    assert (g["ep"] > 1).any()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(catalog.models()), max_gpus=st.integers(1, 16), dp=st.booleans())
def test_parallelism_matches_brute_force_for_every_model(name, max_gpus, dp):
    m = catalog.model(name)
    s = spaces.parallelism(name, max_gpus, dp=dp)
    assert rows(s.grid()) == brute_parallel(m, max_gpus, dp)


def test_parallelism_bad_input():
    with pytest.raises(dse.SpaceError, match=r"tp=\[3\].*64 attention heads"):
        spaces.parallelism("Llama-3.1-70B", 8, tp=[3])
    with pytest.raises(dse.SpaceError, match="layers"):
        spaces.parallelism("Llama-3.1-70B", 8, pp=[3])
    with pytest.raises(dse.SpaceError, match="dense"):
        spaces.parallelism("Llama-3.1-70B", 8, ep=[2])
    with pytest.raises(catalog.CatalogError):
        spaces.parallelism("Llama-9-70B", 8)
    with pytest.raises(dse.SpaceError, match=r"ep=\[16\]: \[16\] not allowed \(at most the 8 experts\)"):
        spaces.parallelism("Mixtral-8x7B", 16, ep=[16])


def test_parallelism_takes_an_ep_that_does_not_divide_the_experts_when_asked():
    # by default only the degrees that divide the experts; asked for, wide EP 72 over a GB200 NVL72 rack on
    # DeepSeek-V3's 256 experts (288 slots, 32 redundant), as engines deploy it
    m = catalog.model("DeepSeek-V3")
    assert 72 not in spaces.parallelism(m.name, 72).params["ep"].choices
    g = spaces.llm_serving(m.name, ["GB200"], 72, n_gpus=[72], tp=[1], ep=[72], attn_dp=[72]).grid()
    assert len(g) > 0 and set(g["ep"]) == {72} and set(g["attn_dp"]) == {72}
    r = inference.estimate(m.name, "GB200", tp=1, attn_dp=72, ep=72, weight_dtype="fp8")
    assert bool(r["fits"].iloc[0]) and r["reason"].iloc[0] == ""
    # with attention DP and no ep given, the replica-wide EP joins the dividing degrees (not 3 or 6: no group)
    wide = spaces.llm_serving(m.name, ["GB200"], 72, n_gpus=[72], tp=[1], attn_dp=[72]).params["ep"].choices
    assert set(wide) == {1, 2, 4, 8, 16, 32, 64, 72}
    small = spaces.llm_serving("Qwen3-30B-A3B", ["H200"], 8, attn_dp=[1, 2, 4]).params["ep"].choices
    assert set(small) == {1, 2, 4, 8}


# ------------------------------------------------------------------------------------------------ quantization
def brute_quant(gpus, kv=("bf16", "fp8")):
    out = set()
    for g, (w, a), k in itertools.product(gpus, DEFAULT_FORMATS, kv):
        if computes(g, a):
            out.add((g, w, a, k))
    return out


def test_quantization_matches_catalog_rules():
    s = spaces.quantization(GPUS)
    g = s.grid()
    assert rows(g) == brute_quant(GPUS)
    # fp4 compute only on Blackwell here; fp8 compute never on Ampere; int4 weight-only everywhere
    assert set(g.loc[g.act_dtype == "fp4", "gpu"]) == {"B200"}
    assert not set(g.loc[g.act_dtype == "fp8", "gpu"]) & {"A100-SXM-80GB"}
    assert set(g.loc[(g.weight_dtype == "int4") & (g.act_dtype == "bf16"), "gpu"]) == set(GPUS)
    assert "int8" not in set(g.loc[g.gpu == "Gaudi3", "act_dtype"])     # Gaudi 3 lists no int8 rate
    # every rule is a stored expression (no callable)
    assert all(isinstance(c, str) for c in s.constraints)


def test_quantization_formats_and_kv():
    s = spaces.quantization(["A100"], formats=["bf16", "w4a16"], kv_dtypes=["fp8"])
    assert rows(s.grid()) == {("A100-SXM-80GB", "bf16", "bf16", "fp8"), ("A100-SXM-80GB", "int4", "bf16", "fp8")}
    assert "fp4" not in spaces.quantization(["H100", "A100"]).params["weight_dtype"].choices
    with pytest.raises(dse.SpaceError, match="fp4"):
        spaces.quantization(["A100"], formats=["fp4"])
    with pytest.raises(dse.SpaceError, match="nf4"):
        spaces.quantization(["A100"], formats=["nf4"])
    with pytest.raises(dse.SpaceError, match="kv_dtypes"):
        spaces.quantization(["A100"], kv_dtypes=["fp4"])


def test_every_kv_dtype_a_serving_space_accepts_the_objective_can_score_and_int8_is_refused():
    # issue 14: a kv_dtypes=("int8",) space was accepted and every trial then failed (the quality proxy has no
    # figure for an int8 KV cache)
    import objectives
    from objectives import accuracy

    with pytest.raises(dse.SpaceError, match=r"\['int8'\] not allowed.*every trial would fail.*valid: bf16, fp16, fp8"):
        spaces.llm_serving("Llama-3.1-8B", ["H100"], kv_dtypes=("int8",))
    space = spaces.llm_serving("Llama-3.1-8B", ["H100"], formats=["fp8"], kv_dtypes=accuracy.kv_dtypes(),
                               max_batch_sizes=(64,), max_num_tokens=(8192,), chunked_prefill=(True,))
    grid = space.grid()
    assert set(grid["kv_dtype"]) == set(accuracy.kv_dtypes())
    m = objectives.llm_serving_objective("Llama-3.1-8B")(grid)
    assert m["quality"].notna().all() and (m["fits"] == 1.0).any()


@settings(max_examples=20, deadline=None)
@given(sub=st.sets(st.sampled_from(catalog.gpus()), min_size=1, max_size=6), seed=st.integers(0, 10**6))
def test_quantization_samples_are_valid(sub, seed):
    gpus = sorted(sub)
    s = spaces.quantization(gpus)
    allowed = brute_quant(gpus)
    assert rows(s.grid()) == allowed
    assert rows(s.sample(200, seed=seed)) <= allowed


# ---------------------------------------------------------------------------------------------------- batching
def test_batching_rules():
    s = spaces.batching((64, 256, 4096), (2048, 8192), input_len=4096)
    brute = {(b, t, c) for b, t, c in itertools.product((64, 256, 4096), (2048, 8192), (True, False))
             if t >= b and (c or t >= 4096)}
    assert rows(s.grid()) == brute
    assert len(spaces.batching().grid()) == sum(1 for b, t in itertools.product(
        spaces.batching.__defaults__[0], spaces.batching.__defaults__[1]) if t >= b) * 2
    with pytest.raises(dse.SpaceError, match="max_batch_sizes"):
        spaces.batching((0, 8))
    with pytest.raises(dse.SpaceError, match="chunked_prefill"):
        spaces.batching(chunked_prefill=("yes",))


def test_serving_modes():
    s = spaces.serving(max_replicas=4)
    g = s.grid()
    assert rows(g) == {("agg", None), ("disagg", 1), ("disagg", 2), ("disagg", 3)}
    assert spaces.serving(("agg",)).names == ["mode"]
    with pytest.raises(dse.SpaceError, match="max_replicas >= 2"):
        spaces.serving(max_replicas=1)
    with pytest.raises(dse.SpaceError, match="split"):
        spaces.serving(("agg", "split"))


# ----------------------------------------------------------------------------------------------------- compose
def test_compose_merges_and_rejects_conflicts():
    a = dse.Space(x=dse.Categorical([1, 2]), y=dse.Int(0, 3), constraints=["x + y <= 4"])
    b = dse.Space(x=dse.Categorical([1, 2]), z=dse.Categorical(["p", "q"]))
    c = spaces.compose(a, b, constraints=["z != 'q' or y == 0"])
    assert c.names == ["x", "y", "z"]
    assert c.constraints == ("x + y <= 4", "z != 'q' or y == 0")
    brute = {(x, y, z) for x, y, z in itertools.product([1, 2], range(4), "pq") if x + y <= 4 and (z != "q" or y == 0)}
    assert rows(c.grid()) == brute
    with pytest.raises(dse.SpaceError, match="'x' is defined differently"):
        spaces.compose(a, dse.Space(x=dse.Categorical([1, 2, 3])))
    w = spaces.compose(a, b, when={"z": "x == 2"})
    assert w.conditions == {"z": "x == 2"}
    assert rows(w.grid()) == {(x, y, None if x == 1 else z) for x, y, z in itertools.product([1, 2], range(4), "pq")
                              if x + y <= 4}
    with pytest.raises(dse.SpaceError, match="'nope'"):
        spaces.compose(a, when={"nope": "x == 1"})


# ------------------------------------------------------------------------------------------------- llm_serving
def brute_llm(model, gpus, max_gpus, modes, mbs, mnt, input_len):
    m = catalog.model(model)
    out = set()
    with_dp = "disagg" in modes
    par = brute_parallel(m, max_gpus, dp=with_dp)
    # GPU counts follow node shapes: every GPU here comes in 8-GPU HGX nodes (1, 2, 4, 8 inside one)
    for g, n in itertools.product(gpus, [c for c in (1, 2, 4, 8) if c <= max_gpus]):
        for p in par:
            tp, pp = p[0], p[1]
            dp = p[2] if with_dp else 1
            if tp * pp * dp != n:
                continue
            for (w, a), kv in itertools.product(DEFAULT_FORMATS, ("bf16", "fp8")):
                if not computes(g, a):
                    continue
                for mode in modes:
                    for pr in ([None] if mode == "agg" else range(1, max_gpus)):
                        if mode == "agg" and dp != 1:
                            continue
                        if mode == "disagg" and not pr < dp:
                            continue
                        for b, t in itertools.product(mbs, mnt):
                            if t < b:
                                continue
                            for c in ((True, False) if mode == "agg" or len(modes) == 1 else (None,)):
                                if c is False and t < input_len:
                                    continue
                                if mode == "disagg" and t < input_len:     # its prefill pool runs whole prompts
                                    continue
                                head = (g, n, *p, w, a, kv)
                                tail = ((mode, pr) if len(modes) > 1 else ()) + (b, t, c)
                                out.add(head + tail)
    return out


@pytest.mark.parametrize("modes", [("agg",), ("agg", "disagg")])
def test_llm_serving_grid_matches_brute_force(modes):
    gpus = ["H100-SXM-80GB", "A100-SXM-80GB", "B200"]
    kw = dict(max_batch_sizes=(16, 512), max_num_tokens=(256, 8192))
    s = spaces.llm_serving("Llama-3.1-70B", gpus, 4, modes=modes, input_len=2048, **kw)
    g = s.grid()
    assert rows(g) == brute_llm("Llama-3.1-70B", gpus, 4, modes, (16, 512), (256, 8192), 2048)
    assert len(g) == s.size
    sample = s.sample(300, seed=1)
    assert rows(sample) <= rows(g)
    assert s.feasible(sample).all()


def test_llm_serving_moe_and_flagship_shape():
    s = spaces.llm_serving("Qwen3-235B-A22B", ["H200", "MI300X"], 8, modes=("agg", "disagg"), input_len=2048,
                           max_batch_sizes=(64,), max_num_tokens=(8192,))
    g = s.grid()
    assert {"ep", "mode", "prefill_replicas"} <= set(g.columns)
    assert (g.tp * g.pp * g.dp == g.n_gpus).all()
    assert (g.tp % g.ep == 0).all()
    dis = g["mode"] == "disagg"
    assert (g.loc[dis, "prefill_replicas"] < g.loc[dis, "dp"]).all()
    assert (g.loc[~dis, "dp"] == 1).all() and g.loc[~dis, "prefill_replicas"].isna().all()
    assert g.loc[dis, "chunked_prefill"].isna().all()
    # round trip through the stored form: every rule is an expression
    assert dse.Space.from_dict(s.to_dict()) == s
    flagship = spaces.llm_serving("Llama-3.1-70B", ["H100", "H200", "A100", "L40S", "B200", "MI300X"], 8,
                                  input_len=2048)
    assert flagship.size > 10_000


def test_disaggregated_pools_choose_their_own_gpu_and_tp():
    """xPyD: the prefill pool picks its GPU type and TP, the decode pool keeps gpu / tp; GPUs are counted per pool,
    the prefill GPU obeys the precision rules, and the objective prices the same GPU count."""
    import objectives
    from objectives import serving

    s = spaces.llm_serving("Llama-3.1-70B", ["H100", "H200", "A100"], 8, modes=("agg", "disagg"),
                           prefill_gpus=["H100", "A100"], formats=["fp8", "bf16"], kv_dtypes=["fp8"],
                           max_batch_sizes=(64, 256), max_num_tokens=(8192,), chunked_prefill=(True,))
    g = s.grid()
    dis, agg = g[g["mode"] == "disagg"], g[g["mode"] == "agg"]
    assert agg["prefill_gpu"].isna().all() and agg["prefill_tp"].isna().all()
    assert (dis["prefill_gpu"] != dis["gpu"]).any() and (dis["prefill_tp"] != dis["tp"]).any()
    assert not ((dis["prefill_gpu"] == "A100-SXM-80GB") & (dis["act_dtype"] == "fp8")).any()   # A100 has no FP8
    counted = dis["prefill_replicas"] * dis["prefill_tp"] * dis["pp"] + (dis["dp"] - dis["prefill_replicas"]) * \
        dis["tp"] * dis["pp"]
    assert (counted == dis["n_gpus"]).all()
    o = objectives.llm_serving_objective("Llama-3.1-70B", workload=serving.Workload(rate=4.0),
                                         slo=serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99"))
    m = o(g)
    assert (m["n_gpus"].to_numpy() == g["n_gpus"].to_numpy()).all()
    mixed = (g["mode"] == "disagg") & (g["prefill_gpu"] != g["gpu"]) & (m["fits"] == 1)
    assert mixed.any()
    with pytest.raises(dse.SpaceError, match="add .disagg. to modes"):
        spaces.llm_serving("Llama-3.1-70B", ["H100"], 8, prefill_gpus=["H100"])
    with pytest.raises(dse.SpaceError, match=r"prefill_tp=\[3\]: \[3\] not allowed \(must divide the 64 attention "
                                             r"heads .*\); valid up to max_gpus=8: \[1, 2, 4, 8\]"):
        spaces.llm_serving("Llama-3.1-70B", ["H100"], 8, modes=("disagg",), prefill_tp=[3])
    # the space's own TP / PP check (`parallelism.pick_tp`): a non-integer degree is refused, not truncated to 2
    with pytest.raises(dse.SpaceError, match=r"prefill_tp value must be an integer >= 1, got 2.5"):
        spaces.llm_serving("Llama-3.1-70B", ["H100"], 8, modes=("disagg",), prefill_tp=[2.5])


def test_llm_serving_eplb_knob_only_where_it_changes_the_deployment():
    """``eplb``: an expert-parallel load balancer as a knob, active only where a pool's EP is above 1 and divides the
    experts (no duplicate trials: EP 1 has nothing to balance, an EP that does not divide the experts runs one
    anyway); refused on a dense model and for values other than True / False."""
    m = "Qwen3-235B-A22B"                              # 128 experts
    kw = dict(n_gpus=[1, 2, 6, 8, 12, 16], tp=[1, 2], attn_dp=[1, 6, 8], ep=[1, 2, 6, 8], formats=["fp8"],
              kv_dtypes=["fp8"], max_batch_sizes=(64,), max_num_tokens=(8192,), chunked_prefill=(True,))
    base = spaces.llm_serving(m, ["H200"], 16, **kw).grid()
    s = spaces.llm_serving(m, ["H200"], 16, eplb=(False, True), **kw)
    assert list(s.params["eplb"].choices) == [False, True]
    g = s.grid()
    active = g["eplb"].notna()
    assert (active == ((g["ep"] > 1) & (128 % g["ep"] == 0))).all()
    assert active.any() and (g.loc[~active, "ep"].isin([1, 6])).all() and (g["ep"] == 6).any()
    assert len(g) == len(base) + int((base["ep"].isin([2, 8])).sum())    # each balanced point once more
    assert set(g.loc[active, "eplb"]) == {False, True}
    assert dse.Space.from_dict(s.to_dict()) == s
    # disaggregated: the prefill pool's own EP activates it as well
    d = spaces.llm_serving(m, ["H200"], 16, modes=("agg", "disagg"), tp=[8], prefill_tp=[8], prefill_ep=[1, 8],
                           formats=["fp8"], kv_dtypes=["fp8"], max_batch_sizes=(64,), max_num_tokens=(8192,),
                           eplb=(False, True)).grid()
    pre = d["prefill_ep"].fillna(1)
    assert (d["eplb"].notna() == ((d["ep"] > 1) | (pre > 1))).all()
    assert (d.loc[(d["ep"] == 1) & (pre == 8), "mode"] == "disagg").all() and ((d["ep"] == 1) & (pre == 8)).any()
    with pytest.raises(ValueError, match=r"eplb=\(False, True\): an expert-parallel load balancer \(EPLB\) needs a "
                                         r"mixture-of-experts model; Llama-3.1-70B is dense"):
        spaces.llm_serving("Llama-3.1-70B", ["H200"], 8, eplb=(False, True))
    with pytest.raises(dse.SpaceError, match=r"eplb=\('yes',\): \['yes'\] not allowed; give a sequence of True / "
                                             r"False"):
        spaces.llm_serving(m, ["H200"], 8, eplb=("yes",))
    with pytest.raises(dse.SpaceError, match=r"eplb=True: not a sequence"):
        spaces.llm_serving(m, ["H200"], 8, eplb=True)


def test_an_fp4_checkpoint_is_offered_with_16_bit_compute_where_the_gpu_has_no_fp4_tensor_cores():
    """gpt-oss (MXFP4) runs on Hopper as fp4 weights computed in bf16: its default space offers that format on every
    GPU (`OPT_IN_FORMATS`), fp4 compute on Blackwell only; a 16-bit checkpoint's default space does not offer it,
    and asking for it by name does; the cost model prices such a row."""
    def formats(model, **kw):
        g = spaces.llm_serving(model, ["H200", "B200"], 1, engines=["vllm"], **kw).grid()
        return {(r.gpu, r.weight_dtype, r.act_dtype) for r in g.itertuples()}

    gpt = formats("openai/gpt-oss-120b")
    assert {("H200-SXM-141GB", "fp4", "bf16"), ("B200", "fp4", "bf16"), ("B200", "fp4", "fp4")} <= gpt
    assert ("H200-SXM-141GB", "fp4", "fp4") not in gpt
    assert not {f for f in formats("Llama-3.1-8B") if f[1:] == ("fp4", "bf16")}
    assert formats("Llama-3.1-8B", formats=["w4a16_fp4"]) == {("H200-SXM-141GB", "fp4", "bf16"), ("B200", "fp4", "bf16")}
    r = inference.estimate("openai/gpt-oss-120b", "H200", weight_dtype="fp4", act_dtype="bf16", batch_size=8,
                           engine="vllm")
    assert bool(r["fits"].iloc[0]) and r["source"].iloc[0] == "interpolated"


def test_llm_serving_disaggregated_only_space_has_configurations():
    """``modes=("disagg",)`` alone: every configuration is a prefill pool plus a decode pool (dp >= 2); the space
    once carried aggregated mode's ``dp == 1`` beside ``prefill_replicas < dp`` and held no configuration at all.
    Chunked prefill is an aggregated-mode knob there too (the prefill pool runs whole prompts), so it is inactive."""
    sp = spaces.llm_serving("Llama-3.1-70B", ["H200"], 16, modes=("disagg",), prefill_gpus=["H100"],
                            formats=["fp8"], kv_dtypes=("fp8",), max_batch_sizes=(64,), max_num_tokens=(8192,))
    g = sp.grid()
    assert len(g) > 0
    assert (g["dp"] >= 2).all() and (g["prefill_replicas"] < g["dp"]).all()
    assert g["chunked_prefill"].isna().all()
    same = spaces.llm_serving("Llama-3.1-70B", ["H200"], 8, modes=("disagg",), formats=["fp8"], kv_dtypes=("fp8",),
                              max_batch_sizes=(64,), max_num_tokens=(8192,)).grid()
    assert len(same) > 0 and (same["mode"] == "disagg").all()
    both = spaces.llm_serving("Llama-3.1-70B", ["H200"], 8, modes=("agg", "disagg"), formats=["fp8"],
                              kv_dtypes=("fp8",), max_batch_sizes=(64,), max_num_tokens=(8192,)).grid()
    dis = both[both["mode"] == "disagg"]
    key = ["n_gpus", "tp", "pp", "dp", "prefill_replicas"]
    assert set(map(tuple, dis[key].to_numpy().tolist())) == set(map(tuple, same[key].to_numpy().tolist()))


def test_a_space_whose_rules_exclude_every_configuration_is_refused_when_built():
    """Knob values whose rules leave no configuration (no chunked prefill with a token budget below the prompt;
    a max batch above every token budget) were accepted and failed only when a study ran; and a GPU (or prefill
    GPU) that runs none of the space's formats silently vanished from it (B200 decode with H100 prefill in fp4:
    no disaggregated configuration at all)."""
    with pytest.raises(dse.SpaceError, match="no feasible point.*chunked_prefill or max_num_tokens >= 4096"):
        spaces.llm_serving("Llama-3.1-8B", ["H100"], 8, max_num_tokens=(1024,), chunked_prefill=(False,),
                           input_len=4096)
    with pytest.raises(dse.SpaceError, match="no feasible point.*max_num_tokens >= max_batch_size"):
        spaces.llm_serving("Llama-3.1-8B", ["H100"], 8, max_batch_sizes=(512,), max_num_tokens=(256,))
    with pytest.raises(dse.SpaceError, match=r"GPUs \['H100-SXM-80GB'\] run none of the formats \['fp4'\]"):
        spaces.llm_serving("Llama-3.1-8B", ["B200", "H100"], 8, formats=["fp4"])
    with pytest.raises(dse.SpaceError, match=r"prefill_gpus \['H100-SXM-80GB'\] run none of the formats \['fp4'\]"):
        spaces.llm_serving("Llama-3.1-8B", ["B200"], 8, modes=("agg", "disagg"), prefill_gpus=["H100"],
                           formats=["fp4"])
    ok = spaces.llm_serving("Llama-3.1-8B", ["B200"], 8, modes=("agg", "disagg"), prefill_gpus=["H100", "B200"],
                            formats=["fp4", "fp8"])
    g = ok.grid()
    assert set(g.loc[g["mode"] == "disagg", "prefill_gpu"]) == {"H100-SXM-80GB", "B200"}


def test_prefill_and_decode_gpus_with_no_link_between_them_are_not_paired():
    """A prefill pool on a GPU whose system has no scale-out network (an L40S box) cannot hand its KV to a decode
    pool on another system: such pairs were in the space and every one of their trials was unfit."""
    sp = spaces.llm_serving("Llama-3.1-8B", ["H100", "L40S"], 4, modes=("disagg",), prefill_gpus=["H100", "L40S"],
                            formats=["fp8"], kv_dtypes=["fp8"], max_batch_sizes=(64,), max_num_tokens=(8192,))
    g = sp.grid()
    assert set(zip(g["prefill_gpu"], g["gpu"])) == {("H100-SXM-80GB", "H100-SXM-80GB"), ("L40S", "L40S")}
    with pytest.raises(dse.SpaceError, match="no feasible point.*prefill_gpu"):
        spaces.llm_serving("Llama-3.1-8B", ["H100"], 4, modes=("disagg",), prefill_gpus=["L40S"], formats=["fp8"])


def test_a_disaggregated_prefill_pool_holds_a_whole_prompt_in_its_token_budget():
    """The prefill pool of a disaggregated deployment runs whole prompts (no chunking; `dse deploy` launches it so):
    with ``input_len`` given, its token budget must hold one, as the aggregated rule without chunking says. A
    budget of 2,048 tokens for 16,384-token prompts was in the space, priced, and refused by `dse deploy`."""
    sp = spaces.llm_serving("Llama-3.1-8B", ["H100"], 4, modes=("agg", "disagg"), input_len=16384,
                            max_num_tokens=(2048, 16384), formats=["fp8"], kv_dtypes=["fp8"], max_batch_sizes=(64,))
    g = sp.grid()
    dis = g[g["mode"] == "disagg"]
    assert len(dis) and set(dis["max_num_tokens"]) == {16384}
    assert set(g.loc[g["mode"] == "agg", "max_num_tokens"]) == {2048, 16384}        # chunked aggregated rows stay
    with pytest.raises(dse.SpaceError, match="no feasible point.*max_num_tokens >= 16384"):
        spaces.llm_serving("Llama-3.1-8B", ["H100"], 4, modes=("disagg",), input_len=16384, max_num_tokens=(2048,))


def test_without_chunking_the_token_budget_holds_the_longest_request():
    """vLLM refuses --max-num-batched-tokens below --max-model-len without chunked prefill, and `dse deploy` sets
    --max-model-len to the longest request (prompt + output). The flagship's space kept max_num_tokens=2048
    unchunked for 2,048-token prompts with 256-token outputs: the screen rated them at ~10 req/s, the simulator
    (a prompt of the whole budget waits until no decode runs) at under 1 (p99 TTFT ~2,000 s), and `dse deploy`
    refused them. With ``output_len`` the rule counts the whole request, in both modes."""
    s = spaces.batching((64,), (2048, 2304, 8192), input_len=2048, output_len=256)
    assert rows(s.grid()) == {(64, t, True) for t in (2048, 2304, 8192)} | {(64, 2304, False), (64, 8192, False)}
    assert rows(spaces.batching((64,), (2048,), input_len=2048).grid()) == {(64, 2048, True), (64, 2048, False)}
    with pytest.raises(dse.SpaceError, match="output_len.*input_len"):
        spaces.batching((64,), (2048,), output_len=256)
    sp = spaces.llm_serving("Llama-3.1-8B", ["H100"], 4, modes=("agg", "disagg"), input_len=2048, output_len=256,
                            max_num_tokens=(2048, 4096), formats=["fp8"], kv_dtypes=["fp8"], max_batch_sizes=(64,))
    g = sp.grid()
    unchunked = g[(g["mode"] == "disagg") | (g["chunked_prefill"] == False)]  # noqa: E712  (NaN where inactive)
    assert len(unchunked) and set(unchunked["max_num_tokens"]) == {4096}
    assert 2048 in set(g["max_num_tokens"])                                   # chunked aggregated rows stay
