"""A tasks module that fails on import: start-up must show the error, not swallow it."""

raise RuntimeError("tasks module of brokenapp exploded on import")
