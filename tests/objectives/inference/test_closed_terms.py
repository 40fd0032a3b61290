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
