"""The optional features, kept apart so that the core (``bgtask.batch``, ``bgtask.execution``,
``bgtask.store``) reads first.

Each feature owns one module here and is reached from the core at a few named points only:

- ``repeating``: ``repeat=`` / ``repeat_until=`` chains; ``bgtask.execution`` writes the next
  repetition in the transaction that records an outcome.
- ``uniqueness``: ``unique=``; the enqueue path (``bgtask.enqueueing``) inserts through it.
- ``periodic``: ``@periodic("cron")``; a batch enqueues due occurrences before draining.
- ``cancellation``: ``cancel()`` / ``cancel_queued()``, called from user code and the admin.
- ``pausing``: ``pause_queue()`` / ``resume_queue()``; the claim statement (bgtask.store) reads
  the state they write, so no worker code checks it.
- ``retrying``: ``run_now()`` / ``retry_failed()``, the admin's and the CLI's hand retries.
- ``pruning``: ``BGTASK_RETENTION``; a batch prunes one chunk after draining.
- ``hooks``: what ``run_batch`` calls before and after draining (periodic occurrences, abandoned
  repeating chains, one pruning chunk), each guarded so housekeeping never takes a batch down.

The documented import paths ``bgtask.periodic``, ``bgtask.cancellation`` and ``bgtask.pruning``
re-export these modules' public functions.
"""
