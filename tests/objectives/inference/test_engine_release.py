"""What an engine does follows its release (`inference.resolve.engine_behaviour`, the one resolver of an engine
release on a GPU): the overlap loop with and without speculative decoding (`profiles.OVERLAP_SINCE`,
`profiles.SPEC_OVERLAP_SINCE`), the budgets, SGLang's 48 running requests with speculative decoding; a release
named alone ('vllm~=0.13.0', `profiles.RELEASE_SEP`) reads the newest kernel tables, so a measured row of a release
without tables of its own (`dse calibrate`, `calibration.measurements.engine_releases`) is priced as its engine
behaved."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives import inference, profiles
from objectives.calibration.calibrate import check
from objectives.calibration.measurements import engine_releases
from objectives.inference import Speculative
from objectives.inference.resolve import (
    ENGINE_BUDGETS,
    VLLM_SMALL_BUDGETS,
    engine_behaviour,
    engine_behaviours,
    engine_budget,
    engine_budgets,
)
from objectives.serving import Scheduler
from tests.helpers import DATA

SPEC = Speculative("eagle", 2, (0.7,))
VLLM_A = DATA / "vllm_bench_serve" / "openai-infqps-concurrency4-Llama-3.1-8B-Instruct-20261203-120000.json"


def test_a_release_named_alone_reads_the_newest_tables_and_keeps_its_name():
    assert profiles.resolve_engine("vllm~=0.13.0") == ("vllm", None)
    assert profiles.resolve_engine("vllm==0.14.0") == ("vllm", "0.14.0")
    assert profiles.engine_label("VLLM~=0.13.0") == "vllm~=0.13.0"
    assert profiles.engine_release("vllm~=0.13.0") == profiles.engine_release("vllm==0.13.0") == "0.13.0"
    assert profiles.engine_release("vllm") is None
    assert profiles.load("H200-SXM-141GB", "vllm~=0.13.0") is profiles.load("H200-SXM-141GB", "vllm")
    with pytest.raises(ValueError, match="'' is no release"):
        profiles.resolve_engine("vllm~=")
    with pytest.raises(ValueError, match="empty version.*'vllm~=<release>'"):   # tables named by no version
        profiles.resolve_engine("vllm==")
    with pytest.raises(ValueError, match="versions available"):   # tables named by version must exist
        profiles.load("H200-SXM-141GB", "vllm==0.13.0")


@pytest.mark.parametrize("engine, plain, spec", [
    ("vllm~=0.13.0", False, False), ("vllm~=0.14.0", True, True), ("vllm", True, True),
    ("sglang~=0.5.9", True, False), ("sglang~=0.5.10.post1", True, False), ("sglang~=0.5.11", True, True),
    ("sglang~=0.5.13", True, True),
    ("sglang", True, True), ("trtllm~=0.21.0", False, False), ("trtllm~=1.1.0-dev.2", True, True),
    ("vllm~=nightly-5b8c30d62b754b57", True, True), ("roofline", False, False)])
def test_the_overlap_loop_follows_the_release_with_and_without_speculative_decoding(engine, plain, spec):
    assert engine_behaviour(engine, "H200-SXM-141GB").spec_overlap == spec
    assert (profiles.overlaps(engine), profiles.overlaps(engine, speculative=True)) == (plain, spec)


def test_one_behaviour_per_engine_release_and_gpu():
    sgl = engine_behaviour("sglang~=0.5.9", "H200-SXM-141GB")
    assert (sgl.engine, sgl.pool_batch, sgl.spec_max_running) == ("sglang", True, 48)
    assert sgl.budgets == engine_budget("sglang", 141.0, "H200-SXM-141GB")
    assert engine_behaviour("vllm", "A100-SXM-80GB").budgets == tuple(map(float, VLLM_SMALL_BUDGETS))
    assert engine_behaviour("vllm", None).budgets == tuple(map(float, ENGINE_BUDGETS["vllm"]))
    vll = engine_behaviour(None, "H100-SXM-80GB")   # the GPU's default engine
    assert (vll.engine, vll.pool_batch, vll.spec_max_running) == ("vllm", False, None)
    engines, gpus = ["vllm~=0.13.0", "sglang", "vllm~=0.13.0", "trtllm"], ["H200-SXM-141GB", "B200", None, "H200"]
    rows = engine_behaviours(engines, gpus)
    assert [b.engine for b in rows] == ["vllm", "sglang", "vllm", "trtllm"]
    assert [b.spec_overlap for b in rows] == [False, True, False, True]
    np.testing.assert_array_equal(engine_budgets(engines, gpus), [b.budgets for b in rows])
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows[0].spec_overlap = True   # type: ignore[misc]


def test_speculative_decoding_keeps_the_loop_where_the_release_does_in_the_closed_form_and_the_simulator():
    """vLLM keeps async scheduling with EAGLE / MTP (vllm/config/vllm.py `VllmConfig.__post_init__`), TensorRT-LLM
    its overlap scheduler with MTP; SGLang's first speculative worker turns it off. One prepared batch of mixed
    engines: the rows whose loop stays wait one more iteration for the first token; their GPU cycle is the same, so
    their e2e too: the iteration the first token waits more is one the decode window holds less
    (`estimate.cycle_split`)."""
    on = {e: inference.StepModel("Llama-3.1-8B", "H200", 1, engine=e, speculative=SPEC).overlap_scheduler
          for e in ("vllm", "vllm~=0.13.0", "sglang", "sglang~=0.5.10", "trtllm", "trtllm~=0.21.0")}
    assert on == {"vllm": True, "vllm~=0.13.0": False, "sglang": True, "sglang~=0.5.10": False, "trtllm": True,
                  "trtllm~=0.21.0": False}
    sm = inference.StepModel("Llama-3.1-8B", "H200", 1, engine="sglang~=0.5.10", speculative=SPEC)
    assert not Scheduler().overlaps(sm) and Scheduler().for_cost(sm).max_batch_size == 48
    df = inference.max_throughput("Llama-3.1-8B", "H200", 1, input_len=1024, output_len=256, concurrency=32,
                                  engine=["vllm", "vllm~=0.13.0"], speculative=SPEC)
    assert df.ttft_ms[0] > df.ttft_ms[1] and df.tpot_ms[0] < df.tpot_ms[1]
    np.testing.assert_allclose(df.e2e_ms[0], df.e2e_ms[1], rtol=1e-12)


def test_measured_rows_carry_their_release_to_the_cost_model():
    rows = pd.DataFrame({"engine": ["vllm", "vllm", "sglang", "nim", "trtllm", "trtllm", "sglang"],
                         "engine_version": ["0.13.0", np.nan, " 0.5.9 ", "1.8.0", "1.1.0-dev.2", "1.1/1.2",
                                            "glm5-hopper"]})
    # a version that is no release (a published table's "1.1/1.2") reads as the newest, as a label always did; so
    # does a build label no note dates (the bare name: `profiles.load` refuses an undated label where a GPU's tables
    # differ by build date)
    assert list(engine_releases(rows)) == ["vllm~=0.13.0", "vllm", "sglang~=0.5.9", "nim", "trtllm~=1.1.0-dev.2",
                                           "trtllm", "sglang"]


def test_dse_check_prices_a_vllm_result_as_its_release_ran_it(tmp_path):
    """A `vllm bench serve` result names its engine's release in its --metadata (``engine_version``, or
    "vllm@0.11.0" as its engine), else ``--engine-version`` (here the keyword) does, else it is the newest release
    the model knows. vLLM before 0.14 had no async scheduling: its first token waits one iteration less at the same
    decode speed; 0.19 prices as the newest."""
    rec = json.loads(VLLM_A.read_text())
    assert rec["engine_version"] == "0.11.0"
    rec.pop("engine_version")
    bare = tmp_path / "no_version.json"
    bare.write_text(json.dumps(rec))
    newest = check([bare])[1]
    old, new = check([bare], engine_version="0.13.0")[1], check([bare], engine_version="0.19.0")[1]
    recorded = check([VLLM_A])[1]
    assert newest.engine_version.isna().all() and list(old.engine_version) == ["0.13.0"]
    assert old.ttft_pred[0] < newest.ttft_pred[0]
    # the same GPU cycle: the decode window holds the iteration the newest's first token waits more
    # (`estimate.cycle_split`)
    osl = float(old.osl[0])
    assert old.tpot_pred[0] > newest.tpot_pred[0]
    assert old.ttft_pred[0] + (osl - 1) * old.tpot_pred[0] == pytest.approx(
        newest.ttft_pred[0] + (osl - 1) * newest.tpot_pred[0], rel=1e-12)
    assert new.ttft_pred[0] == newest.ttft_pred[0] and new.tpot_pred[0] == newest.tpot_pred[0]
    assert recorded.ttft_pred[0] == old.ttft_pred[0]   # 0.11.0, recorded in the file: no async scheduling either
    for engine in ("vllm~=0.13.0", "vllm@0.13.0"):     # the release in the engine's name, alone or with tables
        named = check([bare], engine=engine)[1]
        assert list(named.engine_version) == ["0.13.0"] and named.ttft_pred[0] == old.ttft_pred[0]
    with pytest.raises(ValueError, match="'abc' is no release"):
        check([bare], engine="vllm~=abc")


@pytest.mark.parametrize("engine", ["vllm~=0.13,0", "vllm~=O.14.0", "vllm~=abc", "vllm~=", "vllm~=0.13~=1"])
def test_a_malformed_release_is_refused_naming_it_and_the_spellings(engine):
    """A typo in a release named alone would otherwise price the newest release (async scheduling on)."""
    bad = engine.split("~=", 1)[1]
    for call in (profiles.overlaps, profiles.engine_label, profiles.resolve_engine, profiles.engine_release):
        with pytest.raises(ValueError, match=f"{bad!r} is no release") as err:
            call(engine)
        assert "'name~=release'" in str(err.value) and "'name==version'" in str(err.value)


def test_build_labels_and_an_unknown_engine():
    """The silicon rows' build labels are releases (the newest); an unknown name lists the engines and the
    spellings, the release spelling included."""
    for label in ("nightly-dev", "nightly-dev-20260216-d3bae71e", "glm5-hopper", "nightly-5b8c30d62b754b57"):
        assert profiles.overlaps(f"sglang~={label}") and profiles.engine_release(f"sglang~={label}") == label
    with pytest.raises(ValueError, match="unknown engine 'foo~=1.0'; valid: vllm, sglang.*'name~=release'"):
        profiles.resolve_engine("foo~=1.0")


@pytest.mark.parametrize("engine, first", [("vllm~=0.14.0rc1", "0.14.0"), ("vllm~=0.14.0.post1", "0.14.0"),
                                           ("trtllm~=1.0.0rc4", "1.0.0"), ("sglang~=0.5.13rc0", "0.5.13")])
def test_a_pre_release_counts_as_its_release(engine, first):
    """Release candidates are cut from the release's branch: vLLM's 0.14.0rc1 has #31998 (async scheduling with
    EAGLE) and the async default; compared on the base version."""
    assert profiles.release_since(engine, first)
    assert not profiles.release_since(engine.replace(first, "0.0.1"), first)
    assert profiles.overlaps(engine, speculative=True)


def test_the_disaggregated_lag_follows_speculative_decoding_as_the_simulator_does():
    """SGLang before 0.5.11 turns its overlap loop off with speculative decoding: its prefill servers lag no step
    (`serving.handoff.front_end`), as the simulator's `StepModel.overlap_scheduler`; the newest keeps it."""
    from objectives.inference.core import default_eff
    from objectives.serving.handoff import front_end
    eff = default_eff()
    for engine in ("sglang~=0.5.10", "sglang", "vllm~=0.13.0", "vllm"):
        for spec in (None, "eagle:3:0.7"):
            kw = dict(model="Llama-3.1-8B", gpu="H100-SXM-80GB", tp=1, engine=engine, speculative=spec)
            lag = front_end(kw, 1, eff)[3][0]
            loop = inference.StepModel("Llama-3.1-8B", "H100-SXM-80GB", engine=engine, speculative=spec)
            assert lag == float(loop.overlap_scheduler), (engine, spec)
    assert front_end(dict(model="Llama-3.1-8B", gpu="H100-SXM-80GB", tp=1, engine="sglang~=0.5.10",
                          speculative="eagle:3:0.7"), 1, eff)[3][0] == 0.0


def test_bands_are_looked_up_by_the_engine_whatever_its_release():
    """The bands are keyed by the engine's name (`calibration.bands`): a versioned spelling takes its engine's."""
    assert "0.24.0" in profiles.available("H100-SXM-80GB")["vllm"]
    df = inference.max_throughput("Llama-3.1-8B", "H100-SXM-80GB", engine=["vllm", "vllm==0.24.0", "vllm~=0.19.0"],
                                  input_len=1024, output_len=128, interval=0.8)
    ratio = df.ttft_ms_hi / df.ttft_ms
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)
    from objectives.uncertainty import load_bands
    b = load_bands()
    assert b.lookup("inference", "extrapolated", "vllm~=0.13.0", "hopper", "ttft", 0.8) == \
        b.lookup("inference", "extrapolated", "vllm", "hopper", "ttft", 0.8)


@pytest.mark.parametrize("engine", ["vllm~=0.14.0.dev3", "vllm~=0.14.0rc1.dev2", "trtllm~=1.0.0.dev0"])
def test_a_development_build_precedes_its_release(engine):
    """A .devN build is cut from main before the release's branch, so packaging orders it before the release (and
    before its release candidates): it lacks what the release brings (vLLM's async default)."""
    assert not profiles.release_since(engine, engine.split("~=")[1].split(".dev")[0].split("rc")[0])
    assert not profiles.overlaps(engine)


def test_one_order_of_releases_and_either_case_of_the_v():
    """The flag lists, the kernel tables' versions and `release_since` sort releases by one key."""
    from objectives.deploy.flags import _vkey as flags_key
    from objectives.profiles.build import _vkey as build_key

    got = ["nightly-dev", "0.14.0", "0.14.0.post1", "0.14.0rc1", "0.9.0", "0.14.0.dev3", "main-00209af1", "0.14.1"]
    want = ["0.9.0", "0.14.0.dev3", "0.14.0rc1", "0.14.0", "0.14.0.post1", "0.14.1", "main-00209af1", "nightly-dev"]
    for key in (profiles.release_key, flags_key, build_key):
        assert sorted(got, key=key) == want
    for spelled in ("v0.14.0", "V0.14.0"):
        assert profiles.is_release(spelled) and profiles.release_since(f"vllm~={spelled}", "0.14.0")
        assert profiles.overlaps(f"vllm~={spelled}")


# --- release labels as users paste them: build suffixes and container images (`profiles._parse_release`) ---------

_VERSIONS = st.builds(lambda nums, pre, post: ".".join(map(str, nums)) + pre + post,
                      st.lists(st.integers(0, 30), min_size=2, max_size=4),
                      st.sampled_from(["", "rc1", "rc20", "a0"]), st.sampled_from(["", ".post1", ".post2"]))
_SUFFIXES = st.sampled_from(["-cu129", "-cu129-amd64", "+cu128", "-rocm630-mi30x", "-cu126-b200", "+cu130"])


@settings(max_examples=60, deadline=None)
@given(ver=_VERSIONS, suffix=_SUFFIXES, v=st.sampled_from(["", "v", "V"]),
       first=st.sampled_from(["0.5.11", "0.14.0", "1.0.0", "3.0"]))
def test_a_build_suffix_names_the_release_it_was_built_from(ver, suffix, v, first):
    """'0.5.6.post2-cu129', '0.13.0+cu128': the CUDA (or ROCm) a build was compiled against does not change what
    its scheduler does, so the release is the version before the suffix: one order, one behaviour, the spelling
    kept in the engine's label."""
    built = f"{v}{ver}{suffix}"
    assert profiles.is_release(built)
    assert profiles.release_key(built) == profiles.release_key(ver)
    assert profiles.release_since(f"sglang~={built}", first) == profiles.release_since(f"sglang~={ver}", first)
    for engine in ("sglang", "vllm", "trtllm"):
        assert profiles.overlaps(f"{engine}~={built}", speculative=True) == \
            profiles.overlaps(f"{engine}~={ver}", speculative=True)
    assert profiles.engine_release(f"vllm~={built}") == built
    assert profiles.engine_label(f"VLLM~={built}") == f"vllm~={built}"


@pytest.mark.parametrize("image, same", [
    ("vllm/vllm-openai:v0.11.0", "vllm~=v0.11.0"), ("docker.io/vllm/vllm-openai:v0.14.0", "vllm~=v0.14.0"),
    ("lmsysorg/sglang:v0.5.6.post2-cu129", "sglang~=v0.5.6.post2-cu129"),
    ("lmsysorg/sglang:v0.5.13-cu129-amd64", "sglang~=v0.5.13-cu129-amd64"),
    ("nvcr.io/nvidia/tensorrt-llm/release:1.0.0rc4", "trtllm~=1.0.0rc4"),
    ("vllm/vllm-openai:latest", "vllm"), ("lmsysorg/sglang", "sglang")])
def test_an_image_reference_names_its_engine_and_release(image, same):
    """The image a launch script runs names the engine and, by its tag, the release (the newest kernel tables, as
    'name~=release'); 'latest' or no tag is the bare name, the newest."""
    assert profiles.engine_label(image) == same
    assert profiles.resolve_engine(image) == (profiles.engine_key(same), None)
    assert engine_behaviour(image, "H200-SXM-141GB") == dataclasses.replace(
        engine_behaviour(same, "H200-SXM-141GB"), named=image)
    for spec in (False, True):
        assert profiles.overlaps(image, speculative=spec) == profiles.overlaps(same, speculative=spec)


def test_pasted_labels_price_the_release_they_name():
    """A CUDA-suffixed release before vLLM's async default prices as that release, not as the newest."""
    assert not profiles.overlaps("vllm~=0.13.0+cu128") and not profiles.overlaps("vllm/vllm-openai:v0.11.0")
    assert not profiles.overlaps("sglang~=0.5.6.post2-cu129", speculative=True)
    assert not profiles.overlaps("lmsysorg/sglang:v0.5.10.post1-cu129", speculative=True)
    assert profiles.overlaps("lmsysorg/sglang:v0.5.11-cu129", speculative=True)
    kw = dict(input_len=1024, output_len=128, concurrency=16)
    pasted = inference.max_throughput("Llama-3.1-8B", "H100-SXM-80GB", engine="vllm/vllm-openai:v0.13.0", **kw)
    named = inference.max_throughput("Llama-3.1-8B", "H100-SXM-80GB", engine="vllm~=0.13.0", **kw)
    newest = inference.max_throughput("Llama-3.1-8B", "H100-SXM-80GB", engine="vllm", **kw)
    assert pasted.ttft_ms[0] == named.ttft_ms[0] != newest.ttft_ms[0]


def test_tables_named_with_a_build_suffix_are_the_releases():
    """'name==version' names kernel tables that must exist; a build suffix on either side does not hide them
    (the shipped torch tables are '2.11.0+cu130')."""
    assert profiles.load("H100-SXM-80GB", "vllm==0.24.0-cu129") is profiles.load("H100-SXM-80GB", "vllm==0.24.0")
    assert profiles.load("H200-SXM-141GB", "torch==2.11.0") is profiles.load("H200-SXM-141GB", "torch")
    with pytest.raises(ValueError, match="no sglang 0.5.6.post2-cu129 kernel profile.*versions available: 0.5.14"):
        profiles.load("H100-SXM-80GB", "sglang==0.5.6.post2-cu129")


@pytest.mark.parametrize("engine, bad", [
    ("vllm~=latest", "'latest'"), ("vllm~=0.13.0-1.2", "'0.13.0-1.2'"), ("vllm~=0.13.0-", "'0.13.0-'"),
    ("vllm~=0.13.0-cu/129", "'0.13.0-cu/129'"), ("lmsysorg/sglang:foo", "'foo'"),
    ("vllm/vllm-openai:0.13,0", "'0.13,0'"), ("sglang~=-cu129", "'-cu129'")])
def test_what_names_no_release_is_refused_naming_it_and_the_spellings(engine, bad):
    for call in (profiles.overlaps, profiles.engine_label, profiles.resolve_engine, engine_behaviour):
        with pytest.raises(ValueError, match=f"{bad} is no release") as err:
            call(engine)
        assert "'name~=release'" in str(err.value) and "vllm/vllm-openai" in str(err.value)


@pytest.mark.parametrize("image, same", [
    ("vllm/vllm-openai:nightly", "vllm"), ("lmsysorg/sglang:dev", "sglang"), ("lmsysorg/sglang:latest-cu130", "sglang"),
    ("lmsysorg/sglang:nightly-dev", "sglang"), ("vllm/vllm-openai:main", "vllm"),
    ("nvcr.io/nvidia/tensorrt-llm/release:latest", "trtllm"),
    ("lmsysorg/sglang:nightly-dev-20260216-d3bae71e", "sglang~=nightly-dev-20260216-d3bae71e")])
def test_an_images_rolling_tag_is_the_newest_as_latest_is(image, same):
    """The engines' rolling tags (vLLM's 'nightly', SGLang's 'dev', with a build suffix or not) name the newest
    build as 'latest' does, the bare name; a dated build's tag stays a build label (first review, finding 4)."""
    assert profiles.engine_label(image) == same
    assert profiles.resolve_engine(image) == (profiles.engine_key(same), None)
    assert profiles.overlaps(image, speculative=True) == profiles.overlaps(same, speculative=True)


def test_an_images_tag_that_names_no_release_is_refused_with_the_spellings_a_tag_takes():
    """The refusal of an image's tag suggests what a tag can be (a version, a rolling tag), not the 'name~=' build
    labels an image cannot take."""
    with pytest.raises(ValueError, match="tag 'foo' is no release.*rolling tag: latest, nightly, dev, main") as err:
        profiles.engine_label("lmsysorg/sglang:foo")
    assert "nightly-dev" not in str(err.value).split("valid spellings")[0]


@pytest.mark.parametrize("tail", ["b200", "a100", "c1", "dev", "gb200", "h100", "dev-cu130", "post-cu129"])
def test_a_build_or_platform_tail_after_a_dash_is_no_pre_or_dev_release(tail):
    """The release is what precedes the first '-' followed by a letter after a complete version: '0.5.14-b200' is
    0.5.14 (not the beta 0.5.14b200), '-c1' not rc1, '-dev' not .dev0 (first review, finding 5), as '-gb200'."""
    spelled = f"0.5.14-{tail}"
    assert profiles.is_release(spelled)
    assert profiles.release_key(spelled) == profiles.release_key("0.5.14")
    assert profiles.release_since(f"sglang~={spelled}", "0.5.14")
    assert profiles.load("B200", f"sglang=={spelled}") is profiles.load("B200", "sglang==0.5.14")


@pytest.mark.parametrize("spelled, same", [("0.14.0-rc1", "0.14.0rc1"), ("1.1.0-dev.2", "1.1.0.dev2"),
                                           ("0.14.0-rc1-cu129", "0.14.0rc1"), ("0.14.0-post1", "0.14.0.post1"),
                                           ("0.14.0-dev3-cu129", "0.14.0.dev3")])
def test_a_pep440_part_written_after_a_dash_with_its_number_stays_the_versions(spelled, same):
    """'-rcN', '-postN', '-devN' / '-dev.N' (PEP 440's own spellings) are the release's, not a build's."""
    assert profiles.release_key(spelled) == profiles.release_key(same)
    assert profiles.release_since(f"vllm~={spelled}", "0.14.0") == profiles.release_since(f"vllm~={same}", "0.14.0")


def test_two_builds_of_one_release_load_the_exact_one_else_a_fixed_one(monkeypatch, tmp_path):
    """'==' with a build that does not ship loads another build of that release (first review, finding 6): the
    exact spelling where it ships, else the last in `build_order`, whatever order the listing gives."""
    from objectives.profiles import build, profile

    builds = ["2.11.0+cu130", "2.11.0+cu129", "2.11.0-cu128"]
    assert profile.build_order(builds) == profile.build_order(builds[::-1]) == \
        ["2.11.0+cu129", "2.11.0+cu130", "2.11.0-cu128"]
    monkeypatch.setattr(profile, "_load", lambda system, engine, version, full: version)
    for listing in (builds, builds[::-1]):
        monkeypatch.setattr(profile, "available", lambda gpu, listing=listing: {"torch": list(listing)})
        assert profile.load("H200-SXM-141GB", "torch==2.11.0+cu129") == "2.11.0+cu129"
        assert profile.load("H200-SXM-141GB", "torch==2.11.0") == "2.11.0-cu128"
        assert profile.load("H200-SXM-141GB", "torch==2.11.0+cu126") == "2.11.0-cu128"
        assert profile.load("H200-SXM-141GB", "torch") == "2.11.0-cu128"
    for b in builds:
        (tmp_path / "sys" / "op" / "torch" / b).mkdir(parents=True)
    assert build.versions(tmp_path, "sys", "op", "torch") == profile.build_order(builds)


def test_an_image_digest_or_an_unknown_image_is_refused():
    with pytest.raises(ValueError, match="'vllm/vllm-openai@sha256:0a1b': an image digest names no release.*"
                                         "'vllm/vllm-openai:<release>'"):
        profiles.engine_label("vllm/vllm-openai@sha256:0a1b")
    with pytest.raises(ValueError, match="unknown engine 'foo/llm-server:1.0'; valid: vllm.*lmsysorg/sglang"):
        profiles.resolve_engine("foo/llm-server:1.0")


# --- SGLang's hybrid models with speculative decoding ----------------------------------------------------------

@pytest.mark.parametrize("engine, plain, spec", [
    ("sglang", False, True), ("sglang~=0.5.11", False, True), ("sglang~=0.5.9", False, False),
    ("lmsysorg/sglang:v0.5.10.post1-cu129", False, False), ("vllm~=0.13.0", False, False), ("vllm", True, True)])
def test_sglang_leaves_a_hybrid_models_loop_to_its_speculative_worker(engine, plain, spec):
    """SGLang serves Qwen3.5 (Gated DeltaNet) without its overlap schedule (mamba no_buffer), but only without a
    draft: `ServerArgs._handle_mamba_radix_cache` turns it off ``if self.speculative_algorithm is None``, and with
    one the speculative worker decides, as for any model (off before 0.5.11's V2 workers, on since). The closed
    form, the simulator and the serving model read one answer."""
    from objectives.serving.analytical import Deployments, _overlap
    model = "Qwen/Qwen3.5-397B-A17B"
    for draft, want in ((None, plain), ("mtp:2:0.7", spec)):
        loop = inference.StepModel(model, "B300", tp=8, weight_dtype="fp8", engine=engine, speculative=draft)
        assert loop.overlap_scheduler is want and Scheduler().overlaps(loop) is want, (engine, draft)
        d = Deployments.of(gpu="B300", tp=8, engine=engine, speculative=draft)
        assert _overlap(model, d)[0] == float(want), (engine, draft)
