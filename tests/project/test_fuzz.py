"""Bad input, fuzzed (issue 6): catalog names, estimate/simulate arguments, study files given to `dse run`.

Every outcome is a result or a clear exception (ValueError, TypeError or the project's own types) whose message
names the offending value; never a crash deep inside numpy or SQLAlchemy, and a stored study is never altered.
(Space definitions and constraint expressions are fuzzed in tests/dse/test_space_properties.py and
tests/dse/test_expr.py.)
"""
import contextlib
import io
import math
import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dse
from dse import cli
from objectives import catalog, inference, serving

CLEAR = (ValueError, TypeError, dse.DSEError)
names_st = st.text(alphabet=string.ascii_letters + string.digits + "-_./ ", min_size=0, max_size=30)


def _names_value(msg: str, value) -> bool:
    return repr(value) in msg or str(value) in msg


@settings(max_examples=150, deadline=None)
@given(name=st.one_of(names_st, st.sampled_from(catalog.gpus() + catalog.models())))
def test_catalog_lookups_never_crash(name):
    for lookup in (catalog.gpu, catalog.model):
        try:
            obj = lookup(name)
        except CLEAR as exc:
            assert _names_value(str(exc), name), str(exc)
        else:
            assert obj.name


GOOD = dict(model="Llama-3.1-8B", gpu="H100-SXM-80GB", tp=1, pp=1, weight_dtype="bf16", batch_size=8,
            input_len=128, output_len=16)
bad_values = st.one_of(
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), names_st, st.none(),
    st.booleans(), st.lists(st.integers(-4, 64), max_size=3),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(GOOD) + ["act_dtype", "kv_dtype", "dp", "ep"]), value=bad_values)
def test_estimate_with_one_bad_argument(key, value):
    kw = {**GOOD, key: value}
    try:
        df = inference.estimate(**kw)
    except CLEAR as exc:
        msg = str(exc)
        assert key in msg or _names_value(msg, value) or (isinstance(value, list) and "broadcast" in msg), msg
        return
    # accepted: one well-formed row per configuration, unusable ones flagged with a reason
    assert isinstance(df, pd.DataFrame)
    assert len(df) >= 1 or (isinstance(value, list) and not value)  # an empty list broadcasts to no rows
    assert set(df["fits"].map(bool)) <= {True, False}
    bad_rows = ~df["fits"].astype(bool)
    assert (df.loc[bad_rows, "reason"].astype(str).str.len() > 0).all()
    ok = df[~bad_rows]
    assert np.isfinite(ok[["ttft_ms", "tpot_ms", "throughput_tok_s"]].to_numpy(float)).all()


WORKLOAD_GOOD = dict(concurrency=4, input_len=64, output_len=8, n_requests=12, seed=0)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(["concurrency", "rate", "input_len", "output_len", "n_requests", "cv", "arrival"]),
       value=st.one_of(st.integers(-100, 100), st.floats(allow_nan=True, allow_infinity=True), names_st, st.none()))
@example(key="rate", value=2.225073858507203e-309)  # arrival gaps overflow to inf: those requests never arrive
def test_simulate_with_one_bad_workload_argument(key, value):
    kw = {**WORKLOAD_GOOD, key: value}
    if key == "rate" and value is not None:
        kw["concurrency"] = None
    try:
        w = serving.Workload(**kw)
        m = serving.simulate("Llama-3.1-8B", "H100-SXM-80GB", workload=w)
    except CLEAR as exc:
        msg = str(exc)
        assert key in msg or _names_value(msg, value), msg
        return
    assert m["n_requests"] >= 1 and math.isfinite(m["ttft_ms_mean"])


STUDY_BODIES = [
    "x = 1",                                                    # no study defined
    "study = 42",                                               # wrong type
    "def broken(:\n    pass",                                   # syntax error
    "raise RuntimeError('study file exploded')",                # raises while loading
    "import dse\nstudy = dse.StudySpec(name='bad name!', space=dse.Space(b=dse.Int(1, 3)), objectives={'f': 'min'}, evaluate=lambda c: {'f': 1.0})",
    "import dse\nstudy = dse.StudySpec(name='fz', space=dse.Space(b=dse.Int(1, 3)), objectives={'f': 'sideways'}, evaluate=lambda c: {'f': 1.0})",
    "import dse\nstudy = dse.StudySpec(name='fz', space=dse.Space(b=dse.Int(1, 3)), objectives={'f': 'min'}, evaluate=lambda c: {'f': 1.0}, optimizer='magic')",
    "import dse\nstudy = dse.StudySpec(name='fz', space=dse.Space(b=dse.Int(3, 1)), objectives={'f': 'min'}, evaluate=lambda c: {'f': 1.0})",
    "import dse\nstudy = dse.StudySpec(name='fz', space=dse.Space(b=dse.Int(1, 3), constraints=['__import__(\"os\").system(\"echo pwned\")']), objectives={'f': 'min'}, evaluate=lambda c: {'f': 1.0})",
    "import dse\nstudy = dse.StudySpec(name='fz', space=dse.Space(c=dse.Int(1, 9)), objectives={'f': 'min'}, evaluate=lambda c: {'f': 1.0})",
    "import dse\nstudy = dse.StudySpec(name='fz', space=dse.Space(b=dse.Int(1, 3)), objectives={'g': 'min'}, evaluate=lambda c: {'g': 1.0})",
    "import dse\nstudy = dse.StudySpec(name='fz', space=dse.Space(b=dse.Int(1, 3)), objectives={'f': 'min'}, evaluate=lambda c: {'f': 1.0}, n_trials=-5)",
]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A study 'fz' already holding trials; no bad study file may alter it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fz.db'}"
    s = dse.create_study("fz", dse.Space(b=dse.Int(1, 3)), {"f": "min"}, storage=url)
    s.optimize(lambda c: {"f": float(c["b"])}, optimizer="grid", progress=False)
    return url, s.trials


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.sampled_from(STUDY_BODIES), junk=st.text(alphabet=string.printable, max_size=40), mangle=st.booleans())
def test_bad_study_files_fail_cleanly_and_leave_stored_studies_alone(stored, tmp_path_factory, body, junk, mangle):
    url, before = stored
    path = tmp_path_factory.mktemp("files") / "study_file.py"
    text = body + ("\n" + junk if mangle else "")
    path.write_text(text)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["run", str(path), "--storage", url, "--no-progress", "--no-report", "--n-trials", "3"])
    message = err.getvalue().strip()
    if code == 0:
        # only possible when junk happened to be harmless and the body is a valid study equal to the stored one
        assert "fz" in body
    else:
        assert code == cli.EXIT_ERROR
        assert message.startswith("dse: error") and len(message.splitlines()) == 1, message
    after = dse.load_study("fz", storage=url).trials
    pd.testing.assert_frame_equal(after[["number", "b", "f"]], before[["number", "b", "f"]])
