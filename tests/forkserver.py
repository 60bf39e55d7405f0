"""Inner pytest runs forked from a process that has already imported their dependencies.

``pytester.runpytest_subprocess`` starts a new interpreter for every inner run, and most of an
inner run's CPU goes into importing pytest, SQLAlchemy, Alembic and psycopg again.  A fork
server pays that once per outer process: it imports those third-party modules (never
pytest-schemaguard) and, for each run, forks a child that becomes ``python -m pytest`` in the
inner run's directory, with its environment, its ``sys.path`` and its output files.  The child
is a new process as before: it loads the plugins through their entry points, keeps nothing of
other runs, and its exit status is the run's exit code.

A run falls back to a new interpreter whenever a fork could differ from one: another command
than ``python -m pytest``, input on stdin, or an environment that an interpreter reads only at
start-up (a ``PYTHONPATH`` beyond the inner directory, other ``PYTHON*`` variables, the locale)
that is not the fork server's.  ``SCHEMAGUARD_TEST_FORKSERVER=0`` turns it off.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from typing import Any

#: The third-party modules every inner run imports: not the pytest plugins themselves (pytest
#: marks those for assertion rewriting and warns about one already imported), and not sqlglot
#: or deepdiff (some runs show that they are not imported).
PRELOAD = (
    "pytest",
    "_pytest.pytester",
    "_pytest.junitxml",
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.postgresql",
    "alembic",
    "alembic.config",
    "alembic.command",
    "alembic.op",
    "alembic.runtime.environment",
    "alembic.runtime.migration",
    "alembic.ddl.postgresql",
    "psycopg",
    "execnet",
    "mirakuru",
    "port_for",
    "platformdirs",
)

ENV_SWITCH = "SCHEMAGUARD_TEST_FORKSERVER"


def _startup_env(env: dict[str, str]) -> dict[str, str]:
    """What of ``env`` an interpreter reads at start-up (PYTHONPATH apart)."""
    return {
        k: v
        for k, v in env.items()
        if (k.startswith("PYTHON") and k != "PYTHONPATH")
        or k in ("LANG", "LANGUAGE")
        or k.startswith("LC_")
    }


class ForkedRun:
    """The part of :class:`subprocess.Popen` that ``Pytester.run`` uses."""

    stdin = None

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.server = server
        self.pid = pid
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self.server.exit_status(timeout, self)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class ForkServer:
    def __init__(self) -> None:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._out = self.proc.stdout.fileno()
        self._buffer = b""
        if self._line(60) != "ready":
            raise RuntimeError("the fork server did not start")
        atexit.register(self.close)

    def _line(self, timeout: float | None) -> str | None:
        """The next line from the server; None when ``timeout`` passed first."""
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self._out], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self._out, 4096)
            if not chunk:
                raise RuntimeError("the fork server ended")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def accepts(self, cmdargs: list[str], env: dict[str, str], cwd: str) -> bool:
        if cmdargs[:2] != [sys.executable, "-mpytest"] or self.proc.poll() is not None:
            return False
        if env.get("PYTHONPATH", "") != cwd:  # more than pytester's own entry
            return False
        return _startup_env(env) == _startup_env(self.env)

    def start(
        self, args: list[str], cwd: str, env: dict[str, str], out: str, err: str
    ) -> ForkedRun:
        assert self.proc.stdin is not None
        request = {"args": args, "cwd": cwd, "env": env, "stdout": out, "stderr": err}
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        pid = self._line(60)
        if pid is None:
            raise RuntimeError("the fork server did not answer")
        return ForkedRun(self, int(pid))

    def exit_status(self, timeout: float | None, run: ForkedRun) -> int:
        while True:
            line = self._line(timeout)
            if line is None:
                raise subprocess.TimeoutExpired([run.pid], timeout or 0)
            pid, _, code = line.partition(" ")
            if int(pid) == run.pid:  # (the status of a run left behind by an interrupt: skip it)
                return int(code)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


_server: list[ForkServer | None] = []
"""The outer process's fork server, once started (None: it could not start)."""


def forked_popen(
    original: Any,
    cmdargs: Any,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    stdin: Any = None,
    **kw: Any,
) -> Any:
    """``Pytester.popen`` through the fork server when the run allows it, else ``original``."""
    from _pytest.pytester import Pytester

    if stdin is None:
        stdin = Pytester.CLOSE_STDIN

    args = [os.fspath(a) for a in cmdargs]
    out, err = getattr(stdout, "name", None), getattr(stderr, "name", None)
    cwd = os.getcwd()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [cwd, env.get("PYTHONPATH", "")]))
    usable = (
        os.environ.get(ENV_SWITCH, "1") != "0"
        and hasattr(os, "fork")
        and stdin is Pytester.CLOSE_STDIN
        and set(kw) <= {"close_fds"}  # pytest < 8.1 passes close_fds=True: a fork has none
        and isinstance(out, str)
        and isinstance(err, str)
    )
    if usable and not _server:
        try:
            _server.append(ForkServer())
        except (OSError, RuntimeError):  # no fork server: a new interpreter for each run
            usable = False
            _server.append(None)
    server = _server[0] if usable else None
    if server is not None and server.accepts(args, env, cwd):
        stdout.flush()
        stderr.flush()
        try:
            return server.start(args[2:], cwd, env, os.path.abspath(out), os.path.abspath(err))
        except (OSError, RuntimeError, ValueError):  # the server is gone: start interpreters
            _server.clear()
            server.close()
    return original(cmdargs, stdout=stdout, stderr=stderr, stdin=stdin, **kw)


# --------------------------------------------------------------------------- the server side


def _child(request: dict[str, Any], base_path: list[str]) -> None:
    code: Any = 70
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_APPEND)
            os.dup2(target, fd)
            os.close(target)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        import time

        time.tzset()
        extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:] = [request["cwd"], *extra, *base_path]
        import tempfile

        tempfile.tempdir = None
        sys.argv = ["pytest", *request["args"]]
        import runpy

        try:
            runpy.run_module("pytest", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        import threading

        threading._shutdown()  # type: ignore[attr-defined]  # as at interpreter exit
        atexit._run_exitfuncs()
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 70)


def _serve() -> None:
    for name in PRELOAD:
        with contextlib.suppress(Exception):  # an inner run imports what it needs itself
            __import__(name)
    base_path = sys.path[1:]  # [0] is this file's directory
    requests = sys.stdin.buffer
    os.write(1, b"ready\n")
    while True:
        line = requests.readline()
        if not line:
            return
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, base_path)
        os.write(1, f"{pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        os.write(1, f"{pid} {os.waitstatus_to_exitcode(status)}\n".encode())


if __name__ == "__main__":
    _serve()
