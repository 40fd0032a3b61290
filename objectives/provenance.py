"""One short digest of the data a cost model's numbers come from, for a study's provenance: a study resumed after
the shipped factors, catalogs or kernel profiles changed is refused (`dse.Study.optimize`) instead of ranking
numbers of two models on one front."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import metadata
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
#: the files and folders under objectives/data the serving cost model reads: fitted factors, catalogs, model
#: configurations, kernel profiles
SERVING_DATA = ("efficiency.json", "power.json", "uncertainty.json", "gpus.toml", "systems", "models", "profiles")
#: the training model's: catalogs, model configurations and its own fitted factors
TRAINING_DATA = ("gpus.toml", "systems", "models", "training")


@lru_cache(maxsize=8)
def data_digest(parts: tuple[str, ...] = SERVING_DATA) -> str:
    """The first 12 hex digits of a sha256 over every file under `parts` (paths relative to objectives/data, in
    sorted order, each path and its bytes) and the installed aiconfigurator-core's version: with that package
    present the kernel profiles are built from its full tables (`profiles.load(full=None)`)."""
    h = hashlib.sha256()
    for part in parts:
        root = DATA_DIR / part
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for f in files:
            if f.exists():
                h.update(str(f.relative_to(DATA_DIR)).encode())
                h.update(f.read_bytes())
    try:
        h.update(f"aiconfigurator-core {metadata.version('aiconfigurator-core')}".encode())
    except metadata.PackageNotFoundError:
        pass
    return h.hexdigest()[:12]


def setup_digest(*parts: object) -> str:
    """The first 12 hex digits of a sha256 over the ``repr`` of ``parts``: what an objective's numbers depend on
    besides the shipped data (its model, workload, SLO, prices...), so that a study resumed with other ones is refused
    (`dse.Study.optimize`) instead of showing the front of the old ones as the new one's."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]
