"""process_tasks's stop flag (bgtask.worker.stopping.SignalStop): true as soon as a stop signal
arrived, from the pipe the C-level handler writes, whatever other signals came."""

from __future__ import annotations

import os
import signal

from bgtask.worker.stopping import SignalStop


def test_signalled_by_a_stop_signal_and_not_by_another():
    stop = SignalStop([signal.SIGUSR1])
    handlers = {
        sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGUSR1, signal.SIGUSR2)
    }
    stop.install()
    try:
        assert not stop.signalled()
        os.kill(os.getpid(), signal.SIGUSR2)  # another signal: read from the pipe, ignored
        assert not stop.signalled()
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.signalled()
        assert stop.signalled()  # stays true once seen
        assert not stop.is_set()  # the handler sets the Event; the pipe alone does not
    finally:
        stop.uninstall()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def test_set_is_signalled_without_any_signal():
    stop = SignalStop([signal.SIGTERM])
    try:
        stop.set()
        assert stop.signalled()
    finally:
        stop.uninstall()
