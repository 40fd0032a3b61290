"""`serving.Workload.output_spread`: a closed loop's fixed output length drawn within +-share per request, the
default that keeps simulated benchmark clients from staying in lockstep waves (issue 13)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from objectives import serving
from objectives.serving import Dist, Workload, simulate_costs
from objectives.serving.workload import DEFAULT_OUTPUT_SPREAD, spread_lengths
from tests.objectives.serving.test_serving import COST


def _frame(w: Workload) -> pd.DataFrame:
    out = simulate_costs(COST, workload=w, per_request=True)
    assert isinstance(out, pd.DataFrame)
    return out


def test_the_default_spreads_a_closed_loops_fixed_outputs_and_keeps_their_mean():
    w = Workload(concurrency=8, input_len=512, output_len=1000, n_requests=4000)
    assert w.output_spread == DEFAULT_OUTPUT_SPREAD > 0
    out = w.requests().output_tokens
    h = round(DEFAULT_OUTPUT_SPREAD * 1000)
    assert out.min() == 1000 - h and out.max() == 1000 + h          # the whole +-h range, nothing beyond
    assert len(np.unique(out)) == 2 * h + 1
    assert abs(out.mean() / 1000 - 1) < 0.01
    assert (w.requests().input_tokens == 512).all()                   # prompts stay exact
    # its own stream: the same draws run after run, another seed draws others
    assert (Workload(concurrency=8, input_len=512, output_len=1000, n_requests=4000).requests().output_tokens
            == out).all()
    assert not (dataclasses.replace(w, seed=1).requests().output_tokens == out).all()


def test_spread_lengths_keeps_every_draw_positive_and_at_least_one_token_apart():
    rng = np.random.default_rng(0)
    assert set(spread_lengths(10, 0.02, rng, 2000)) == {9, 10, 11}    # 0.2 tokens rounds up to one
    assert (spread_lengths(1, 0.5, rng, 100) == 1).all()              # one token cannot spread and stay >= 1
    x = spread_lengths(4, 0.9, rng, 5000)
    assert x.min() == 1 and x.max() == 7 and abs(x.mean() - 4) < 0.1   # capped at length - 1 either side
    assert (spread_lengths(300, 0.0, rng, 10) == 300).all()


def test_zero_reproduces_exact_lengths_and_the_old_frames_bit_identically():
    w = Workload(concurrency=4, input_len=300, output_len=40, n_requests=40, output_spread=0)
    req = w.requests()
    assert (req.output_tokens == 40).all() and (req.input_tokens == 300).all()
    # the exact-lengths frame is the one drawn without any spread: the arrivals', prompts' and outputs' streams
    # are untouched by the spread's
    exact = Workload(concurrency=4, input_len=Dist("uniform", low=300, high=300),
                     output_len=Dist("uniform", low=40, high=40), n_requests=40)
    pd.testing.assert_frame_equal(_frame(w), _frame(exact))
    # drawn lengths and open-loop rates do not see the spread at all
    for other in (Workload(concurrency=4, input_len=Dist("uniform", low=100, high=400),
                           output_len=Dist("uniform", low=20, high=60), n_requests=40),
                  Workload(rate=5.0, input_len=300, output_len=40, n_requests=40)):
        pd.testing.assert_frame_equal(_frame(other), _frame(dataclasses.replace(other, output_spread=0.0)))


def test_the_default_desynchronizes_a_fixed_length_closed_loop_after_its_first_round():
    """8 clients, 256 / 200 tokens: with exact lengths each round's 8 requests finish in the same iteration (8
    per finish time, every round); with the default they do so in the first round only."""
    def finish_groups(w: Workload) -> pd.Series:
        f = _frame(w)
        later = f.iloc[8:]                                        # after the first round (one request per client)
        return later.groupby(later["finish_s"].round(9)).size()
    exact = finish_groups(Workload(concurrency=8, input_len=256, output_len=200, n_requests=160, output_spread=0))
    assert (exact == 8).all()
    spread = finish_groups(Workload(concurrency=8, input_len=256, output_len=200, n_requests=160))
    assert len(spread) > 0.6 * 152 and spread.max() <= 3
    first = _frame(Workload(concurrency=8, input_len=256, output_len=200, n_requests=160)).iloc[:8]
    assert first["first_token_s"].nunique() == 1                 # the first round is still one wave
    # and the desynchronized clients wait less for their first token than clients in lockstep waves
    f_exact = _frame(Workload(concurrency=8, input_len=256, output_len=200, n_requests=160, output_spread=0))
    f_spread = _frame(Workload(concurrency=8, input_len=256, output_len=200, n_requests=160))
    assert f_spread["ttft_ms"].iloc[8:].mean() < 0.8 * f_exact["ttft_ms"].iloc[8:].mean()


@pytest.mark.parametrize("bad,err", [(-0.01, ValueError), (1.0, ValueError), (math.nan, ValueError),
                                     (math.inf, ValueError), ("0.02", TypeError), (True, TypeError),
                                     (None, TypeError)])
def test_bad_spreads_are_refused_by_name(bad, err):
    with pytest.raises(err, match="output_spread"):
        Workload(concurrency=4, output_spread=bad)


def test_a_spread_where_nothing_uses_it_is_refused():
    for kw in (dict(rate=2.0), dict(concurrency=4, output_len=Dist("uniform", low=10, high=20)),
               dict(trace=pd.DataFrame({"arrival_s": [0.0, 1.0], "input_tokens": [5, 6], "output_tokens": [7, 8]}))):
        with pytest.raises(ValueError, match="output_spread=0.1"):
            Workload(output_spread=0.1, **kw)
        Workload(output_spread=0.0, **kw)                        # exact (what they send anyway) and the default pass
        Workload(**kw)


def test_the_analytical_model_prices_the_stated_length_whatever_the_spread():
    """`steady_state` (the closed form, which weighs the start-up wave by its fitted share) does not move."""
    kw = dict(model="Llama-3.1-8B", gpu="H100-SXM-80GB", tp=1, weight_dtype="fp8")
    a = serving.steady_state(**kw, workload=Workload(concurrency=32, input_len=1024, output_len=256))
    b = serving.steady_state(**kw, workload=Workload(concurrency=32, input_len=1024, output_len=256,
                                                     output_spread=0))
    assert a == pytest.approx(b, nan_ok=True, rel=0, abs=0)
