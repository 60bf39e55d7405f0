"""Time the legacy-DDL check on generated SQL files of growing size, with peak memory.

For each size (1, 10 and 50 MB by default) a seeded generator writes one legacy DDL file: blocks
of CREATE TABLE (uuid keys, foreign keys, CHECK constraints, defaults), partial and expression
indexes, ALTER TABLE, COMMENT ON, multi-row INSERTs, UPDATEs, CREATE FUNCTION with a
dollar-quoted body, DO blocks, psql meta-commands and comments. Then, in a fresh Python
process per size, the check runs as the ``legacy_ddl`` item runs it: the file is analysed
(split, parsed, applied to the picture) and compared with a schema snapshot that has the
generated tables with integer keys (so every block has findings). The child reports its wall
time, its CPU time (the fairer figure on a shared machine) and its peak resident memory
(``resource.getrusage``); no PostgreSQL server is needed.

    python benchmarks/bench_legacy.py                     # sizes 1,10,50 MB, 1 repetition
    python benchmarks/bench_legacy.py --sizes 1,10 --repeat 3 --json results.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "legacy"
MB = 1024 * 1024


def _block(i: int, rng: random.Random) -> str:
    t = f"t{i:06d}"
    parent = f"t{i - 1:06d}" if i else None
    fk = f",\n    parent_id uuid REFERENCES {parent} (id)" if parent else ""
    rows = ",\n".join(
        f"    (gen_random_uuid(), 'name {i}-{r}; with a semicolon', {rng.randint(0, 999)}, "
        f"E'it\\'s row {r}', now())"
        for r in range(rng.randint(3, 8))
    )
    return f"""-- block {i}: {t}
CREATE TABLE IF NOT EXISTS {t} (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    amount integer CHECK (amount >= 0 AND (amount < 100000)),
    note text,
    started_at timestamptz DEFAULT now(),
    stopped_at timestamptz{fk}
);
CREATE INDEX ix_{t}_open ON {t} (started_at) WHERE stopped_at IS NULL;
CREATE UNIQUE INDEX ux_{t}_name ON {t} (lower(name));
ALTER TABLE {t} ADD COLUMN IF NOT EXISTS extra jsonb DEFAULT '{{}}'::jsonb;
COMMENT ON COLUMN {t}.note IS 'free text; may hold ''quotes''';
/* seed data for {t} /* nested */ */
INSERT INTO {t} (id, name, amount, note, started_at) VALUES
{rows};
UPDATE {t} SET stopped_at = now() WHERE stopped_at IS NULL AND amount > {rng.randint(0, 99)};
CREATE OR REPLACE FUNCTION touch_{t}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.stopped_at := now();  -- a ; inside the body
    RETURN NEW;
END;
$fn$;
DO $$ BEGIN RAISE NOTICE 'block {i}; done'; END $$;
\\echo block {i}
"""


def generate(path: Path, size: int, seed: int = 7) -> int:
    """Write about ``size`` bytes of legacy DDL to ``path``; return the number of blocks."""
    rng = random.Random(seed)
    written = 0
    blocks = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("\\set ON_ERROR_STOP on\nCREATE EXTENSION IF NOT EXISTS pgcrypto;\n")
        while written < size:
            text = _block(blocks, rng)
            handle.write(text)
            written += len(text.encode())
            blocks += 1
    return blocks


CHILD = r"""
import json, resource, sys, time
from pathlib import Path

from pytest_schemaguard.legacy.analysis import analyse_files
from pytest_schemaguard.legacy.check import check_against_schema
from pytest_schemaguard.snapshot.model import Column, Constraint, Snapshot, Table

path, blocks = Path(sys.argv[1]), int(sys.argv[2])
tables = []
for i in range(blocks):
    t = f"t{i:06d}"
    columns = [
        Column(name="id", type="integer", nullable=False, position=1, base_type="integer"),
        Column(name="name", type="text", position=2, base_type="text"),
        Column(name="amount", type="integer", position=3, base_type="integer"),
        Column(name="note", type="text", position=4, base_type="text"),
        Column(name="started_at", type="timestamp with time zone", position=5,
               base_type="timestamp with time zone"),
        Column(name="end_time", type="timestamp with time zone", position=6,
               base_type="timestamp with time zone"),
    ]
    constraints = [Constraint(name=f"{t}_pkey", kind="primary_key", definition="PRIMARY KEY (id)",
                              columns=("id",))]
    tables.append(Table(schema="public", name=t, columns=tuple(columns),
                        constraints=tuple(constraints)))
snapshot = Snapshot(tables=tuple(tables))
start = time.perf_counter()
cpu = time.process_time()
analysis = analyse_files([path], root=path.parent)
findings = check_against_schema(analysis, snapshot)
seconds = time.perf_counter() - start
cpu = time.process_time() - cpu
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak_kb / 1024,
                  "statements": analysis.statement_count, "findings": len(findings),
                  "summary": analysis.summary()}))
"""


def measure(path: Path, blocks: int) -> dict[str, float]:
    """Run the check on ``path`` in a fresh process; its seconds and peak memory."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(blocks)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the check failed on {path}:\n{proc.stderr}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _baseline_peak() -> float:
    """Peak memory of a process that only imports what the check imports (MB)."""
    code = (
        "import resource, pytest_schemaguard.legacy.check, pytest_schemaguard.legacy.analysis;"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(proc.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50", help="file sizes in MB (default 1,10,50)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (median reported)")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    args = parser.parse_args(argv)
    sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    print(f"imports alone: {_baseline_peak():.0f} MB peak", flush=True)
    print(
        f"{'size':>8} {'statements':>11} {'findings':>9} {'seconds':>8} {'cpu s':>8} "
        f"{'s/MB':>6} {'peak MB':>8}"
    )
    results = []
    for size in sizes:
        path = WORK / f"legacy_{size:g}mb.sql"
        blocks = generate(path, int(size * MB))
        runs = [measure(path, blocks) for _ in range(args.repeat)]
        seconds = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu_seconds"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        actual = path.stat().st_size / MB
        row = {
            "size_mb": round(actual, 2),
            "statements": runs[0]["statements"],
            "findings": runs[0]["findings"],
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2),
            "peak_mb": round(peak, 1),
        }
        results.append(row)
        print(
            f"{actual:7.1f}M {row['statements']:>11} {row['findings']:>9} {seconds:8.2f} "
            f"{cpu:8.2f} {seconds / actual:6.2f} {peak:8.0f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
