"""Run a script with this process's wall clock ``BGTASK_TEST_CLOCK_SKEW`` seconds off, as on a
host whose NTP is broken; the monotonic clock stays true.

python tests/reliability/skewed_clock.py SCRIPT [ARGS...]

libfaketime would be the natural tool, but its 0.9.10 (Debian 12) breaks Python's timed waits
(``threading.Event.wait`` never returns, ``time.sleep`` fails with EINVAL when the monotonic
clock is left alone), so the two wall clocks bgtask reads are moved here instead:
``time.time`` and ``django.utils.timezone.now``.
"""

import os
import runpy
import sys
import time
from datetime import timedelta

SKEW = float(os.environ["BGTASK_TEST_CLOCK_SKEW"])
_real_time, _real_time_ns = time.time, time.time_ns
time.time = lambda: _real_time() + SKEW
time.time_ns = lambda: _real_time_ns() + int(SKEW * 1e9)

from django.utils import timezone  # noqa: E402

_real_now = timezone.now
timezone.now = lambda: _real_now() + timedelta(seconds=SKEW)

sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
