"""SGLang runs a waiting prompt's prefill as a batch of its own and pauses the running decodes (its default
``enable_mixed_chunk=False``): the closed form's and the simulator's iterations follow it; vLLM / TensorRT-LLM keep
mixing prompt chunks into decode iterations."""
import dataclasses

import numpy as np
import pytest

from objectives import inference, profiles
from objectives.inference import core
from objectives.inference.estimate import prefill_wait_s, run_prompt_work, split_work, steady_state, steady_work
from objectives.serving import Scheduler

N, ISL, OSL, MNT = 64.0, 1024.0, 1024.0, 8192.0


def test_the_engine_fact_lives_in_one_place():
    assert profiles.runs_prefill_alone("sglang==0.5.14")
    assert profiles.runs_prefill_alone("SGLang")
    assert not profiles.runs_prefill_alone("vllm")
    assert not profiles.runs_prefill_alone("trtllm")
    assert not profiles.runs_prefill_alone("roofline")
    np.testing.assert_array_equal(profiles.prefill_alone_mask(("vllm", "sglang", "roofline")), [0.0, 1.0, 0.0])


def test_prepared_rows_carry_it():
    sgl = core.prepare("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine="sglang")
    vll = core.prepare("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine="vllm")
    assert sgl is not None and vll is not None
    assert float(np.asarray(sgl.coeffs.prefill_alone).max()) == 1.0
    assert float(np.asarray(vll.coeffs.prefill_alone).max()) == 0.0


def test_steady_state_pauses_the_decodes_for_each_prefill_batch():
    """A prefill batch carries no decodes; every request then decodes osl - 1 steps with all N running, so a request
    cycle lasts the prefill batches plus osl - 1 decode steps."""
    mixed = steady_work(N, ISL, OSL, MNT)[0]
    alone = steady_work(N, ISL, OSL, MNT, alone=1.0)[0]
    n_pf = N * ISL / MNT
    assert alone == pytest.approx(n_pf + OSL - 1.0)
    assert alone > mixed
    w_pf, w_dec, npf, ndec = split_work(N, ISL, OSL, MNT, alone, alone=1.0)
    assert w_pf[2] == 0.0 and w_pf[0] == MNT              # prompt tokens only
    assert npf == pytest.approx(n_pf) and ndec == pytest.approx(OSL - 1.0)
    assert w_dec[2] == pytest.approx(N)                     # every running request decodes
    w_pf_m = split_work(N, ISL, OSL, MNT, mixed)[0]
    assert w_pf_m[2] > 0.0                                   # vLLM's prefill iteration carries decodes


def test_prefill_batches_of_a_few_prompts_lengthen_the_cycle_and_keep_every_decode_step():
    """An open loop's prompts arrive a few at a time (`split_work`'s ``prompts``): a prefill batch run alone then
    holds that many prompts, so a cycle holds N / prompts prefill batches beside the osl - 1 decode steps every
    request still runs. The cycle had counted full-budget batches (N x isl / budget) while the split priced the
    smaller ones: its decode steps came short (SGLang PP 4 under load: 176 of 255, TPOT 0.54x the simulator's)."""
    mnt, prompts = 4 * MNT, 1.3
    n_it = steady_work(N, ISL, OSL, mnt, alone=1.0, prompts=prompts)[0]
    assert n_it == pytest.approx(N / prompts + OSL - 1.0)
    assert steady_work(N, ISL, OSL, mnt, alone=1.0, prompts=None)[0] == steady_work(N, ISL, OSL, mnt, alone=1.0)[0]
    assert steady_work(N, ISL, OSL, mnt, prompts=prompts)[0] == steady_work(N, ISL, OSL, mnt)[0]   # mixed: as before
    w_pf, w_dec, npf, ndec = split_work(N, ISL, OSL, mnt, n_it, alone=1.0, prompts=prompts)
    assert npf == pytest.approx(N / prompts)
    assert ndec * w_dec[2] == pytest.approx(N * (OSL - 1.0))  # every request's decode steps, none clipped away


def test_a_prompt_runs_with_the_whole_budget_and_no_decodes():
    steady, k0, wave, k_w, chunk = run_prompt_work(N, 12000.0, OSL, MNT, alone=1.0)
    assert steady[0] == MNT and steady[2] == 0.0 and k0 == pytest.approx(12000.0 / MNT)
    assert wave[2] == 0.0 and chunk[2] == 0.0 and wave[0] == MNT
    m_steady, m_k0, m_wave, _, _ = run_prompt_work(N, 12000.0, OSL, MNT)
    assert m_steady[2] > 0.0 and m_wave[2] > 0.0 and m_k0 > k0


def test_sglang_rows_pause_decodes_and_prefill_sooner():
    """The same SGLang profile rows with and without the engine fact: paused decodes lengthen the request cycle
    (TPOT) and a prefill batch without decodes gives the first token sooner (TTFT) where the round's prompts
    reach it apart; a round the paused decodes keep in step arrives in one decode step and queues (the
    thirty-seventh round, `lockstep.round_queue`), which at 64 clients of 4k prompts takes that back (within 2 %,
    re-pinned from shorter), and the prompts received while its prefill batches run join them (the host time's
    lag, the thirty-eighth round: 1.10x the mixed engine's wait, re-pinned from within 2 %)."""
    p = core.prepare("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine="sglang")
    assert p is not None
    mixed = dataclasses.replace(p, coeffs=dataclasses.replace(p.coeffs, prefill_alone=0.0))
    n, isl, osl, mnt = 64.0, 4096.0, 256.0, 8192.0
    t_a, it_a, _, _ = steady_state(p, n, isl, osl, mnt)
    t_m, it_m, _, _ = steady_state(mixed, n, isl, osl, mnt)
    assert float(t_a * it_a) > float(t_m * it_m)
    own_a = run_prompt_work(n, isl, osl, mnt, alone=1.0)[0]
    own_m = run_prompt_work(n, isl, osl, mnt)[0]
    assert own_a[2] == 0.0 < own_m[2]              # no decodes beside the own prompt
    wait_a, wait_m = float(prefill_wait_s(p, n, isl, osl, mnt)), float(prefill_wait_s(mixed, n, isl, osl, mnt))
    assert wait_m < wait_a < 1.15 * wait_m
    # one client: no round to queue, the prompt alone in its batch gives its first token sooner
    assert float(prefill_wait_s(p, 1.0, isl, osl, mnt)) < float(prefill_wait_s(mixed, 1.0, isl, osl, mnt))


def test_simulator_policy_follows_the_engine():
    sgl = inference.StepModel("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine="sglang")
    vll = inference.StepModel("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine="vllm")
    assert Scheduler().policy == "auto"
    assert Scheduler().policy_rule(sgl) == "prefill_first"
    assert Scheduler().policy_rule(vll) == "decode_priority"
    assert Scheduler(policy="decode_priority").policy_rule(sgl) == "decode_priority"
    assert Scheduler.of_knobs().policy_rule(sgl) == "prefill_first"
    with pytest.raises(ValueError, match="auto"):
        Scheduler(policy="mixed")


def test_a_retracted_requests_prefill_again_pauses_the_decodes():
    """SGLang's retraction churn (`estimate.recompute_s`): the prefill again is a batch of its own, its whole time
    added to the cycle, not the difference a chunk mixed into a decode iteration makes."""
    from objectives.inference.estimate import recompute_s

    p = core.prepare("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine="sglang")
    assert p is not None
    mixed = dataclasses.replace(p, coeffs=dataclasses.replace(p.coeffs, prefill_alone=0.0))
    a = float(recompute_s(p, 40.0, 1024.0, 8192.0, 8192.0, 12000.0))
    m = float(recompute_s(mixed, 40.0, 1024.0, 8192.0, 8192.0, 12000.0))
    assert a > m > 0.0
