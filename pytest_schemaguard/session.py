"""The server of one pytest process: chosen at start-up, started on first use, always cleaned up."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from pytest_schemaguard.binaries import Binaries, find_binaries
from pytest_schemaguard.config import Settings
from pytest_schemaguard.errors import ServerError
from pytest_schemaguard.server import LocalServer, PostgresServer, choose_run_as, connect_dsn
from pytest_schemaguard.urls import mask_url


class ServerManager:
    """Owns the one server (or DSN connection) of a pytest process."""

    def __init__(self, settings: Settings, *, worker: str | None = None) -> None:
        self.settings = settings
        self.worker = worker  # the xdist worker id (gw0, gw1…) of this process, if any
        self._binaries: Binaries | None = None
        self._local: LocalServer | None = None
        self._server: PostgresServer | None = None
        self._lock = threading.Lock()
        self._old_sigterm: Any = None
        self.cluster: Path | None = None
        """The cluster a local server is started from when it is started (None: the cached
        initdb'd cluster); set before the first :meth:`get` by the application-test fixtures."""
        self._binaries_lock = threading.Lock()
        if settings.dsn is None and settings.sources and not settings.enabled:
            # A project that configures the plugin most likely starts its server: the
            # binaries are found (two or three programs run) while pytest collects.
            threading.Thread(target=self._prefetch, name="schemaguard-probe", daemon=True).start()

    def _prefetch(self) -> None:
        with contextlib.suppress(Exception):  # found again, and reported, when needed
            self.binaries()
            choose_run_as()

    @property
    def running(self) -> PostgresServer | None:
        """The server when it runs (or the DSN server is connected) already; None before
        :meth:`get` and after :meth:`close`. Never starts one."""
        return self._server

    @property
    def started(self) -> bool:
        """Whether the server runs (or the DSN server is connected) already."""
        return self.running is not None

    def check(self) -> None:
        """Validate what can be validated without starting anything (at configure time)."""
        if self.settings.dsn is None:
            self.binaries()
            choose_run_as()
        else:
            self.get()

    def binaries(self) -> Binaries:
        with self._binaries_lock:
            if self._binaries is None:
                self._binaries = find_binaries(
                    self.settings.postgres,
                    root=self.settings.root,
                    extensions=self.settings.extensions,
                )
            return self._binaries

    def describe_plan(self) -> str:
        """One line for the report header: what will run, from where, and how."""
        if self._server is not None:
            return self._server.describe()
        if self.settings.dsn is not None:
            return (
                f"external server {mask_url(self.settings.dsn)} (scratch databases schemaguard_*)"
            )
        b = self.binaries()
        how = choose_run_as().describe()
        return f"PostgreSQL {b.version} ({b.source} binaries at {b.bindir}), {how}"

    def get(self) -> PostgresServer:
        """The server, started (or connected) on first use."""
        with self._lock:
            if self._server is None:
                # SIGTERM must clean up too: the scratch databases on a DSN server, or our server
                self._install_sigterm()
                if self.settings.dsn is not None:
                    self._server = connect_dsn(
                        self.settings.dsn, postgres=self.settings.postgres, root=self.settings.root
                    )
                else:
                    self._local = LocalServer(
                        self.binaries(),
                        port=worker_port(self.settings.port, self.worker),
                        cluster=self.cluster,
                    )
                    self._server = self._local.start()
            return self._server

    def close(self) -> None:
        """Drop the scratch databases and stop the server; safe to call more than once."""
        with self._lock:
            server, self._server = self._server, None
            local, self._local = self._local, None
            try:
                if server is not None and local is None:
                    server.drop_all()
            finally:
                if local is not None:
                    local.stop()
                self._restore_sigterm()

    # A CI job cancelled with SIGTERM must not leave a postgres behind: turn it into the
    # KeyboardInterrupt that pytest already tears down cleanly on.
    def _install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        with contextlib.suppress(ValueError):
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None


def worker_port(port: int | None, worker: str | None) -> int | None:
    """The port for this process: a fixed ``port`` is the first xdist worker's; worker gwN
    takes ``port + N``, so workers never share (or collide on) one server. (The worker id comes
    from pytest's config, not from ``PYTEST_XDIST_WORKER``, which a pytest run started from a
    test inherits.)"""
    if port is None or not worker or not worker.startswith("gw") or not worker[2:].isdigit():
        return port
    return port + int(worker[2:])


def _sigterm_to_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"terminated by signal {signum}")


__all__ = ["ServerError", "ServerManager"]
