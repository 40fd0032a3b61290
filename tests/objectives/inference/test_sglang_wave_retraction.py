"""SGLang's closed loop that fits its KV pool on average but not at the end of its waves (`inference.admission.
wave_retraction` / `retraction_wait`, read by `inference.max_throughput`): the C clients' requests are admitted
together and grow together to C x (isl + osl), so from the point where the pool runs out SGLang retracts requests to
the back of the queue, each once a wave, and the prompts behind them wait for the new-token ratio to decay and for
the readmitted requests to finish. Checked against the serving simulator, which runs SGLang's admission by its
new-token ratio and its retraction (`serving.Scheduler`'s ``admission="new_token_ratio"``)."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from objectives.inference.admission import (
    RETRACT_WAIT_CYCLES,
    SGLANG,
    retraction_wait,
    wave_overflow,
    wave_retraction,
)
from tests.helpers.waves import closed, simulated
from tests.helpers.waves import wave_cap as _cap

_closed, _simulated = partial(closed, engine="sglang"), partial(simulated, engine="sglang")



def test_each_victim_leaves_its_wave_once():
    """share / (isl + osl) retractions a request (cap / x of the N held at context x), the victims' mean context
    ln(x1 / x0) / (1 / x0 - 1 / x1) between where the pool runs out (x0) and the wave's end (x1); fewer retractions
    than vLLM's preemptions of the same overflow (its victims are readmitted at once and preempted again)."""
    isl, osl = 1024.0, 8192.0
    share = np.array([0.0, 1024.0, 4096.0, 6000.0])
    rho, freed, u = wave_retraction(share, isl, osl)
    x1 = isl + osl
    assert rho.tolist() == pytest.approx([0.0, 1024 / x1, 4096 / x1, 4096 / x1])
    assert u.tolist() == pytest.approx([0.0, 0.25, 1.0, 1.0])
    x0 = x1 - 4096.0
    assert freed[0] == x1 and freed[2] == pytest.approx(np.log(x1 / x0) / (1 / x0 - 1 / x1))
    assert x1 - 1024.0 < freed[1] < x1 and x0 < freed[2] < x1 - 2048.0   # the mean of x weighted by 1 / x^2
    assert np.all(rho[1:] < wave_overflow(share, isl, osl)[0][1:])


def test_the_wait_runs_in_decay_steps_and_cycles():
    """rho x u^2 x (decay_steps / osl + `RETRACT_WAIT_CYCLES`) cycles: the ratio's decay is a fixed number of
    decode steps, a shorter share of a longer cycle; nothing where nothing overflows."""
    assert float(retraction_wait(0.0, 0.0, 8192.0)) == 0.0
    w = retraction_wait(0.4, np.array([0.5, 1.0]), np.array([2048.0, 8192.0]))
    assert w.tolist() == pytest.approx([0.4 * 0.25 * (SGLANG.decay_steps / 2048 + RETRACT_WAIT_CYCLES),
                                        0.4 * (SGLANG.decay_steps / 8192 + RETRACT_WAIT_CYCLES)])


def test_nothing_moves_where_the_waves_peak_fits():
    """A pool holding the whole wave (C x (isl + osl)) or twice that: the same closed loop, bit for bit; one that
    holds the average but not the peak: all C in flight, the wave's retractions and the wait behind them."""
    isl, osl, conc = 1024, 8192, 32
    fits = _closed(isl, osl, conc, _cap(isl, osl, conc, 0.0))
    assert fits == _closed(isl, osl, conc, 2 * _cap(isl, osl, conc, 0.0))
    over = _closed(isl, osl, conc, _cap(isl, osl, conc, 0.9))
    assert over["batch_size"] == conc and over["ttft_ms"] > 10 * fits["ttft_ms"]
    assert over["tpot_ms"] > fits["tpot_ms"]          # the victims' prompts and outputs so far prefilled again
    assert over["e2e_ms"] == pytest.approx(over["ttft_ms"] + (osl - 1) * over["tpot_ms"], rel=1e-12)


@pytest.mark.parametrize("isl, osl, conc, u", [(1024, 8192, 32, 0.54), (1024, 8192, 64, 0.9), (2048, 4096, 32, 0.56),
                                               (1024, 2048, 96, 0.46)])
def test_closed_form_and_simulator_agree_on_a_waves_retractions(isl, osl, conc, u):
    """Llama-3.1-8B on one H100, SGLang, clients that fit the pool on average but not at the end of their waves
    (10 requests a client, lengths +-2 %): the simulator retracts as `wave_retraction` says (within 25 %), its mean
    TTFT (several times that of a pool that holds the peak) is the closed form's within 0.8-1.25x, where before the
    closed form priced no wait at all (0.03-0.4x); TPOT within 5 %."""
    cap, peak = _cap(isl, osl, conc, u), _cap(isl, osl, conc, 0.0)
    c = _closed(isl, osl, conc, cap)
    s, s0 = _simulated(isl, osl, conc, cap), _simulated(isl, osl, conc, peak)
    rho, _, _ = wave_retraction(u * osl / 2, isl, osl)
    assert s0["preemptions"] == 0 and s["preemptions"] / s["n_requests"] == pytest.approx(float(rho), rel=0.25)
    assert s["ttft_ms_mean"] > 1.8 * s0["ttft_ms_mean"]
    assert 0.8 < c["ttft_ms"] / s["ttft_ms_mean"] < 1.25
    assert c["tpot_ms"] == pytest.approx(s["tpot_ms_mean"], rel=0.05)
