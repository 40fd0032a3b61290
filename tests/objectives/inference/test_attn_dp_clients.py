"""Fewer closed-loop clients than a replica's attention-DP ranks: only the ranks holding a request run it, so only
their tokens reach the routed experts (`max_throughput` prices those rows with `prepare(moe_dp=...)`). A lone
client's 8k prompt on eight attention-DP ranks had been priced as eight prompts at the experts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives import inference

KW = dict(model="deepseek-ai/DeepSeek-R1", gpu="B200", tp=1, attn_dp=8, ep=8, weight_dtype="fp8", input_len=8192,
          output_len=1024)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_a_lone_client_loads_the_experts_with_its_own_prompt_only(engine):
    r = inference.max_throughput(**KW, concurrency=[1, 8], engine=engine)
    one, full = r["ttft_ms"].to_numpy()
    # one prompt's tokens at the experts against eight ranks' (the same per-rank batch of one); with a client a
    # rank the ranks' prompts drift apart round by round, so the own iteration holds the other ranks' mean share
    # of a step, not a prompt each (`estimate.lockstep_round_s`; simulator, ten requests a client: 618 / 590 /
    # 543 ms TTFT at eight clients, the model 621 / 622 / 521 ms, 1366 / 1303 / 834 ms before it)
    assert list(r["batch_size"]) == [1, 1]
    assert one < 0.85 * full
    assert r["tpot_ms"].iloc[0] < r["tpot_ms"].iloc[1]


def test_rows_with_a_client_per_rank_are_priced_as_before_and_the_mix_matches_each_alone():
    loaded = inference.max_throughput(**KW, concurrency=[8, 16, 64], engine="vllm")
    mixed = inference.max_throughput(**KW, concurrency=[2, 8, 1, 16, 64], engine="vllm")
    pd.testing.assert_frame_equal(mixed.iloc[[1, 3, 4]].reset_index(drop=True), loaded.reset_index(drop=True))
    for i, c in ((0, 2), (2, 1)):
        alone = inference.max_throughput(**KW, concurrency=c, engine="vllm")
        np.testing.assert_allclose(mixed.iloc[i][["ttft_ms", "tpot_ms"]].to_numpy(float),
                                   alone.iloc[0][["ttft_ms", "tpot_ms"]].to_numpy(float), rtol=1e-12)
    # two replicas (dp 2) of eight ranks: two clients keep one rank of each busy, as one client does one replica
    two = inference.max_throughput(**KW, concurrency=2, dp=2, engine="vllm")
    np.testing.assert_allclose(two["ttft_ms"].iloc[0], mixed["ttft_ms"].iloc[2], rtol=1e-12)


@pytest.mark.parametrize(("dp", "attn_dp", "conc"), [(1, 8, 1), (1, 8, 3), (2, 1, 1), (4, 1, 6), (2, 8, 5)])
def test_throughput_counts_the_clients_in_flight_not_a_full_rank_each(dp, attn_dp, conc):
    """`conc` clients on dp x attn_dp ranks keep at most `conc` requests in flight: one client on eight attention-DP
    ranks had read 8x its own token rate (gpt-oss-120b, H200, SGLang: 1,530 tok/s from one client at 5.2 ms a
    token), six clients on four replicas 8 of them (helper u13f's user pass)."""
    kw = (dict(KW, attn_dp=attn_dp, ep=attn_dp) if attn_dp > 1 else
          dict(model="Llama-3.1-8B", gpu="H100", input_len=8192, output_len=1024))
    r = inference.max_throughput(**kw, dp=dp, engine="vllm", concurrency=conc).iloc[0]
    assert r["fits"]
    n = int(r["batch_size"])
    assert n == int(np.ceil(conc / (dp * attn_dp)))
    # every client in flight emits its output_len tokens per e2e it sees (Little's law: it sends its next request
    # once it has read the last token), a little below one token per tpot: there are `conc` of them
    assert r["throughput_tok_s"] == pytest.approx(conc * r["output_len"] * 1e3 / r["e2e_ms"], rel=1e-9)
    assert 0.9 * conc * 1e3 / r["tpot_ms"] < r["throughput_tok_s"] < conc * 1e3 / r["tpot_ms"]
