import pytest

from bgtask import signals


@pytest.fixture
def received():
    """Every bgtask signal sent during the test, as (signal name, kwargs) pairs."""
    seen: list[tuple[str, dict]] = []
    receivers = []
    for name in ("task_enqueued", "task_started", "task_succeeded", "task_retried", "task_failed"):

        def receiver(sender, _name=name, **kwargs):
            seen.append((_name, kwargs))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((getattr(signals, name), receiver))
    yield seen
    for signal, receiver in receivers:
        signal.disconnect(receiver)
