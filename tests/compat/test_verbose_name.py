"""verbose_name=: a label stored on the row, from the decorator or the call (as in
django-background-tasks), carried by repetitions, shown and searchable in the admin."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from bgtask import background, enqueue_many, run_batch
from bgtask.models import Task
from bgtask.registry import unregister
from tests.compat import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_decorator_default_is_stored_and_not_passed_to_the_function():
    task = tasks.notify(7)
    task.refresh_from_db()
    assert task.verbose_name == "Notify a user"
    assert task.kwargs == {}
    assert run_batch(10).succeeded == 1


def test_a_call_sets_its_own_label_without_breaking_the_function():
    # The django-background-tasks call site that broke on every retry before.
    task = tasks.notify(8, verbose_name="Notify user 8")
    task.refresh_from_db()
    assert (task.verbose_name, task.args, task.kwargs) == ("Notify user 8", [8], {})
    outcome = run_batch(10)
    assert (outcome.succeeded, outcome.retried) == (1, 0)


def test_enqueue_bulk_and_calls_take_it_too():
    explicit = tasks.notify.enqueue([1], verbose_name="explicit")
    bulk = tasks.notify.bulk([(2,), (3,)], verbose_name="bulk")
    fast = tasks.notify.bulk([(4,)], verbose_name="fast", return_tasks=False)
    mixed = enqueue_many([tasks.notify.call(5, verbose_name="call"), tasks.greet.call("x")])
    assert fast == 1
    labels = dict(Task.objects.values_list("id", "verbose_name"))
    assert labels[explicit.pk] == "explicit"
    assert [labels[t.pk] for t in bulk] == ["bulk", "bulk"]
    assert [labels[t.pk] for t in mixed] == ["call", None]
    assert Task.objects.filter(verbose_name="fast").count() == 1


def test_a_function_with_its_own_verbose_name_parameter_keeps_it():
    task = tasks.greet("Ada", verbose_name=True)
    task.refresh_from_db()
    assert task.kwargs == {"verbose_name": True}
    assert task.verbose_name is None
    run_batch(10)
    assert Task.objects.get(pk=task.pk).return_value == "Hello, Ada!"
    # It labels its rows with .enqueue(), as for timeout= and repeat=.
    labelled = tasks.greet.enqueue(["Bob"], {"verbose_name": False}, verbose_name="Greeting")
    labelled.refresh_from_db()
    assert (labelled.verbose_name, labelled.kwargs) == ("Greeting", {"verbose_name": False})


def test_repetitions_keep_the_label():
    task = tasks.notify(9, verbose_name="daily digest", repeat=Task.DAILY, schedule=0)
    run_batch(10)
    repetition = Task.objects.exclude(pk=task.pk).get()
    assert repetition.verbose_name == "daily digest"
    assert repetition.run_at - task.run_at >= timedelta(days=1) - timedelta(seconds=1)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (42, TypeError, "verbose_name must be a string"),
        (b"bytes", TypeError, "verbose_name must be a string"),
        ("x" * 256, ValueError, "verbose_name is at most 255 characters"),
    ],
)
@pytest.mark.django_db  # no worker involved: a test transaction is enough
def test_a_bad_label_is_refused_at_call_and_decoration_and_nothing_is_written(
    value, error, message
):
    with pytest.raises(error, match=message):
        tasks.notify(1, verbose_name=value)
    with pytest.raises(error, match=message):
        tasks.notify.bulk([(1,), (2,)], verbose_name=value)
    with pytest.raises(error, match=message):

        @background(name="compat.bad_label", verbose_name=value)
        def bad_label(): ...

    unregister("compat.bad_label")
    assert Task.objects.count() == 0


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser("admin", "admin@example.invalid", "pw")
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_admin_lists_the_label_and_its_full_search_finds_it(admin_client, settings):
    # Substring search reads every row, so it is the opt-in full search (bgtask.admin).
    settings.BGTASK_ADMIN_FULL_SEARCH = True
    labelled = tasks.notify(1, verbose_name="Quarterly invoice run")
    tasks.notify(2, verbose_name="Something else")
    url = reverse("admin:bgtask_task_changelist")
    response = admin_client.get(url, {"q": "quarterly"})
    assert [t.pk for t in response.context["cl"].result_list] == [labelled.pk]
    assert "Quarterly invoice run" in response.content.decode()
