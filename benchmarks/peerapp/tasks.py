"""The same no-op task for each peer, registered the way each peer expects."""

from background_task import background
from django_tasks import task


@background(schedule=0)
def bgt_noop(number):
    pass


@task()
def dtd_noop(number: int) -> None:
    pass
