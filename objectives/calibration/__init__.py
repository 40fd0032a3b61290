"""Calibration of the inference model's efficiency factors on published measurements, and its fidelity report.

    python -m objectives.calibration fit      # fit, write objectives/data/efficiency.json, print MdAPE tables
    python -m objectives.calibration report   # objectives/data/fidelity/report.md + predicted_vs_measured.png
"""
from .data import DEFAULT_DATA, classify, load
from .fit import fit
from .predict import predict

__all__ = ["DEFAULT_DATA", "classify", "load", "fit", "predict"]
