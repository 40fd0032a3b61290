"""Catalog of GPUs and LLMs, every number with its source (filled in by the catalog module)."""
from .types import DTYPE_BYTES, DTYPES, GPU, Model, Sourced

__all__ = ["DTYPE_BYTES", "DTYPES", "GPU", "Model", "Sourced"]
