"""The worker: ``run_batch`` and what it runs with.

- ``batch``: ``run_batch(duration)``, the time-boxed drain (claim, start, release the unstarted).
- ``runner``: runs claimed tasks, one at a time or N at once (threads for sync tasks, one event loop
  for ``async def`` tasks).
- ``execution``: runs one task and returns its ``Outcome``; writes nothing.
- ``completer``: the one writer of outcomes (successes in groups, retries and failures at once, the
  repetition step, signals after the write) and what is owed to the database across an outage.
- ``heartbeat``: renews the leases of the tasks in flight and rescues expired ones.
- ``outages``: tells an outage from a configuration error.
- ``time_limits``: the timers that stop a task at its ``timeout`` or the hard deadline.
"""
