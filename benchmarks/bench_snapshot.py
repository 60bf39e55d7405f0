"""Time a schema snapshot against SQLAlchemy's ``MetaData.reflect`` on generated schemas.

For each size (default 20, 100 and 1,000 tables) a scratch database is created on the given
server, filled with a generated schema (tables with a serial key, a foreign key, an enum column,
a default, a CHECK, a unique constraint and a partial index, plus a view per ten tables), then
``take_snapshot`` and ``MetaData.reflect`` are timed side by side on the same connection,
alternating, several times; the medians and their ratio are printed.  Python's cyclic garbage
collector is run before every timed call, so that neither side pays for collecting the other's
garbage.  The scratch databases are dropped at the end.

    python benchmarks/bench_snapshot.py --dsn postgresql+psycopg://postgres@127.0.0.1:5432/postgres

The user of the DSN must be allowed to create databases.  Databases are named
``<prefix><size>_<pid>`` (``--prefix``, default ``schemaguard_bench_``).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pytest_schemaguard.snapshot.introspect import take_snapshot


def generate_schema(tables: int) -> str:
    statements = ["CREATE TYPE status AS ENUM ('new', 'active', 'done')"]
    for i in range(tables):
        parent = f",\n    parent_id integer REFERENCES t{i - 1:04d} (id)" if i else ""
        statements.append(
            f"""CREATE TABLE t{i:04d} (
    id serial PRIMARY KEY,
    code varchar(40) NOT NULL UNIQUE,
    name text NOT NULL,
    status status NOT NULL DEFAULT 'new',
    amount numeric(12, 2) CHECK (amount >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    note text{parent}
)"""
        )
        statements.append(
            f"CREATE INDEX ix_t{i:04d}_open ON t{i:04d} (created_at) WHERE status <> 'done'"
        )
        if i % 10 == 9:
            statements.append(
                f"CREATE VIEW v{i:04d} AS SELECT id, name FROM t{i:04d} WHERE status = 'active'"
            )
    return ";\n".join(statements)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def run(url: sa.URL, sizes: list[int], repeat: int, prefix: str) -> None:
    admin_url = url.set(drivername="postgresql+psycopg")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        version = conn.exec_driver_sql("SHOW server_version").scalar()
    print(f"PostgreSQL {version}; SQLAlchemy {sa.__version__}; psycopg {psycopg.__version__}")
    print(f"median of {repeat} runs each, same connection, alternating, gc.collect() before each\n")
    header = (
        f"{'tables':>7} {'take_snapshot':>14} {'first call':>11} "
        f"{'MetaData.reflect':>17} {'ratio':>7}"
    )
    print(header)
    for size in sizes:
        name = f"{prefix}{size}_{os.getpid()}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine = sa.create_engine(admin_url.set(database=name))
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(generate_schema(size))
            with engine.connect() as conn:
                gc.collect()
                start = time.perf_counter()
                snapshot = take_snapshot(conn)  # first call: plans and prepares the query
                first = (time.perf_counter() - start) * 1000
                assert len(snapshot.tables) == size
                snap_times: list[float] = []
                reflect_times: list[float] = []
                for _ in range(repeat):
                    snap_times.append(median_ms(lambda: take_snapshot(conn), 1))
                    reflect_times.append(
                        median_ms(lambda: sa.MetaData().reflect(bind=conn, views=True), 1)
                    )
                snap = statistics.median(snap_times)
                reflect = statistics.median(reflect_times)
            print(
                f"{size:>7} {snap:>11.1f} ms {first:>8.1f} ms {reflect:>14.1f} ms "
                f"{reflect / snap:>6.1f}x"
            )
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dsn",
        required=True,
        help="SQLAlchemy URL of a server where scratch databases may be created, "
        "e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--sizes", default="20,100,1000", help="comma-separated table counts")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per measurement")
    parser.add_argument("--prefix", default="schemaguard_bench_", help="scratch database prefix")
    args = parser.parse_args(argv)
    url = make_url(args.dsn)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    run(url, sizes, args.repeat, args.prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
