"""Work that advances only while someone waits for its results.

The migration checks run one ``env.py`` pass over many revisions on one connection (cheap),
but each pytest item must do its own share of that work when it runs (so ``-v`` shows each
result as it happens, and ``--durations``, JUnit times and ``pytest-timeout`` are true per
item).  A :class:`Stepper` runs the pass in a background thread that stops at a *gate* before
each migration step unless the item being run still waits for a result: the pass is
suspended between items, inside ``env.py``, on its open connection.

Only one thread ever touches the migration connection (the worker); the item thread only
waits.  This module does not import pytest.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

__all__ = ["Abandoned", "Stepper"]


class Abandoned(BaseException):
    """Raised at a gate in the worker when the pass is given up (end of session, interrupt).

    A ``BaseException``, so that code between the gate and the worker's top (``env.py``,
    Alembic) does not swallow it as an ordinary error.
    """


class Stepper:
    """One background worker at a time, advancing only while a result is awaited."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._awaited: Callable[[], bool] | None = None
        """True once what the waiting caller needs is known (None: nobody waits)."""
        self.awaited_key: object = None
        """What the waiting caller named as what it waits for (None when nobody waits): the
        worker may read it once a gate let it go on."""
        self._drain = False
        """Run to the end without stopping at gates (the caller needs what comes after)."""
        self._abandon = False
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def in_worker(self) -> bool:
        """Whether the calling thread is the worker."""
        return self._thread is not None and threading.current_thread() is self._thread

    # ------------------------------------------------------------------ the worker side
    def gate(self, release: Callable[[], AbstractContextManager[None]] | None = None) -> None:
        """Called by the worker before each step: wait until someone needs more work done.

        While it waits, the worker is inside ``release()`` (e.g. the process's working
        directory and environment given back to the rest of the run)."""
        with self._cond:
            if not self._may_go():
                # What the caller waits for is known (or nobody waits): wake it now.  A gate
                # the worker passes does not wake the caller, whose check would find nothing
                # new and only take the interpreter from the worker.
                self._cond.notify_all()
                with release() if release is not None else contextlib.nullcontext():
                    while not self._may_go():
                        self._cond.wait()
            if self._abandon:
                raise Abandoned()

    def _may_go(self) -> bool:
        if self._abandon or self._drain:
            return True
        awaited = self._awaited
        return awaited is not None and not awaited()

    # ------------------------------------------------------------------ the caller side
    def start(self, work: Callable[[], None], *, name: str = "schemaguard-migrations") -> None:
        """Run ``work`` in a new worker (the previous one must have finished)."""
        assert not self.running, "a worker is still running"
        self._abandon = False
        self._drain = False
        self._error = None

        # The worker sees the caller's context variables (a fixture or hook may have set one
        # that env.py reads), as code run in the caller's thread would.
        context = contextvars.copy_context()

        def main() -> None:
            try:
                context.run(work)
            except Abandoned:
                pass
            except BaseException as exc:  # handed to the waiting caller
                self._error = exc
            finally:
                with self._cond:
                    self._cond.notify_all()

        self._thread = threading.Thread(target=main, name=name, daemon=True)
        self._thread.start()

    def wait_for(self, known: Callable[[], bool], *, key: object = None) -> None:
        """Let the worker advance until ``known()`` holds or it has finished; re-raise an
        exception that ended the worker.  ``key`` names what is awaited
        (:attr:`awaited_key`, meanwhile)."""
        with self._cond:
            self._awaited = known
            self.awaited_key = key
            self._cond.notify_all()
            try:
                while not known() and self.running:
                    self._cond.wait(0.5)
            finally:
                self._awaited = None
                self.awaited_key = None
        self._join_if_finished()

    def finish(self) -> None:
        """Let the worker run to its end without stopping, and wait for it."""
        with self._cond:
            self._drain = True
            self._cond.notify_all()
        self._join()

    def abandon(self) -> None:
        """Stop the worker at its next gate (its pass is rolled back) and wait for it."""
        with self._cond:
            self._abandon = True
            self._cond.notify_all()
        self._join()

    def _join(self) -> None:
        thread = self._thread
        if thread is not None:
            thread.join()
        self._join_if_finished()

    def _join_if_finished(self) -> None:
        if self._thread is not None and not self._thread.is_alive():
            self._thread = None
            error, self._error = self._error, None
            if error is not None:
                raise error
