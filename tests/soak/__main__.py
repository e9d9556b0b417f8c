"""``python -m tests.soak [--db postgres|mariadb|both] [--duration S] [--seed N] [--concurrency N]``

Prints each database's report; exits 1 if any breaks the guarantees (lost, stuck or failed
tasks, repeats no guarantee allows, a worker that died on its own), 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.soak.driver import SoakConfig, run_soak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak",
        description="Chaos soak: workers, a producer and random faults against a database "
        "server of the soak's own, checked against an independent ledger.",
    )
    parser.add_argument("--db", choices=["postgres", "mariadb", "both"], default="both")
    parser.add_argument("--duration", type=float, default=600.0, help="Seconds of faults.")
    parser.add_argument("--seed", type=int, default=1, help="Seed of the fault sequence.")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="process_tasks --concurrency N for every worker (passed only when N > 1).",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="Enqueues per second.")
    parser.add_argument("--lease", type=float, default=10.0, help="BGTASK_LEASE_SECONDS.")
    parser.add_argument(
        "--drain-ceiling", type=float, default=600.0, help="Most seconds to wait for the drain."
    )
    parser.add_argument("--workdir", type=Path, default=None, help="Where logs and ledger go.")
    parser.add_argument("--report", type=Path, default=None, help="Also append reports here.")
    args = parser.parse_args(argv)
    databases = ["postgres", "mariadb"] if args.db == "both" else [args.db]
    failed = False
    for db in databases:
        try:
            config = SoakConfig(
                db=db,
                duration=args.duration,
                seed=args.seed,
                concurrency=args.concurrency,
                rate=args.rate,
                lease=args.lease,
                drain_ceiling=args.drain_ceiling,
                workdir=args.workdir / db if args.workdir else None,
            )
        except ValueError as exc:
            parser.error(str(exc))
        _, verdict, report = run_soak(config)
        print(report, flush=True)
        if args.report:
            with args.report.open("a") as file:
                file.write(report + "\n\n")
        failed |= bool(verdict.problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
