"""The versioned schema: forward-only migrations applied in one transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mltui.base.errors import StoreError
from mltui.store.connection import translate, write_tx

# Each migration is a list of statements; MIGRATIONS[i] takes the store from version i to i+1.
# Metric points are stored in chunks: one row per (run, key, flush) holding packed arrays of
# steps, values and wall times. That keeps ingest far above row-at-a-time speed and lets a
# chart read a 100k-point series as a few blobs.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID""",
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT 'other',
            status TEXT NOT NULL,
            command TEXT,
            cwd TEXT,
            host TEXT,
            user TEXT,
            pid INTEGER,
            pgid INTEGER,
            gpus TEXT,
            git_commit TEXT,
            git_dirty INTEGER,
            python TEXT,
            env_hash TEXT,
            parent_id TEXT REFERENCES runs(id) ON DELETE SET NULL,
            created REAL NOT NULL,
            started REAL,
            ended REAL,
            heartbeat REAL,
            exit_code INTEGER,
            run_dir TEXT,
            note TEXT,
            bad_lines INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID""",
        "CREATE INDEX runs_created ON runs(created)",
        "CREATE INDEX runs_status ON runs(status)",
        """CREATE TABLE params (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value,
            type TEXT NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID""",
        "CREATE INDEX params_key_value ON params(key, value)",
        """CREATE TABLE tags (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value,
            type TEXT NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID""",
        "CREATE INDEX tags_key_value ON tags(key, value)",
        """CREATE TABLE metrics (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            first_step INTEGER NOT NULL,
            last_step INTEGER NOT NULL,
            n INTEGER NOT NULL,
            steps BLOB NOT NULL,
            vals BLOB NOT NULL,
            times BLOB NOT NULL
        )""",
        "CREATE INDEX metrics_run_key ON metrics(run_id, key, first_step)",
        """CREATE TABLE metric_summary (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            last REAL,
            last_step INTEGER NOT NULL,
            last_time REAL NOT NULL,
            min REAL,
            max REAL,
            count INTEGER NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID""",
        "CREATE INDEX metric_summary_key_last ON metric_summary(key, last)",
        """CREATE TABLE artifacts (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT,
            modified REAL NOT NULL,
            PRIMARY KEY (run_id, path)
        ) WITHOUT ROWID""",
    ],
    [  # 2: saved comparison views
        """CREATE TABLE views (
            name TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL
        ) WITHOUT ROWID""",
    ],
    [  # 3: launched runs: their supervisor, why they ended, how to launch them again, the queue
        "ALTER TABLE runs ADD COLUMN sup_pid INTEGER",
        "ALTER TABLE runs ADD COLUMN reason TEXT",
        "ALTER TABLE runs ADD COLUMN spec TEXT",
        "ALTER TABLE runs ADD COLUMN rerun_of TEXT",
        "ALTER TABLE runs ADD COLUMN fingerprint TEXT",
        "ALTER TABLE runs ADD COLUMN kill_requested REAL",
        "ALTER TABLE artifacts ADD COLUMN location TEXT",
    ],
    [  # 4: when the command's process started, so a reused pid is never taken for it
        "ALTER TABLE runs ADD COLUMN pid_start INTEGER",
    ],
    [  # 5: dataset versions, their files, the stat cache that skips unchanged files, profiles, lineage
        """CREATE TABLE datasets (
            name TEXT PRIMARY KEY,
            created REAL NOT NULL
        ) WITHOUT ROWID""",
        # id is the sha256 of the manifest: the same bytes under the same paths give the same id
        """CREATE TABLE dataset_versions (
            dataset TEXT NOT NULL REFERENCES datasets(name) ON DELETE CASCADE,
            id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            parent TEXT,
            source TEXT,
            message TEXT,
            user TEXT,
            created REAL NOT NULL,
            files INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            stored INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (dataset, id),
            UNIQUE (dataset, seq)
        ) WITHOUT ROWID""",
        # path is the raw file name bytes (any name a filesystem allows); kind: file, link or dir
        """CREATE TABLE dataset_files (
            version TEXT NOT NULL,
            path BLOB NOT NULL,
            kind TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT,
            target BLOB,
            PRIMARY KEY (version, path)
        ) WITHOUT ROWID""",
        """CREATE TABLE hash_cache (
            path BLOB PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            ctime_ns INTEGER NOT NULL
        ) WITHOUT ROWID""",
        # keyed by the file's sha256: the profile of the same bytes is the same profile
        """CREATE TABLE dataset_profiles (
            sha256 TEXT NOT NULL,
            format TEXT NOT NULL,
            profile TEXT NOT NULL,
            created REAL NOT NULL,
            PRIMARY KEY (sha256, format)
        ) WITHOUT ROWID""",
        """CREATE TABLE run_inputs (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            dataset TEXT NOT NULL,
            version TEXT NOT NULL,
            how TEXT NOT NULL,
            path TEXT,
            recorded REAL NOT NULL,
            changed INTEGER,
            PRIMARY KEY (run_id, dataset, version)
        ) WITHOUT ROWID""",
        "CREATE INDEX run_inputs_version ON run_inputs(dataset, version)",
    ],
    [  # 6: the model registry, promotion requests and the audit trail
        """CREATE TABLE models (
            name TEXT PRIMARY KEY,
            created REAL NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE model_versions (
            model TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            run_id TEXT,
            path TEXT NOT NULL,
            stage TEXT NOT NULL DEFAULT 'candidate',
            user TEXT,
            created REAL NOT NULL,
            PRIMARY KEY (model, version),
            UNIQUE (model, sha256)
        ) WITHOUT ROWID""",
        # at most one production version per model, whatever races: SQLite refuses a second
        "CREATE UNIQUE INDEX one_production ON model_versions(model) WHERE stage = 'production'",
        """CREATE TABLE model_aliases (
            model TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
            alias TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (model, alias)
        ) WITHOUT ROWID""",
        """CREATE TABLE stage_moves (
            id INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            from_stage TEXT,
            to_stage TEXT NOT NULL,
            actor TEXT,
            reason TEXT,
            time REAL NOT NULL
        )""",
        """CREATE TABLE promotion_requests (
            id INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            target TEXT NOT NULL,
            requester TEXT NOT NULL,
            message TEXT,
            gates TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'open',
            reviewer TEXT,
            decision TEXT,
            override TEXT,
            created REAL NOT NULL,
            decided REAL
        )""",
        """CREATE TABLE request_comments (
            id INTEGER PRIMARY KEY,
            request_id INTEGER NOT NULL REFERENCES promotion_requests(id) ON DELETE CASCADE,
            actor TEXT NOT NULL,
            text TEXT NOT NULL,
            time REAL NOT NULL
        )""",
        # append-only; each row holds the hash of the one before, and meta holds the head
        """CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            model TEXT,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
    ],
    [  # 7: runs handed to a scheduler (Slurm): which executor, the job id, the job's last known state
        "ALTER TABLE runs ADD COLUMN executor TEXT",
        "ALTER TABLE runs ADD COLUMN job_id TEXT",
        "ALTER TABLE runs ADD COLUMN job_state TEXT",
    ],
    [  # 8: what a run survived or died of: the command's peak RSS (bytes), the boot it ran in (a reboot
        # tells a lost run apart), why the store could not be written for a while and how many metric
        # points were dropped meanwhile; and, on an artifact row, the bytes each replacement of it
        # overwrote (a JSON list of {sha256, size, replaced}), so nothing is replaced without a record
        "ALTER TABLE runs ADD COLUMN peak_rss INTEGER",
        "ALTER TABLE runs ADD COLUMN boot_id TEXT",
        "ALTER TABLE runs ADD COLUMN store_trouble TEXT",
        "ALTER TABLE runs ADD COLUMN dropped_points INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE artifacts ADD COLUMN replaced TEXT",
    ],
    [  # 9: pipelines. A stage's last successful execution (what dvc.lock holds), the run cache (a
        # fingerprint's outs as manifests of cache objects) and each repro's steps, for resuming and the log
        """CREATE TABLE pipeline_stages (
            project TEXT NOT NULL,
            stage TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            command TEXT NOT NULL,
            params TEXT NOT NULL,
            deps TEXT NOT NULL,
            outs TEXT NOT NULL,
            run_id TEXT,
            time REAL NOT NULL,
            dep_files BLOB,
            PRIMARY KEY (project, stage)
        ) WITHOUT ROWID""",
        """CREATE TABLE pipeline_cache (
            fingerprint TEXT PRIMARY KEY,
            stage TEXT NOT NULL,
            outs TEXT NOT NULL,
            run_id TEXT,
            created REAL NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE pipeline_steps (
            pipeline_id TEXT NOT NULL,
            stage TEXT NOT NULL,
            state TEXT NOT NULL,
            run_id TEXT,
            fingerprint TEXT,
            job_id TEXT,
            reason TEXT,
            started REAL,
            ended REAL,
            PRIMARY KEY (pipeline_id, stage)
        ) WITHOUT ROWID""",
        "CREATE INDEX pipeline_steps_fingerprint ON pipeline_steps(stage, fingerprint)",
    ],
    [  # 10: signed decisions (#16): on each audit row, whether who acted was the OS account ('os') or only
        # asserted ($MLTUI_USER under trust_env_user, 'asserted'); for a decision, the hash of the promotion
        # policy it was made under, the actor's SSH signature (ssh-keygen -Y sign) and its key's fingerprint.
        # NULL on rows written before: their hashes stay as they were.
        "ALTER TABLE audit_log ADD COLUMN identity TEXT",
        "ALTER TABLE audit_log ADD COLUMN policy_hash TEXT",
        "ALTER TABLE audit_log ADD COLUMN signature TEXT",
        "ALTER TABLE audit_log ADD COLUMN signer_key TEXT",
    ],
    [  # 11: runs at scale (#18): an archived run is kept but hidden from listings unless asked for; the
        # default listing (not archived, newest first) reads its page straight off (archived, created); and
        # deleting a run looks up the runs that name it as parent (ON DELETE SET NULL) by index, not by a scan
        # of every run (50,000 deletions were 50,000 full scans)
        "ALTER TABLE runs ADD COLUMN archived INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX runs_archived_created ON runs(archived, created)",
        "CREATE INDEX runs_parent ON runs(parent_id)",
        # a run's params as one text (see store/runs.py PARAMS_KEY_OF), so grouping by params reads a column
        # per run; any write of a param row marks it stale (NULL) and its writer or reader fills it in
        "ALTER TABLE runs ADD COLUMN params_key TEXT",
        "UPDATE runs SET params_key = coalesce((SELECT group_concat(char(30) || p.key || char(31) || p.type || "
        "char(31) || quote(p.value), '') FROM (SELECT key, type, value FROM params WHERE run_id = runs.id "
        "ORDER BY key) p), '')",
        "CREATE TRIGGER params_key_insert AFTER INSERT ON params BEGIN "
        "UPDATE runs SET params_key = NULL WHERE id = NEW.run_id AND params_key IS NOT NULL; END",
        "CREATE TRIGGER params_key_update AFTER UPDATE ON params BEGIN "
        "UPDATE runs SET params_key = NULL WHERE id IN (OLD.run_id, NEW.run_id) AND params_key IS NOT NULL; END",
        "CREATE TRIGGER params_key_delete AFTER DELETE ON params BEGIN "
        "UPDATE runs SET params_key = NULL WHERE id = OLD.run_id AND params_key IS NOT NULL; END",
    ],
    [  # 12: monitoring. How far each prediction log was read; reference summaries (once per content);
        # windows as compact aggregates (JSON: counts on the reference's bins, latency bins, outputs,
        # quality counts); labels still waiting for their prediction; alerts (one row per incident)
        """CREATE TABLE monitor_files (
            path TEXT PRIMARY KEY,
            inode INTEGER,
            offset INTEGER NOT NULL,
            checked REAL NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE monitor_refs (
            key TEXT PRIMARY KEY,
            label TEXT,
            summary TEXT NOT NULL,
            created REAL NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE monitor_windows (
            model TEXT NOT NULL,
            version TEXT NOT NULL,
            start REAL NOT NULL,
            seconds REAL NOT NULL,
            n INTEGER NOT NULL,
            data TEXT NOT NULL,
            updated REAL NOT NULL,
            PRIMARY KEY (model, version, seconds, start)
        ) WITHOUT ROWID""",
        """CREATE TABLE monitor_labels (
            model TEXT NOT NULL,
            id TEXT NOT NULL,
            label TEXT NOT NULL,
            seen REAL NOT NULL,
            PRIMARY KEY (model, id)
        ) WITHOUT ROWID""",
        """CREATE TABLE monitor_alerts (
            id INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            rule TEXT NOT NULL,
            opened REAL NOT NULL,
            closed REAL,
            window REAL,
            value TEXT,
            actions TEXT NOT NULL DEFAULT '[]',
            retrain_run TEXT,
            request_id INTEGER
        )""",
        "CREATE INDEX monitor_alerts_open ON monitor_alerts(model, rule) WHERE closed IS NULL",
        """CREATE TABLE monitor_checks (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            records INTEGER NOT NULL,
            malformed INTEGER NOT NULL,
            labels INTEGER NOT NULL,
            report TEXT
        )""",
    ],
    [  # 13: notifications (#14). The outbox: each event once (routed: when its channels were chosen from
        # config.toml); each channel's delivery of it (pending, sending, then delivered or failed after its
        # tries); every try of a delivery and how it went. And on a run: since when it has been alive but
        # silent (no output line, no metric) past runs.stall_seconds; NULL when it is not stalled
        """CREATE TABLE notify_events (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            details TEXT NOT NULL,
            created REAL NOT NULL,
            routed REAL
        )""",
        "CREATE INDEX notify_events_unrouted ON notify_events(id) WHERE routed IS NULL",
        """CREATE TABLE notify_deliveries (
            event_id INTEGER NOT NULL REFERENCES notify_events(id) ON DELETE CASCADE,
            channel TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            tries INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            updated REAL NOT NULL,
            PRIMARY KEY (event_id, channel)
        ) WITHOUT ROWID""",
        "CREATE INDEX notify_deliveries_open ON notify_deliveries(status) WHERE status IN ('pending', 'sending')",
        """CREATE TABLE notify_attempts (
            id INTEGER PRIMARY KEY,
            event_id INTEGER NOT NULL REFERENCES notify_events(id) ON DELETE CASCADE,
            channel TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            time REAL NOT NULL,
            seconds REAL NOT NULL,
            ok INTEGER NOT NULL,
            detail TEXT
        )""",
        "CREATE INDEX notify_attempts_event ON notify_attempts(event_id, channel)",
        "ALTER TABLE runs ADD COLUMN stalled_since REAL",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)


def set_meta(conn: sqlite3.Connection, key: str, value: object) -> None:
    """Set one store-wide value in `meta` (the schema version, the audit head, the queue's pause)."""
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (key, value))


def read_version(conn: sqlite3.Connection) -> int:
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
    if not has_meta:
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        return 0 if tables == 0 else -1
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def _refuse(version: int, path: Path | str) -> None:
    if version < 0:
        raise StoreError(f"{path} is a SQLite database but not an mltui store (it has other tables).")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"The store {path} was written by a newer mltui (schema {version}; this one knows up to "
            f"{SCHEMA_VERSION}); upgrade mltui to use it."
        )


def refuse_foreign(conn: sqlite3.Connection, path: Path | str) -> None:
    """Refuse, before touching it, a SQLite file that is not an mltui store or is from a newer mltui."""
    try:
        version = read_version(conn)
    except sqlite3.Error as exc:
        raise translate(exc, path) from None
    _refuse(version, path)


def check_version(conn: sqlite3.Connection, path: Path | str) -> int:
    """For a read-only connection: the store must be ours and already up to date."""
    refuse_foreign(conn, path)
    version = read_version(conn)
    if version < SCHEMA_VERSION:
        raise StoreError(f"The store {path} has an older schema and is read-only here, so it cannot be upgraded.")
    return version


def migrate(conn: sqlite3.Connection, path: Path | str) -> int:
    """Apply pending migrations atomically; returns the version now in the store."""
    try:
        version = read_version(conn)
    except sqlite3.Error as exc:
        raise translate(exc, path) from None
    _refuse(version, path)
    if version == SCHEMA_VERSION:
        return version
    try:
        with write_tx(conn, path):
            version = read_version(conn)  # another process may have migrated meanwhile
            _refuse(version, path)
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
                    conn.execute(statement)
            set_meta(conn, "schema_version", SCHEMA_VERSION)
    except sqlite3.Error as exc:
        raise translate(exc, path) from None
    return SCHEMA_VERSION
