"""Hostile legacy DDL never breaks the run: bytes that are not UTF-8, statements nested too
deeply to parse, and files of several megabytes (pytester runs on the timetracker project)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from defects import copy_project

from pytest_schemaguard.legacy.analysis import analyse_sql

BAD_FILE = "db/repair/040_bad_bytes.sql"
DEEP_FILE = "db/repair/050_deep.sql"

# runs pytest in a child process and prints the child's peak resident memory (kB on Linux)
MEASURED_RUN = """
import json, resource, subprocess, sys
rc = subprocess.call([sys.executable, "-m", "pytest", *sys.argv[1:]])
print("SCHEMAGUARD-MEASURE " + json.dumps(
    {"rc": rc, "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}
))
"""


def _run(pytester: pytest.Pytester, project: Path, dsn: str, *args: str) -> pytest.RunResult:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        return pytester.runpytest_subprocess(
            "--schemaguard", f"--schemaguard-dsn={dsn}", "-p", "no:cacheprovider", *args
        )


def test_bytes_that_are_not_utf8_and_a_statement_nested_too_deeply_fail_only_their_files(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    """Two hostile files in one project (one inner run): each is its own finding; the other
    scripts, and the rest of each file, are analysed as usual."""
    project = copy_project("timetracker", pytester.path)
    (project / BAD_FILE).write_bytes(
        b"COMMENT ON TABLE time_entries IS 'entries';\n"
        b"CREATE TABLE bad_\xff (id int);\n"
        b"COMMENT ON COLUMN time_entries.end_time IS 'caf\xe9';\n"
    )
    depth = 3000
    (project / DEEP_FILE).write_text(
        "ALTER TABLE time_entries ADD CONSTRAINT deep CHECK ("
        + "(" * depth
        + "owner_id > 0"
        + ")" * depth
        + ");\n"
        "CREATE INDEX ix_after_deep ON time_entries (stopped_at);\n",
        encoding="utf-8",
    )
    result = _run(pytester, project, inner_dsn, "-k", "legacy_ddl")
    # the patch and the three repair scripts still pass; only the two hostile files fail
    result.assert_outcomes(failed=2, passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED

    # the file with the bytes
    result.stdout.fnmatch_lines(
        [
            f"*_ legacy_ddl?{BAD_FILE}? _*",
            f"{BAD_FILE}:2: [[]missing-table] table bad_\ufffd is created here but does not "
            "exist in the schema *",
            f"{BAD_FILE}:2: [[]not-utf8] the file is not valid UTF-8: byte 0xff is not UTF-8 "
            "at column 18; read with replacement characters",
            f"2 findings in {BAD_FILE}",
        ]
    )
    # the rest of the file is read (with a replacement character) and analysed
    result.stdout.no_fnmatch_line("*end_time*does not have*")
    result.stdout.no_fnmatch_line("*UnicodeDecodeError*")

    # the file with the deep statement
    result.stdout.fnmatch_lines(
        [
            f"*_ legacy_ddl?{DEEP_FILE}? _*",
            # the statement after the deep one is analysed: its column is missing
            f"{DEEP_FILE}:2: [[]missing-column] index uses column time_entries.stopped_at, "
            "which the schema does not have (CREATE INDEX ix_after_deep *",
            f"1 finding in {DEEP_FILE}",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "  not analysed (*):",
            f"    {DEEP_FILE}:1: not analysed: nested too deeply "
            "(ALTER TABLE time_entries ADD CONSTRAINT deep CHECK (((((*",
        ]
    )
    result.stdout.no_fnmatch_line("*RecursionError*")
    result.stdout.no_fnmatch_line("*Traceback*")


def test_nesting_alone_decides_not_analysed() -> None:
    # a modest depth is analysed as usual; the deep one is set aside with the reason
    shallow = "CREATE TABLE t (a int CHECK (" + "(" * 20 + "a > 0" + ")" * 20 + "));"
    deep = "CREATE TABLE u (a int CHECK (" + "(" * 3000 + "a > 0" + ")" * 3000 + "));"
    analysis = analyse_sql(f"{shallow}\n{deep}\nCREATE TABLE v (id int);\n", file="x.sql")
    assert analysis.counts == {"analysed": 2, "not_analysed": 1}
    assert [(n.location, n.reason) for n in analysis.not_analysed] == [
        ("x.sql:2", "not analysed: nested too deeply")
    ]
    assert analysis.picture.table("t") is not None
    assert analysis.picture.table("v") is not None


def _big_script(path: Path, size: int) -> int:
    """About ``size`` bytes of statements the timetracker schema agrees with."""
    block = (
        "-- seed; with a semicolon in a comment\n"
        "INSERT INTO projects (name) VALUES ('project {i}; ''quoted''');\n"
        "UPDATE time_entries SET end_time = now() WHERE end_time IS NULL AND owner_id = {i};\n"
        "COMMENT ON COLUMN time_entries.end_time IS $c${i}; stopped$c$;\n"
    )
    written = 0
    statements = 0
    with path.open("w", encoding="utf-8") as handle:
        i = 0
        while written < size:
            text = block.format(i=i)
            handle.write(text)
            written += len(text)
            statements += 3
            i += 1
    return statements


def _measured(pytester: pytest.Pytester, project: Path, dsn: str) -> tuple[int, pytest.RunResult]:
    """Peak memory (kB) of an inner ``pytest --schemaguard -k legacy_ddl`` run, and the run."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        result = pytester.run(
            sys.executable,
            "-c",
            MEASURED_RUN,
            "--schemaguard",
            f"--schemaguard-dsn={dsn}",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-k",
            "legacy_ddl",
        )
    line = next(x for x in result.outlines if x.startswith("SCHEMAGUARD-MEASURE "))
    measure = json.loads(line.split(" ", 1)[1])
    assert measure["rc"] == 0, result.stdout.str()
    return int(measure["maxrss_kb"]), result


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in kB on Linux only")
def test_a_large_file_is_analysed_with_memory_bounded_by_the_statement(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    project = copy_project("timetracker", pytester.path)
    script = project / "db" / "repair" / "090_bulk.sql"
    script.write_text("INSERT INTO projects (name) VALUES ('one');\n", encoding="utf-8")
    small_kb, _ = _measured(pytester, project, inner_dsn)
    statements = _big_script(script, 1536 * 1024)
    large_kb, result = _measured(pytester, project, inner_dsn)
    result.stdout.fnmatch_lines(
        [f"schemaguard legacy DDL: {statements + 27} statements: *, 0 parse errors"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    # before streaming, 3 MB of scripts took about 350 MB more than one statement (about 175 MB
    # for these 1.5 MB; streamed, about 12 MB); the bound leaves room for what the picture
    # records per statement and for the allocator
    grown_mb = (large_kb - small_kb) / 1024
    print(f"peak memory: {small_kb / 1024:.0f} MB with one statement, {large_kb / 1024:.0f} MB")
    assert grown_mb < 60, f"{small_kb / 1024:.0f} MB -> {large_kb / 1024:.0f} MB"
