"""The enqueue side: from a call of a task function to a validated row in the table.

- ``task_function``: ``TaskFunction`` (what ``@background`` makes) and ``Call``.
- ``validation``: every input check, with a message that says what to do.
- ``scheduling``: ``schedule=`` and retry delays as times.
- ``enqueueing``: writes validated rows (one honouring ``unique=``, or many at once).
- ``legacy_import``: rows of django-background-tasks' table into bgtask's.
"""
