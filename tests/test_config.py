"""Configuration: one family of names, precedence, and clean usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_schemaguard.config import OPTIONS, ConfigError, resolve

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestConfigWarning")


def _resolve(tmp_path: Path, **sources: dict[str, object]) -> object:
    return resolve(
        root=tmp_path,
        pyproject=sources.get("pyproject", {}),
        pyproject_name="pyproject.toml",
        ini=sources.get("ini", {}),
        ini_name="pytest.ini",
        cli=sources.get("cli", {}),
    )


def test_precedence_cli_over_ini_over_pyproject(tmp_path: Path) -> None:
    settings = _resolve(
        tmp_path,
        pyproject={"postgres": "embedded", "column_order": "fail", "heads": 2},
        ini={"schemaguard_column_order": "ignore"},
        cli={"postgres": "system"},
    )
    assert settings.postgres == "system"  # type: ignore[attr-defined]
    assert settings.column_order == "ignore"  # type: ignore[attr-defined]
    assert settings.heads == 2  # type: ignore[attr-defined]
    assert settings.baseline_revision == "head"  # type: ignore[attr-defined]


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = _resolve(tmp_path)
    with pytest.raises(AttributeError):
        settings.postgres = "system"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"postgress": "auto"}, "unknown key 'postgress' in [tool.schemaguard]"),
        ({"postgres": "mysql"}, "postgres in pyproject.toml = 'mysql' is not valid"),
        ({"column_order": "sometimes"}, "expected warn or fail or ignore"),
        ({"heads": 0}, None),
        ({"heads": -1}, "heads in pyproject.toml = -1 is not valid: expected a whole number, 0"),
        ({"step_timeout": 0}, None),
        ({"step_timeout": "soon"}, "step_timeout in pyproject.toml = 'soon' is not valid"),
        ({"driver": "mysqldb"}, "expected psycopg or psycopg2 or asyncpg or pg8000"),
        ({"env_context": "app.env"}, "expected 'package.module:attribute'"),
        ({"port": 70000}, "expected a port number, 1-65535"),
        ({"legacy_ddl": "db/*.sql"}, None),
        ({"legacy_ddl": [1, 2]}, "expected a list of strings"),
        ({"metadata": "app.models.Base.metadata"}, "expected 'package.module:attribute'"),
        ({"bootstrap": "app.boot:run"}, None),
        ({"dsn": "mysql://u:hunter2@h/db"}, "is not a PostgreSQL URL"),
        ({"alembic_config": "nope.ini"}, "no such file"),
        ({"ignore": ["table:audit_*", "column_order"]}, None),
        ({"ignore": ["tabel:audit_*"]}, "ignore in pyproject.toml: invalid schema ignore pattern"),
    ],
)
def test_bad_values_name_the_key_and_what_is_accepted(
    tmp_path: Path, table: dict[str, object], message: str | None
) -> None:
    if message is None:
        assert _resolve(tmp_path, pyproject=table)
        return
    with pytest.raises(ConfigError) as excinfo:
        _resolve(tmp_path, pyproject=table)
    assert message in str(excinfo.value)
    assert "hunter2" not in str(excinfo.value)


def test_every_option_is_documented() -> None:
    reference = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    for option in OPTIONS:
        assert f"`{option.key}`" in reference, option.key
        assert option.ini_name in reference, option.ini_name
        if option.cli:
            assert option.cli_flag in reference, option.cli_flag
    assert "--schemaguard-update-baseline" in reference


def test_help_lists_the_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["*--schemaguard *Run the schema checks*", "*--schemaguard-postgres=POSTGRES*"]
    )
    for option in OPTIONS:
        result.stdout.fnmatch_lines([f"*{option.ini_name}*"])


@pytest.mark.parametrize(
    ("pyproject", "args", "expected"),
    [
        (
            "[tool.schemaguard]\ncolumn_order = 'sometimes'\n",
            [],
            "ERROR: schemaguard: ?tool.schemaguard? column_order in pyproject.toml = "
            "'sometimes' is not valid: expected warn or fail or ignore",
        ),
        (
            "[tool.schemaguard]\nmigrations = 'x'\n",
            [],
            "ERROR: schemaguard: unknown key 'migrations' in ?tool.schemaguard? of "
            "pyproject.toml; known keys: *",
        ),
        (
            "",
            ["--schemaguard-postgres=/nonexistent/bin"],
            "ERROR: schemaguard: --schemaguard-postgres = '/nonexistent/bin' is not valid: "
            "expected auto, system, embedded or an existing bin directory containing pg_ctl*",
        ),
        (
            "[tool.pytest.ini_options]\nschemaguard_heads = 'two'\n",
            [],
            "ERROR: schemaguard: schemaguard_heads in pyproject.toml = 'two' is not valid: "
            "expected a whole number, 0 or more",
        ),
        (
            "[tool.schemaguard]\nignore = ['audit']\n",
            [],
            "ERROR: schemaguard: ?tool.schemaguard? ignore in pyproject.toml: invalid schema "
            "ignore pattern 'audit': use one of the words *",
        ),
        (
            "",
            ["--schemaguard-port=abc"],
            "ERROR: schemaguard: --schemaguard-port = 'abc' is not valid: expected a port*",
        ),
        (
            "[tool.pytest.ini_options]\nschemaguard_postgress = 'system'\n",
            [],
            "ERROR: schemaguard: unknown ini key 'schemaguard_postgress' in pyproject.toml; "
            "known keys: schemaguard_postgres, *",
        ),
        (
            "",
            ["--schemaguard-dsn=postgresql://app:s3cret@db.example:abc/app"],
            "ERROR: schemaguard: --schemaguard-dsn = 'postgresql://app:***@db.example:abc/app' "
            "is not a database URL: expected postgresql://user:password@host:port/database",
        ),
        (
            "",
            ["--schemaguard-dsn=postgresql://app@/app?host=/var/run/postgresql&port=abc"],
            "ERROR: schemaguard: --schemaguard-dsn = "
            "'postgresql://app@/app?host=/var/run/postgresql&port=abc' "
            "is not a database URL: expected postgresql://user:password@host:port/database",
        ),
    ],
)
def test_usage_errors_stop_the_run_with_one_line(
    pytester: pytest.Pytester, pyproject: str, args: list[str], expected: str
) -> None:
    pytester.makefile(".toml", pyproject=pyproject)
    pytester.makepyfile("def test_never(): pass")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert len([line for line in result.stderr.lines if line.startswith("ERROR:")]) == 1
    result.stderr.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*Traceback*")
    assert "s3cret" not in result.stdout.str() + result.stderr.str()
