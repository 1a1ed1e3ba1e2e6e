"""SQLite stores of finished work, so that rerunning an experiment skips what is done.

``ResultsStore``: one JSON result per job (LMC and MLI runs). ``BenchStore``: the benchmark harness's
tidy tables -- cells (one per fit of a suite's grid), metrics (one row per cell and metric), curves (one row
per cell, curve and checkpoint), artifacts (JSON blobs: reliability diagrams, mode labels, barrier
matrices) and reference posteriors. A cell is written in one transaction, so a killed run leaves only
complete cells behind and a rerun continues where it stopped, without duplicate rows. Keys are hashes
of the full configuration and the package version.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path


def job_key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


class StoreError(ValueError):
    """The store file cannot be used (not SQLite, corrupt, or another program's database)."""


class _SQLiteStore:
    SCHEMA: tuple[str, ...] = ()
    CHECK_TABLE: tuple[str, tuple[str, ...]] = (
        "",
        (),
    )  # (table, its first columns) that must match, or the file is someone else's

    def __init__(self, path):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"results store {self.path} is a directory; accepted: a SQLite file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            for statement in self.SCHEMA:
                db.execute(statement)
            table, first = self.CHECK_TABLE
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        if tuple(columns[: len(first)]) != first:
            raise StoreError(
                f"results store {self.path} has a {table!r} table that bnn_asym did not write; pass another store path"
            )

    @contextmanager
    def _connect(self):
        """A connection whose SQLite errors name this store; commits on success."""
        try:
            db = sqlite3.connect(self.path, timeout=60)
            try:
                with db:
                    yield db
            finally:
                db.close()
        except sqlite3.DatabaseError as e:
            raise StoreError(
                f"results store {self.path} cannot be read ({e}); it is not a bnn_asym results store "
                "or it is damaged: move it away or pass another store path"
            ) from e


class ResultsStore(_SQLiteStore):
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS jobs (key TEXT PRIMARY KEY, kind TEXT NOT NULL, config TEXT NOT NULL, "
        "result TEXT NOT NULL, seconds REAL, created REAL)",
    )
    CHECK_TABLE = ("jobs", ("key", "kind", "config", "result"))

    def get(self, config: dict) -> dict | None:
        with self._connect() as db:
            row = db.execute("SELECT result FROM jobs WHERE key = ?", (job_key(config),)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, config: dict, result: dict, seconds: float | None = None) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?)",
                (
                    job_key(config),
                    config.get("kind", ""),
                    json.dumps(config, sort_keys=True),
                    json.dumps(result),
                    seconds,
                    time.time(),
                ),
            )

    def all(self, kind: str | None = None) -> list[tuple[dict, dict]]:
        with self._connect() as db:
            q = "SELECT config, result FROM jobs" + (" WHERE kind = ?" if kind else "") + " ORDER BY created"
            rows = db.execute(q, (kind,) if kind else ()).fetchall()
        return [(json.loads(c), json.loads(r)) for c, r in rows]

    def cached(self, config: dict, compute) -> tuple[dict, bool]:
        """The stored result for ``config``, or ``compute()`` stored now; also says whether it was cached."""
        found = self.get(config)
        if found is not None:
            return found, True
        start = time.perf_counter()
        result = compute()
        self.put(config, result, time.perf_counter() - start)
        return result, False


class BenchStore(_SQLiteStore):
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS cells (key TEXT PRIMARY KEY, suite TEXT NOT NULL, config TEXT NOT NULL, "
        "info TEXT NOT NULL, seconds REAL, created REAL)",
        "CREATE TABLE IF NOT EXISTS metrics (cell TEXT NOT NULL, name TEXT NOT NULL, value REAL, "
        "PRIMARY KEY (cell, name))",
        "CREATE TABLE IF NOT EXISTS curves (cell TEXT NOT NULL, curve TEXT NOT NULL, step INTEGER NOT NULL, "
        "wall_s REAL, grad_evals REAL, value REAL, PRIMARY KEY (cell, curve, step))",
        "CREATE TABLE IF NOT EXISTS artifacts (cell TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, "
        "PRIMARY KEY (cell, name))",
        "CREATE TABLE IF NOT EXISTS refs (key TEXT PRIMARY KEY, config TEXT NOT NULL, result TEXT NOT NULL, "
        "seconds REAL, created REAL)",
    )
    CHECK_TABLE = ("cells", ("key", "suite", "config", "info"))

    # ----- cells --------------------------------------------------------------------------------------------
    def done(self) -> set[str]:
        with self._connect() as db:
            return {k for (k,) in db.execute("SELECT key FROM cells")}

    def put_cell(self, key: str, suite: str, config: dict, result: dict, seconds: float) -> None:
        """One cell's metrics, curves and artifacts, all in one transaction (replacing any earlier copy)."""
        with self._connect() as db:
            for table in ("metrics", "curves", "artifacts"):
                db.execute(f"DELETE FROM {table} WHERE cell = ?", (key,))
            db.execute(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key,
                    suite,
                    json.dumps(config, sort_keys=True),
                    json.dumps(result.get("info", {})),
                    seconds,
                    time.time(),
                ),
            )
            db.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?)",
                [(key, n, _real(v)) for n, v in sorted(result.get("metrics", {}).items())],
            )
            db.executemany(
                "INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (key, c["curve"], int(c["step"]), c["wall_s"], c["grad_evals"], _real(c["value"]))
                    for c in result.get("curves", [])
                ],
            )
            db.executemany(
                "INSERT INTO artifacts VALUES (?, ?, ?)",
                [(key, n, json.dumps(v)) for n, v in sorted(result.get("artifacts", {}).items())],
            )

    def cells(self, suite: str | Sequence[str] | None = None) -> list[dict]:
        """Every stored cell (of one suite or of several, by name): key, suite, config, info, seconds, and its
        metrics as a dict."""
        names = [suite] if isinstance(suite, str) else list(suite or ())
        where = f" WHERE suite IN ({', '.join('?' * len(names))})" if names else ""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT key, suite, config, info, seconds FROM cells{where} ORDER BY created", names
            ).fetchall()
            metrics: dict[str, dict] = {}
            for cell, name, value in db.execute("SELECT cell, name, value FROM metrics"):
                metrics.setdefault(cell, {})[name] = value
        return [
            {
                "key": k,
                "suite": s,
                "config": json.loads(c),
                "info": json.loads(i),
                "seconds": sec,
                "metrics": metrics.get(k, {}),
            }
            for k, s, c, i, sec in rows
        ]

    def curves(self, key: str) -> dict[str, list[tuple]]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT curve, step, wall_s, grad_evals, value FROM curves WHERE cell = ? ORDER BY step", (key,)
            ).fetchall()
        out: dict[str, list[tuple]] = {}
        for curve, step, wall, grads, value in rows:
            out.setdefault(curve, []).append((step, wall, grads, value))
        return out

    def artifacts(self, key: str) -> dict:
        with self._connect() as db:
            rows = db.execute("SELECT name, value FROM artifacts WHERE cell = ?", (key,)).fetchall()
        return {n: json.loads(v) for n, v in rows}

    def metric_rows(self) -> list[tuple]:
        with self._connect() as db:
            return db.execute("SELECT cell, name, value FROM metrics ORDER BY cell, name").fetchall()

    # ----- reference posteriors ------------------------------------------------------------------------------
    def get_reference(self, config: dict) -> dict | None:
        with self._connect() as db:
            row = db.execute("SELECT result FROM refs WHERE key = ?", (job_key(config),)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_reference(self, config: dict, result: dict, seconds: float) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?, ?)",
                (job_key(config), json.dumps(config, sort_keys=True), json.dumps(result), seconds, time.time()),
            )

    def references(self) -> list[tuple[dict, dict]]:
        with self._connect() as db:
            rows = db.execute("SELECT config, result FROM refs ORDER BY created").fetchall()
        return [(json.loads(c), json.loads(r)) for c, r in rows]

    # ----- export ----------------------------------------------------------------------------------------------
    def export_csv(self, path) -> Path:
        """Tidy CSV: one row per cell and metric, with the cell's settings as columns; written atomically."""
        from ..io import atomic_write_text

        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["suite", "cell", "data", "network", "symmetry", "engine", "seed", "metric", "value"])
        for cell in self.cells():
            c = cell["config"]
            for name, value in sorted(cell["metrics"].items()):
                writer.writerow(
                    [
                        cell["suite"],
                        cell["key"],
                        c["data"]["name"],
                        c.get("network_label", ""),
                        c["symmetry"],
                        c["engine"]["label"],
                        c["seed"],
                        name,
                        "" if value is None else repr(float(value)),
                    ]
                )
        atomic_write_text(path, buffer.getvalue())
        return Path(path)


def _real(v):
    return None if v is None else float(v)
