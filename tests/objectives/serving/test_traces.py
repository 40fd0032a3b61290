"""Trace readers (Azure 2023/2024, Mooncake, BurstGPT, Vidur, dse), the normalized `Trace`, and traces driving
the simulator (prefix caching on Mooncake hash ids) and the analytical objective."""
from __future__ import annotations

import gzip
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objectives import serving
from objectives.serving import Scheduler, Trace, Workload, simulate_costs, traces
from tests.helpers import SHARED as SHARED_DIR

SHARED = SHARED_DIR / "traces"
FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Affine:
    """Iteration time (ms) affine in the work of the iteration, the shape of StepModel's decode regime."""

    kv_capacity_tokens = 400_000
    kv_bytes_per_token = 131072.0
    n_gpus = 1

    def time_ms(self, n_prefill_tokens, prefill_attn_pairs, n_decode_seqs, decode_kv_tokens):
        return 5.0 + 0.02 * n_prefill_tokens + 1e-7 * prefill_attn_pairs + 0.02 * n_decode_seqs \
            + 1e-5 * decode_kv_tokens


# ---- shipped samples and the shared public copies --------------------------------------------------------------

def test_shipped_azure_sample_matches_vidurs_processing_of_the_same_trace():
    t = traces.load_sample("azure_conv_2023")
    assert len(t) == 1000 and t.hash_ids is None
    # Vidur's data/processed_traces/splitwise_conv.csv (the same Azure 2023 conversation trace) starts
    # 0.0,374,44 / 4.314579,396,109: seconds from the first request, microsecond resolution
    assert t.arrival_s[0] == 0.0 and t.arrival_s[1] == pytest.approx(4.314579, abs=1e-6)
    assert t.input_tokens[:2].tolist() == [374, 396] and t.output_tokens[:2].tolist() == [44, 109]
    assert np.all(np.diff(t.arrival_s) >= 0)
    raw = pd.read_csv(traces.sample_path("azure_conv_2023"))
    np.testing.assert_array_equal(np.sort(t.input_tokens), np.sort(raw["ContextTokens"].to_numpy()))
    assert t.rate == pytest.approx(999 / t.duration_s)


def test_shipped_mooncake_sample_keeps_hash_ids_per_line():
    p = traces.sample_path("mooncake_conversation")
    t = traces.read_trace(p)
    lines = [json.loads(x) for x in p.read_text().splitlines()]
    assert len(t) == len(lines) == 600 and t.block_tokens == 512
    for i in (0, 1, 299, 599):
        assert t.blocks(i).tolist() == lines[i]["hash_ids"]
        assert t.input_tokens[i] == lines[i]["input_length"]
        assert t.arrival_s[i] == pytest.approx(lines[i]["timestamp"] / 1e3)
    # every prompt's hash blocks cover it: ceil(input / 512) blocks
    counts = np.diff(t.hash_offsets)
    np.testing.assert_array_equal(counts, -(-t.input_tokens // 512))


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/traces not present")
def test_whole_public_traces_read():
    a = traces.read_trace(SHARED / "azure_llm_2023_code.csv")
    assert len(a) == 8819 and a.duration_s == pytest.approx(3435.95, abs=0.01)
    m = traces.read_trace(SHARED / "mooncake_synthetic.jsonl")
    assert len(m) == 3993 and len(m.hash_ids) == 121877


# ---- the other layouts --------------------------------------------------------------------------------------------

def test_azure_2024_layout_with_utc_offsets_and_mixed_precision(tmp_path):
    p = tmp_path / "AzureLLMInferenceTrace_code_1week.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                 "2024-05-10 00:00:00.009930+00:00,4808,10\n"
                 "2024-05-10 00:00:01+00:00,3180,8\n"
                 "2024-05-10 01:00:00.5+01:00,100,3\n")   # same instant as 00:00:00.5 UTC
    t = traces.read_trace(p)
    assert t.source.endswith("(azure)")
    np.testing.assert_allclose(t.arrival_s, [0.0, 0.490070, 0.990070])
    assert t.input_tokens.tolist() == [4808, 100, 3180]       # sorted by arrival


def test_burstgpt_layout_filters_and_drops_failures(tmp_path):
    p = tmp_path / "BurstGPT_1.csv"
    p.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                 "5,ChatGPT,472,18,490,Conversation log\n"
                 "45,ChatGPT,1087,0,1087,Conversation log\n"       # failed request
                 "118,GPT-4,417,276,693,API log\n"
                 "130,ChatGPT,1360,115,1475,API log\n")
    t = traces.read_trace(p)
    assert len(t) == 3 and t.dropped == 1
    np.testing.assert_array_equal(t.arrival_s, [0.0, 113.0, 125.0])
    c = traces.read_burstgpt(p, models=["ChatGPT"])
    assert c.input_tokens.tolist() == [472, 1360] and c.dropped == 1
    assert traces.read_burstgpt(p, log_types="API log").output_tokens.tolist() == [276, 115]
    with pytest.raises(ValueError, match=r"Model \['Claude'\] not in the trace; values present: \['ChatGPT', 'GPT-4'\]"):
        traces.read_burstgpt(p, models=["Claude"])
    with pytest.raises(ValueError, match=r"line 3, column 'Response tokens' \(4\): 0 tokens"):
        traces.read_burstgpt(p, on_zero="error")
    # a malformed row of a model filtered out does not refuse the file; the same row kept is refused by line
    q = tmp_path / "BurstGPT_2.csv"
    q.write_text(p.read_text() + "140,GPT-4,12.5,x,0,API log\n")
    assert traces.read_burstgpt(q, models=["ChatGPT"]).input_tokens.tolist() == [472, 1360]
    with pytest.raises(ValueError, match=r"line 6, column 'Request tokens' \(3\): 12.5 is not an integer"):
        traces.read_burstgpt(q, models=["GPT-4"])


def test_vidur_layouts_with_and_without_arrivals(tmp_path):
    p = tmp_path / "splitwise_conv.csv"
    p.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,374,44\n4.314579,396,109\n")
    t = traces.read_trace(p)
    assert t.arrival_s.tolist() == [0.0, 4.314579] and t.input_tokens.tolist() == [374, 396]
    q = tmp_path / "arxiv_summarization_stats.csv"
    q.write_text("num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n3772,54,3826,69.85\n"
                 "2015,156,2171,12.9\n")
    lo = traces.read_trace(q)
    assert lo.arrival_s is None and not lo.has_arrivals
    with pytest.raises(ValueError, match="has no arrival times: give rate="):
        Workload(trace=lo)
    r = Workload(trace=lo, rate=2.0, seed=3).requests()
    assert r.input_tokens.tolist() == [3772, 2015] and r.arrival_s[0] == 0.0 and r.arrival_s[1] > 0


def test_unknown_layout_lists_the_known_ones(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"match no known trace layout; valid layouts: azure \['TIMESTAMP'"):
        traces.read_trace(p)


# ---- bad input names file, line and column -------------------------------------------------------------------------

@pytest.mark.parametrize("row, col, colno, what", [
    ("2023-11-16 18:15:50.99,-5,109", "ContextTokens", 2, "negative"),
    ("2023-11-16 18:15:50.99,abc,109", "ContextTokens", 2, "non-numeric value 'abc'"),
    ("2023-11-16 18:15:50.99,396,", "GeneratedTokens", 3, r"non-numeric value \(missing\)"),
    ("2023-11-16 18:15:50.99,39.5,3", "ContextTokens", 2, "not an integer"),
    ("not a time,396,109", "TIMESTAMP", 1, "'not a time' is not a timestamp"),
])
def test_bad_azure_cell_names_file_line_and_column(tmp_path, row, col, colno, what):
    p = tmp_path / "azure.csv"
    p.write_text(f"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n{row}\n")
    with pytest.raises(ValueError, match=rf"azure.csv', line 3, column '{col}' \({colno}\): .*{what}"):
        traces.read_trace(p)


def test_missing_column_is_named(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text("Timestamp,Model,Request tokens,Total tokens\n1,a,2,3\n")
    with pytest.raises(ValueError, match=r"match no known trace layout"):
        traces.read_trace(p)
    with pytest.raises(ValueError, match=r"b.csv' \(burstgpt layout\) lacks column\(s\) \['Response tokens'\]"):
        traces.read_burstgpt(p)


def test_bad_mooncake_lines(tmp_path):
    p = tmp_path / "m.jsonl"
    good = '{"timestamp": 0, "input_length": 10, "output_length": 2, "hash_ids": [0]}\n'
    cases = [
        ('{"timestamp": 3, "input_length": -1, "output_length": 2, "hash_ids": [1]}', r"line 2, field 'input_length': -1"),
        ('{"timestamp": "x", "input_length": 1, "output_length": 2, "hash_ids": [1]}', r"line 2, field 'timestamp': 'x'"),
        # beyond int64 it overflowed (OverflowError, no file or line)
        ('{"timestamp": 3, "input_length": 1e23, "output_length": 2, "hash_ids": [1]}',
         r"line 2, field 'input_length': 1e\+23 is not an integer token count >= 0 and below 2\^31"),
        ('{"timestamp": 3, "input_length": 1, "hash_ids": [1]}', r"line 2: field 'output_length' is missing"),
        ('{"timestamp": 3, "input_length": 1, "output_length": 2, "hash_ids": [1]', r"line 2, column \d+: not valid JSON"),
        ('{"timestamp": 3, "input_length": 1, "output_length": 2, "hash_ids": ["a"]}', r"line 2, field 'hash_ids'"),
        # a negative block hash was accepted (ids are hashes: a sign is a corrupt line)
        ('{"timestamp": 3, "input_length": 1, "output_length": 2, "hash_ids": [-3]}',
         r"line 2, field 'hash_ids': \[-3\] is not a list of integers >= 0"),
        ('{"timestamp": 3, "input_length": 1, "output_length": 2}', r"line 2, field 'hash_ids': present on some"),
        # a block hash past int64 overflowed building the id array (OverflowError, no file or line)
        ('{"timestamp": 3, "input_length": 1, "output_length": 2, "hash_ids": [9223372036854775808]}',
         r"line 2, field 'hash_ids': \[9223372036854775808\] is not a list of integers >= 0 and below 2\^63"),
    ]
    for line, msg in cases:
        p.write_text(good + line + "\n")
        with pytest.raises(ValueError, match=r"m.jsonl', " + msg):
            traces.read_mooncake(p)


# ---- normalized form: sampling, scaling -----------------------------------------------------------------------------

@FAST
@given(n=st.integers(1, 40), k=st.floats(0.1, 50.0), m=st.integers(1, 40), seed=st.integers(0, 5))
def test_sample_and_scale_rate_properties(n, k, m, seed):
    rng = np.random.default_rng(seed)
    arr = np.cumsum(rng.exponential(1.0, n))
    lens = rng.integers(1, 6, n)
    ids = [list(rng.integers(0, 5, int(x))) for x in lens]
    off = np.concatenate([[0], np.cumsum(lens)])
    t = Trace(arr, lens * 512 - rng.integers(0, 100, n), rng.integers(1, 50, n), hash_ids=np.concatenate(ids),
              hash_offsets=off)
    s = t.scale_rate(k)
    np.testing.assert_allclose(s.arrival_s * k, t.arrival_s, rtol=1e-12, atol=1e-12)
    if n > 1 and t.duration_s > 0:
        assert s.rate == pytest.approx(t.rate * k)
    if m > n:                       # without replacement: at most the trace's requests
        with pytest.raises(ValueError, match=f"sample\\(n={m}\\).*holds {n} requests"):
            t.sample(m, seed=seed)
        return
    sub = t.sample(m, seed=seed)
    assert len(sub) == m and np.all(np.diff(sub.arrival_s) >= 0)
    # each sampled request keeps its own lengths and blocks: find it in the original by (input, output, blocks)
    orig = {(int(t.input_tokens[i]), int(t.output_tokens[i]), tuple(t.blocks(i).tolist())) for i in range(n)}
    for i in range(len(sub)):
        assert (int(sub.input_tokens[i]), int(sub.output_tokens[i]), tuple(sub.blocks(i).tolist())) in orig
    assert t.sample(m, seed=seed) == sub                      # seeded
    assert t.head(m).input_tokens.tolist() == t.input_tokens[:m].tolist()


def test_trace_frame_round_trip_and_identity(tmp_path):
    t = traces.load_sample("mooncake_conversation").head(50)
    f = t.frame()
    assert list(f.columns) == ["arrival_s", "input_tokens", "output_tokens", "hash_ids"]
    back = traces.read_trace(f)
    assert back == t and back.sha256() == t.sha256()
    assert t.scale_rate(2.0) != t
    p = tmp_path / "t.csv"
    f.drop(columns="hash_ids").to_csv(p, index=False)
    assert traces.read_trace(p).input_tokens.tolist() == t.input_tokens.tolist()
    with pytest.raises(ValueError, match="k must be a finite number > 0"):
        t.scale_rate(0)
    assert t.to_rate(10.0).rate == pytest.approx(10.0)
    w = t.window(1.0, 5.0)
    assert w.arrival_s[0] == 0.0 and len(w) == int(((t.arrival_s >= 1) & (t.arrival_s < 5)).sum())


# ---- traces drive the simulator and the objective ---------------------------------------------------------------

def test_replaying_a_trace_faster_raises_queueing():
    t = traces.load_sample("azure_conv_2023").head(300)
    slow = simulate_costs(Affine(), workload=Workload(trace=t), per_request=True)
    fast = simulate_costs(Affine(), workload=Workload(trace=t.scale_rate(20.0)), per_request=True)
    np.testing.assert_allclose(fast["arrival_s"].to_numpy() * 20, slow["arrival_s"].to_numpy(), atol=1e-9)
    assert (fast["input_tokens"].to_numpy() == t.input_tokens).all()
    assert fast["ttft_ms"].mean() > 1.5 * slow["ttft_ms"].mean()


def test_objective_uses_the_traces_lengths():
    import objectives

    t = traces.load_sample("azure_code_2023")
    obj = objectives.llm_serving_objective("Llama-3.1-8B", workload=Workload(trace=t))
    assert obj.input_len == round(t.input_tokens.mean()) and obj.output_len == round(t.output_tokens.mean())
    assert abs(obj.input_len - 2048) > 50 and abs(obj.output_len - 256) > 100
    cfg = pd.DataFrame({"gpu": ["H100-SXM-80GB"], "tp": [1]})
    m_trace = obj(cfg)
    m_fixed = objectives.llm_serving_objective("Llama-3.1-8B", workload=Workload(rate=math.inf))(cfg)
    assert m_trace["tpot_ms"].iloc[0] != pytest.approx(m_fixed["tpot_ms"].iloc[0], rel=1e-3)


def test_objective_refuses_requests_longer_than_the_models_context():
    """A trace of 200,000-token prompts for Llama-3.1-8B (131,072 positions) was priced and simulated as fitting
    (fits = 1, TTFT ~14 s), a study built on it, and only `dse deploy` refused it: the engines reject a request
    longer than the model's context. The objective refuses it when built, naming the longest request and the
    context; a shorter head of the same trace is accepted."""
    import objectives
    from dse import ObjectiveError

    inp = np.full(30, 1000)
    inp[7] = 200_000
    t = Trace(np.arange(30.0), inp, np.full(30, 10), source="long.csv")
    with pytest.raises(ObjectiveError, match=r"longest request \(200010 tokens.*request 7.*Llama-3.1-8B's context "
                                             r"of 131072 tokens"):
        objectives.llm_serving_objective("Llama-3.1-8B", workload=Workload(trace=t))
    objectives.llm_serving_objective("Llama-3.1-8B", workload=Workload(trace=t.head(7)))
    with pytest.raises(ObjectiveError, match=r"longest request \(4352 tokens.*Llama-2-7B's context of 4096"):
        objectives.llm_serving_objective("Llama-2-7B", workload=Workload(rate=1.0, input_len=4096, output_len=256))
    with pytest.raises(ObjectiveError, match=r"longest request \(5000 tokens"):
        objectives.llm_serving_objective("Llama-2-7B", workload=Workload(
            rate=1.0, input_len=serving.Dist("uniform", low=100, high=4000), output_len=1000))
    objectives.llm_serving_objective("Llama-2-7B", workload=Workload(rate=1.0, input_len=3840, output_len=256))
    assert Workload(rate=1.0, input_len=serving.Dist("lognormal", mean=100, std=50)).longest_request() is None


def test_simulate_capacity_and_deploy_refuse_requests_longer_than_the_models_context(tmp_path, capsys):
    """`serving.simulate`, `serving.capacity` and `dse capacity` priced and simulated a trace whose request 7 holds
    200,000 tokens on Llama-3.1-8B (131,072 positions), which the objective refuses: the engines reject it. They
    refuse it with the objective's own words (`Workload.exceeds_context`: the request, the trace, the model's
    max_position_embeddings), before any search; `dse deploy` says the same; the trace's head is accepted."""
    from objectives import deploy
    from objectives.serving.cli import main

    inp = np.full(30, 1000)
    inp[7] = 200_000
    t = Trace(np.arange(30.0), inp, np.full(30, 10), source="long.csv")
    words = (r"the workload's longest request \(200010 tokens of prompt and output, request 7 in arrival order of "
             r"trace long.csv\) exceeds Llama-3.1-8B's context of 131072 tokens \(max_position_embeddings\)")
    with pytest.raises(ValueError, match=words):
        serving.simulate("Llama-3.1-8B", "H100", workload=Workload(trace=t))
    with pytest.raises(ValueError, match=words):
        serving.simulate_requests("Llama-3.1-8B", "H100", workload=Workload(trace=t), mode="disagg",
                                  prefill=serving.Pool(), decode=serving.Pool())
    for fidelity in ("analytical", "simulated"):
        with pytest.raises(ValueError, match=words):
            serving.capacity("Llama-3.1-8B", "H100", workload=Workload(trace=t), slo={"ttft_ms_p99": 2000},
                             fidelity=fidelity)
    assert serving.simulate("Llama-3.1-8B", "H100", workload=Workload(trace=t.head(7)))["n_requests"] == 7
    # capacity replays the trace's first n_requests: a long request past them is not sent
    late = Trace(np.arange(30.0), np.roll(inp, 18), np.full(30, 10), source="late.csv")    # request 25 the long one
    assert serving.capacity("Llama-3.1-8B", "H100", workload=Workload(trace=late), slo={"ttft_ms_p99": 2000},
                            fidelity="analytical", n_requests=20)["capacity_req_s"] > 0
    with pytest.raises(ValueError, match=r"request 25 in arrival order of trace late.csv"):
        serving.capacity("Llama-3.1-8B", "H100", workload=Workload(trace=late), slo={"ttft_ms_p99": 2000},
                         fidelity="analytical", n_requests=26)
    with pytest.raises(ValueError, match=r"longest request \(4352 tokens of prompt and output\) exceeds Llama-2-7B's "
                                         r"context of 4096"):
        serving.simulate("Llama-2-7B", "H100", workload=Workload(rate=1.0, input_len=4096, output_len=256))
    f = tmp_path / "long.csv"
    pd.DataFrame({"arrival_s": t.arrival_s, "input_tokens": t.input_tokens, "output_tokens": t.output_tokens}
                 ).to_csv(f, index=False)
    assert main(["Llama-3.1-8B", "--gpu", "H100", "--ttft-ms", "2000", "--trace", str(f), "--analytical"]) == 2
    err = capsys.readouterr().err
    assert "error: the workload's longest request (200010 tokens" in err and f"line 9 of trace file {str(f)!r}" in err
    with pytest.raises(deploy.DeployError, match=r"longest request \(4352 tokens of prompt and output\) exceeds "
                                                 r"Llama-2-7B's context of 4096 tokens \(max_position_embeddings\)"):
        deploy.commands({"gpu": "H100"}, engine="vllm", model="Llama-2-7B",
                        workload={"concurrency": 4, "input_len": 4096, "output_len": 256})


_LONG_FILES = {   # layout: (file name, text with a 5,000-token request on line 5, after a blank line and a dropped row)
    "azure": ("azure.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:09.0,100,10\n"
                           "2023-11-16 18:17:04.0,200,10\n\n2023-11-16 18:17:03.0,4990,10\n"
                           "2023-11-16 18:17:05.0,300,10\n"),
    "burstgpt": ("BurstGPT.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                                 "9,ChatGPT,100,10,110,Conversation log\n4,ChatGPT,200,0,200,Conversation log\n"
                                 "\n3,ChatGPT,4990,10,5000,Conversation log\n5,ChatGPT,300,10,310,Conversation log\n"),
    "vidur": ("vidur.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n9,100,10\n4,200,10\n\n3,4990,10\n"
                           "5,300,10\n"),
    "dse": ("dse.csv", "arrival_s,input_tokens,output_tokens\n9,100,10\n4,200,10\n\n3,4990,10\n5,300,10\n"),
    "mooncake": ("mooncake.jsonl", "".join(json.dumps({"timestamp": ts, "input_length": i, "output_length": 10}) + "\n"
                                           if ts is not None else "\n" for ts, i in
                                           ((None, 0), (9000, 100), (4000, 200), (None, 0), (3000, 4990),
                                            (5000, 300)))),
}


@pytest.mark.parametrize("layout", sorted(_LONG_FILES))
def test_a_request_longer_than_the_context_is_named_by_its_file_and_line(tmp_path, layout):
    """A trace's request longer than the model's context was named by its position in arrival order ("request 0
    in arrival order of trace x.csv"), which no editor shows: every reader keeps each request's record, and the
    refusal names the file and line (blank lines and a dropped failed request before it counted), after the
    sort by arrival and through head / take / scale_rate; a DataFrame's by its row."""
    from objectives.catalog import model

    name, text = _LONG_FILES[layout]
    f = tmp_path / name
    f.write_text(text)
    t = traces.read_trace(f)
    assert t.input_tokens[0] == 4990                   # sorted by arrival: the long request first
    where = f"line 5 of trace file {str(f)!r}"
    assert t.where(0) == where and t.where(len(t) - 1) == f"line 2 of trace file {str(f)!r}"
    llama2 = model("Llama-2-7B")                       # 4,096 positions
    msg = Workload(trace=f).exceeds_context(llama2)
    assert msg is not None and f"(5000 tokens of prompt and output, {where}) exceeds Llama-2-7B's context" in msg
    for part in (t.head(2), t.take([0, len(t) - 1]), t.scale_rate(2.0)):
        assert part.where(0) == where
    assert t.take([1, 2]).where(0) != where and Workload(trace=t.take([1, 2])).exceeds_context(llama2) is None
    with pytest.raises(ValueError, match=re.escape(where)):
        serving.simulate("Llama-2-7B", "H100", workload=Workload(trace=f))
    if layout != "mooncake":
        df = pd.read_csv(f, skipinitialspace=True)
        assert "row 2 of the trace DataFrame" in Workload(trace=df).exceeds_context(llama2)
    gz = tmp_path / (name + ".gz")
    gz.write_bytes(gzip.compress(text.encode()))
    assert f"line 5 of trace file {str(gz)!r}" in Workload(trace=gz).exceeds_context(llama2)


def test_an_unbounded_length_distribution_is_checked_against_the_context():
    """An unbounded `Dist` (lognormal, normal without max=) was never checked against the context: a lognormal
    prompt of mean 1,024 and std 1,500 on Llama-2-7B (4,096 positions) was priced and simulated with 4.7 % of its
    requests longer than the engines accept. The requests the workload sends (its own seeded draws) decide: any
    above the context refuses the workload, naming the longest, the share above and the max= that bounds it;
    a bounded or narrow one is accepted, and the objective and `simulate` refuse as the workload does."""
    import objectives
    from dse import ObjectiveError
    from objectives.catalog import model

    llama2 = model("Llama-2-7B")
    heavy = serving.Dist("lognormal", mean=1024, std=1500)
    w = Workload(rate=1.0, input_len=heavy, output_len=256)
    r = w.requests()
    total = r.input_tokens + r.output_tokens
    share = 100.0 * float((total > 4096).mean())
    assert 1.0 < share < 20.0
    msg = w.exceeds_context(llama2)
    assert msg is not None and msg.startswith(
        f"the workload's longest request ({int(total.max())} tokens of prompt and output, request "
        f"{int(np.argmax(total))} of the 2000 drawn from the unbounded input_len (seed 0), one of "
        f"{int((total > 4096).sum())} ({share:.3g} %) above the context) exceeds Llama-2-7B's context of 4096")
    assert msg.endswith("input_len=Dist(..., max=3840)")
    with pytest.raises(ObjectiveError, match=re.escape("input_len=Dist(..., max=3840)")):
        objectives.llm_serving_objective("Llama-2-7B", workload=w)
    with pytest.raises(ValueError, match=r"\(seed 0\), one of"):
        serving.simulate("Llama-2-7B", "H100", workload=w)
    both = Workload(rate=1.0, input_len=heavy, output_len=serving.Dist("normal", mean=300, std=500))
    assert "unbounded input_len and output_len (seed 0)" in both.exceeds_context(llama2)
    assert "bound the input_len and output_len Dists with max=" in both.exceeds_context(llama2)
    # bounded (max=), narrow, or on a model whose context holds every draw: accepted
    assert Workload(rate=1.0, input_len=serving.Dist("lognormal", mean=1024, std=1500, max=3840),
                    output_len=256).exceeds_context(llama2) is None
    assert Workload(rate=1.0, input_len=serving.Dist("normal", mean=1024, std=100),
                    output_len=256).exceeds_context(llama2) is None
    assert w.exceeds_context(model("Llama-3.1-8B")) is None
    # the refusal follows the requests sent: the first 20 draws of the same stream, refused exactly when one is over
    for n in (20, 50, 2000):
        few = Workload(rate=1.0, input_len=heavy, output_len=256, n_requests=n)
        assert (few.exceeds_context(llama2) is None) == bool((few.requests().input_tokens <= 3840).all())


# ---- prefix caching on hash ids -----------------------------------------------------------------------------------

def _hashed(arrival_s, inp, out, blocks, block_tokens=512) -> Workload:
    off = np.concatenate([[0], np.cumsum([len(b) for b in blocks])])
    return Workload(trace=Trace(np.asarray(arrival_s, float), inp, out, hash_ids=np.concatenate(blocks),
                                hash_offsets=off, block_tokens=block_tokens))


def test_prefix_cache_lru_eviction_and_skipped_prefill():
    # A [1, 2], B [3, 4], C [1, 2], each alone (1 s apart), 1000-token prompts = 2 blocks of 512
    w = _hashed([0.0, 1.0, 2.0], [1000, 1000, 1000], [2, 2, 2], [[1, 2], [3, 4], [1, 2]])
    cost = Affine()
    small = Scheduler(prefix_caching=True, kv_capacity_tokens=1100)      # room for 2 hash blocks: B evicts A
    big = Scheduler(prefix_caching=True, kv_capacity_tokens=2100)        # 4 blocks: C finds A's
    ms, mb = simulate_costs(cost, workload=w, scheduler=small), simulate_costs(cost, workload=w, scheduler=big)
    assert ms["prefix_cache_hit_rate"] == 0.0
    assert mb["prefix_cache_hit_rate"] == pytest.approx(999 / 3000)      # one token of C is still computed
    df = simulate_costs(cost, workload=w, scheduler=big, per_request=True)
    assert df["ttft_ms"].iloc[2] == pytest.approx(cost.time_ms(1, 1 * (999 + 1), 0, 0))
    assert df["ttft_ms"].iloc[0] == pytest.approx(cost.time_ms(1000, 1000 * 1001 / 2, 0, 0))
    off = simulate_costs(cost, workload=w, scheduler=Scheduler(kv_capacity_tokens=2100, prefix_caching=False))
    assert math.isnan(off["prefix_cache_hit_rate"])                      # nothing looked up
    on = simulate_costs(cost, workload=w, scheduler=Scheduler(kv_capacity_tokens=2100))
    assert on["prefix_cache_hit_rate"] == mb["prefix_cache_hit_rate"]    # on by default, as in the engines
    # a hit refreshes the blocks: A, C=A hit, B, D=A still cached with room for 4 blocks... and B [3,4] evicted
    # once E [5, 6] arrives (A's blocks were used more recently)
    w2 = _hashed([0, 1, 2, 3, 4, 5], [1000] * 6, [2] * 6, [[1, 2], [3, 4], [1, 2], [5, 6], [1, 2], [3, 4]])
    d2 = simulate_costs(cost, workload=w2, scheduler=big, per_request=True)
    fast = d2["ttft_ms"].to_numpy() < 10.0
    assert fast.tolist() == [False, False, True, False, True, False]


@FAST
@given(n=st.integers(1, 25), seed=st.integers(0, 20))
def test_prefix_hit_rate_equals_the_ideal_cache_when_requests_do_not_overlap(n, seed):
    rng = np.random.default_rng(seed)
    blocks, inp = [], []
    for _ in range(n):
        k = int(rng.integers(1, 5))
        shared = int(rng.integers(0, k + 1))
        blocks.append(list(rng.integers(0, 3, shared)) + list(rng.integers(100 + 10 * _, 110 + 10 * _, k - shared)))
        inp.append(int(rng.integers((k - 1) * 64 + 1, k * 64 + 1)))
    w = _hashed(np.arange(n) * 100.0, inp, [3] * n, blocks, block_tokens=64)
    m = simulate_costs(Affine(), workload=w, scheduler=Scheduler(prefix_caching=True))
    seen: set[int] = set()
    hit = 0
    for b, x in zip(blocks, inp):
        k = 0
        while k < len(b) and b[k] in seen:
            k += 1
        hit += min(k * 64, x - 1)
        seen.update(b)
    assert m["prefix_cache_hit_rate"] == pytest.approx(hit / sum(inp))


def test_prefix_caching_on_the_mooncake_sample_cuts_ttft():
    t = traces.load_sample("mooncake_conversation").head(200)
    w = Workload(trace=t.to_rate(0.5))
    on = simulate_costs(Affine(), workload=w, scheduler=Scheduler(prefix_caching=True))
    off = simulate_costs(Affine(), workload=w, scheduler=Scheduler(prefix_caching=False))
    assert 0.02 < on["prefix_cache_hit_rate"] < 0.2
    assert on["ttft_ms_mean"] < off["ttft_ms_mean"]
    assert on["n_requests"] == off["n_requests"] == 200


@FAST
@given(n=st.integers(1, 40), seed=st.integers(0, 50), rate=st.floats(0.5, 500.0),
       batching=st.sampled_from(["continuous", "static"]), chunked=st.booleans(),
       policy=st.sampled_from(["decode_priority", "prefill_first"]), preemption=st.sampled_from(["recompute", "swap"]),
       kv=st.sampled_from([3000, 20_000, 400_000]), mode=st.sampled_from(["agg", "disagg"]))
def test_engine_invariants_with_prefix_caching_and_any_policy(n, seed, rate, batching, chunked, policy, preemption,
                                                               kv, mode):
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 5, n)
    blocks = [list(rng.integers(0, 6, int(x))) for x in k]
    inp = [int(rng.integers((x - 1) * 128 + 1, x * 128 + 1)) for x in k]
    w = _hashed(np.cumsum(rng.exponential(1.0 / rate, n)), inp, list(rng.integers(1, 200, n)), blocks,
                block_tokens=128)
    s = Scheduler(max_batch_size=8, max_num_tokens=1024, chunked_prefill=chunked, policy=policy, batching=batching,
                  preemption=preemption, kv_capacity_tokens=kv, prefix_caching=True)
    from objectives.serving import PoolCosts

    kw = dict(cost=Affine(), dp=2) if mode == "agg" else dict(prefill=PoolCosts(Affine(), 1, s),
                                                               decode=PoolCosts(Affine(), 2, s))
    df = simulate_costs(**kw, mode=mode, workload=w, scheduler=s, per_request=True)
    assert (df["tokens_emitted"] == df["output_tokens"]).all()
    assert (df["ttft_ms"] > 0).all() and (df["first_token_s"] <= df["finish_s"]).all()
    m = simulate_costs(**kw, mode=mode, workload=w, scheduler=s)
    assert 0.0 <= m["prefix_cache_hit_rate"] < 1.0


def test_simulated_objective_replays_the_trace():
    import objectives

    t = traces.load_sample("azure_conv_2023").head(200).scale_rate(2.0)
    w = Workload(trace=t)
    cfg = pd.DataFrame({"gpu": ["H100-SXM-80GB"], "tp": [1]})
    got = objectives.llm_serving_objective("Llama-3.1-8B", workload=w, fidelity="simulated")(cfg)
    # the trace's own arrivals: latencies over the run's steady part, as capacity judges a rate (throughput whole)
    m = serving.simulate("Llama-3.1-8B", "H100-SXM-80GB", workload=w,
                         scheduler=Scheduler(max_batch_size=256, max_num_tokens=8192),
                         slo=serving.SLO(ttft_ms=2000.0, tpot_ms=50.0), discard="steady")
    assert 0 < m["steady_requests"] < 200
    assert got["ttft_ms"].iloc[0] == pytest.approx(m["ttft_ms_mean"])
    assert got["ttft_ms_p99"].iloc[0] == pytest.approx(m["ttft_ms_p99"])
    assert got["throughput_tok_s"].iloc[0] == pytest.approx(m["throughput_tok_s"])
    assert m["n_requests"] == 200 and m["duration_s"] > t.duration_s


@pytest.mark.parametrize("layout, header, row, col, colno, shown, valid", [
    # a count beyond int64 overflowed on conversion: "request 1 input_tokens=-9223372036854775808", no file or line
    ("dse", "arrival_s,input_tokens,output_tokens", "1,99999999999999999999999,3", "input_tokens", 2,
     "1e+23", "integer token counts >= 0 and below 2\\^31"),
    ("dse", "arrival_s,input_tokens,output_tokens", "1,-5,3", "input_tokens", 2, "-5", "integer token counts >= 0"),
    # a negative time is not "negative or not an integer": times need not be integers
    ("vidur", "arrived_at,num_prefill_tokens,num_decode_tokens", "-1.5,10,3", "arrived_at", 1, "-1.5",
     "times in seconds >= 0"),
])
def test_bad_cell_shows_the_value_as_written(tmp_path, layout, header, row, col, colno, shown, valid):
    """The message shows the cell's value as a number (not numpy's ``np.int64(-5)``), says what is wrong with it
    (negative, not an integer, too large) and names file, line and column."""
    p = tmp_path / f"{layout}.csv"
    p.write_text(f"{header}\n0,10,5\n{row}\n")
    with pytest.raises(ValueError, match=rf"{layout}.csv', line 3, column '{col}' \({colno}\): {re.escape(shown)} is .*; "
                                         rf"valid: {valid}") as e:
        traces.read_trace(p)
    assert "np." not in str(e.value)
