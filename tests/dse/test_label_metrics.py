"""Text metrics an objective returns beside its numbers (the cost models' ``source``: measured tables, interpolated,
extrapolated or the roofline) are shown wherever the front is: `dse show`'s table (a column where they vary, the
"same on the whole front" line where they do not), the report's front table and the plots' hover. A configuration
the model only guesses at must not look as certain as a measured one."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

import dse
from dse import report
from dse.plot_style import hover_data
from dse.spec import front_table


def _study(name: str, sources: dict[int, str]) -> dse.Study:
    space = dse.Space(x=dse.Categorical([1, 2, 3, 4]))

    @dse.vectorized(name="labelled", version="1")
    def evaluate(df: pd.DataFrame) -> pd.DataFrame:
        x = df["x"].to_numpy(float)
        return pd.DataFrame({"cost": x, "speed": x ** 2, "fits": np.ones(len(x)),
                             "source": [sources[int(v)] for v in x], "reason": ""})

    s = dse.create_study(name, space, {"cost": "min", "speed": "max"}, storage=":memory:")
    s.optimize(evaluate, optimizer="grid", progress=False)
    return s


def test_the_front_table_shows_a_varying_label_as_a_column_and_a_constant_one_on_the_same_line():
    s = _study("vary", {1: "interpolated", 2: "roofline", 3: "interpolated", 4: "extrapolated"})
    table = front_table(s)
    header = next(line for line in table.splitlines() if line.lstrip().startswith("number"))
    assert "source" in header.split() and "roofline" in table and "extrapolated" in table
    assert "reason" not in header.split()          # empty on the whole front: nothing to say
    one = _study("const", {1: "roofline", 2: "roofline", 3: "roofline", 4: "roofline"})
    assert "source=roofline" in front_table(one).splitlines()[0]


def test_the_report_front_table_and_the_hover_carry_the_label(tmp_path):
    s = _study("rep", {1: "interpolated", 2: "roofline", 3: "interpolated", 4: "extrapolated"})
    view = s.view()
    assert view.labels == ["source"]
    text = report.write(view, tmp_path / "r.html").read_text(encoding="utf-8")
    table = re.search(r'<table class="sortable" id="front-table">(.*?)</table>', text, re.S).group(1)
    header = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert "source" in header and "roofline" in table
    assert "reason" not in header        # empty on every trial: nothing to show
    data, template = hover_data(view, view.front())
    assert "source" in template and "roofline" in set(data.ravel())
