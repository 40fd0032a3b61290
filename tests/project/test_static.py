"""Static checks of the engine, the objectives, the search spaces, the benchmarks and the studies, run as part of
the test suite (so CI's one command runs them): ruff (pyflakes, bugbear, isort, pyupgrade; also over the tests) and
mypy, both configured in pyproject.toml, must report nothing."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    r = _run("ruff", "check", "--no-cache", "--output-format", "concise")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow   # 44 s here (2 cores); CI runs it, -m 'not slow' skips it locally
def test_mypy_finds_nothing():
    r = _run("mypy")   # files and settings: [tool.mypy] in pyproject.toml
    assert r.returncode == 0 and "Success: no issues found" in r.stdout, r.stdout + r.stderr


def test_the_engine_is_typed_and_does_not_print():
    assert (ROOT / "dse" / "py.typed").exists(), "dse/py.typed tells type checkers that dse ships its types"
    # library code logs (logger 'dse.*'); only the command line writes to stdout
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "dse").rglob("*.py") if p.name != "cli.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if line.lstrip().startswith("print(")]
    assert not offenders, offenders


def _library_prints(path: Path) -> list[int]:
    """Lines of print() calls in `path` outside a top-level main() (a module's command-line entry point, run with
    python -m or dispatched by `dse`, which prints its report)."""
    tree = ast.parse(path.read_text())
    allowed = {id(n) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "main" for n in ast.walk(f)}
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            and n.func.id == "print" and id(n) not in allowed]


def test_the_objectives_and_spaces_are_typed_and_do_not_print():
    for pkg in ("objectives", "spaces"):
        assert (ROOT / pkg / "py.typed").exists(), f"{pkg}/py.typed tells type checkers that {pkg} ships its types"
    # library code logs (logging.getLogger(__name__)); the command line (cli.py, __main__.py, main()) prints
    offenders = [f"{p.relative_to(ROOT)}:{i}" for pkg in ("objectives", "spaces") for p in (ROOT / pkg).rglob("*.py")
                 if p.name not in ("cli.py", "__main__.py") for i in _library_prints(p)]
    assert not offenders, offenders


#: dse files allowed over MAX_LINES, each with its reason.
LONG_FILES = {
    # its docstring says why: Param, Column and the three types fill in one table of methods read together
    "dse/params.py": "the one place per parameter type: the interface and its three implementations",
}
MAX_LINES = 400


def test_no_engine_file_is_over_400_lines_without_a_stated_reason():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "dse").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert set(long) <= set(LONG_FILES), f"over {MAX_LINES} lines: {long}; split them by job or state why in LONG_FILES"


def test_numpy_scalars_become_python_values_in_one_place():
    # dse.plain.to_plain is the one numpy-scalar -> Python conversion; other modules call it
    copies = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "dse").rglob("*.py") if p.name != "plain.py"
              for i, line in enumerate(p.read_text().splitlines(), 1) if ".item()" in line]
    assert not copies, copies
