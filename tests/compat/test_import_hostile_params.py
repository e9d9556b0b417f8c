"""Issue 20 A8: ``import_background_tasks`` lists a row whose ``task_params`` is nested too
deeply, too large a number, or otherwise hostile as invalid (its id and why), and writes nothing;
it never crashes on one."""

from io import StringIO

import pytest
from background_task.models import Task as LegacyTask
from django.core.management import CommandError, call_command
from django.utils import timezone

from bgtask.models import ImportedTask, Task

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE_PARAMS = {
    "nested-100k": "[" * 100_000 + "]" * 100_000,
    "nested-args-100k": "[[" + "[" * 100_000 + "]" * 100_000 + "], {}]",
    "nested-kwargs-3000": '[[], {"a": ' + '{"b": ' * 3000 + "1" + "}" * 3000 + "}]",
    "5000-digits": "[[" + "9" * 5000 + "], {}]",
    "nan": "[[NaN], {}]",
    "infinity": "[[1e999], {}]",
    "not-a-pair": "[1, 2, 3]",
}


def legacy_row(params: str) -> LegacyTask:
    task = LegacyTask.objects.new_task("sample.record", ["ok"], {}, run_at=timezone.now())
    task.save()
    LegacyTask.objects.filter(pk=task.pk).update(task_params=params)
    return task


@pytest.mark.parametrize("dry_run", [False, True], ids=["import", "dry-run"])
@pytest.mark.parametrize("params", HOSTILE_PARAMS.values(), ids=HOSTILE_PARAMS.keys())
def test_a_hostile_row_is_listed_as_invalid_and_nothing_is_written(params, dry_run):
    good = LegacyTask.objects.new_task("sample.record", ["fine"], {}, run_at=timezone.now())
    good.save()
    bad = legacy_row(params)
    args = ["--dry-run"] if dry_run else []
    with pytest.raises(CommandError) as raised:
        call_command("import_background_tasks", *args, stdout=StringIO(), stderr=StringIO())
    message = str(raised.value)
    assert "1 row(s) of background_task cannot be copied" in message
    assert f"#{bad.pk}: " in message and f"#{good.pk}: " not in message
    assert len(message) < 2000  # the reason, not the row
    assert Task.objects.count() == 0 and ImportedTask.objects.count() == 0


def test_every_hostile_row_is_listed_at_once():
    bad = [legacy_row(params) for params in HOSTILE_PARAMS.values()]
    with pytest.raises(CommandError) as raised:
        call_command("import_background_tasks", stdout=StringIO(), stderr=StringIO())
    assert f"{len(bad)} row(s) of background_task cannot be copied" in str(raised.value)
    assert "nested too deeply" in str(raised.value)
