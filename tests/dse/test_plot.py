"""dse.plot and dse.view: fronts in 2-D/3-D with both backends, parallel coordinates, sensitivity, saving."""
from __future__ import annotations

import json
import re
import struct

import matplotlib.image
import moocore
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

import dse
from dse import plot
from dse.errors import StudyError
from dse.plot import StudyView
from dse.view import DOMINATED, FRONT, INFEASIBLE

OBJECTIVES = {"latency_ms": "min", "throughput": "max", "cost": "min"}
PARAMS = ["gpu", "tp", "batch", "mode", "chunk"]


def make_view(n: int = 120, seed: int = 0, objectives: dict[str, str] | None = None, name: str = "toy <study>") -> StudyView:
    """A synthetic study: 5 knobs (one conditional), 4 metrics, a memory constraint, 2 failed and 1 running trial.

    The front is computed here with moocore over the feasible complete trials, independently of dse.
    """
    rng = np.random.default_rng(seed)
    gpu = rng.choice(["H100", "A100", "L40S"], n)
    tp = rng.choice([1, 2, 4, 8], n)
    batch = np.exp(rng.uniform(0, np.log(512), n)).round().astype(int)
    mode = rng.choice(["agg", "disagg"], n)
    chunk = np.where(mode == "disagg", rng.choice([512.0, 2048.0], n), np.nan)
    speed = pd.Series(gpu).map({"H100": 3.0, "A100": 1.5, "L40S": 1.0}).to_numpy()
    price = pd.Series(gpu).map({"H100": 4.0, "A100": 2.5, "L40S": 1.2}).to_numpy()
    latency = 5 + 40 * np.sqrt(batch) / (speed * tp) + rng.normal(0, 1, n) ** 2
    thr = batch * speed * tp**0.8 / (1 + 0.02 * batch) + rng.uniform(0, 5, n)
    state = np.array(["complete"] * n, dtype=object)
    state[[3, 17]] = "failed"
    state[25] = "running"
    df = pd.DataFrame(dict(
        number=np.arange(n), state=state, error=np.where(state == "failed", "boom", None), duration_s=rng.uniform(0.01, 0.1, n),
        worker="w0", gpu=gpu, tp=tp, batch=batch, mode=mode, chunk=chunk,
        latency_ms=latency, throughput=thr, cost=tp * price / thr * 100, mem_gib=140 / tp + batch * 0.12,
    ))
    bad = state != "complete"
    df.loc[bad, ["latency_ms", "throughput", "cost", "mem_gib"]] = np.nan
    df.insert(2, "feasible", (df["mem_gib"] <= 60) & ~bad)
    objectives = objectives or dict(OBJECTIVES)
    ok = df["feasible"].to_numpy()
    sign = np.array([1.0 if d == "min" else -1.0 for d in objectives.values()])
    nd = moocore.is_nondominated(df.loc[ok, list(objectives)].to_numpy(float) * sign, keep_weakly=True)
    pareto = df.loc[ok, "number"].to_numpy()[nd].tolist()
    meta = {"seed": seed, "optimizer": {"name": "random"}, "space": {"gpu": ["H100", "A100", "L40S"], "tp": [1, 2, 4, 8]}}
    return StudyView(name, df, list(PARAMS), objectives, {"mem_gib": ("<=", 60.0)}, meta, pareto)


@pytest.fixture(scope="module")
def view() -> StudyView:
    return make_view()


def png_size(path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR; fails unless the file starts with the PNG signature."""
    data = open(path, "rb").read(32)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_real_png(path, min_colors: int = 8) -> None:
    w, h = png_size(path)
    assert w >= 200 and h >= 150
    img = matplotlib.image.imread(str(path))  # decodes the whole file: a truncated PNG fails here
    rgb = (img[..., :3] * 255).astype(np.int64).reshape(-1, 3)
    colors = np.unique(rgb @ np.array([65536, 256, 1]))
    assert len(colors) >= min_colors, f"{path} looks blank ({len(colors)} colours)"


def by_meta(fig: go.Figure, meta: str):
    traces = [t for t in fig.data if t.meta == meta]
    assert len(traces) == 1, [t.meta for t in fig.data]
    return traces[0]


# ---- StudyView ---------------------------------------------------------------------------------------------


def test_view_classifies_complete_trials(view):
    df = view.complete()
    assert set(df["state"]) == {"complete"}
    assert len(df) == len(view.trials) - 3  # 2 failed + 1 running dropped
    assert set(df.loc[df["category"] == FRONT, "number"]) == set(view.pareto_numbers)
    dom = df[df["category"] == DOMINATED]
    assert dom["feasible"].all() and not dom["number"].isin(view.pareto_numbers).any()
    assert not df.loc[df["category"] == INFEASIBLE, "feasible"].any()
    assert view.metrics == ["latency_ms", "throughput", "cost", "mem_gib"]


def test_view_front_sorted_by_first_objective(view):
    fr = view.front()
    assert sorted(fr["number"]) == sorted(view.pareto_numbers)
    assert fr["latency_ms"].is_monotonic_increasing


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(trials=pd.DataFrame({"number": [0]})), "lacks columns"),
        (dict(objectives={"latency_ms": "smallest"}), "'smallest'"),
        (dict(objectives={"nope": "min"}), "'nope'"),
        (dict(objectives={}), "no objectives"),
        (dict(params=["gpu", "ghost"]), "'ghost'"),
        (dict(pareto_numbers=[10_000]), "10000"),
        (dict(constraints={"mem_gib": ("=<", 60)}), "'=<'"),
        (dict(constraints={"mem_gib": 60}), "expected (operator, number)"),
        (dict(trials=[1, 2]), "DataFrame"),
    ],
)
def test_view_rejects_bad_input(view, change, message):
    args = dict(name=view.name, trials=view.trials, params=view.params, objectives=view.objectives,
                constraints=view.constraints, meta=view.meta, pareto_numbers=view.pareto_numbers)
    args.update(change)
    with pytest.raises(StudyError) as e:
        StudyView(**args)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


def test_view_normalizes_directions(view):
    v = StudyView("d", view.trials, view.params, {"latency_ms": "Minimize", "throughput": "maximize"})
    assert v.objectives == {"latency_ms": "min", "throughput": "max"}
    assert v.direction("throughput") == "max" and v.direction("mem_gib") == "min"


# ---- front -------------------------------------------------------------------------------------------------


def test_front_2d_plotly_classes_and_hover(view, tmp_path):
    fig = plot.front(view)
    assert isinstance(fig, go.Figure)
    df = view.complete()
    for cat in (FRONT, DOMINATED, INFEASIBLE):
        tr = by_meta(fig, cat)
        pts = df[df["category"] == cat]
        numbers = [int(c[0]) for c in tr.customdata]
        assert sorted(numbers) == sorted(pts["number"])
        got = dict(zip(numbers, zip(tr.x, tr.y)))
        for row in pts.itertuples():
            assert got[row.number] == pytest.approx((row.latency_ms, row.throughput))
    # failed / running trials are not drawn anywhere
    drawn = {int(c[0]) for t in fig.data if t.customdata is not None for c in t.customdata}
    assert not drawn & {3, 17, 25}
    assert by_meta(fig, INFEASIBLE).marker.color == "#9e9e9e" and by_meta(fig, INFEASIBLE).marker.symbol == "x"
    tmpl = by_meta(fig, FRONT).hovertemplate
    assert tmpl.startswith("<b>trial %{customdata[0]}</b> (Pareto front)")
    for name in PARAMS + ["latency_ms", "cost"]:
        assert name in tmpl
    # the hover of a front point shows its configuration
    row = view.front().iloc[0]
    cd = next(c for c in by_meta(fig, FRONT).customdata if int(c[0]) == row.number)
    assert row.gpu in cd and str(row.batch) in cd and row["mode"] in cd
    assert fig.layout.xaxis.title.text == "latency_ms [ms] (min)" and fig.layout.yaxis.title.text == "throughput (max)"


def test_front_2d_line_is_the_attainment_line(view):
    fig = plot.front(view, "latency_ms", "throughput")
    line = by_meta(fig, "front-line")
    assert line.line.shape == "hv"  # x minimized
    xs, ys = np.array(line.x), np.array(line.y)
    assert np.all(np.diff(xs) >= 0)
    fr = view.front()
    F = fr[["latency_ms", "throughput"]].to_numpy()
    # the line's vertices are exactly the front points not dominated in (latency min, throughput max)
    nd = moocore.is_nondominated(F * [1, -1])
    assert sorted(map(tuple, F[nd])) == sorted(zip(xs, ys))
    # and with a maximized x the step goes vertical first
    assert by_meta(plot.front(view, "throughput", "cost"), "front-line").line.shape == "vh"


def test_front_switches_to_webgl_for_many_points(view, monkeypatch):
    assert isinstance(by_meta(plot.front(view), FRONT), go.Scatter)
    monkeypatch.setattr(plot, "WEBGL_POINTS", 50)
    fig = plot.front(view)
    tr = by_meta(fig, FRONT)
    assert isinstance(tr, go.Scattergl) and len(tr.x) == len(view.pareto_numbers)
    assert isinstance(by_meta(fig, "front-line"), go.Scatter)


def test_front_constraint_bound_drawn(view):
    fig = plot.front(view, "cost", "mem_gib")
    assert [s.y0 for s in fig.layout.shapes] == [60.0]
    assert fig.layout.yaxis.title.text == "mem_gib [GiB] (constraint <= 60)"


def test_front_3d_plotly(view, tmp_path):
    fig = plot.front(view, "latency_ms", "throughput", "cost", color="tp")
    tr = by_meta(fig, FRONT)
    assert isinstance(tr, go.Scatter3d)
    fr = view.complete().set_index("number")
    for c, z in zip(tr.customdata, tr.z):
        assert z == pytest.approx(fr.loc[int(c[0]), "cost"])
    assert list(tr.marker.color) == [float(fr.loc[int(c[0]), "tp"]) for c in tr.customdata]
    assert not any(t.meta == "front-line" for t in fig.data)
    assert fig.layout.scene.zaxis.title.text == "cost (min)"


@pytest.mark.parametrize("axes", [("latency_ms", "throughput"), ("latency_ms", "throughput", "cost")])
def test_front_html_is_self_contained_and_holds_front_data(view, tmp_path, axes):
    out = plot.save(plot.front(view, *axes), tmp_path / "front.html")
    text = out.read_text(encoding="utf-8")
    assert text.count("* plotly.js v") == 1  # inlined once
    assert not re.search(r"<script[^>]+src=", text), "no external scripts (no CDN)"
    fr = view.front()
    for col in axes:
        for v in fr[col]:
            assert json.dumps(float(v)) in text, f"front value {v} of {col} missing from the HTML"
    for n in fr["number"]:
        assert f'["{n}",' in text  # its hover data: trial number first


@pytest.mark.parametrize("axes", [("latency_ms", "throughput"), ("latency_ms", "throughput", "cost")])
@pytest.mark.parametrize("color", [None, "gpu"])
def test_front_matplotlib_png(view, tmp_path, axes, color):
    fig = plot.front(view, *axes, backend="matplotlib", color=color)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "latency_ms [ms] (min)"
    labels = ax.get_legend_handles_labels()[1]
    n_front = len(view.pareto_numbers)
    assert f"Pareto front ({n_front})" in labels
    out = plot.save(fig, tmp_path / "front.png")
    assert_real_png(out)


def test_plotly_front_saved_as_png_is_replotted(view, tmp_path):
    out = plot.save(plot.front(view, "latency_ms", "cost", color="throughput"), tmp_path / "sub" / "front.png")
    assert_real_png(out)


def test_front_defaults_and_errors(view):
    fig = plot.front(view)
    assert fig.layout.xaxis.title.text.startswith("latency_ms") and fig.layout.yaxis.title.text.startswith("throughput")
    with pytest.raises(StudyError, match=r"unknown x metric 'tpot'.*valid metrics are \['latency_ms', 'throughput', 'cost', 'mem_gib'\]"):
        plot.front(view, "tpot")
    with pytest.raises(StudyError, match="unknown z metric 'gpu'"):
        plot.front(view, "cost", "latency_ms", "gpu")
    with pytest.raises(StudyError, match="distinct"):
        plot.front(view, "cost", "cost")
    with pytest.raises(StudyError, match="unknown plot backend 'bokeh'"):
        plot.front(view, backend="bokeh")
    with pytest.raises(StudyError, match="unknown color column 'hue'"):
        plot.front(view, color="hue")


def test_front_single_objective_uses_another_metric():
    v = make_view(objectives={"cost": "min"})
    fig = plot.front(v)
    assert fig.layout.xaxis.title.text == "cost (min)" and fig.layout.yaxis.title.text == "latency_ms [ms]"


def test_front_with_no_complete_trials(view):
    empty = view.trials.iloc[[3, 17]]
    v = StudyView("empty", empty, view.params, view.objectives)
    fig = plot.front(v)
    assert all(len(t.x) == 0 for t in fig.data)


# ---- parallel coordinates ----------------------------------------------------------------------------------


def test_parallel_plotly_dimensions(view, tmp_path):
    fig = plot.parallel(view)
    pc = fig.data[0]
    assert isinstance(pc, go.Parcoords)
    dims = {d.label: d for d in pc.dimensions}
    assert list(dims) == PARAMS + list(view.objectives)
    feasible = view.complete().query("category != 'infeasible'")
    assert all(len(d["values"]) == len(feasible) for d in pc.dimensions)
    gpu = dims["gpu"]
    assert sorted(gpu.ticktext) == ["A100", "H100", "L40S"]
    decoded = [gpu.ticktext[list(gpu.tickvals).index(v)] for v in gpu["values"]]
    assert decoded == feasible["gpu"].tolist()
    chunk = dims["chunk"]  # conditional: inactive values get an "n/a" position
    assert chunk.ticktext[0] == "n/a" and "512" in chunk.ticktext and "2048" in chunk.ticktext
    na = chunk.tickvals[0]
    assert [v == na for v in chunk["values"]] == feasible["chunk"].isna().tolist()
    assert list(pc.line.color) == pytest.approx(feasible["latency_ms"].tolist())
    assert_real_png(plot.save(fig, tmp_path / "parallel.png"))
    text = plot.save(fig, tmp_path / "parallel.html").read_text()
    assert all(f'"label":"{d}"' in text for d in dims)


def test_parallel_matplotlib_and_subsets(view, tmp_path):
    fig = plot.parallel(view, backend="matplotlib", color="cost", subset="all")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == PARAMS + list(view.objectives)
    assert len(fig.axes[0].collections[0].get_segments()) == len(view.complete())
    assert_real_png(plot.save(fig, tmp_path / "p.png"))
    assert len(plot.parallel(view, subset="front").data[0].dimensions[0]["values"]) == len(view.pareto_numbers)
    with pytest.raises(StudyError, match="unknown subset 'some'"):
        plot.parallel(view, subset="some")
    with pytest.raises(StudyError, match="unknown color metric 'gpu'"):
        plot.parallel(view, color="gpu")


# ---- sensitivity -------------------------------------------------------------------------------------------


def test_sensitivity_exact_on_a_small_table():
    df = pd.DataFrame(dict(
        number=range(6), state="complete", feasible=True,
        a=["x", "x", "y", "y", "z", "z"], b=[1, 2, 1, 2, 1, 2],
        m=[1.0, 3.0, 10.0, 20.0, 5.0, 5.0],
    ))
    v = StudyView("s", df, ["a", "b"], {"m": "min"}, pareto_numbers=[0])
    table, fig = plot.sensitivity(v, "m")
    a = table.set_index("parameter").loc["a"]
    # medians x=2, y=15, z=5 ; minima x=1, y=10, z=5
    assert a.spread_median == 13.0 and a.spread_best == 9.0 and a.best_level == "x" and a.worst_level == "y"
    assert a.relative_spread == pytest.approx(13.0 / 19.0)
    b = table.set_index("parameter").loc["b"]
    # b=1: [1,10,5] median 5 min 1 ; b=2: [3,20,5] median 5 min 3
    assert b.spread_median == 0.0 and b.spread_best == 2.0 and b.n_levels == 2
    assert table["parameter"].tolist() == ["a", "b"] and table.index.tolist() == [1, 2]
    # maximizing flips best and worst
    vmax = StudyView("s", df, ["a", "b"], {"m": "max"}, pareto_numbers=[0])
    amax = plot.sensitivity(vmax, "m").table.set_index("parameter").loc["a"]
    assert amax.best_level == "y" and amax.spread_best == 17.0  # maxima 3, 20, 5
    assert [t.name for t in fig.data] == ["spread of medians", "spread of bests"]


def test_sensitivity_ranks_the_driving_knob_first(view, tmp_path):
    table, fig = plot.sensitivity(view, "mem_gib")  # mem = 140/tp + 0.12*batch: gpu and mode have no effect
    assert set(table["parameter"].iloc[:2]) == {"tp", "batch"}
    assert table.set_index("parameter").loc["batch", "n_levels"] == 8  # many values: 8 quantile bins
    assert table["spread_median"].is_monotonic_decreasing
    t2, f2 = plot.sensitivity(view, "throughput", backend="matplotlib", feasible_only=True, bins=4)
    assert t2.set_index("parameter").loc["batch", "n_levels"] == 4
    assert_real_png(plot.save(f2, tmp_path / "s.png"))
    assert_real_png(plot.save(fig, tmp_path / "s2.png"))
    with pytest.raises(StudyError, match="bins"):
        plot.sensitivity(view, "cost", bins=1)
    with pytest.raises(StudyError, match="unknown metric 'speed'"):
        plot.sensitivity(view, "speed")


# ---- save --------------------------------------------------------------------------------------------------


def test_save_errors_and_matplotlib_html(view, tmp_path):
    fig = plot.front(view, backend="matplotlib")
    text = plot.save(fig, tmp_path / "f.html").read_text()
    assert "data:image/png;base64," in text and "<script" not in text
    with pytest.raises(StudyError, match=r"'f\.jpg'.*valid suffixes"):
        plot.save(fig, tmp_path / "f.jpg")
    with pytest.raises(StudyError, match="got dict"):
        plot.save({}, tmp_path / "f.png")
    foreign = go.Figure(go.Scatter(x=[1], y=[2]))
    with pytest.raises(StudyError, match="only plotly figures made by dse.plot"):
        plot.save(foreign, tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists()
    assert plot.save(foreign, tmp_path / "f.html").stat().st_size > 1_000_000  # plotly.js inlined


def test_hostile_values_are_escaped_in_hover(view):
    trials = view.trials.copy()
    trials["gpu"] = trials["gpu"].astype(object)
    trials.loc[view.pareto_numbers[0], "gpu"] = "<img src=x onerror=alert(1)>"
    v = StudyView(view.name, trials, view.params, view.objectives, view.constraints, {}, view.pareto_numbers)
    fig = plot.front(v)
    cds = [c for c in by_meta(fig, FRONT).customdata]
    assert "&lt;img src=x onerror=alert(1)&gt;" in [c[1] for c in cds]
    assert fig.layout.title.text == "toy &lt;study&gt;: Pareto front"


# ---- invariants --------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    pts=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=25),
    dirs=st.tuples(st.sampled_from(["min", "max"]), st.sampled_from(["min", "max"])),
)
def test_nondominated_2d_matches_brute_force(pts, dirs):
    F = np.array(pts, dtype=float)
    mask = plot._nondominated_2d(F, list(dirs))
    G = F * np.array([1 if d == "min" else -1 for d in dirs])
    expected = {
        tuple(F[i]) for i in range(len(F))
        if not any(np.all(G[j] <= G[i]) and np.any(G[j] < G[i]) for j in range(len(F)))
    }
    kept = [tuple(r) for r in F[mask]]
    assert len(kept) == len(set(kept)), "one point per duplicate group"
    assert set(kept) == expected


@pytest.mark.parametrize("dtype", [object, "str", "category"])
def test_parallel_axis_encoding_of_categoricals_with_missing(dtype):
    s = pd.Series(["fp8", None, "bf16", "fp8", None], dtype=dtype)
    v, tickvals, ticktext = plot._encode_axis(s)
    assert ticktext == ["n/a", "bf16", "fp8"]
    assert [ticktext[tickvals.index(x)] for x in v] == ["fp8", "n/a", "bf16", "fp8", "n/a"]
    b, _, bt = plot._encode_axis(pd.Series([True, False, True]))
    assert bt == ["False", "True"] and list(b) == [1.0, 0.0, 1.0]


def test_a_single_valued_numeric_axis_shows_its_one_value():
    """A knob the space holds at one value (max_num_tokens=(8192,)) drew a parallel-coordinates axis of plotly's
    made-up range 7372.8-9011.2: the axis is labelled with the one value alone, in both backends."""
    v, tickvals, ticktext = plot._encode_axis(pd.Series([8192, 8192, 8192]))
    assert list(v) == [8192.0] * 3 and tickvals == [8192.0] and ticktext == ["8192"]
    assert plot._encode_axis(pd.Series([1.0, 2.0]))[1:] == (None, None)      # several values: the default axis
    df = pd.DataFrame(dict(number=range(4), state="complete", feasible=True, mnt=[8192] * 4, b=[1, 2, 3, 4],
                           m=[4.0, 3.0, 2.0, 1.0]))
    fig = plot.parallel(StudyView("one", df, ["mnt", "b"], {"m": "min"}))
    dim = fig.data[0].dimensions[0]
    assert dim.label == "mnt" and list(dim.ticktext) == ["8192"] and list(dim.range) == [8191.0, 8193.0]
    assert fig.data[0].dimensions[1].ticktext is None
    plot.parallel(StudyView("one", df, ["mnt", "b"], {"m": "min"}), backend="matplotlib")


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=4, max_size=30),
    shift=st.floats(-1e3, 1e3, allow_nan=False),
    scale=st.floats(0.01, 100, allow_nan=False),
)
def test_sensitivity_invariants(values, shift, scale):
    """Spreads are non-negative, at most the metric's range, shift-invariant and scale with the metric."""
    n = len(values)
    rng = np.random.default_rng(n)
    df = pd.DataFrame(dict(number=range(n), state="complete", feasible=True,
                           a=rng.choice(["p", "q", "r"], n), b=rng.integers(0, 20, n), m=values))
    t0 = plot.sensitivity_table(StudyView("h", df, ["a", "b"], {"m": "min"}), "m").set_index("parameter")
    df2 = df.assign(m=df["m"] * scale + shift)
    t1 = plot.sensitivity_table(StudyView("h", df2, ["a", "b"], {"m": "min"}), "m").set_index("parameter")
    total = max(values) - min(values)
    for col in ("spread_median", "spread_best"):
        assert (t0[col] >= 0).all() and (t0[col] <= total * (1 + 1e-9) + 1e-9).all()
        assert t1[col].to_numpy() == pytest.approx(t0[col].to_numpy() * scale, rel=1e-6, abs=1e-6 * (1 + abs(shift)))
    assert (t0["relative_spread"].fillna(0) <= 1 + 1e-9).all()


def test_a_heavy_tailed_metric_gets_a_log_axis_and_titles_carry_units():
    view = make_view(n=120, seed=3)
    ok = view.trials["state"] == "complete"
    view.trials.loc[ok, "cost"] = np.geomspace(0.7, 230, int(ok.sum()))   # USD per Mtok on the flagship: 0.7-230
    fig = plot.front(view, "cost", "mem_gib")
    assert fig.layout.xaxis.type == "log"                  # spans 330x: a linear axis squashes the front
    assert fig.layout.yaxis.type is None                   # mem_gib spans ~11x: linear
    assert fig.layout.yaxis.title.text == "mem_gib [GiB] (constraint <= 60)"
    mpl = plot.front(view, "cost", "mem_gib", backend="matplotlib")
    assert mpl.axes[0].get_xscale() == "log" and mpl.axes[0].get_yscale() == "linear"
    assert plot.heavy_tailed(np.array([1.0, 99.0])) is False and plot.heavy_tailed(np.array([1.0, np.nan, 100.0]))
    assert not plot.heavy_tailed(np.array([-1.0, 500.0]))   # not all positive: no log axis
    # the engine knows generic suffixes; an objective's own units ((suffix, unit) pairs) are read first
    assert [plot.unit_of(m) for m in ("tpot_ms", "cost_usd", "mem_gib", "tok_s_per_gpu", "f1")] == [
        "ms", "USD", "GiB", None, None]
    units = [("tok_s_per_gpu", "tokens/s per GPU"), ("tok_s", "tokens/s"), ("_ms", "milliseconds")]
    assert [plot.unit_of(m, units) for m in ("tok_s_per_gpu", "throughput_tok_s", "tpot_ms", "mem_gib")] == [
        "tokens/s per GPU", "tokens/s", "milliseconds", "GiB"]


def test_axis_titles_carry_the_units_the_objective_declared(tmp_path):
    @dse.vectorized(name="units-toy", units=[("_widgets_s", "widgets/s")])
    def f(df: pd.DataFrame) -> pd.DataFrame:
        x = df["x"].to_numpy(float)
        return pd.DataFrame({"out_widgets_s": x, "lat_ms": 10.0 - x})

    study = dse.create_study("units", dse.Space(x=dse.Int(1, 5)), {"out_widgets_s": "max", "lat_ms": "min"},
                             storage=f"sqlite:///{tmp_path / 'u.db'}")
    study.optimize(f, optimizer="grid", progress=False)
    view = dse.load_study("units", storage=f"sqlite:///{tmp_path / 'u.db'}").view()
    assert view.meta["objective"]["units"] == [["_widgets_s", "widgets/s"]]
    fig = plot.front(view, "out_widgets_s", "lat_ms")
    assert fig.layout.xaxis.title.text.startswith("out_widgets_s [widgets/s]")
    assert fig.layout.yaxis.title.text.startswith("lat_ms [ms]")
