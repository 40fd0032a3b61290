"""Test-time scaling knobs (objectives/test_time.py): aggregation formulas, the stored fits, served cost."""
import numpy as np
import pytest

from objectives import test_time as tt

VM = tt.VoteModel(kappa=0.5, wrong_answers=4.0)


def _monte_carlo(p, n, vm, rng, problems=200_000):
    """Problems with Beta-distributed success rates, N samples each; (oracle, plurality vote) fractions solved.
    The vote rule is the formula's: the correct count must beat N / (1 + w) (a tie counts half)."""
    pi = rng.beta(p * vm.kappa, (1 - p) * vm.kappa, problems)
    x = rng.binomial(n, pi)
    thr = n / (1 + vm.wrong_answers)
    vote = np.where(x > thr + 1e-9, 1.0, np.where(np.abs(x - thr) <= 1e-9, 0.5, 0.0))
    return (x > 0).mean(), vote.mean()


@pytest.mark.parametrize("p, n", [(0.3, 4), (0.6, 16), (0.8, 10), (0.5, 64)])
def test_aggregation_formulas_match_a_simulation(p, n):
    oracle, vote = _monte_carlo(p, n, VM, np.random.default_rng(n))
    assert tt.best_of_n(p, n, VM) == pytest.approx(oracle, abs=0.005)
    assert tt.majority_vote(p, n, VM) == pytest.approx(vote, abs=0.005)


def test_one_sample_is_the_per_sample_rate_and_more_samples_help():
    n = [1, 2, 4, 16, 64]
    oracle, vote = np.asarray(tt.best_of_n(0.42, n, VM)), np.asarray(tt.majority_vote(0.42, n, VM))
    assert oracle[0] == pytest.approx(0.42) and vote[0] == pytest.approx(0.42)
    assert np.all(np.diff(oracle) > 0) and oracle[-1] < 1.0
    # a vote never beats the oracle verifier; it gains with N overall (not step by step: the winning count
    # N / (1 + w) moves in whole votes)
    assert np.all(vote <= oracle + 1e-12) and vote[-1] > vote[0]
    # without a spread of difficulty (kappa large) best-of-N is 1 - (1 - p)^N
    assert tt.best_of_n(0.3, 5, tt.VoteModel(kappa=1e6, wrong_answers=1.0)) == pytest.approx(1 - 0.7 ** 5, abs=1e-4)


def test_stored_vote_model_is_the_fit_of_the_published_pairs():
    vm, table = tt.fit_vote_model()
    stored = tt.vote_model()
    assert vm.kappa == pytest.approx(stored.kappa, rel=1e-3)
    assert vm.wrong_answers == pytest.approx(stored.wrong_answers, rel=1e-3)
    rms = float(np.sqrt(((table["fitted_cons64"] - table["cons64"]) ** 2).mean()))
    assert rms < 0.07 and (table["fitted_cons64"] > table["pass1"]).all()


def test_budget_curve():
    f = tt.budget_factor(np.array([1024, 2048, 4096, 16384, 65536]))
    assert f[1] == pytest.approx(1 - 0.0588 * 3) and f[3] == 1.0 and f[4] == 1.0
    assert np.all(np.diff(f) >= 0)
    with pytest.raises(ValueError, match="budget"):
        tt.budget_factor(0)


def test_sequential_scaling_is_one_longer_chain():
    p = tt.per_sample_success("Qwen3-32B", "AIME-2024")
    assert tt.accuracy_of(p, 4, 4096, "sequential") == pytest.approx(p)                # 4 x 4K = the 16K budget
    assert tt.accuracy_of(p, 1, 4096, "sequential") == pytest.approx(p * tt.budget_factor(4096))


def test_served_cost_long_reasoning_is_memory_bound_and_the_prompt_is_shared():
    df = tt.evaluate("Qwen3-32B", "AIME-2024", "H200", tp=2, weight_dtype="fp8", n_samples=1,
                     budget=[4096, 16384], mode="vote")
    short, long_ = df["usd_per_problem"].to_numpy()
    assert long_ > 4.5 * short                        # 4x the tokens, fewer sequences fit the KV cache
    assert df["batch_size"].iloc[1] < df["batch_size"].iloc[0]
    par = tt.evaluate("Qwen3-32B", "AIME-2024", "H200", tp=2, weight_dtype="fp8", n_samples=[1, 8], budget=512,
                      mode="oracle", prompt_len=8192)
    one, eight = par["usd_per_problem"].to_numpy()
    assert eight < 8 * one                            # the 8K-token prompt is prefilled once, not 8 times
    assert (par["usd_per_solved"] >= par["usd_per_problem"]).all() and par["fits"].all()
    assert par["accuracy"].iloc[1] > par["accuracy"].iloc[0]


def test_bad_input_names_the_value():
    with pytest.raises(ValueError, match="Qwen3-8B.*known"):
        tt.per_sample_success("Qwen3-8B", "AIME-2024")
    with pytest.raises(ValueError, match="mode='beam'"):
        tt.accuracy_of(0.5, 2, 4096, "beam")
    with pytest.raises(ValueError, match="n_samples"):
        tt.evaluate("Qwen3-32B", "AIME-2024", "H200", n_samples=0)
    with pytest.raises(ValueError, match="kappa"):
        tt.VoteModel(kappa=-1.0, wrong_answers=2.0)


def test_the_default_weight_format_is_the_checkpoints():
    """weight_dtype=None runs each model in its checkpoint's format, as every inference entry point does:
    DeepSeek-R1's FP8 release fits eight H200s (in bf16 it would need 1.3 TB), Qwen3-32B's bf16 one runs bf16."""
    df = tt.evaluate(["DeepSeek-R1", "Qwen3-32B"], "AIME-2024", "H200", tp=8, n_samples=4, budget=4096)
    assert df["weight_dtype"].tolist() == ["fp8", "bf16"] and df["fits"].all()
    fp8 = tt.evaluate("DeepSeek-R1", "AIME-2024", "H200", tp=8, weight_dtype="fp8", n_samples=4, budget=4096)
    assert df.iloc[0]["accuracy"] == fp8.iloc[0]["accuracy"]
    assert df.iloc[0]["usd_per_problem"] == pytest.approx(fp8.iloc[0]["usd_per_problem"], rel=1e-12)
    assert not tt.evaluate("DeepSeek-R1", "AIME-2024", "H200", tp=8, weight_dtype="bf16")["fits"].iloc[0]
