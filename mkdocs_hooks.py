"""Build-time helpers for the documentation site (mkdocs.yml names this file twice).

- As an MkDocs hook, it fills the settings reference: ``docs/reference/settings.md`` holds the
  marker ``<!-- settings-table -->``, replaced by one row per setting of ``bgtask.conf.DEFAULTS``
  (name, default, description), so a setting added to ``conf.py`` appears in the reference without
  anyone editing the page, and a default shown there can never disagree with the code.
- As a griffe extension (``DoctestFences``, loaded by mkdocstrings), it fences the ``>>>``
  examples of bgtask's docstrings as Python console blocks; plain Markdown would otherwise read
  ``>>>`` as nested block quotes.
"""

from __future__ import annotations

from typing import Any

import griffe

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


def fence_doctests(text: str) -> str:
    """Wrap each run of ``>>>`` lines (with their ``...`` and output lines) in a pycon fence."""
    out: list[str] = []
    in_example = False
    for line in text.splitlines():
        starts = line.lstrip().startswith(">>>")
        if starts and not in_example:
            out.append("```pycon")
            in_example = True
        elif in_example and not line.strip():
            out.append("```")
            in_example = False
        out.append(line)
    if in_example:
        out.append("```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
