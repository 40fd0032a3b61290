"""Safe, vectorized expressions for constraints and conditions.

Constraint and condition strings are stored with a study, so they are never handed to Python's
``eval``/``exec``/``compile``. :func:`parse` reads the text with :mod:`ast` and accepts only an allow-list of
constructs; the result is an :class:`Expr` that evaluates itself over a whole batch of configurations (a mapping
of column name -> numpy array) with numpy.

Allowed: names of the space's parameters, numeric/str/bool constants, ``+ - * / // % **``, unary ``- + not``,
comparisons (chained too: ``1 <= tp <= 8``), ``and``/``or``/``not`` (elementwise, short-circuit per row),
``in``/``not in`` with a literal tuple/list/set of constants, ``a if c else b`` and the functions
``min max abs log log2 exp sqrt floor ceil round``. Everything else raises :class:`~dse.errors.ExpressionError`
naming the construct.

Evaluation rules (per row of the batch):

- A row where an arithmetic error occurs on the path actually taken (division or modulo by zero, ``log`` of a
  non-positive number, ``sqrt`` of a negative one, a NaN result) evaluates to ``False``: for a constraint that
  means *infeasible*.
- A *missing* value (an inactive conditional parameter: ``None`` or NaN) is *unknown*, with three-valued logic:
  arithmetic, comparisons and functions of an unknown are unknown; ``x and y`` is False as soon as one side is
  known False, ``x or y`` True as soon as one side is known True, whatever the other. A row whose result stays
  unknown evaluates to ``if_missing``: ``True`` for constraints (a constraint that cannot be decided without an
  inactive parameter does not apply), ``False`` for conditions (a parameter whose parent is inactive is
  inactive). So ``mode == 'b' and k > 1`` excludes every row with ``mode != 'b'`` even where ``k`` is inactive.
- Errors take precedence over unknowns in a row, and ``and``/``or``/``if-else`` short-circuit per row: in
  ``y == 0 or x / y > 1`` rows with ``y == 0`` never see the division.

This module holds :class:`Expr` and :func:`parse`; the compiler from the syntax tree is :mod:`dse.expr_compile`
and the numpy evaluation rules (functions, operators, three-valued logic, missing values) are :mod:`dse.expr_eval`.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dse.errors import ExpressionError
from dse.expr_compile import _Compiler
from dse.expr_eval import FUNCTIONS, _Ctx, _errors, _fill_missing, _Node, _or, _truth, missing_mask

__all__ = ["Expr", "parse", "FUNCTIONS", "MAX_LENGTH", "MAX_DEPTH"]

MAX_LENGTH = 10_000
"""Longest expression text accepted, in characters."""
MAX_DEPTH = 100
"""Deepest syntax tree accepted (nesting of operators, calls and parentheses)."""


def _depth(tree: ast.AST) -> int:
    """Depth of the syntax tree, computed without recursion."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return deepest


@dataclass(frozen=True)
class Expr:
    """A parsed, allow-listed expression over the columns of a batch.

    ``text`` is the source, ``names`` the parameter names it uses (in order of first use).
    """

    text: str
    names: tuple[str, ...]
    _fn: _Node = field(repr=False, compare=False)

    def evaluate(
        self,
        columns: Mapping[str, np.ndarray],
        n: int,
        *,
        missing: Mapping[str, np.ndarray] | None = None,
        if_missing: bool = True,
        every_operand: bool = False,
    ) -> np.ndarray:
        """Evaluate over a batch of ``n`` rows; returns a bool array of length ``n``.

        ``columns`` maps each used name to an array of length ``n``. ``missing`` optionally maps names to bool
        masks of rows where that parameter is inactive; without it a ``None``/NaN value means missing. A row whose
        value depends on a missing parameter evaluates to ``if_missing``; a row with an arithmetic error (division
        by zero, log of a non-positive number, NaN) evaluates to ``False``. ``every_operand``: evaluate every
        operand of ``and`` / ``or`` / chained comparisons even where earlier ones decided every row (same result;
        for type checks, so that an operand these rows skip cannot raise on others later).
        """
        if n == 0:
            return np.zeros(0, dtype=bool)
        cols: dict[str, np.ndarray] = {}
        miss: dict[str, np.ndarray] = {}
        for name in self.names:
            if name not in columns:
                raise ExpressionError(
                    f"expression {self.text!r} needs column {name!r}; columns given: {sorted(columns)}"
                )
            col = np.asarray(columns[name])
            if col.shape != (n,):
                raise ExpressionError(f"column {name!r} has shape {col.shape}, expected ({n},)")
            if missing is not None and name in missing:
                m = np.asarray(missing[name], dtype=bool)
            else:
                m = missing_mask(col)
            if m.any():
                miss[name] = m
                col = _fill_missing(col, m)
            elif col.dtype.kind in "US":
                col = col.astype(object)
            cols[name] = col
        with np.errstate(all="ignore"):
            r = self._fn(_Ctx(cols, miss, n, every_operand))
            truth, nan = _truth(np.asarray(r.value), self.text)
        out = np.array(np.broadcast_to(truth, (n,)), dtype=bool)
        if r.unk is not None:
            out[r.unk] = if_missing
        bad = _or(r.bad, _errors(nan, r.unk, n))
        if bad is not None:
            out[bad] = False
        return out

    def __reduce__(self) -> tuple[Any, tuple[str, tuple[str, ...]]]:
        # pickled as its text: re-parsed (and re-checked) on load, so it travels to worker processes
        return (parse, (self.text, self.names))

    def __call__(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        return self.evaluate(columns, n)

    def __str__(self) -> str:
        return self.text



def parse(text: str, names: Iterable[str]) -> Expr:
    """Parse ``text`` into an :class:`Expr` over the parameter ``names``.

    Raises :class:`~dse.errors.ExpressionError` for syntax errors, unknown names (listing the valid ones), any
    construct outside the allow-list (naming it), text over :data:`MAX_LENGTH` characters or nesting deeper than
    :data:`MAX_DEPTH`. ``TypeError`` if ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"an expression must be a str, got {type(text).__name__} {text!r:.80}")
    name_set = frozenset(names)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression of {len(text)} characters is too long (at most {MAX_LENGTH}): {text[:60]!r}..."
        )
    if not text.strip():
        raise ExpressionError(f"empty expression {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"invalid expression {text!r}: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ExpressionError(
            f"expression {text[:60]!r} is nested too deeply or too complex to parse ({type(exc).__name__})"
        ) from None
    if _depth(tree) > MAX_DEPTH:
        raise ExpressionError(f"expression {text[:60]!r} is nested too deeply (at most {MAX_DEPTH} levels)")
    compiler = _Compiler(text, name_set)
    try:
        fn = compiler.compile(tree.body)
    except RecursionError:  # pragma: no cover - guarded by the depth check
        raise ExpressionError(f"expression {text[:60]!r} is nested too deeply") from None
    return Expr(text=text, names=tuple(compiler.used), _fn=fn)

