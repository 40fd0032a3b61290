"""A closed loop's start-up wave (`estimate.run_prompt_work`, `estimate._run_ttft_s`): the N clients' first prompts
arrive together and run first come, first served in full-budget iterations beside the decodes of the prompts done
before them. The prompt done in the wave's m-th iteration waits through m of them, whose decodes grow from none to
those of the m - 1 iterations before: over the wave a wait's iterations carry a third of the other prompts' decodes
(the wave's middle iteration carries half)."""
import numpy as np
import pytest

from objectives.inference import core
from objectives.inference.estimate import replica_time_s, run_prompt_work

OSL, MNT = 1024.0, 8192.0


def _prepared():
    p = core.prepare("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine="vllm")
    assert p is not None
    return p


def _scheduled_wave_s(p, n: int, isl: float, mnt: float = MNT) -> float:
    """The wave's mean TTFT (s) iteration by iteration, as vLLM's scheduler runs it (vllm/v1/core/sched/scheduler.py
    `Scheduler.schedule`: the running requests' decodes first, one token each, then the waiting prompts in arrival
    order, chunked to the budget left): each iteration priced with `replica_time_s` on its own work."""
    rem, done, t, ttft, j = [isl] * n, 0, 0.0, [], 0
    while done < n:
        budget, T, A, fin = mnt - done, 0.0, 0.0, 0
        while budget > 0 and j < n:
            take = min(budget, rem[j])
            A += take * (isl - rem[j] + 0.5 * (take + 1.0))     # the chunk's query-key pairs after its prefix
            T, rem[j], budget = T + take, rem[j] - take, budget - take
            if rem[j] > 0:
                break
            j, fin = j + 1, fin + 1
        t += float(np.ravel(replica_time_s(p, T, A, float(done), done * isl, float(done + fin), 1.0, whole=True))[0])
        ttft += [t] * fin
        done += fin
    return float(np.mean(ttft))


def _closed_wave_s(p, n: int, isl: float, share: float | None = None) -> float:
    _, _, wave, k_w, _ = run_prompt_work(float(n), isl, OSL, MNT)
    if share is not None:     # the wave's iterations at `share` of the other prompts' decodes instead
        g = min(MNT, n * isl) / isl
        d = share * max(n - g, 0.0)
        T = min(max(MNT - d, 1.0), n * isl)
        wave, k_w = (T, T * (isl + 1.0) * 0.5, d, d * isl, d + T / isl), 0.5 * (1.0 + n * isl / T)
    return float(np.ravel(k_w * replica_time_s(p, *wave, 1.0, whole=True))[0])


def test_prefill_batches_alone_carry_no_decodes_in_the_wave():
    """SGLang runs its prefill batches alone: the running decodes neither take budget from the wave's prompts nor
    run beside them, in the waits' iterations or the prompt's own; with chunked prefill (vLLM) they do."""
    n, isl = 512.0, 8192.0
    _, _, mixed, _, mixed_chunk = run_prompt_work(n, isl, OSL, MNT)
    _, _, alone, _, alone_chunk = run_prompt_work(n, isl, OSL, MNT, alone=1.0)
    assert alone[2] == 0.0 and alone_chunk[2] == 0.0 and alone[0] == MNT
    assert mixed[2] > 0.0 and mixed_chunk[2] > mixed[2] and mixed[0] < MNT


@pytest.mark.parametrize("n,isl", [(256, 8192.0), (512, 8192.0), (512, 1024.0), (128, 8192.0)])
def test_the_closed_form_wave_is_the_scheduled_one(n, isl):
    """Within 1 % of the wave scheduled iteration by iteration from 128 clients; pricing every wait at the wave's
    mean decodes (half of the others') read 7-12 % high on 8k prompts at 256-512 clients (3 % at 128), the share
    that grows with the clients."""
    p = _prepared()
    exact = _scheduled_wave_s(p, n, isl)
    assert _closed_wave_s(p, n, isl) == pytest.approx(exact, rel=0.01)
    if isl == 8192.0 and n >= 256:
        assert _closed_wave_s(p, n, isl, share=0.5) > 1.05 * exact


@pytest.mark.parametrize("n,isl,low", [(16, 8192.0, 0.88), (32, 8192.0, 0.92), (64, 8192.0, 0.95),
                                       (64, 1024.0, 0.95)])
def test_below_128_clients_the_closed_form_wave_reads_a_little_low(n, isl, low):
    """At 16-64 clients the closed form reads 0.91-0.98 of the scheduled wave (Qwen3-30B-A3B H100): a prompt
    longer than the budget left spills its tail into the next iteration, which the closed form's whole-budget
    iterations leave unpriced, a larger share of a shorter wave. Pinned so that a change that moves it is seen."""
    p = _prepared()
    ratio = _closed_wave_s(p, n, isl) / _scheduled_wave_s(p, n, isl)
    assert low < ratio < 0.99
