import pytest

from bgtask.models import Task
from tests.conftest import batch_result, start_batch_process
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_drains_what_this_process_enqueued():
    for i in range(20):
        tasks.record(f"k{i}", schedule=0)
    result = batch_result(start_batch_process(30))
    assert result["succeeded"] == 20
    assert Execution.objects.count() == 20
    assert Task.objects.succeeded().count() == 20
