"""How long the ledger takes to pick the lots a redemption spends, by how many lots a member holds.

    .venv/bin/python bench/open_lots.py [--members 2000] [--lots 10 100 400] [--calls 300]

Builds a SQLite file from the models with ``--members`` members holding the given number of
open lots each (10 points apiece, one expiry per day), then times ``core.open_lots``'s
prebuilt statement (the multi-statement path's FIFO pick; SQLite runs only that path) for a
redemption that one lot covers and for one that needs ten. A pick that reads only the lots
it spends takes the same time whatever the member holds; one that reads every open lot
grows with them. For the previous tree, run this file with that tree first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.dialects import sqlite

from coalition.ledger import core
from coalition.models import Base


def build(path: Path, members: int, lots: int) -> None:
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    start = dt.datetime(2026, 1, 1)
    rows = [
        (n, member, n, 1, 10, 10, (start + dt.timedelta(days=k)).isoformat(sep=" "), 0, start.isoformat(sep=" "))
        for member in range(1, members + 1) for k in range(lots)
        for n in [(member - 1) * lots + k + 1]
    ]
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO lots (id, member_id, entry_id, issuer_merchant_id, points, remaining, "
                         "expires_at, reversed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("ANALYZE")


def time_pick(path: Path, members: int, points: int, calls: int) -> float:
    """Milliseconds per call of the FIFO pick, with the parameters written into the SQL as the driver binds them."""
    compiled = core._open_lots.compile(dialect=sqlite.dialect())
    names = compiled.positiontup or []
    rnd = random.Random(5)
    with sqlite3.connect(path) as conn:
        started = time.perf_counter()
        for _ in range(calls):
            values = {**compiled.params, "l_member_id": rnd.randint(1, members), "l_points": points}
            picked = conn.execute(str(compiled), [values[name] for name in names]).fetchall()
        elapsed = time.perf_counter() - started
    if sum(remaining for _, _, remaining in picked) < points:
        raise SystemExit(f"the pick did not cover {points} points: {picked}")
    return elapsed / calls * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--lots", type=int, nargs="+", default=[10, 100, 400])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    print("| open lots per member | lots in the table | 1-lot redemption ms | 10-lot redemption ms |")
    print("|---:|---:|---:|---:|")
    for lots in args.lots:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "lots.db"
            build(path, args.members, lots)
            one = time_pick(path, args.members, 5, args.calls)
            ten = time_pick(path, args.members, 95, args.calls) if lots >= 10 else float("nan")
        print(f"| {lots} | {lots * args.members:,} | {one:.3f} | {ten:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
