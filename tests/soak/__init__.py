"""The chaos soak (issue 20 B): real workers, a producer and a database server of the soak's own,
with a random fault every 10-20 s, checked against an independent ledger.

It lives under ``tests/`` rather than ``benchmarks/`` because it is a correctness check, not a
measurement: its verdict is counts (lost, stuck, repeated keys) against what
docs/explanation/guarantees.md promises, never a time; it reuses the fault harness of
``tests/faults/servers.py`` and the suite's settings, and its 60 s version runs in ``make test``
(``tests/soak/test_soak.py``). Longer runs: ``make soak SOAK_ARGS=...`` (``python -m tests.soak``).

Modules: ``tasks`` (the task that writes the ledger), ``producer`` (the enqueuing process),
``driver`` (servers, workers, faults, drain), ``ledger`` (reading the evidence and judging it).
"""
