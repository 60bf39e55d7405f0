"""Each migration item does its own share of the work when it runs, and one root cause fails
one item: on a generated project of 60 revisions, as a user runs it."""

from __future__ import annotations

import importlib.util
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
REVISIONS = 60


def _generate(directory: Path, revisions: int = REVISIONS) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from gen_alembic_project import generate  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(BENCHMARKS))
    generated = directory / "generated"
    generate(generated, revisions)  # (re)creates the directory it is given
    for entry in generated.iterdir():
        entry.rename(directory / entry.name)
    generated.rmdir()


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    _generate(pytester.path)
    return pytester.path


def _run(pytester: pytest.Pytester, dsn: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--schemaguard", f"--schemaguard-dsn={dsn}", "-p", "no:cacheprovider", *args
    )


_DURATION = re.compile(r"^(?P<seconds>\d+\.\d+)s (?P<when>setup|call|teardown)\s+(?P<id>\S+)")


def test_every_item_does_its_own_share_of_the_migration_pass(
    pytester: pytest.Pytester, project: Path, inner_dsn: str
) -> None:
    """One run of the whole pass shows it three ways: the durations, the JUnit times, and a
    per-item timeout (pytest-timeout) that the whole pass would exceed on this machine, but no
    single item."""
    has_timeout = importlib.util.find_spec("pytest_timeout") is not None
    timeout = ["--timeout=4"] if has_timeout else []
    result = _run(
        pytester,
        inner_dsn,
        "--durations=0",
        "--durations-min=0",
        "--junitxml=report.xml",
        *timeout,
    )
    # upgrade, roundtrip, data and safety of each revision; history, cycle, fk_types
    result.assert_outcomes(passed=4 * REVISIONS + 3)
    assert result.ret == pytest.ExitCode.OK

    durations: dict[str, float] = {}
    for line in result.outlines:
        match = _DURATION.match(line)
        if match:
            node = match["id"]
            durations[node] = durations.get(node, 0.0) + float(match["seconds"])
    total = sum(durations.values())
    assert len(durations) == 4 * REVISIONS + 3, durations
    slowest = max(durations, key=durations.__getitem__)
    # Before, the whole pass ran inside `history`: it took nearly all of the time.
    assert durations[slowest] <= total / 4, (slowest, durations[slowest], total)
    assert durations["alembic.ini::history"] <= total / 4

    cases = ET.parse(pytester.path / "report.xml").getroot().iter("testcase")
    timed = [
        float(case.get("time", "0"))
        for case in cases
        if case.get("name", "").startswith(("upgrade[", "roundtrip["))
    ]
    assert len(timed) == 2 * REVISIONS
    assert sum(1 for t in timed if t > 0) >= len(timed) / 2
    # the data items walk their own pass, each its own share of it
    data = [d for node, d in durations.items() if node.startswith("alembic.ini::data[")]
    assert len(data) == REVISIONS
    assert max(data) <= sum(data) / 4, data

    # the per-item timeout did not cut the pass
    if not has_timeout:
        pytest.skip(
            "pytest-timeout is not installed (it is in the test extra): the per-item "
            "timeout was not checked"
        )
    result.stdout.no_fnmatch_line("*Timeout*")


def test_verbose_output_names_each_item_in_order(
    pytester: pytest.Pytester, project: Path, inner_dsn: str
) -> None:
    result = _run(pytester, inner_dsn, "-v", "-k", "upgrade or roundtrip")
    result.assert_outcomes(passed=2 * REVISIONS)
    ran = [line.split(" ")[0] for line in result.outlines if " PASSED" in line]
    revisions = [name.partition("[")[2] for name in ran]
    assert ran[0].startswith("alembic.ini::upgrade[")
    assert ran[1] == ran[0].replace("upgrade[", "roundtrip[")
    assert revisions[::2] == revisions[1::2]  # upgrade then roundtrip of each revision


def _break_env_py(project: Path) -> None:
    env = project / "migrations" / "env.py"
    source = env.read_text()
    head, sep, rest = source.partition("from __future__ import annotations\n")
    env.write_text(head + sep + "import project_settings_that_do_not_exist\n" + rest)


def test_env_py_that_cannot_be_imported_fails_one_item_and_blocks_the_rest(
    pytester: pytest.Pytester, project: Path, inner_dsn: str
) -> None:
    _break_env_py(project)

    result = _run(pytester, inner_dsn, "-rs")

    # history needs no database; the first migration item fails with the whole message
    result.assert_outcomes(passed=1, failed=1, skipped=4 * REVISIONS + 1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    first = "upgrade[[]*]"  # fnmatch: [[] is a literal [
    result.stdout.fnmatch_lines(
        [
            f"*_ {first} _*",
            "*env.py failed before the first migration step:",
            "file: migrations/env.py",
            "at:   env.py:*: import project_settings_that_do_not_exist",
            "error:",
            "    ModuleNotFoundError: No module named 'project_settings_that_do_not_exist'",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "SKIPPED * blocked: upgrade[[]*] failed (migrations/env.py: ModuleNotFoundError: "
            "No module named 'project_settings_that_do_not_exist')",
        ]
    )
    assert result.stdout.str().count("    ModuleNotFoundError:") == 1
    result.stdout.no_fnmatch_line("*Traceback*")


def _count_env_py_runs(project: Path) -> Path:
    """Make env.py write one line (the process id) to ``env_runs.log`` each time it runs."""
    log = project / "env_runs.log"
    env = project / "migrations" / "env.py"
    env.write_text(
        env.read_text() + f"\nimport os as _os\n\nwith open({str(log)!r}, 'a') as _f:\n"
        "    _f.write(f'{_os.getpid()}\\n')\n"
    )
    return log


SMALL = 20


@pytest.mark.parametrize(
    ("selection", "items"),
    [("upgrade or roundtrip", 2 * SMALL), ("data", SMALL)],
    ids=["migrations", "data"],
)
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_each_process_goes_on_with_one_pass_from_item_to_item(
    pytester: pytest.Pytester, inner_dsn: str, workers: list[str], selection: str, items: int
) -> None:
    """Under xdist a worker gets every other revision or so: its next item continues the pass
    it has open (a few steps further), as a serial run does, rather than running env.py again
    (a new connection, a full read) for each revision it is given."""
    _generate(pytester.path, SMALL)
    log = _count_env_py_runs(pytester.path)
    durations = ("--durations=0", "--durations-min=0")
    result = _run(pytester, inner_dsn, *workers, "-k", selection, "-v", *durations)
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK, outcomes
    kinds = selection.replace(" or ", "|")  # serial: "<id> PASSED"; xdist: "PASSED <id>"
    passed = rf"::(?:{kinds})\[\S+ PASSED|PASSED \S+::(?:{kinds})\["
    assert len(re.findall(passed, result.stdout.str())) == items
    runs = log.read_text().split()
    per_process = {pid: runs.count(pid) for pid in set(runs)}
    assert len(per_process) == (2 if workers else 1), per_process
    if workers:  # both workers checked revisions (else this test shows nothing)
        ran_on = {m.group(1) for m in re.finditer(r"^\[(gw\d+)\]", result.stdout.str(), re.M)}
        assert ran_on == {"gw0", "gw1"}, ran_on
    assert max(per_process.values()) <= 2, per_process
    # ... and each item still does its own share of that pass: not each process's first item
    # all of it (the two longest items, one per worker, would then be nearly the whole time)
    calls = sorted(float(m["seconds"]) for m in map(_DURATION.match, result.outlines) if m)
    assert sum(calls[-2:]) <= sum(calls) / 2, (calls[-2:], sum(calls))


def _log_downgrades(project: Path) -> Path:
    """Make each revision's ``downgrade()`` write one line (process id, revision) to
    ``downgrades.log`` before it runs."""
    log = project / "downgrades.log"
    for path in (project / "migrations" / "versions").glob("*.py"):
        path.write_text(
            path.read_text() + "\n\n_downgrade = downgrade\n\n\ndef downgrade():\n"
            "    import os\n\n"
            f"    with open({str(log)!r}, 'a') as f:\n"
            "        f.write(f'{os.getpid()} {revision}\\n')\n"
            "    _downgrade()\n"
        )
    return log


def test_under_xdist_a_worker_leaves_the_round_trips_of_other_workers_items_out(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    """A worker's items come in order with runs of the other worker's items in between: it
    upgrades through those revisions without their round trips (the other worker does them),
    so the two workers share the round trips instead of both doing most of them."""
    revisions = 40
    _generate(pytester.path, revisions)
    log = _log_downgrades(pytester.path)
    result = _run(pytester, inner_dsn, "-n", "2", "-k", "upgrade or roundtrip", "-v")
    assert result.ret == pytest.ExitCode.OK, result.parseoutcomes()
    result.assert_outcomes(passed=2 * revisions)
    ran_on = {m.group(1) for m in re.finditer(r"^\[(gw\d+)\]", result.stdout.str(), re.M)}
    assert ran_on == {"gw0", "gw1"}, ran_on
    lines = [line.split() for line in log.read_text().splitlines()]
    assert {rev for _, rev in lines} == {
        p.name.split("_")[1] for p in (pytester.path / "migrations" / "versions").glob("*.py")
    }  # every revision's round trip ran somewhere
    per_process = {pid: sum(1 for p, _ in lines if p == pid) for pid, _ in lines}
    assert len(per_process) == 2, per_process
    # about once each (41 for 40 revisions when written); going on from its first item, a
    # worker would do every round trip after it (75 here)
    assert len(lines) <= 1.25 * revisions, per_process


def test_under_xdist_a_worker_leaves_the_data_checks_of_other_workers_items_out(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    """The same for the ``data`` items: a worker upgrades through the revisions between two of
    its items without their data checks (seen here through ``data_hook``, asked before each
    data check for every table still without rows: it leaves them all empty)."""
    revisions = 30
    _generate(pytester.path, revisions)
    log = pytester.path / "seeded.log"
    _set(
        'data_hook = "project_hook:rows"',
        "import os\n\n\ndef rows(request):\n"
        f"    with open({str(log)!r}, 'a') as f:\n"
        "        f.write(f'{os.getpid()} {request.upgrading}\\n')\n"
        "    return []\n",
    )(pytester.path)
    result = _run(pytester, inner_dsn, "-n", "2", "-k", "data", "-v")
    assert result.ret == pytest.ExitCode.OK, result.parseoutcomes()
    result.assert_outcomes(passed=revisions)
    checked: dict[str, set[str]] = {}
    for line in log.read_text().splitlines():
        pid, rev = line.split()
        checked.setdefault(rev, set()).add(pid)
    assert len(checked) >= revisions - 2  # the first revisions have no table yet
    assert len({pid for pids in checked.values() for pid in pids}) == 2, checked
    twice = [rev for rev, pids in checked.items() if len(pids) > 1]
    # going on from its first item, a worker would check every revision after it too
    assert len(twice) <= revisions // 10, twice


BACKWARDS_SCHEDULER = """
from xdist.scheduler import LoadScheduling


class Backwards(LoadScheduling):
    \"\"\"Hands the items out last first.\"\"\"

    def _send_tests(self, node, num):
        tests = self.pending[-num:][::-1]
        if tests:
            del self.pending[-num:]
            self.node2pending[node].extend(tests)
            node.send_runtest_some(tests)


def pytest_xdist_make_scheduler(config, log):
    return Backwards(config, log)
"""


def test_a_worker_given_a_revision_it_went_past_checks_it_in_a_new_pass(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    """xdist's own schedulers hand the items out in order; one that does not (here: last
    first) still gets every check run and passed: a round trip the pass left out is checked
    in a new pass when its item comes."""
    revisions = 12
    _generate(pytester.path, revisions)
    pytester.makeconftest(BACKWARDS_SCHEDULER)
    log = _log_downgrades(pytester.path)
    result = _run(pytester, inner_dsn, "-n", "2", "-k", "upgrade or roundtrip", "-v")
    assert result.ret == pytest.ExitCode.OK, result.parseoutcomes()
    result.assert_outcomes(passed=2 * revisions)
    first = re.search(r"PASSED \S+::\w+\[(\w+)-", result.stdout.str())
    assert first is not None
    files = sorted((pytester.path / "migrations" / "versions").glob("*.py"))
    last = {path.name.split("_")[1] for path in files[-3:]}
    assert first.group(1) in last, first.group(0)  # the items came last first
    assert len({rev for _, rev in (line.split() for line in log.read_text().splitlines())}) == (
        revisions
    )


def test_under_xdist_one_root_cause_is_one_failure_too(
    pytester: pytest.Pytester, project: Path, inner_dsn: str
) -> None:
    """Each worker fails its own first item; the controller reports the first failure it
    receives and the other workers' as blocked by it, as a run without xdist does."""
    _break_env_py(project)

    result = _run(pytester, inner_dsn, "-n", "2", "-rs", "--junitxml=report.xml")

    result.assert_outcomes(passed=1, failed=1, skipped=4 * REVISIONS + 1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    failed = [line for line in result.outlines if re.match(r"^_+ \S+ _+$", line)]
    assert len(failed) == 1, failed
    first = failed[0].strip("_ ")
    cause = (
        "migrations/env.py: ModuleNotFoundError: No module named "
        "'project_settings_that_do_not_exist'"
    )
    skips = [line for line in result.outlines if line.startswith("SKIPPED [")]
    assert skips
    for line in skips:  # every skip names the one failure shown, never another worker's
        assert line.endswith(f": blocked: {first} failed ({cause})"), line
    assert result.stdout.str().count("    ModuleNotFoundError:") == 1
    junit = ET.parse(pytester.path / "report.xml").getroot()
    assert len(junit.findall(".//failure")) == 1
    messages = {s.get("message") for s in junit.findall(".//skipped")}
    assert messages == {f"blocked: {first} failed ({cause})"}


def _set(setting: str, module: str) -> Callable[[Path], None]:
    """A hook ``module`` (as project_hook.py) and the ``setting`` naming it."""

    def write(project: Path) -> None:
        (project / "project_hook.py").write_text(module)
        pyproject = project / "pyproject.toml"
        pyproject.write_text(pyproject.read_text() + setting + "\n")

    return write


def _exit_in_env_py(project: Path) -> None:
    env = project / "migrations" / "env.py"
    source = env.read_text()
    head, sep, rest = source.partition("from __future__ import annotations\n")
    check = "import sys\nif True:\n    sys.exit('APP_SECRET is not set')\n"
    env.write_text(head + sep + check + rest)


def _failing_config_fixture(project: Path) -> None:
    (project / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture(scope='session')\n"
        "def schemaguard_alembic_config():\n"
        "    def make(url):\n"
        "        raise LookupError('no settings for this environment')\n\n"
        "    return make\n"
    )


#: One root cause each, as real projects have them (a role the server lacks, a variable not
#: set): how to make it, the lines of the one failure shown, and the cause each skip names.
ROOT_CAUSES: dict[str, tuple[Callable[[Path], None], list[str], str]] = {
    "bootstrap hook": (
        _set(
            'bootstrap = "project_hook:build"',
            "def build(conn):\n    raise RuntimeError('role app_owner does not exist')\n",
        ),
        [
            "the bootstrap hook project_hook:build failed on the template database:",
            "file: project_hook.py",
            "at:   project_hook.py:2: raise RuntimeError('role app_owner does not exist')",
            "error:",
            "    RuntimeError: role app_owner does not exist",
        ],
        "bootstrap hook project_hook:build: RuntimeError: role app_owner does not exist",
    ),
    "env_context hook": (
        _set(
            'env_context = "project_hook:settings"',
            # the KeyError is raised in the standard library (<frozen os>): the line shown is
            # the project's own that read the variable
            "import contextlib\nimport os\n\n\n@contextlib.contextmanager\n"
            "def settings(url):\n    os.environ['APP_DATABASE_URL']\n    yield\n",
        ),
        [
            "the env_context hook project_hook:settings failed, so env.py did not run:",
            "file: project_hook.py",
            "at:   project_hook.py:7: os.environ['APP_DATABASE_URL']",
            "error:",
            "    KeyError: 'APP_DATABASE_URL'",
        ],
        "env_context hook project_hook:settings: KeyError: 'APP_DATABASE_URL'",
    ),
    "env.py exits": (
        _exit_in_env_py,
        [
            "env.py failed before the first migration step:",
            "file: migrations/env.py",
            "at:   env.py:*: sys.exit('APP_SECRET is not set')",
            "error:",
            "    SystemExit: APP_SECRET is not set",
        ],
        "migrations/env.py: SystemExit: APP_SECRET is not set",
    ),
    "config fixture": (
        _failing_config_fixture,
        [
            "the config factory of the schemaguard_alembic_config fixture failed, so env.py "
            "did not run:",
            "file: conftest.py",
            "at:   conftest.py:7: raise LookupError('no settings for this environment')",
            "error:",
            "    LookupError: no settings for this environment",
        ],
        "config factory of the schemaguard_alembic_config fixture: LookupError: no settings "
        "for this environment",
    ),
}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
@pytest.mark.parametrize("root_cause", list(ROOT_CAUSES))
def test_a_root_cause_before_the_first_step_fails_one_item_and_blocks_the_rest(
    pytester: pytest.Pytester, inner_dsn: str, root_cause: str, workers: list[str]
) -> None:
    make, shown, cause = ROOT_CAUSES[root_cause]
    _generate(pytester.path, 3)
    make(pytester.path)

    result = _run(pytester, inner_dsn, "-rs", *workers)

    # history needs no database; every check that does (upgrade, roundtrip, data and safety
    # of each revision, cycle, and fk_types when env.py cannot run) is blocked by the first
    # failure
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1
    assert outcomes["passed"] + outcomes["skipped"] == 4 * 3 + 2
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    failed = [line for line in result.outlines if re.match(r"^_+ \S+ _+$", line)]
    assert len(failed) == 1, failed
    first = failed[0].strip("_ ")
    result.stdout.fnmatch_lines(shown)
    skips = [line for line in result.outlines if line.startswith("SKIPPED [")]
    assert sum(int(line.split("]")[0][9:]) for line in skips) == outcomes["skipped"] >= 4 * 3
    for line in skips:
        assert line.endswith(f": blocked: {first} failed ({cause})"), line
    assert result.stdout.str().count(shown[-1]) == 1
    result.stdout.no_fnmatch_line("*pytest_schemaguard*")  # no traceback through the plugin
