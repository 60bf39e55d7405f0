"""The application templates of a session, and the clones the tests get.

The template at head is named after its content hash (:mod:`.source`) and outlives the
session:

- on the plugin's own server it is part of a cached copy of the initdb'd cluster
  (``clusters/app-<cluster>-<project>-<hash>``), built once by a server started for that, then
  stopped cleanly; the session's server starts from that copy, so a warm start costs nothing
  more than a plain one. A file lock keeps two processes (xdist workers) from building it at
  once; a changed hash builds a new copy and removes the project's older ones.
- on a DSN server (and on a server already started for something else) it is a database
  ``schemaguard_tpl_<project>_<hash>`` marked as a template; an advisory lock keeps two
  processes from building it at once, and a changed hash drops the project's older templates
  (only databases with that prefix: nothing else is ever touched).

Templates at other revisions (``schemaguard_database_at``, the migrator's base) are built on
first use and kept for the session. Clones are made one ahead, and dropped, by a background
thread, so a test rarely waits for ``CREATE DATABASE``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from pytest_schemaguard.config import Settings
from pytest_schemaguard.databases.source import Source
from pytest_schemaguard.errors import SchemaguardError, ServerError

if TYPE_CHECKING:
    from pytest_schemaguard.binaries import Binaries
    from pytest_schemaguard.databases.migrations import ProjectMigrations
    from pytest_schemaguard.server import Database, PostgresServer

TEMPLATE_COMMENT = "pytest-schemaguard application template"


@dataclass
class Status:
    """How the template at head was had, for the line at the end of the session."""

    name: str
    how: str  # "reused" | "built"
    where: str  # "cached cluster" | "server"
    seconds: float = 0.0

    def line(self, source: Source) -> str:
        files = f"{source.files} file{'' if source.files == 1 else 's'} hashed"
        what = f"template {self.name} ({source.describe()}, {files})"
        if self.how == "reused":
            return f"schemaguard: application {what}: reused from the {self.where}"
        return (
            f"schemaguard: application {what}: built in {self.seconds:.2f} s "
            f"and kept in the {self.where}"
        )


class AppTemplates:
    """The templates of one pytest process, and the pools that clone them."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        migrations: Callable[[], ProjectMigrations],
    ) -> None:
        self.settings = settings
        self.source = source
        self._migrations_factory = migrations
        self._migrations: ProjectMigrations | None = None
        self.server: PostgresServer | None = None
        self.status: Status | None = None
        self._at: dict[frozenset[str], tuple[str | None, frozenset[str]]] = {}
        self._pools: dict[str | None, ClonePool] = {}
        self._lock = threading.RLock()
        self._head_ready = False
        self.head_error: SchemaguardError | None = None
        """Why the template at head cannot be had (kept: it is not tried again)."""
        self.errors_shown: dict[str, str] = {}
        """Each template error shown in full, and the test it was shown at (the other tests
        it fails show one line naming that test)."""
        self.requests: list[Any] = []
        """The fixture requests that asked for these templates (pytest's, for the project's
        own ``schemaguard_alembic_config``)."""

    @property
    def migrations(self) -> ProjectMigrations:
        if self._migrations is None:
            self._migrations = self._migrations_factory()
        return self._migrations

    # ------------------------------------------------------------------ building
    def _build(self, db: Database) -> None:
        """Give the empty database ``db`` the schema at head."""
        if self.source.kind == "metadata":
            from pytest_schemaguard.parity.orm import capture_metadata, create_models

            assert self.settings.metadata is not None
            metadata = capture_metadata(self.settings.metadata, self.settings.root)
            create_models(
                db.url,
                metadata,
                self.settings.preamble_sql,
                step_timeout=self.settings.step_timeout,
            )
            return
        m = self.migrations
        applied = m.prepare(db)
        m.migrate(db, applied, m.head, what="building the application template (head)")

    def _build_template(self, server: PostgresServer, name: str) -> None:
        """Build the template ``name`` on ``server``: in a scratch database (dropped by the
        usual cleanup if this process dies), renamed and marked as a template when done."""
        work = server.create_database(name=f"{name}_b{os.getpid() % 100000}")
        try:
            self._build(work)
        finally:
            work.dispose()
        # Compacted and frozen, as template0 is: the catalogs rewritten without their dead
        # rows and free-space maps leave fewer files for each clone to copy (a 50-table
        # template clones about 15 % faster), and no clone sets hint bits on first read.
        with contextlib.suppress(psycopg.Error), psycopg.connect(work.dsn, autocommit=True) as c:
            c.execute("VACUUM (FULL, FREEZE)")
        # A backend that starts on the compacted template writes its relation-cache init file
        # (pg_internal.init), which each file-copied clone inherits: the first connection to a
        # clone then skips rebuilding it from the catalogs (about 3 ms of each test's setup).
        with contextlib.suppress(psycopg.Error), psycopg.connect(work.dsn, autocommit=True) as c:
            c.execute("select 1")
        with server.admin() as conn, conn.transaction():  # all three, or none
            ident = sql.Identifier(name)
            conn.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(work.name), ident)
            )
            comment = f"{TEMPLATE_COMMENT}: {self.source.describe()}, hash {self.source.digest}"
            conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(ident, sql.Literal(comment))
            )
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true").format(ident))

    # ------------------------------------------------------------------ the cached cluster
    def prepare_cluster(self, binaries: Binaries) -> Path:
        """The cached cluster holding the template at head (built on a cold cache)."""
        from pytest_schemaguard import server as srv

        run_as = srv.choose_run_as()
        base_cluster = srv.cached_cluster(binaries, run_as, srv._runtime_base())
        clusters = base_cluster.parent
        stem = f"app-{base_cluster.name}-{self.source.project_key}-"
        target = clusters / f"{stem}{self.source.digest}"
        name = self.source.template_name
        if (target / "PG_VERSION").is_file():
            self.status = Status(name, "reused", "cached cluster")
            return target
        lock = clusters / f"{stem}lock"
        with _file_lock(lock):
            if (target / "PG_VERSION").is_file():  # another process built it meanwhile
                self.status = Status(name, "reused", "cached cluster")
                return target
            lock.write_text(f"{self.source.origin}\n")  # whose copies these are (see below)
            _remove_orphans(clusters)
            started = time.monotonic()
            local = srv.LocalServer(binaries, cluster=base_cluster)
            try:
                server = local.start()
                self._build_template(server, name)
                server.drop_all()  # the scratch databases of the build: not worth copying
                executor = local.executor
                executor.stop()  # pg_ctl stop: a clean shutdown, so the copy needs no recovery
                local.executor = None  # stopped: local.stop() only removes the files
                datadir = Path(executor.datadir)
                if (datadir / "postmaster.pid").exists():
                    raise ServerError(f"the server building {name} did not shut down cleanly")
                srv.trim_wal(binaries, datadir)
                datadir.rename(target)
            finally:
                local.stop()
            for old in clusters.glob(f"{stem}*"):
                if old.is_dir() and old != target:
                    shutil.rmtree(old, ignore_errors=True)
            self.status = Status(name, "built", "cached cluster", time.monotonic() - started)
        return target

    # ------------------------------------------------------------------ on a running server
    def head(self) -> str:
        """The template at head on the server: there already (from the cached cluster, or
        left by an earlier run on a DSN server), or built now (once: a failure is kept)."""
        with self._lock:
            if self.head_error is not None:
                raise self.head_error
            if not self._head_ready:
                try:
                    self._ensure_head()
                except SchemaguardError as exc:
                    self.head_error = exc
                    raise
                self._head_ready = True
            return self.source.template_name

    def _ensure_head(self) -> None:
        server = self.server
        assert server is not None
        name = self.source.template_name
        started = time.monotonic()
        where = "DSN server" if server.source == "dsn" else "server (for this session)"
        with server.admin() as conn:
            if _exists(conn, name):
                if self.status is None:
                    self.status = Status(name, "reused", where)
                return
            key = int.from_bytes(hashlib.sha256(self.source.stem.encode()).digest()[:8], "big")
            key -= 1 << 63 if key >= 1 << 63 else 0
            conn.execute("select pg_advisory_lock(%s)", (key,))
            try:
                if _exists(conn, name):  # another process built it meanwhile
                    self.status = Status(name, "reused", where)
                    return
                _drop_stale(conn, self.source.stem, keep=name)
                self._build_template(server, name)
            finally:
                conn.execute("select pg_advisory_unlock(%s)", (key,))
        self.status = Status(name, "built", where, time.monotonic() - started)

    def template_at(self, ref: str) -> tuple[str | None, frozenset[str]]:
        """The template at revision ``ref`` and what it has applied (None: the server's empty
        template, for ``base`` without a bootstrap hook)."""
        if self.source.kind != "alembic":
            if ref in ("head", "heads"):
                return self.head(), frozenset()
            raise SchemaguardError(
                f"a database at revision {ref!r} needs an Alembic project; this project's "
                "schema comes from metadata.create_all (only 'head' is known)"
            )
        m = self.migrations
        target = m.target(ref)
        with self._lock:
            if target == m.head:
                return self.head(), target
            if target in self._at:
                return self._at[target]
            assert self.server is not None
            if not target and not self.settings.bootstrap:
                self._at[target] = (None, target)
                return self._at[target]
            db = self.server.create_database()
            try:
                applied = m.prepare(db)
                m.migrate(db, applied, target, what=f"building the template at {ref}")
            finally:
                db.dispose()
            self._at[target] = (db.name, target)
            return self._at[target]

    # ------------------------------------------------------------------ clones
    def clone(self, template: str | None) -> Database:
        with self._lock:
            pool = self._pools.get(template)
            if pool is None:
                assert self.server is not None
                pool = self._pools[template] = ClonePool(self.server, template)
        return pool.take()

    def release(self, template: str | None, db: Database) -> None:
        self._pools[template].give_back(db)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


def _remove_orphans(clusters: Path) -> list[Path]:
    """Remove the cached copies of projects that are gone (their configuration file or root
    no longer exists: a moved or deleted checkout), so that the cache, often in RAM, does not
    keep them for ever. Each project's lock file names it."""
    removed = []
    for lock in clusters.glob("app-*-lock"):
        try:
            origin = lock.read_text().strip()
        except OSError:
            continue
        if not origin or os.path.exists(origin):
            continue
        for path in clusters.glob(lock.name[: -len("lock")] + "*"):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        lock.unlink(missing_ok=True)
    return removed


def _exists(conn: Any, name: str) -> bool:
    row = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
    return row is not None


def _drop_stale(conn: Any, stem: str, *, keep: str) -> list[str]:
    """Drop this project's templates of other hashes (only names with its own prefix)."""
    pattern = stem.replace("_", "\\_") + "%"
    rows = conn.execute(
        "select datname from pg_database where datname like %s and datname <> %s",
        (pattern, keep),
    ).fetchall()
    dropped = []
    for (name,) in rows:
        if not str(name).startswith(stem):
            continue
        ident = sql.Identifier(name)
        try:
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(ident))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        except Exception:  # psycopg.Error: in use by another run, or not ours to drop
            continue
        dropped.append(str(name))
    return dropped


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def faster_strategy(timings: dict[str, list[float]], trials: int) -> str:
    """The strategy to clone with next: each of FILE_COPY and WAL_LOG ``trials`` times, in
    turn, then the one whose clones took less time (median)."""
    pending = [s for s in ("FILE_COPY", "WAL_LOG") if len(timings[s]) < trials]
    if pending:
        return min(pending, key=lambda s: len(timings[s]))
    return min(("FILE_COPY", "WAL_LOG"), key=lambda s: statistics.median(timings[s]))


class ClonePool:
    """Clones of one template for the tests, made ahead and dropped by background threads,
    so that a test waits for neither: ``AHEAD`` clones are kept coming, by ``WORKERS`` threads
    (on a two-core machine, three at once overlap one clone's checkpoint waits with another's
    copying: a 200-test session took 3.1 s against 3.8 s with two)."""

    AHEAD = 3
    WORKERS = 3
    TRIALS = 3

    def __init__(self, server: PostgresServer, template: str | None) -> None:
        self.server = server
        self.template = template
        self._jobs: queue.SimpleQueue[Database | bool | None] = queue.SimpleQueue()
        self._ready: queue.SimpleQueue[Database | BaseException] = queue.SimpleQueue()
        self._ahead = 0
        self._closing = False
        # On a DSN server that allows FILE_COPY, which strategy clones faster depends on its
        # storage (tmpfs or disk): both are timed, then the faster is kept.
        self._adaptive = server.source == "dsn" and server.file_copy and template is not None
        self._timings: dict[str, list[float]] = {"FILE_COPY": [], "WAL_LOG": []}
        self._timing_lock = threading.Lock()
        self._warm = threading.Event()
        self._threads: list[threading.Thread] = []

    def _start(self) -> None:
        """The background threads, started after the first (synchronous) clone: the first of
        them warms the template up before any of them clones it."""
        for i in range(self.WORKERS):
            thread = threading.Thread(
                target=self._work, args=(i == 0,), name=f"schemaguard-clones-{i}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def take(self) -> Database:
        if self._ahead:
            self._ahead -= 1
            made = self._ready.get()
        else:
            made = self._make()
        if not self._threads:
            self._start()
        while self._ahead < self.AHEAD:
            self._ahead += 1
            self._jobs.put(True)
        if isinstance(made, BaseException):
            raise made
        return made

    def give_back(self, db: Database) -> None:
        db.dispose()
        self._jobs.put(db)

    def close(self) -> None:
        """Stop the threads, leaving the clones still asked for unmade and the used ones
        undropped: the server's own cleanup, which follows, drops every database the plugin
        made on a DSN server, and takes them all with it on ours (at the end of a session,
        three clones made and four dropped for nothing cost about 0.1 s)."""
        self._closing = True
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._ahead = 0

    def _make(self, conn: Any = None) -> Database | BaseException:
        strategy = None
        if self._adaptive:
            with self._timing_lock:
                strategy = faster_strategy(self._timings, self.TRIALS)
        started = time.monotonic()
        try:
            db = self.server.create_database(self.template, conn=conn, strategy=strategy)
        except Exception as exc:
            return exc
        if strategy is not None:
            with self._timing_lock:
                self._timings[strategy].append(time.monotonic() - started)
        return db

    def _warm_up(self) -> None:
        """Connect to the template once, so that it holds a relation-cache init file
        (``pg_internal.init``) again: a server start removes them, and each file-copied clone
        inherits it, so that the test's first connection does not rebuild it from the
        catalogs. Returns when that backend is gone (a template in use cannot be cloned)."""
        if self.template is None or not self.server.file_copy:  # WAL_LOG: no file copied
            return
        with contextlib.suppress(psycopg.Error):
            dsn = self.server._dsn(self.template)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("select 1")
            with self.server.admin() as admin:
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline:
                    row = admin.execute(
                        "select count(*) from pg_stat_activity where datname = %s",
                        (self.template,),
                    ).fetchone()
                    if not row or not row[0]:
                        break
                    time.sleep(0.002)

    def _work(self, first: bool) -> None:
        if first:
            try:
                self._warm_up()
            finally:
                self._warm.set()
        self._warm.wait()
        # one maintenance connection per thread, kept open: a connection per CREATE and per
        # DROP DATABASE would double the server's work for each test
        with contextlib.ExitStack() as stack:
            conn = None
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                if self._closing:
                    continue
                if conn is None or conn.closed:
                    stack.close()
                    try:
                        conn = stack.enter_context(self.server.admin())
                    except Exception:
                        conn = None  # each job connects on its own (and reports what fails)
                if job is True or job is False:
                    self._ready.put(self._make(conn))
                else:
                    with contextlib.suppress(Exception):
                        self.server.drop_database(job, conn=conn)
