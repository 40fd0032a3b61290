"""The closed form's linear, expert and LM-head terms have one home (`ops.linears_s`, `ops.experts_s`,
`ops.lm_head_s`); `ops.forward_s` writes them out on its hot path, so these pin the copy to the helpers."""
import numpy as np
import pytest

from objectives.inference import StepModel
from objectives.inference.ops import experts_s, forward_s, linears_s, lm_head_s


@pytest.mark.parametrize("model", ["Qwen3-30B-A3B", "Llama-3.1-70B"])
def test_forward_s_writes_out_the_helpers_terms_to_the_bit(model):
    c = StepModel(model, "H100_SXM", tp=2, engine="roofline")._c
    assert c.curves is None and (float(c.n_experts) > 0) == (model == "Qwen3-30B-A3B")
    M = np.array([1.0, 7.0, 512.0, 8192.0])
    S = np.array([1.0, 7.0, 17.0, 256.0])
    for mx, pw, m, s in ((max, pow, 512.0, 17.0), (np.maximum, np.power, M, S)):
        # a prompt-only forward (T = M tokens, no attention pairs, no decodes): forward_s' sum in its own order
        t = linears_s(c, m, mx)
        if float(c.n_experts) > 0:
            t = t + experts_s(c, m, mx, pw)
        t = t + m * c.tok_s + lm_head_s(c, s, mx) + 0.0 * c.state_seq_s
        want = t + c.fixed_s + (0.0 + s) * c.ovh_seq_s
        assert np.array_equal(forward_s(c, m, 0.0, 0.0, 0.0, s, mx, pw), want)


def test_each_term_is_the_larger_of_its_compute_and_its_weight_streaming():
    c = StepModel("Qwen3-30B-A3B", "H100_SXM", tp=2, engine="roofline")._c
    rows = np.array([1.0, 1e6])
    head = lm_head_s(c, rows)
    assert head[0] == pytest.approx(c.head_mem_s)          # one logit row: the vocabulary's weights streamed
    assert head[1] == pytest.approx(c.head_s_row * 1e6 + c.head_s_half) and head[1] > c.head_mem_s
    lin = linears_s(c, rows)
    assert lin[0] == pytest.approx(c.lin_mem_s) and lin[1] > c.lin_mem_s
    # the experts: one token touches top_k of them, a million tokens every one
    one, many = experts_s(c, rows)
    assert one == pytest.approx(max(c.exp_s_tok * c.top_k + c.exp_s_half * c.top_k, c.exp_mem_s * c.top_k))
    assert many == pytest.approx(max(c.exp_s_tok * 1e6 * c.top_k + c.exp_s_half * c.n_experts,
                                     c.exp_mem_s * c.n_experts))


@pytest.mark.parametrize("model,engine", [("Llama-3.1-70B", "roofline"), ("Qwen3-30B-A3B", "sglang")])
@pytest.mark.parametrize("pp", [2, 4])
def test_step_time_scalar_chunk_pass_is_the_array_paths_to_the_bit(model, engine, pp):
    # `StepModel._time_ms`' scalar path writes out `estimate.chunk_work` (calling it cost the simulator's scalar
    # pp > 1 call ~8 %); its array path calls `chunk_pass_s` / `chunk_work`: this pins the copy to them
    from objectives.inference.estimate import _replica_time_s

    sm = StepModel(model, "H100_SXM", tp=2, pp=pp, engine=engine)
    cases = [(512.0, 512 * 1000.0, 31.0, 31 * 2000.0, 1.0, 2), (4096.0, 4096 * 2048.0, 3.0, 1500.0, 2.0, None),
             (0.0, 0.0, 64.0, 64 * 3000.0, 0.0, 1), (2048.0, 2048 * 1024.0, 0.0, 0.0, 1.0, 3),
             (100.0, 100 * 60.0, 200.0, 200 * 4000.0, 1.0, None)]
    chunk_binds = False
    for T, A, D, K, n, lanes in cases:
        scalar = sm.time_ms(T, A, D, K, n, lanes=lanes)
        arr = sm.time_ms(*(np.array([x]) for x in (T, A, D, K, n)), lanes=lanes)
        assert isinstance(scalar, float) and scalar == arr[0]
        m = sm._split(D + n, lanes)
        chunk_binds |= scalar > 1e3 * float(_replica_time_s(sm._p, T, A, D, K, D + n, m))
    assert chunk_binds      # the chunk's own pass is longer than the split in at least one case


def test_micro_batches_caps_at_the_batches_in_flight_alike_on_scalars_and_arrays():
    from objectives.inference.estimate import micro_batches

    n = [0.0, 1.0, 3.0, 7.0, 40.0]
    for lanes, want in ((None, [1.0, 1.0, 3.0, 4.0, 4.0]), (2, [1.0, 1.0, 2.0, 2.0, 2.0]), (0, [1.0] * 5)):
        scal = [micro_batches(4, x, lanes) for x in n]
        assert all(type(v) in (int, float) for v in scal) and scal == want
        assert np.array_equal(micro_batches(4, np.array(n), lanes), want)
    assert np.array_equal(micro_batches(4, 7.0, np.array([1.0, 3.0, 9.0])), [1.0, 3.0, 4.0])  # per-row lanes
