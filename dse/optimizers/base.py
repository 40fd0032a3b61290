"""The ask/tell batch interface every optimizer implements, and the bookkeeping they share.

Conventions (the Study relies on them):

- ``ask(n)`` returns up to ``n`` NEW configurations as a DataFrame (columns = ``space.names``), every row
  feasible (``space.feasible`` all True) and distinct from every configuration already told or asked and not
  yet told. An empty DataFrame means the optimizer has nothing left to propose.
- ``tell(params, F, CV)``: ``F`` (n, n_objectives) floats to MINIMIZE, ``CV`` (n,) total constraint violation
  (0 = feasible). A failed trial is told with a NaN row in ``F`` and ``CV = inf``: it counts as evaluated (never
  proposed again) and never survives or leads. ``tell`` accepts trials the optimizer did not ask for (from storage
  on resume, from other workers): that is how an optimizer's state is rebuilt, without pickles.
- ``ask_batch(n)`` / ``tell_batch(batch)``: the same as one ``Batch`` (``batch``), which carries the keys and
  encoding the ask computed to the tell, so that the tell neither validates nor encodes the configurations again,
  and its objective matrix and violations once scored (``tell_batch(batch, F, CV)`` for a batch not scored;
  ``tell`` of a DataFrame encodes it once and goes the same way).
- ``seed`` makes a run reproducible: same seed and same told values give the same asked configurations.
"""
from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dse.encoding import Encoder
from dse.errors import OptimizerError, SpaceError

from .batch import Batch
from .duplicates import DuplicateElimination

_SEED_MAX = 2**63 - 1
#: ``space_size`` counts feasible points exactly only below this many points before constraints
EXACT_SIZE_LIMIT = 5_000_000

@dataclasses.dataclass(frozen=True)
class NoSettings:
    """Optimizers without tunable settings."""


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high]; OptimizerError naming the setting otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (
        high is not None and value > high
    ):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise OptimizerError(f"setting {name}={value!r} is invalid: it must be an integer {rng}")
    return int(value)


def check_float(name: str, value: Any, low: float, high: float | None = None, *, open_low: bool = False) -> float:
    """``value`` as a finite float in [low, high] (or (low, high] with open_low); OptimizerError otherwise."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v > low if open_low else v >= low) and (high is None or v <= high)
    if not ok:
        lo = f"> {low}" if open_low else f">= {low}"
        rng = lo if high is None else f"{lo} and <= {high}"
        raise OptimizerError(f"setting {name}={value!r} is invalid: it must be a number {rng}")
    return float(value)


class BaseOptimizer(abc.ABC):
    """One optimizer behind the ask/tell batch interface (see the module docstring for the conventions).

    Subclasses set ``name``, ``Settings`` (a frozen dataclass whose ``__post_init__`` validates its fields with
    ``check_int`` / ``check_float``), and implement ``_ask(n)`` and, if they learn, ``_tell(batch, F, CV, new)``.
    """

    name: ClassVar[str] = "base"
    Settings: ClassVar[type] = NoSettings
    #: keep the result of every told configuration in ``duplicates`` (``DuplicateElimination.outcome``)
    keeps_outcomes: ClassVar[bool] = False

    def __init__(self, space: Any, n_objectives: int, *, seed: int | None = None, **settings: Any) -> None:
        if isinstance(n_objectives, bool) or not isinstance(n_objectives, (int, np.integer)) or n_objectives < 1:
            raise OptimizerError(f"n_objectives={n_objectives!r} must be a positive integer")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise OptimizerError(f"seed={seed!r} must be a non-negative integer or None")
        self.space = space
        self.n_objectives = int(n_objectives)
        self.seed = None if seed is None else int(seed)
        self.config = self._make_settings(settings)
        self.encoder = Encoder(space)
        self.rng = np.random.default_rng(self.seed)
        #: the duplicate-elimination operator this optimizer is composed with (and the study's evaluation cache)
        self.duplicates = DuplicateElimination(outcomes=self.keeps_outcomes)
        self._size: float | None = None

    # ------------------------------------------------------------------------------------------ settings
    @classmethod
    def _make_settings(cls, settings: dict[str, Any]) -> Any:
        fields = [f.name for f in dataclasses.fields(cls.Settings)]
        unknown = [k for k in settings if k not in fields]
        if unknown:
            valid = ", ".join(fields) if fields else "none"
            raise OptimizerError(f"unknown setting(s) {', '.join(map(repr, unknown))} for optimizer {cls.name!r}; "
                                 f"valid settings: {valid}")
        try:
            return cls.Settings(**settings)
        except TypeError as exc:  # pragma: no cover - dataclass signature errors
            raise OptimizerError(f"bad settings for optimizer {cls.name!r}: {exc}") from None

    def settings(self) -> dict[str, Any]:
        """JSON-serializable settings stored with the study: name, seed and every setting."""
        out: dict[str, Any] = {"name": self.name, "seed": self.seed}
        out.update(dataclasses.asdict(self.config))
        return out

    @abc.abstractmethod
    def default_batch_size(self) -> int:
        """Configurations per ask that suit this optimizer (e.g. NSGA-II: its population)."""

    def vectorized_batch_size(self) -> int:
        """Configurations per ask when the objective is vectorized and evaluated in this process (default: the
        same as ``default_batch_size``; optimizers whose batches are not generations may ask more)."""
        return self.default_batch_size()

    # ------------------------------------------------------------------------------------------ ask/tell
    def ask(self, n: int) -> pd.DataFrame:
        """Up to ``n`` new feasible configurations (columns = space.names); empty when nothing is left."""
        return self.ask_batch(n).frame

    def ask_batch(self, n: int) -> Batch:
        """``ask(n)`` as a ``Batch``: the configurations with their keys (``Encoder.keys``, row for row: the one key
        scheme the study's evaluation cache shares with the optimizer) and, where the ask had it, their encoding;
        hand it back to ``tell_batch``."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise OptimizerError(f"ask(n={n!r}): n must be a non-negative integer")
        n = int(n)
        if self.space_size == 0:     # no trial can run on it: an error, not a study finished with no trial
            raise self.space.no_feasible_point()
        if n == 0 or self.exhausted:
            return self.empty_batch()
        batch = self._ask(n)
        if len(batch) == 0:
            return self.empty_batch()
        self.duplicates.asked(batch.keys)
        batch.frame = batch.frame.reset_index(drop=True)
        return batch

    def tell(self, params: pd.DataFrame, F: np.ndarray, CV: np.ndarray) -> None:
        """Record evaluated configurations: F (n, n_objectives) to minimize (NaN row = failed), CV (n,) >= 0."""
        if not isinstance(params, pd.DataFrame):
            raise OptimizerError(f"tell(params=...) needs a pandas DataFrame, got {type(params).__name__}")
        self.tell_batch(self.batch_of(params), F, CV)

    def batch_of(self, params: pd.DataFrame) -> Batch:
        """Configurations from elsewhere (storage, a caller) as a ``Batch``, encoded once; OptimizerError for one
        that is not in the space."""
        params = params.reset_index(drop=True)
        try:
            X, keys = self.encoder.encode_keys(params)
        except SpaceError as exc:
            raise OptimizerError(f"tell: a told configuration is not in the space: {exc}") from None
        return Batch(params, keys, X)

    def tell_batch(self, batch: Batch, F: np.ndarray | None = None, CV: np.ndarray | None = None) -> None:
        """``tell`` of a ``Batch`` (from ``ask_batch`` or ``batch_of``): its keys and encoding are used as they are,
        and its objective matrix and violations (``Batch.scored``) unless ``F`` and ``CV`` are given."""
        if F is None or CV is None:
            if F is not None or CV is not None or batch.F is None or batch.CV is None:
                raise OptimizerError("tell_batch: give both F and CV, or a batch scored with them (Batch.scored)")
            F, CV = batch.F, batch.CV
        n = len(batch)
        F = np.asarray(F, dtype=float)
        if F.ndim == 1 and self.n_objectives == 1 and F.shape == (n,):
            F = F[:, None]
        if F.shape != (n, self.n_objectives):
            raise OptimizerError(f"tell: F has shape {F.shape}, expected ({n}, {self.n_objectives})")
        CV = np.asarray(CV, dtype=float).reshape(-1)
        if CV.shape != (n,):
            raise OptimizerError(f"tell: CV has shape {CV.shape}, expected ({n},)")
        if n == 0:
            return
        if np.any(CV < 0) or np.any(np.isnan(CV)):
            raise OptimizerError("tell: CV must be >= 0 (0 = feasible, inf = failed); got negative or NaN values")
        failed = ~np.all(np.isfinite(F), axis=1)
        CV = np.where(failed, np.inf, CV)
        new = self.duplicates.tell(batch.keys, F, CV)
        self._tell(batch, F, CV, new)

    def _tell(self, batch: Batch, F: np.ndarray, CV: np.ndarray, new: np.ndarray) -> None:  # noqa: B027 (optional hook)
        """Learn from told trials (``encoded(batch)`` gives their encoding); ``new`` marks rows not told before
        (first occurrence). Default: nothing."""

    def encoded(self, batch: Batch) -> np.ndarray:
        """The batch's encoding ``X``: the one its ask computed, else encoded now (once: kept on the batch)."""
        if batch.X is None:
            batch.X = self.encoder.encode(batch.frame)
        return batch.X

    @abc.abstractmethod
    def _ask(self, n: int) -> Batch:
        """Up to ``n`` new feasible configurations not seen, with their keys."""

    @property
    def exhausted(self) -> bool:
        """True when nothing is left to propose (a discrete space whose every point was asked or told)."""
        return self.n_seen >= self.space_size

    # ------------------------------------------------------------------------------------------ helpers
    @property
    def n_seen(self) -> int:
        return len(self.duplicates)

    @property
    def n_told(self) -> int:
        """Distinct configurations told."""
        return self.duplicates.n_told

    @property
    def n_foreign(self) -> int:
        """Distinct configurations told that this optimizer never asked (resumed, or other workers')."""
        return self.duplicates.n_foreign

    def was_told(self, keys: np.ndarray) -> np.ndarray:
        """Mask of the ``keys`` (``Encoder.keys``) told already: the study's answer to "was this configuration
        evaluated?" (``duplicates``, the one evaluation cache)."""
        return self.duplicates.was_told(keys)

    def seen_keys(self) -> list[bytes]:
        """Keys of every configuration told or asked (and not yet told): what repair and duplicate elimination
        operators composed with this optimizer must avoid."""
        return self.duplicates.keys()

    def is_seen(self, keys: np.ndarray) -> np.ndarray:
        """Mask of the ``keys`` told or asked already."""
        return self.duplicates.is_seen(keys)

    @property
    def space_size(self) -> float:
        """Feasible points of a discrete space (inf if continuous). Above ``EXACT_SIZE_LIMIT`` points before
        constraints, the product of the domain sizes (an upper bound) stands in: counting the feasible points
        would enumerate them, and such a space is not exhausted by asking anyway."""
        if self._size is None:
            if not self.space.is_discrete:
                self._size = math.inf
            else:
                bound = math.prod(float(p.n_values) for p in self.space.params.values())
                self._size = float(self.space.size) if bound <= EXACT_SIZE_LIMIT else bound
        return self._size

    def _next_seed(self) -> int:
        return int(self.rng.integers(_SEED_MAX))

    def empty_batch(self) -> Batch:
        return Batch.empty(self.space.names)

    concat = staticmethod(Batch.concat)

    def select_new(self, df: pd.DataFrame, n: int, exclude: set | None = None, *, check: bool = True,
                   keys: np.ndarray | None = None, X: np.ndarray | None = None) -> Batch:
        """The first ``n`` rows of ``df`` that are feasible, not seen, not in ``exclude`` and not repeated.

        ``check=False`` skips ``space.feasible`` for rows feasible by construction (``space.sample``/``grid``);
        ``keys`` (and ``X``): the rows' keys (and encoding) when already known, else computed here in one pass.
        """
        if len(df) == 0:
            return self.empty_batch()
        df = df.reset_index(drop=True)
        if keys is None:
            X, keys = self.encoder.encode_keys(df)
        idx = np.flatnonzero(self.usable(df, keys, exclude, check=check))[:n]
        return Batch(df, keys, X).take(idx)

    def usable(self, df: pd.DataFrame, keys: np.ndarray, exclude: set | None = None, *, check: bool = True
               ) -> np.ndarray:
        """Mask of the rows of ``df`` (``keys``: theirs) that are feasible (``check=False``: known to be), neither
        seen nor in ``exclude``, and the first of their configuration in ``df``."""
        ok = np.asarray(self.space.feasible(df), dtype=bool) if check else np.ones(len(df), dtype=bool)
        return ok & self.duplicates.new(keys, exclude)

    def sample_new(self, n: int, exclude: set | None = None, rounds: int = 6) -> Batch:
        """Up to ``n`` new feasible configurations drawn with ``space.sample`` (seeded from ``self.rng``).

        Duplicates of seen configurations are re-drawn; for a discrete space whose unseen remainder is small
        (rejection would stall), the unseen points are enumerated from ``space.grid()`` and drawn without
        replacement.
        """
        exclude = set(exclude or ())
        parts: list[Batch] = []
        have = 0
        left = self.space_size - self.n_seen - len(exclude)
        if left <= 0:
            return self.empty_batch()
        n = int(min(n, left))
        for _ in range(rounds):
            need = n - have
            if need <= 0:
                break
            df = self.space.sample(max(2 * need, 16), seed=self._next_seed())
            got = self.select_new(df, need, exclude, check=False)
            if len(got):
                parts.append(got)
                exclude.update(got.keys.tolist())
                have += len(got)
        need = n - have
        if need > 0 and self.space.is_discrete and self.space_size <= 2_000_000:
            grid = self.space.grid()
            parts.append(self.select_new(grid.iloc[self.rng.permutation(len(grid))], need, exclude, check=False))
        return self.concat(parts)
