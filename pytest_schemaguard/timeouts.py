"""Timeouts: a watchdog that cancels a statement on the server when a step runs too long.

A migration step, the models' ``create_all`` or the baseline replay runs on a connection that
may belong to the project's own driver (psycopg 3, psycopg2, asyncpg, pg8000). Interrupting
the Python thread does not stop a statement the server is running, so the watchdog cancels it
*on the server*, from a separate connection of ours: ``pg_cancel_backend(pid)``, where ``pid``
is what ``select pg_backend_pid()`` returned on the guarded connection (or every other
backend connected to a scratch database that only the guarded work uses). The server then
fails the running statement with ``canceling statement due to user request`` (SQLSTATE
57014); the caller sees that error, asks :attr:`Watchdog.fired`, and reports
:meth:`Watchdog.explain` instead.

Python code of a revision that loops without running SQL is not interrupted: only statements
can be cancelled.

This module does not import pytest.
"""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType
from typing import Any

from pytest_schemaguard.urls import mask_url

CONNECT_TIMEOUT = 10
"""Seconds a connection to a server may take before it fails (``PGCONNECT_TIMEOUT`` wins)."""


def connect_timeout() -> int:
    """The connect timeout in seconds: ``PGCONNECT_TIMEOUT`` if set (libpq's own variable),
    else :data:`CONNECT_TIMEOUT`."""
    value = os.environ.get("PGCONNECT_TIMEOUT", "").strip()
    try:
        seconds = int(value)
    except ValueError:
        return CONNECT_TIMEOUT
    return seconds if seconds > 0 else CONNECT_TIMEOUT


def conninfo_of(url: str) -> str:
    """A libpq connection string for the database a SQLAlchemy URL names (any driver)."""
    import psycopg
    from sqlalchemy.engine import make_url

    from pytest_schemaguard.urls import host_and_port

    parsed = make_url(url)
    host, port = host_and_port(parsed)
    parts: dict[str, Any] = {
        "host": host,
        "port": str(port),
        "dbname": parsed.database or "postgres",
    }
    if parsed.username:
        parts["user"] = parsed.username
    if isinstance(parsed.password, str) and parsed.password:
        parts["password"] = parsed.password
    return psycopg.conninfo.make_conninfo(**parts)


def backend_pid(connection: Any) -> int | None:
    """The server process of a SQLAlchemy connection (plain SQL: works on every driver)."""
    try:
        value = connection.exec_driver_sql("select pg_backend_pid()").scalar()
    except Exception:
        return None
    return int(value) if value is not None else None


class Watchdog:
    """Cancels the guarded statement on the server once ``timeout`` seconds have passed.

    Give ``pid`` (one backend) or ``database`` (every backend connected to that database but
    the watchdog's own: for a scratch database only the guarded work uses). ``conninfo`` is
    the libpq connection string the watchdog connects with. ``timeout`` 0 guards nothing.

    Use it as a context manager, or :meth:`start` and :meth:`stop` where the guarded work
    spans a ``yield``. :meth:`stop` waits for a cancel in flight, so no cancel lands on a
    statement run after it.
    """

    def __init__(
        self,
        timeout: float,
        conninfo: str,
        *,
        pid: int | None = None,
        database: str | None = None,
        setting: str = "step_timeout",
    ) -> None:
        self.timeout = timeout
        self.setting = setting
        self.fired = False
        self.cancel_error: str | None = None
        self._conninfo = conninfo
        self._pid = pid
        self._database = database
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # never the connection string: it may hold a password
        target = f"pid={self._pid}" if self._pid is not None else f"database={self._database!r}"
        return f"Watchdog({self.setting}={self.timeout:g}, {target}, fired={self.fired})"

    @property
    def active(self) -> bool:
        return self.timeout > 0 and (self._pid is not None or self._database is not None)

    def start(self) -> Watchdog:
        if self.active and self._thread is None:
            self._thread = threading.Thread(
                target=self._watch, name="schemaguard-watchdog", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def __enter__(self) -> Watchdog:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def explain(self, message: str) -> str:
        """``message`` (the error the cancel caused) as the timeout it really is."""
        return _explain(self.setting, self.timeout, self.cancel_error, message)

    def _watch(self) -> None:
        if self._stop.wait(self.timeout):
            return
        with self._lock:
            if self._stopped:
                return
            self.fired = True
            try:
                self._cancel()
            except Exception as exc:  # reported through explain(); the work goes on hanging
                self.cancel_error = mask_url(" ".join(str(exc).split()))

    def _cancel(self) -> None:
        if self._pid is not None:
            _cancel_backend(self._conninfo, self._pid)
            return
        import psycopg

        with psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=connect_timeout()
        ) as conn:
            conn.execute(
                "select pg_cancel_backend(pid) from pg_stat_activity "
                "where datname = %s and pid <> pg_backend_pid()",
                (self._database,),
            )


class StepGuard:
    """One watchdog for a series of guarded steps on one backend: :meth:`arm` before each step,
    :meth:`disarm` after it, :meth:`close` at the end.  One thread serves every step (a thread
    per step costs more than a short migration step itself)."""

    def __init__(
        self, timeout: float, conninfo: str, *, pid: int | None, setting: str = "step_timeout"
    ) -> None:
        self.timeout = timeout
        self.setting = setting
        self.fired = False
        self.cancel_error: str | None = None
        self._conninfo = conninfo
        self._pid = pid
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._cancelling = False
        self._closed = False
        self._idle = False
        """The watchdog sleeps without a deadline (only then must arm() wake it)."""
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # never the connection string: it may hold a password
        return f"StepGuard({self.setting}={self.timeout:g}, pid={self._pid}, fired={self.fired})"

    def arm(self) -> None:
        """Start guarding a step: its statement is cancelled ``timeout`` seconds from now.

        The watchdog is woken only when it sleeps without a deadline: one sleeping until an
        earlier step's deadline wakes then, sees the later one and sleeps again.  (Waking it at
        every step would make it compete with the migration for the interpreter hundreds of
        times a second.)"""
        if self.timeout <= 0 or self._pid is None:
            return
        with self._cond:
            self.fired = False
            self.cancel_error = None
            self._deadline = time.monotonic() + self.timeout
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="schemaguard-watchdog", daemon=True
                )
                self._thread.start()
            elif self._idle:
                self._cond.notify_all()

    def disarm(self) -> None:
        """The step is over; waits for a cancel in flight, so none lands on a later statement."""
        with self._cond:
            self._deadline = None
            while self._cancelling:
                self._cond.wait()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._deadline = None
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def explain(self, message: str) -> str:
        """``message`` (the error the cancel caused) as the timeout it really is."""
        return _explain(self.setting, self.timeout, self.cancel_error, message)

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    self._idle = True
                    self._cond.wait()
                    self._idle = False
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._deadline = None
                self.fired = True
                self._cancelling = True
                self._cond.release()
                try:
                    _cancel_backend(self._conninfo, self._pid)
                except Exception as exc:  # reported through explain(); the step goes on hanging
                    self.cancel_error = mask_url(" ".join(str(exc).split()))
                finally:
                    self._cond.acquire()
                    self._cancelling = False
                    self._cond.notify_all()


def _explain(setting: str, timeout: float, cancel_error: str | None, message: str) -> str:
    head = f"exceeded {setting} = {timeout:g} s: the statement was cancelled on the server"
    if cancel_error:
        head += f" (the cancel itself failed: {cancel_error})"
    return f"{head}\n{message}" if message else head


def _cancel_backend(conninfo: str, pid: int | None) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True, connect_timeout=connect_timeout()) as conn:
        conn.execute("select pg_cancel_backend(%s)", (pid,))


__all__ = [
    "CONNECT_TIMEOUT",
    "StepGuard",
    "Watchdog",
    "backend_pid",
    "connect_timeout",
    "conninfo_of",
]
