"""A dated engine build's kernel tables (`profiles.build.DATED_TABLES`, SGLang main of 2026-04-16's DSA modules on
B200 / H200) and the rule that resolves a dated build label to them (`profiles.dated_tables`)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from objectives import inference, profiles
from objectives.calibration.measurements import dated_labels, engine_releases
from objectives.profiles.build import DATED_FAMILIES, DATED_TABLES, dated_profile
from objectives.profiles.profile import DATA_DIR

BUILD = "0.0.0.dev1+ga4cf2ea12"
MARCH = "sglang~=nightly-dev-cu13-20260317-1eea7448"


def test_a_build_label_carries_its_date():
    assert profiles.build_date("nightly-dev-cu13-20260317-1eea7448") == "2026-03-17"
    assert profiles.build_date("nightly-dev-20260216-d3bae71e") == "2026-02-16"
    # a version, an undated label, a digit run that is no day, a date inside a hash: none
    for v in ("0.5.14", "0.0.0.dev1+ga4cf2ea12", "glm5-hopper", "nightly-dev", "nightly-20261399-abc",
              "nightly-x20260317-abc"):
        assert profiles.build_date(v) is None, v


def test_a_dated_nightly_reads_the_nearest_build_tables():
    vs = ["0.5.14", BUILD]
    # no table built on or before March: the oldest after it (the 2026-04-16 build, not 0.5.14 of 2026-06-25)
    assert profiles.dated_tables("sglang", "nightly-dev-20260317-1eea7448", vs) == BUILD
    assert profiles.dated_tables("sglang", "nightly-dev-20260501-abcdef12", vs) == BUILD
    assert profiles.dated_tables("sglang", "nightly-dev-20260801-abcdef12", vs) == "0.5.14"
    assert profiles.dated_tables("sglang", "nightly-dev-20260416-abcdef12", vs) == BUILD   # built that day
    # a GPU without the build's tables, an undated label, a release, an engine without dated tables: none
    assert profiles.dated_tables("sglang", "nightly-dev-20260317-1eea7448", ["0.5.14"]) == "0.5.14"
    for label in ("glm5-hopper", None):
        assert profiles.dated_tables("sglang", label, vs) is None
    assert profiles.dated_tables("vllm", "nightly-dev-20260317-1eea7448", ["0.24.0"]) is None
    # through `load`: the GPU's versions decide; a bare name, a release or a named version as before
    assert profiles.load("B200", MARCH, full=False).version == BUILD
    assert profiles.load("H200-SXM-141GB", "sglang~=nightly-dev-20260402-d7256eb6", full=False).version == BUILD
    assert profiles.load("B300", "sglang~=nightly-dev-cu13-20260401-b6fe0cca", full=False).version == "0.5.14"
    for e in ("sglang", "sglang==0.5.14", "sglang~=0.5.14", "lmsysorg/sglang:v0.5.14"):
        assert profiles.load("B200", e, full=False).version == "0.5.14", e
    assert profiles.load("B200", f"sglang=={BUILD}", full=False).version == BUILD


def test_the_dated_build_records_its_source():
    index = {(e["system"], e["engine"], e["version"]): e
             for e in json.loads((DATA_DIR / "index.json").read_text())["profiles"]}
    base, folder, systems, source = DATED_TABLES[("sglang", BUILD)]
    assert systems == ("b200_sxm", "h200_sxm") and base == "0.5.14"
    assert ("b300_sxm", "sglang", BUILD) not in index
    notice = (DATA_DIR.parents[2] / "NOTICE").read_text()
    for system in systems:
        e = index[(system, "sglang", BUILD)]
        assert e["source"].startswith(source) and "@095f58a51c4ca8e61b66ec108d86f223f8d559ce" in e["source"]
        assert f"sparse_attention/sglang/{folder}/" in e["source"] and "Apache-2.0" in e["source"]
        assert profiles.read(DATA_DIR / e["file"]).source == e["source"] and e["file"] in notice
        loaded = profiles.load(profiles.GPU_OF_SYSTEM[system], f"sglang=={BUILD}", full=False)
        assert loaded.source.startswith(e["source"]) and loaded.source.endswith(" 0.5.14")
    assert "095f58a51c4ca8e61b66ec108d86f223f8d559ce" in notice and "profiles.TABLE_BUILDS" not in notice
    assert profiles.TABLE_BUILDS[("sglang", BUILD)] < profiles.TABLE_BUILDS[("sglang", base)]


@pytest.mark.parametrize("full", [False, None])
def test_glm5_dsa_reads_the_build_tables_on_b200_and_the_release_ones_on_b300(full):
    new, rel = profiles.load("B200", MARCH, full=full), profiles.load("B200", "sglang", full=full)
    t, r = new.table("dsa_generation.glm5.fp8"), rel.table("dsa_generation.glm5.fp8")
    # the build's FP8-KV decode module at GLM-5's TP 8 shape (8 heads) is slower than 0.5.14's
    b, kv = np.array([4.0, 16.0, 64.0]), np.array([1152.0, 2048.0, 8192.0])
    assert np.all(t(b, kv, 8.0) > 1.1 * r(b, kv, 8.0))
    assert not np.allclose(new.table("dsa_context.glm5.fp8")(4.0, 1024.0, 8.0),
                           rel.table("dsa_context.glm5.fp8")(4.0, 1024.0, 8.0))
    # every other table is the release's
    for name in ("gemm.fp8_block", "moe.fp8_block", "mla_generation.fp8"):
        a, c = new.table(name), rel.table(name)
        assert a is not None and np.array_equal(a.log_ms, c.log_ms), name
    b300 = profiles.load("B300", "sglang~=nightly-dev-cu13-20260401-b6fe0cca", full=full)
    assert b300.table("dsa_generation.glm5.fp8") is profiles.load("B300", "sglang", full=full).table(
        "dsa_generation.glm5.fp8")
    # through the cost model: GLM-5's decode on B200 under the March nightly, dearer than under 0.5.14
    kw = dict(tp=8, weight_dtype="fp8", kv_dtype="fp8", batch_size=16, input_len=1024, output_len=256)
    tpot = [inference.estimate("zhipuai/GLM-5", "B200", engine=e, **kw)["tpot_ms"].iloc[0]
            for e in (MARCH, "sglang")]
    assert tpot[0] > 1.02 * tpot[1]


def test_dated_profile_takes_the_builds_rows_only(tmp_path):
    cells = [(b, s) for b in (1, 2, 4) for s in (1024, 2048, 4096)]
    df = pd.DataFrame({"op_name": "dsa_context_module", "architecture": "GlmMoeDsaForCausalLM", "version": BUILD,
                       "batch_size": [b for b, _ in cells], "isl": [s for _, s in cells], "num_heads": 8,
                       "kv_cache_dtype": "fp8", "step": 0, "gemm_type": "fp8_block",
                       "latency": [b * s * 1e-3 for b, s in cells]})
    df = pd.concat([df, df.assign(num_heads=16), df.assign(version="0.5.10", latency=df["latency"] * 9)])
    d = tmp_path / "b200_sxm" / "sparse_attention" / "sglang" / DATED_TABLES[("sglang", BUILD)][1]
    d.mkdir(parents=True)
    df.to_parquet(d / "dsa_context_module_perf.parquet")
    gen = df.assign(op_name="dsa_generation_module", isl=1, step=df["isl"] - 1)
    gen.to_parquet(d / "dsa_generation_module_perf.parquet")
    p = dated_profile("b200_sxm", tmp_path, "sglang", BUILD)
    assert p is not None and p.version == BUILD and p.system == "b200_sxm"
    assert float(p.table("dsa_context.glm5.fp8")(2.0, 2048.0, 8.0)) == pytest.approx(2 * 2.048, rel=1e-6)
    # the file holds the build's own families only (`load` lays it over the release's profile)
    assert {profiles.profile.TableGroups.family(k) for k in p.tables} == set(DATED_FAMILIES)
    assert p.table("dsa_context.deepseek_v32.fp8") is None and p.table("gemm.fp8") is None
    # a system the build did not cover, or no files: none
    assert dated_profile("b300_sxm", tmp_path, "sglang", BUILD) is None
    assert dated_profile("h200_sxm", tmp_path, "sglang", BUILD) is None


def test_rows_date_their_build_labels_from_the_note():
    notes = ["measured=2026-03-20T17:45:25Z; image=lmsysorg/sglang:nightly-dev-cu13-20260317-1eea7448",
             "measured=2026-03-19T06:26:42Z; image=lmsysorg/sglang:glm5-hopper", "measured=2026-03-19T00:00:00Z",
             "measured=2026-02-20T00:00:00Z", "", "image=lmsysorg/sglang:v0.5.9"]
    labels = ["nightly-dev", "glm5-hopper", "0.5.9", "nightly-dev-20260216-d3bae71e", "nightly-dev", "nightly-dev"]
    assert list(dated_labels(np.array(labels, dtype=object), np.array(notes))) == [
        "nightly-dev-cu13-20260317-1eea7448", "glm5-hopper-measured-20260319", "0.5.9",
        "nightly-dev-20260216-d3bae71e", "nightly-dev", "nightly-dev"]
    rows = pd.DataFrame({"engine": ["sglang", "sglang"], "engine_version": ["glm5-hopper", "nightly-dev"],
                         "note": [notes[1], np.nan]})
    rel = list(engine_releases(rows))
    # (a label its note cannot date: the bare name, the newest tables it read, not a label `load` refuses)
    assert rel == ["sglang~=glm5-hopper-measured-20260319", "sglang"]
    # the H200 build measured 2026-03-19 reads the 2026-04-16 tables; its behaviour stays the newest release's
    assert profiles.load("H200-SXM-141GB", rel[0], full=False).version == BUILD
    assert profiles.release_since(rel[0], "0.5.11")


def test_a_release_named_alone_reads_the_tables_built_nearest_its_release():
    # fifth review, finding 4: a release read 0.5.14's DSA tables whatever its date, while the 2026-04-16 build lies
    # between 0.5.10.post1 (2026-04-08) and 0.5.11 (2026-05-07)
    assert profiles.release_date("sglang", "0.5.10") == "2026-04-05"
    assert profiles.release_date("sglang", "v0.5.10-cu129-20260410") == "2026-04-05"       # the release's build
    assert profiles.release_date("sglang", "0.5.11rc1") == "2026-05-07"     # unlisted: the next listed, no later
    assert profiles.release_date("sglang", "0.5.6") == "2026-02-23"
    assert profiles.release_date("sglang", "0.5.23") == "2026-07-10"        # after every listed one: the newest's
    assert profiles.release_date("vllm", "0.24.0") is None and profiles.release_date("sglang", "nightly-dev") is None
    assert profiles.TABLE_BUILDS[("sglang", "0.5.14")] <= profiles.RELEASE_DATES[("sglang", "0.5.14")]
    vs = ["0.5.14", BUILD]
    for label in ("0.5.9", "0.5.10", "0.5.10.post1", "0.5.11", "0.5.13.post1"):
        assert profiles.dated_tables("sglang", label, vs) == BUILD, label
    for label in ("0.5.14", "0.5.15", "0.5.23"):
        assert profiles.dated_tables("sglang", label, vs) == "0.5.14", label
    for e in ("sglang~=0.5.10", "sglang~=0.5.10.post1", "sglang~=0.5.11", "sglang~=v0.5.10-cu129-20260410",
              "lmsysorg/sglang:v0.5.10"):
        assert profiles.load("B200", e, full=False).version == BUILD, e
        assert profiles.load("H200-SXM-141GB", e, full=False).version == BUILD, e
        assert profiles.load("B300", e, full=False).version == "0.5.14", e
    # the bare name and 0.5.14 keep 0.5.14's tables, the very objects
    base = profiles.load("B200", "sglang", full=False)
    for e in ("sglang==0.5.14", "sglang~=0.5.14"):
        assert profiles.load("B200", e, full=False) is base, e
    # vLLM and TensorRT-LLM releases: no dated tables, the newest as before
    assert profiles.load("B200", "vllm~=0.14.0", full=False) is profiles.load("B200", "vllm", full=False)
    # through the cost model: GLM-5's decode under 0.5.10 on B200 prices the April build's DSA kernels
    kw = dict(tp=8, weight_dtype="fp8", kv_dtype="fp8", batch_size=16, input_len=1024, output_len=256)
    tpot = [inference.estimate("zhipuai/GLM-5", "B200", engine=e, **kw)["tpot_ms"].iloc[0]
            for e in ("sglang~=0.5.10", f"sglang=={BUILD}", "sglang")]
    assert tpot[0] == tpot[1] and tpot[0] > 1.02 * tpot[2]


def test_an_undated_build_label_is_refused_where_the_tables_differ_by_build_date():
    # fifth review, finding 5: 'sglang~=nightly-dev' read 0.5.14's tables on B200 whatever build it ran
    for gpu in ("B200", "H200-SXM-141GB"):
        for e in ("sglang~=nightly-dev", "sglang~=glm5-hopper"):
            with pytest.raises(ValueError, match=r"carries no date.*0\.5\.14 built 2026-06-25.*'sglang' alone"):
                profiles.load(gpu, e, full=False)
    # one dated version on the GPU (B300), an engine without dated tables, a rolling image tag: the newest
    assert profiles.load("B300", "sglang~=nightly-dev", full=False).version == "0.5.14"
    assert profiles.load("B200", "vllm~=nightly-5b8c30d62b754b57", full=False) is profiles.load("B200", "vllm",
                                                                                               full=False)
    assert profiles.load("B200", "lmsysorg/sglang:nightly-dev", full=False).version == "0.5.14"
    # and no calibration row hands the model an undated build label
    from objectives.calibration import silicon
    rows, _ = silicon.load_rows()
    rel = engine_releases(rows)
    labels = [r.split(profiles.RELEASE_SEP, 1)[1] for r in rel if profiles.RELEASE_SEP in r]
    assert labels and not [v for v in labels if profiles.is_build_label(v) and profiles.build_date(v) is None]
