"""The stepper: a worker that advances only while its caller waits for a result."""

from __future__ import annotations

import threading

import pytest

from pytest_schemaguard.migrations.stepper import Stepper


def _counting_work(stepper: Stepper, done: list[int], steps: int) -> None:
    for i in range(steps):
        stepper.gate()
        done.append(i)


def test_the_worker_does_only_what_is_awaited() -> None:
    stepper = Stepper()
    done: list[int] = []
    stepper.start(lambda: _counting_work(stepper, done, 5))
    stepper.wait_for(lambda: 1 in done)
    assert done == [0, 1]  # stopped at the gate before step 2
    stepper.wait_for(lambda: 3 in done)
    assert done == [0, 1, 2, 3]
    stepper.finish()
    assert done == [0, 1, 2, 3, 4]
    assert not stepper.running


def test_nothing_runs_between_two_waits() -> None:
    stepper = Stepper()
    done: list[int] = []
    stepper.start(lambda: _counting_work(stepper, done, 3))
    stepper.wait_for(lambda: 0 in done)
    threading.Event().wait(0.2)  # the worker had time to run on, had it been allowed
    assert done == [0]
    stepper.abandon()
    assert done == [0]
    assert not stepper.running


def test_an_error_of_the_worker_reaches_the_caller() -> None:
    stepper = Stepper()

    def work() -> None:
        stepper.gate()
        raise ValueError("env exploded")

    stepper.start(work)
    with pytest.raises(ValueError, match="env exploded"):
        stepper.wait_for(lambda: False)
    assert not stepper.running


def test_waiting_for_what_never_comes_returns_when_the_worker_ends() -> None:
    stepper = Stepper()
    done: list[int] = []
    stepper.start(lambda: _counting_work(stepper, done, 2))
    stepper.wait_for(lambda: 99 in done)
    assert done == [0, 1]
    assert not stepper.running


def test_the_worker_runs_on_one_thread_of_its_own() -> None:
    stepper = Stepper()
    idents: list[int] = []

    def work() -> None:
        for _ in range(3):
            stepper.gate()
            idents.append(threading.get_ident())

    stepper.start(work)
    for n in range(1, 4):
        stepper.wait_for(lambda n=n: len(idents) >= n)  # type: ignore[misc]
        assert len(idents) == n
    stepper.finish()
    assert len(set(idents)) == 1
    assert threading.get_ident() not in idents


def test_the_worker_is_inside_release_only_while_it_waits() -> None:
    import contextlib
    from collections.abc import Iterator

    stepper = Stepper()
    events: list[str] = []

    @contextlib.contextmanager
    def release() -> Iterator[None]:
        events.append("released")
        yield
        events.append("taken back")

    def work() -> None:
        for i in range(2):
            stepper.gate(release)
            events.append(f"step {i}")

    stepper.start(work)
    stepper.wait_for(lambda: "step 0" in events)
    # between two waits the worker sits at the gate before step 1, released
    for _ in range(200):
        if events[-1] == "released":
            break
        threading.Event().wait(0.01)
    assert events[-1] == "released"
    stepper.finish()
    assert events[-2:] == ["taken back", "step 1"]
    assert events.count("released") == events.count("taken back")


def test_an_abandoned_worker_stops_even_when_it_could_go_on() -> None:
    stepper = Stepper()
    done: list[int] = []
    stepper.start(lambda: _counting_work(stepper, done, 1000))
    stepper.wait_for(lambda: 5 in done)
    stepper.abandon()
    assert done == list(range(6))


def test_the_worker_sees_the_callers_context_variables() -> None:
    import contextvars

    setting: contextvars.ContextVar[str] = contextvars.ContextVar("setting", default="unset")
    setting.set("from the caller")
    seen: list[str] = []
    stepper = Stepper()

    def work() -> None:
        stepper.gate()
        seen.append(setting.get())

    stepper.start(work)
    stepper.wait_for(lambda: bool(seen))
    assert seen == ["from the caller"]


def test_the_waiting_caller_is_woken_where_the_worker_stops_not_at_every_gate() -> None:
    stepper = Stepper()
    done: list[int] = []
    woken: list[bool] = []
    wait = stepper._cond.wait

    def counting_wait(timeout: float | None = None) -> bool:
        notified = wait(timeout)
        if threading.current_thread() is threading.main_thread():
            woken.append(notified)
        return notified

    stepper._cond.wait = counting_wait  # type: ignore[method-assign]

    def work() -> None:
        for i in range(40):
            stepper.gate()
            threading.Event().wait(0.001)  # a step that lets the caller's thread run
            done.append(i)

    stepper.start(work)
    stepper.wait_for(lambda: 29 in done)
    # notified once, at the gate before step 30 where the worker stopped (not at the 29 gates
    # it passed, where the caller would only find that step 29 is not done yet)
    assert woken.count(True) == 1
    assert done == list(range(30))
    stepper.finish()
    assert done == list(range(40))
