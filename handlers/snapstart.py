"""What a Lambda SnapStart snapshot needs before it is taken and after it is restored.

With SnapStart (template.yaml: the SnapStart parameter), Lambda runs the init phase once per
published version (Django set up, settings and secrets read: handlers/bootstrap.py), snapshots
the process, and starts every later container from that snapshot, perhaps hours later and many
times over. So:

- before the snapshot: no database connection is kept in it (it would be dead, or worse, shared);
- after each restore: the database is reconnected on first use (connections closed), the random
  generator is seeded afresh (otherwise every container restored from one snapshot draws the same
  "random" numbers: retry jitter, sampling), and the offset to the database's clock is measured
  again (``bgtask.clock``: the snapshot's was taken at another time, maybe on another host).

The hooks are registered with the runtime's ``snapshot_restore_py`` (present in Lambda's Python
runtime, and with awslambdaric); without it, or without SnapStart, they are never called.
"""

from __future__ import annotations

import logging
import random

logger = logging.getLogger("bgtask.lambda.snapstart")

_registered = False


def before_snapshot() -> None:
    """Leave no database connection and no clock offset in the snapshot."""
    from bgtask import clock
    from handlers.bootstrap import close_connections

    close_connections()
    clock.forget()


def after_restore() -> None:
    """Reconnect lazily, re-seed ``random``, and measure the database clock's offset again."""
    from bgtask import clock
    from handlers.bootstrap import close_connections

    close_connections()
    random.seed()  # from os.urandom: each restored container gets its own sequence
    clock.forget()
    logger.info("Restored from a SnapStart snapshot: connections, random seed and clock reset.")


def register() -> bool:
    """Register the hooks once; False when the runtime has no snapshot_restore_py."""
    global _registered
    if _registered:
        return True
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)
    _registered = True
    return True
