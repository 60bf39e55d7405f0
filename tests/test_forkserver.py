"""The suite's inner pytest runs (tests/forkserver.py): each a new process, as a new interpreter
would be, with the inner directory's view of imports, environment and exit code."""

from __future__ import annotations

import os
import re

import pytest
from forkserver import _server

PROBE = """
import os, sys

def test_probe():
    print("PID", os.getpid())
    print("PATH0", sys.path[0])
    print("ENV", os.environ.get("SG_PROBE"))
    print("HELPER", __import__("helper").VALUE)
    print("MAIN", sys.modules["__main__"].__spec__.name)

def test_fails():
    assert os.environ.get("SG_PROBE") == "never"
"""


def _values(result: pytest.RunResult, key: str) -> list[str]:
    """What the probe printed after ``key`` (``-s`` output may follow the progress line)."""
    return [m.group(1) for m in re.finditer(rf"\b{key} (\S+)", result.stdout.str())]


def test_each_inner_run_is_a_new_process_with_its_own_directory_and_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_probe=PROBE, helper="VALUE = 'first'\n")
    monkeypatch.setenv("SG_PROBE", "one")
    first = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    first.assert_outcomes(passed=1, failed=1)
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    pytester.makepyfile(helper="VALUE = 'second'\n")
    monkeypatch.setenv("SG_PROBE", "two")
    second = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", "-k", "not fails")
    second.assert_outcomes(passed=1)
    assert second.ret == pytest.ExitCode.OK
    if os.environ.get("SCHEMAGUARD_TEST_FORKSERVER", "1") != "0":
        assert _server and _server[0] is not None, "the runs did not go through the fork server"
    assert _values(first, "ENV") == ["one"] and _values(second, "ENV") == ["two"]
    assert _values(first, "HELPER") == ["first"] and _values(second, "HELPER") == ["second"]
    assert _values(first, "PATH0") == _values(second, "PATH0") == [str(pytester.path)]
    assert _values(first, "MAIN") == ["pytest.__main__"]
    assert _values(first, "PID") != _values(second, "PID")
    assert os.getpid() not in {int(p) for p in _values(first, "PID") + _values(second, "PID")}


def test_a_usage_error_is_the_inner_runs_exit_code(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--no-such-option")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unrecognized arguments: --no-such-option*"])
