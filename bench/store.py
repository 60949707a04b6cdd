"""Result store: one record per (table, row, seed, profile, config hash), in SQLite (WAL) or any SQLAlchemy URL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

records = sa.Table(
    "records",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("table_id", sa.String(64), nullable=False),
    sa.Column("row_index", sa.Integer, nullable=False),
    sa.Column("row_label", sa.String(256), nullable=False),
    sa.Column("seed", sa.Integer, nullable=False),
    sa.Column("profile", sa.String(16), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("config_hash", sa.String(40), nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("stage_keys", sa.Text, nullable=False),
    sa.Column("stages_run", sa.Text, nullable=False),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("provenance", sa.Text, nullable=False),
    sa.Column("created", sa.String(32), nullable=False),
    sa.Column("curves", sa.Text, nullable=True),
    sa.Column("bootstrap", sa.Text, nullable=True),
    sa.UniqueConstraint("table_id", "row_index", "seed", "profile", "config_hash", name="uq_cell"),
)


TRAINING_FOLDERS = ("pretrain", "train", "reid")
"""Cache folders of the stages that train a model (detector, pose network, its pre-training, ReID network): a
record's ``provenance["trained"]`` maps every such stage its cell ran or read to its key (``bench/tasks.py:
trained_models``)."""


@dataclass
class Record:
    table_id: str
    row_index: int
    row_label: str
    seed: int
    profile: str
    level: str
    config_hash: str
    config: dict[str, Any]
    stage_keys: dict[str, str]
    stages_run: list[str]
    metrics: dict[str, float]
    provenance: dict[str, Any]
    created: str = ""
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per-epoch series recorded during training (``{"train": [{"epoch", "loss", "val_AP", ...}]}``)."""
    bootstrap: dict[str, Any] = field(default_factory=dict)
    """The evaluate stage's bootstrap replicates (``bench/metrics/bootstrap.py: BootstrapRecord``): unit, units hash,
    resamples, seed, level and per metric the replicate values, so reports compute intervals and paired effects."""


def store_url(run_dir: Path, url: str | None = None) -> str:
    return database_url(url) if url else f"sqlite:///{Path(run_dir).resolve() / 'results.sqlite'}"


class StoreError(RuntimeError):
    """The result store (or search storage) cannot be used: a missing driver or an unreachable server."""


def database_url(url: str) -> str:
    """``postgresql://`` / ``postgres://`` -> ``postgresql+psycopg://`` (psycopg 3, the ``postgres`` extra; SQLAlchemy
    would otherwise look for psycopg2); other URLs unchanged. A missing driver is a one-line :class:`StoreError`."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            url = "postgresql+psycopg://" + url.removeprefix(scheme)
    if url.startswith("postgresql+psycopg://"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StoreError(
                f"a PostgreSQL store needs the psycopg driver: pip install 'crowdbench[postgres]' (URL {safe_url(url)})"
            ) from None
    return url


def safe_url(url: str) -> str:
    """The URL without its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


CELL_KEY = ("table_id", "row_index", "seed", "profile", "config_hash")


class ResultStore:
    """Thin SQLAlchemy Core wrapper; SQLite gets WAL mode so readers never block the writer."""

    def __init__(self, url: str) -> None:
        self.url = url = database_url(url)
        self.engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            Path(self.engine.url.database or ".").parent.mkdir(parents=True, exist_ok=True)

            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

        try:
            metadata.create_all(self.engine)
        except sa.exc.OperationalError as exc:
            first = str(exc.orig).strip().splitlines()[0]
            raise StoreError(f"cannot open the result store {safe_url(url)}: {first}") from None
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Stores written before a column existed get it (nullable, so old rows stay valid)."""
        existing = {c["name"] for c in sa.inspect(self.engine).get_columns("records")}
        with self.engine.begin() as conn:
            for column in records.columns:
                if column.name not in existing and column.nullable:
                    conn.execute(
                        sa.text(
                            f"ALTER TABLE records ADD COLUMN {column.name} {column.type.compile(self.engine.dialect)}"
                        )
                    )

    def put(self, rec: Record) -> None:
        """Insert or replace the record of one cell (a transaction: all or nothing)."""
        row = {
            "table_id": rec.table_id,
            "row_index": rec.row_index,
            "row_label": rec.row_label,
            "seed": rec.seed,
            "profile": rec.profile,
            "level": rec.level,
            "config_hash": rec.config_hash,
            "config": json.dumps(rec.config, sort_keys=True, default=str),
            "stage_keys": json.dumps(rec.stage_keys, sort_keys=True),
            "stages_run": json.dumps(rec.stages_run),
            "metrics": json.dumps(rec.metrics, sort_keys=True),
            "provenance": json.dumps(rec.provenance, sort_keys=True, default=str),
            "created": rec.created or datetime.now(UTC).isoformat(timespec="seconds"),
            "curves": json.dumps(rec.curves, sort_keys=True),
            "bootstrap": json.dumps(rec.bootstrap, sort_keys=True) if rec.bootstrap else None,
        }
        dialect = self.engine.dialect.name
        if dialect in ("sqlite", "postgresql"):  # one atomic upsert on the cell's unique key: concurrent writers of
            # the same cell leave exactly one record, the last writer's (a delete + insert would race on PostgreSQL)
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            stmt = insert(records).values(**row)
            stmt = stmt.on_conflict_do_update(
                index_elements=list(CELL_KEY), set_={k: stmt.excluded[k] for k in row if k not in CELL_KEY}
            )
            with self.engine.begin() as conn:
                conn.execute(stmt)
            return
        cell = sa.and_(*(records.c[k] == row[k] for k in CELL_KEY))
        with self.engine.begin() as conn:
            conn.execute(records.delete().where(cell))
            conn.execute(records.insert().values(**row))

    def get(self, table_id: str, row_index: int, seed: int, profile: str, config_hash: str) -> Record | None:
        found = self.query(table_id, profile=profile, config_hash=config_hash, row_index=row_index, seed=seed)
        return found[0] if found else None

    def query(self, table_id: str, *, profile: str | None = None, **where: Any) -> list[Record]:
        stmt = sa.select(records).where(records.c.table_id == table_id)
        if profile is not None:
            stmt = stmt.where(records.c.profile == profile)
        for column, value in where.items():
            stmt = stmt.where(records.c[column] == value)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(records.c.row_index, records.c.seed)).mappings().all()
        return [_to_record(r) for r in rows]

    def table_ids(self) -> list[str]:
        """Every table id with at least one record."""
        with self.engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(sa.select(records.c.table_id).distinct()))

    def dispose(self) -> None:
        self.engine.dispose()


def _to_record(row: Any) -> Record:
    return Record(
        table_id=row["table_id"],
        row_index=row["row_index"],
        row_label=row["row_label"],
        seed=row["seed"],
        profile=row["profile"],
        level=row["level"],
        config_hash=row["config_hash"],
        config=json.loads(row["config"]),
        stage_keys=json.loads(row["stage_keys"]),
        stages_run=json.loads(row["stages_run"]),
        metrics=json.loads(row["metrics"]),
        provenance=json.loads(row["provenance"]),
        created=row["created"],
        curves=json.loads(row["curves"]) if row["curves"] else {},
        bootstrap=json.loads(row["bootstrap"]) if row.get("bootstrap") else {},
    )
