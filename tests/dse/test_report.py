"""dse.report: one self-contained offline HTML file, checked as text and rendered in headless Chromium."""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from dse import report
from dse.errors import StudyError
from dse.plot import StudyView
from tests.dse.test_plot import PARAMS, assert_real_png, make_view, png_size
from tests.helpers import ROOT

PAIRS = 3  # three objectives -> three front scatters


@pytest.fixture(scope="module")
def view() -> StudyView:
    v = make_view(n=120, seed=1)
    v.meta["note"] = "</script><script>window.__pwned=1</script>"
    v.meta["created_at"] = 1_700_000_000.0  # epoch seconds
    v.meta["runs"] = [{"optimizer": "random", "settings": {"seed": i, "batch_size": 64}, "host": "vm"} for i in range(3)]
    v.meta["objectives"] = {"latency_ms": "min"}  # repeats what the report shows from the view: not shown twice
    return v


@pytest.fixture(scope="module")
def report_path(view, tmp_path_factory) -> Path:
    return report.write(view, tmp_path_factory.mktemp("report") / "study.html")


# ---- the file ----------------------------------------------------------------------------------------------


def test_report_is_one_offline_file(report_path, view):
    import plotly.offline

    text = report_path.read_text(encoding="utf-8")
    plotly_js = plotly.offline.get_plotlyjs()
    assert text.count("* plotly.js v") == 1, "plotly.js inlined exactly once"
    assert plotly_js in text
    ours = text.replace(plotly_js, "")  # plotly.js itself holds URLs in strings (e.g. its logo link)
    assert not re.search(r"<script[^>]+\ssrc=|<link\b|@import|<iframe", ours, re.I), "no external resources"
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", ours, re.I)
    # small besides plotly.js
    assert len(ours.encode()) < 400_000
    # sections
    for section in ("Provenance", "Pareto front", "Front configurations", "Parallel coordinates", "Per-knob sensitivity"):
        assert section in text
    assert text.count('class="plotly-graph-div') == PAIRS + 1 + len(view.objectives)


def test_report_provenance_and_front_table(report_path, view):
    text = report_path.read_text(encoding="utf-8")
    prov = re.search(r'<table id="provenance">(.*?)</table>', text, re.S).group(1)
    for key in ("study", "objectives", "constraints", "parameters", "seed", "optimizer", "space", "note"):
        assert f'<th class="s">{key}</th>' in prov
    assert "latency_ms (min), throughput (max), cost (min)" in prov and "mem_gib &lt;= 60" in prov
    assert "&quot;L40S&quot;" in prov  # nested provenance shown as JSON
    assert prov.count('<th class="s">objectives</th>') == 1
    assert "2023-11-14T22:13:20+00:00" in prov  # created_at as a UTC date
    runs = re.search(r'<th class="s">runs</th><td class="s">(.*?)</td>', prov, re.S).group(1)
    assert runs.startswith("<details><summary>")  # long: folded, in full inside
    assert re.search(r"<pre>(.*)</pre>", runs, re.S).group(1).count("&quot;batch_size&quot;: 64") == 3
    table = re.search(r'<table class="sortable" id="front-table">(.*?)</table>', text, re.S).group(1)
    header = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert header == ["trial", *PARAMS, "latency_ms", "throughput", "cost", "mem_gib"]
    rows = re.findall(r'<tr data-trial="(\d+)">', table)
    assert sorted(map(int, rows)) == sorted(view.pareto_numbers)
    fr = view.front().set_index("number")
    first = int(rows[0])
    row_html = re.search(rf'<tr data-trial="{first}">(.*?)</tr>', table).group(1)
    assert f'data-v="{float(fr.loc[first, "latency_ms"])!r}"' in row_html  # raw value kept for sorting
    assert f">{fr.loc[first, 'gpu']}</td>" in row_html


def test_report_escapes_hostile_text(report_path):
    text = report_path.read_text(encoding="utf-8")
    assert "window.__pwned" not in text.replace("window.__pwned=1&lt;", "")  # only escaped
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    assert "<h1>toy &lt;study&gt;</h1>" in text and "<title>dse report: toy &lt;study&gt;</title>" in text


def test_report_subsamples_but_keeps_the_front(tmp_path):
    v = make_view(n=300, seed=2)
    text = report.render(v, max_points=60)
    n_complete = int((v.trials["state"] == "complete").sum())
    assert f"({n_complete - 60:,} not drawn)" in text
    drawn = set(map(int, re.findall(r'\["(\d+)",', text)))  # each drawn point's hover data starts with its number
    assert set(v.pareto_numbers) <= drawn
    assert len(drawn) == 60


def test_report_without_feasible_trials(tmp_path):
    v = make_view(n=40, seed=3)
    trials = v.trials.assign(feasible=False)
    v = dataclasses.replace(v, trials=trials, pareto_numbers=[])
    text = report.write(v, tmp_path / "r.html").read_text()
    assert "Front configurations (0)" in text and "infeasible (37)" in text


def test_report_bad_input(view, tmp_path):
    with pytest.raises(StudyError, match=r"'.*r\.pdf'.*\.html"):
        report.write(view, tmp_path / "r.pdf")
    with pytest.raises(StudyError, match="max_points must be a positive integer, got 0"):
        report.write(view, tmp_path / "r.html", max_points=0)
    with pytest.raises(StudyError, match="needs a StudyView, got dict"):
        report.render({})
    assert not (tmp_path / "r.html").exists()


# ---- headless Chromium -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    """Chromium's path, installed with scripts/chromium.sh if missing; skip (or fail when CI is set) if impossible."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    try:
        out = subprocess.run(["sh", str(ROOT / "scripts" / "chromium.sh")], capture_output=True, text=True, timeout=900)
        reason = out.stderr.strip().splitlines()[-1:] or [f"exit status {out.returncode}"]
        exe = out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired) as e:
        reason = [repr(e)]
    if exe and Path(exe).exists():
        return exe
    message = f"chromium is not installed and scripts/chromium.sh could not install it: {reason[0]}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_chromium(exe: str, page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
        "--enable-unsafe-swiftshader",  # software WebGL for the parallel-coordinates plot (no GPU here)
        "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0", *extra, page.resolve().as_uri(),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"chromium failed ({out.returncode}): {out.stderr[-2000:]}"
    return out


def js_errors(out: subprocess.CompletedProcess, dom: str = "") -> list[str]:
    """Uncaught errors from Chromium's console log, plus those the page recorded on <html>."""
    errs = [line for line in out.stderr.splitlines() if "Uncaught" in line]
    errs += re.findall(r'data-dse-js-errors="([^"]*)"', dom)
    return errs


@pytest.fixture(scope="module")
def rendered(chromium, report_path, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """One headless run over the report: the DOM after rendering (stdout), the console log and a screenshot."""
    tmp = tmp_path_factory.mktemp("chromium")
    shot = tmp / "report.png"
    out = run_chromium(chromium, report_path, tmp, "--dump-dom", f"--screenshot={shot}", "--window-size=1400,1000")
    return out, shot


def test_report_renders_in_headless_chromium(rendered, view):
    out, _ = rendered
    dom = out.stdout
    assert js_errors(out, dom) == []
    assert "window.__pwned" not in dom.replace("window.__pwned=1&lt;", "")
    n_plots = PAIRS + 1 + len(view.objectives)
    assert dom.count('data-dse-rendered="1"') == n_plots, "every plot finished rendering"
    # every complete trial is a rendered marker in each front scatter
    n_complete = int((view.trials["state"] == "complete").sum())
    assert len(re.findall(r'<path class="point plotly-customdata"', dom)) == PAIRS * n_complete
    assert len(re.findall(r'<g class="trace scatter', dom)) == PAIRS * 4  # 3 point classes + front line per pair
    # parallel coordinates drew one axis per parameter and objective
    axes = re.findall(r'<text class="axis-title"[^>]*data-unformatted="([^"]+)"', dom)
    assert axes == PARAMS + list(view.objectives)
    # sensitivity bars: 2 bars per parameter per objective
    assert len(re.findall(r'<g class="point"', dom)) == 2 * len(PARAMS) * len(view.objectives)
    rows = re.search(r'<table class="sortable" id="front-table">(.*?)</table>', dom, re.S).group(1)
    assert len(re.findall(r"<tr data-trial=", rows)) == len(view.pareto_numbers)


def test_report_screenshot(rendered):
    _, shot = rendered
    assert png_size(shot) == (1400, 1000)
    assert shot.stat().st_size > 30_000
    assert_real_png(shot, min_colors=100)
    img = (matplotlib.image.imread(str(shot))[..., :3] * 255).astype(int)
    red = np.all(np.abs(img - [214, 39, 40]) < 30, axis=-1).sum()  # front diamonds are visible in the first screen
    assert red > 200, f"only {red} front-red pixels in the screenshot"


def test_table_sorting_and_error_capture_in_chromium(chromium, view, tmp_path):
    """The page's own scripts: clicking a header sorts the table; an uncaught error is recorded in the DOM."""
    fr = view.front()[["number", "gpu", "latency_ms", "cost"]].rename(columns={"number": "trial"})
    page = tmp_path / "table.html"
    page.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><script>{report._ERROR_HOOK}</script></head><body>"
        + report._table(fr, sortable=True, trial_col="trial", table_id="t")
        + f"<script>{report._TABLE_JS}</script>"
        + "<script>var th=document.querySelectorAll('#t th')[3]; th.click(); th.click();"  # cost, descending
        + "document.body.setAttribute('data-order', Array.prototype.map.call(document.querySelectorAll('#t tbody tr'),"
        + "function(r){return r.getAttribute('data-trial');}).join(','));</script>"
        + "<script>definitelyNotDefined();</script></body></html>",
        encoding="utf-8",
    )
    out = run_chromium(chromium, page, tmp_path, "--dump-dom")
    order = re.search(r'data-order="([^"]*)"', out.stdout).group(1).split(",")
    expected = fr.sort_values("cost", ascending=False)["trial"].astype(str).tolist()
    assert order == expected
    assert 'aria-sort="descending"' in out.stdout
    errs = js_errors(out, out.stdout)
    assert any("definitelyNotDefined" in e for e in errs), errs  # the checks above would see a real error


def test_front_table_shows_trial_numbers_as_integers(tmp_path):
    v = make_view(n=60, seed=4)
    v = dataclasses.replace(v, trials=v.trials.assign(number=v.trials["number"] + 13_700),
                            pareto_numbers=[n + 13_700 for n in v.pareto_numbers])
    text = report.write(v, tmp_path / "big.html").read_text(encoding="utf-8")
    table = re.search(r'<table class="sortable" id="front-table">(.*?)</table>', text, re.S).group(1)
    cells = re.findall(r'<tr data-trial="(\d+)"><td data-v="(\d+)">([^<]*)</td>', table)
    assert cells and all(a == b == c for a, b, c in cells)   # 13740, not 1.374e+04
    assert sorted(int(a) for a, _, _ in cells) == sorted(v.pareto_numbers)


# ---- an objective's own sections (objective_sections) --------------------------------------------------------


class _WithSections:
    """A stand-in objective that provides report sections (what a domain objective defines)."""

    def __init__(self, sections):
        self.sections = sections
        self.seen = None

    def __call__(self, cfg):   # pragma: no cover - never evaluated here
        return {}

    def report_sections(self, study):
        self.seen = study
        if isinstance(self.sections, Exception):
            raise self.sections
        return self.sections


def test_an_objectives_sections_come_before_the_provenance(view, tmp_path):
    obj = _WithSections([("Where <it> goes", '<div id="mine" data-x="1">bars</div>'), ("Second", "<p>two</p>")])
    sections = report.objective_sections(obj, "the-study")
    assert obj.seen == "the-study" and [t for t, _ in sections] == ["Where <it> goes", "Second"]
    text = report.write(view, tmp_path / "s.html", sections=sections).read_text(encoding="utf-8")
    first = text.index('id="objective-section-0"')
    assert text.index("Per-knob sensitivity") < first < text.index('id="objective-section-1"') < text.index(
        "<h2>Provenance</h2>")
    assert "<h2>Where &lt;it&gt; goes</h2>" in text           # the title escaped, the html as the objective wrote it
    assert '<div id="mine" data-x="1">bars</div>' in text
    assert report.objective_sections(lambda cfg: {}, None) == []    # an objective without the method: none
    assert "objective-section" not in report.render(view)


def test_a_bad_or_failing_section_provider(view, caplog):
    with pytest.raises(StudyError, match=r"_WithSections\.report_sections must give a list .*got str"):
        report.objective_sections(_WithSections("<p>x</p>"), None)
    with pytest.raises(StudyError, match=r"section 1 must be a \(title, html\) pair of strings, got \('b', 3\)"):
        report.objective_sections(_WithSections([("a", "<p/>"), ("b", 3)]), None)
    with pytest.raises(StudyError, match="sections: section 0 must be"):
        report.render(view, sections=[("only a title",)])
    with caplog.at_level("WARNING", logger="dse.report"):
        assert report.objective_sections(_WithSections(RuntimeError("no profile")), None) == []
    assert "report_sections failed" in caplog.text and "no profile" in caplog.text


def test_an_objective_section_renders_in_chromium(chromium, view, tmp_path):
    body = '<div id="mine"><span style="display:inline-block;width:40px;height:10px;background:#4e79a7"></span></div>'
    page = report.write(view, tmp_path / "s.html", sections=[("Mine", body)])
    out = run_chromium(chromium, page, tmp_path, "--dump-dom")
    assert js_errors(out, out.stdout) == []
    assert re.search(r'<section class="dse-objective-section" id="objective-section-0"><h2>Mine</h2><div id="mine">',
                     out.stdout)
