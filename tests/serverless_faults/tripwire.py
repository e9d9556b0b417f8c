"""Imported only if the management entrypoint let a ``--settings`` option through (it must not)."""

raise AssertionError("--settings reached Django through the management entrypoint")
