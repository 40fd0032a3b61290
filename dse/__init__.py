"""dse: design-space exploration engine (spaces, studies, optimizers, storage, Pareto analysis)."""
__version__ = "0.1.0"
