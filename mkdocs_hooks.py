"""MkDocs hook: the settings reference's table is generated from ``bgtask.conf.DEFAULTS``.

The page holds the marker ``<!-- settings-table -->``; this hook replaces it with one row per
setting (name, default, description), so a setting added to ``conf.py`` appears in the reference
without anyone editing the page, and a default can never disagree with the code.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- settings-table -->"


def settings_table() -> str:
    from bgtask.conf import DEFAULTS

    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for name, (default, description) in DEFAULTS.items():
        shown = f'"{default}"' if isinstance(default, str) else repr(default)
        rows.append(f"| `{name}` | `{shown}` | {description.replace('|', '\\|')} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, settings_table())
    return markdown
