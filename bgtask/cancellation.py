"""Public import path of ``cancel`` and ``cancel_queued``:
``from bgtask.cancellation import cancel, cancel_queued``.

The feature lives in ``bgtask.features.cancellation``.
"""

from bgtask.features.cancellation import cancel, cancel_queued

__all__ = ["cancel", "cancel_queued"]
