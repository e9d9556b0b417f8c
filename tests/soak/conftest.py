"""The soak's reports, repeated at the end of the run so they can be read without ``-s``."""

from __future__ import annotations

REPORTS: list[str] = []


def pytest_terminal_summary(terminalreporter):
    if REPORTS:
        terminalreporter.section("soak reports")
        for report in REPORTS:
            terminalreporter.write_line(report)
