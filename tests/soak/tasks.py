"""The soak's one task: append its key to the ledger, an evidence file outside the database.

One ``os.write`` of one line to a file opened with ``O_APPEND``: the kernel appends each write
whole, so lines of concurrent workers never interleave, and a run that reached this write is on
record even if its worker dies before its outcome is written.
"""

import os
import time

from bgtask import background
from tests.soak.ledger import LEDGER_ENV

#: A task body long enough for a fault to land while one runs.
WORK_SECONDS = 0.05


@background(name="soak.ledger")
def ledger(key: int) -> None:
    path = os.environ.get(LEDGER_ENV)
    if not path:
        raise RuntimeError(f"{LEDGER_ENV} is not set: the soak's workers write their ledger there")
    time.sleep(WORK_SECONDS)
    line = f"{key} {time.time():.3f} {os.getpid()}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
