"""Units of the metrics the ML-systems objectives return, read from a metric name's suffix: declared to the engine
with ``dse.vectorized(units=METRIC_UNITS)`` so that its plots title the axes (the engine knows generic suffixes
alone: ``_ms``, ``_gib``, ``_usd``...)."""
from __future__ import annotations

#: (metric-name suffix, unit), the first matching suffix wins (so the longer suffixes come first)
METRIC_UNITS: tuple[tuple[str, str], ...] = (
    ("tok_s_per_gpu", "tokens/s per GPU"), ("tok_s_per_user", "tokens/s per user"), ("tok_s", "tokens/s"),
    ("tokens_per_s_per_gpu", "tokens/s per GPU"), ("tokens_per_s", "tokens/s"),
    ("tflops_per_gpu", "TFLOP/s per GPU"), ("usd_per_mtok", "USD per million tokens"),
    ("joules_per_tok", "J/token"),
)
