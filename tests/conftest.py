"""Shared fixtures: a temporary SQLite storage URL, a small mixed space and objectives over it; a fresh copy of the
shipped catalog; the flagship study's one run through the CLI."""
import functools
import math
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

import dse
from tests.helpers import FlagshipRun, run_flagship

# CI runs the property tests derandomized (same examples every run: a submission's CI cannot fail by chance);
# local runs keep exploring new examples, which is how new bugs are found.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@functools.cache
def _shipped_catalog():
    from objectives.catalog import Catalog

    return Catalog.from_data()


def fresh_catalog():
    """What `Catalog.from_data()` returns (a catalog of the shipped GPU files and model configs, independent of the
    default one), copied from one loaded once per session: reading every file took seconds per call, and dozens of
    tests want a catalog of their own (lookups of derived checkpoints register variants in it). A copy shares only
    the immutable records (`Catalog.copy`), so what one test registers no other test sees."""
    return _shipped_catalog().copy()


def full_profile(gpu: str, engine: str):
    """`profiles.load(gpu, engine)` (the cost model's own call, `measured.build_curves`), checked to be the build
    from aiconfigurator-core's full tables, the default where it is installed: the process's cached profile (a
    build takes seconds)."""
    from objectives import profiles

    p = profiles.load(gpu, engine)
    assert p is not None and "full tables" in p.source, (gpu, engine, None if p is None else p.source)
    return p


@pytest.fixture(scope="session")
def flagship_run(tmp_path_factory) -> FlagshipRun:
    """The flagship study run once per session through the CLI (`tests.helpers.run_flagship`): the suite's most
    expensive run (its whole grid, then its front simulated). tests/studies checks the run and the study it stored;
    notebook 02 opens a copy of that study, as it opens one a user ran before, instead of running it again."""
    return run_flagship(tmp_path_factory.mktemp("flagship"))


@pytest.fixture
def db_url(tmp_path):
    """A fresh SQLite study file."""
    return f"sqlite:///{tmp_path / 'study.db'}"


def make_space() -> "dse.Space":
    """A small mixed space: nominal, ordinal, log-int, float, a condition and a constraint (discrete; 1,680 feasible points)."""
    return dse.Space(
        kind=dse.Categorical(["a", "b", "c"]),
        width=dse.Categorical([1, 2, 4, 8]),
        depth=dse.Int(1, 16, log=True),
        x=dse.Float(0.0, 1.0, step=0.25),
        extra=dse.Int(0, 3, when="kind == 'c'"),
        constraints=["width * depth <= 64"],
    )


def toy_metrics(kind, width, depth, x, extra):
    """Two conflicting objectives with a clear trade-off, plus one constrained metric."""
    k = {"a": 1.0, "b": 1.3, "c": 0.8}[kind]
    e = 0.0 if extra is None or (isinstance(extra, float) and math.isnan(extra)) else float(extra)
    cost = k * width * (1.0 + x) + 0.1 * e
    latency = 100.0 / (width * math.log2(depth + 1)) + 5.0 * (1 - x) + e
    return {"cost": cost, "latency": latency, "mem": width * depth / 8.0}


def toy(config):
    return toy_metrics(config["kind"], config["width"], config["depth"], config["x"], config.get("extra"))


@dse.vectorized(name="toy-vec", version="1")
def toy_vec(df: pd.DataFrame) -> pd.DataFrame:
    k = df["kind"].map({"a": 1.0, "b": 1.3, "c": 0.8}).to_numpy(float)
    e = pd.to_numeric(df["extra"], errors="coerce").fillna(0.0).to_numpy(float)
    w, d, x = (df[c].to_numpy(float) for c in ("width", "depth", "x"))
    return pd.DataFrame({
        "cost": k * w * (1.0 + x) + 0.1 * e,
        "latency": 100.0 / (w * np.log2(d + 1)) + 5.0 * (1 - x) + e,
        "mem": w * d / 8.0,
    })


@pytest.fixture
def space():
    return make_space()


OBJECTIVES = {"cost": "min", "latency": "min"}
