"""The storage schema: five tables in SQLAlchemy Core, shared by SQLite and PostgreSQL.

Tables are prefixed ``dse_`` so that a database may also hold Optuna's tables (``study.to_optuna``) without
a clash. JSON columns are TEXT holding ``json.dumps`` output (never pickle); timestamps are float epoch
seconds (UTC); durations are float seconds.
"""
from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from dse.vocabulary import FINISHED_STATES, STATES  # noqa: F401  (trial states, as stored; re-exported)

#: Version of this schema; stored in ``dse_meta`` under ``schema_version``. Bump on any incompatible change.
#: 2: finished trials are written in blocks (``dse_trial_blocks``); a version-1 database is upgraded on open by
#: adding that table (its trials stay where they are and read the same).
SCHEMA_VERSION = 2

metadata = MetaData()

#: Key-value facts about the database itself (``schema_version``).
meta_table = Table(
    "dse_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

#: One row per study. ``next_number`` is the row-locked trial-number counter.
studies = Table(
    "dse_studies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("meta", Text, nullable=False),  # JSON object
    Column("next_number", Integer, nullable=False, default=0),
    Column("created_at", Double, nullable=False),  # epoch s
    Column("updated_at", Double, nullable=False),  # epoch s, touched by every write to the study
    sqlite_autoincrement=True,  # ids are never reused: a worker of a deleted study cannot write into a new one
)

#: One row per trial reserved ``running`` (finished in place); ``number`` is unique within a study, 0-based.
trials = Table(
    "dse_trials",
    metadata,
    Column("study_id", Integer, ForeignKey("dse_studies.id"), primary_key=True, autoincrement=False),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("state", String(16), nullable=False),
    Column("params", Text, nullable=False),  # JSON object
    Column("metrics", Text, nullable=True),  # JSON object, NULL while running
    Column("feasible", Boolean, nullable=True),
    Column("error", Text, nullable=True),
    Column("worker", String(255), nullable=True),
    Column("started_at", Double, nullable=True),  # epoch s
    Column("finished_at", Double, nullable=True),  # epoch s
    Column("duration_s", Double, nullable=True),  # s
)
Index("ix_dse_trials_study_state", trials.c.study_id, trials.c.state)

#: One row per block of trials written finished (``dse.storage.columns``): trials ``first_number..last_number``,
#: column by column in ``data``; the counts answer ``count_trials`` without reading ``data``.
trial_blocks = Table(
    "dse_trial_blocks",
    metadata,
    Column("study_id", Integer, ForeignKey("dse_studies.id"), primary_key=True, autoincrement=False),
    Column("first_number", Integer, primary_key=True, autoincrement=False),
    Column("last_number", Integer, nullable=False),
    Column("n_complete", Integer, nullable=False),
    Column("n_failed", Integer, nullable=False),
    Column("worker", String(255), nullable=True),
    Column("data", LargeBinary, nullable=False),  # columns of the trials: JSON header + raw arrays, dse.storage.columns
)

#: Small JSON key-values per study (front numbers, artifact paths, optimizer state summaries).
attrs = Table(
    "dse_attrs",
    metadata,
    Column("study_id", Integer, ForeignKey("dse_studies.id"), primary_key=True, autoincrement=False),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),  # JSON value
)
