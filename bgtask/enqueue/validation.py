"""Input checks for everything a caller passes in: task names, queues, priorities and the enqueue
options, in one place for every entry point (``@background``, a call, ``.enqueue()``, ``.bulk()``,
a repetition, ``run_batch(queue=)``, the Django Tasks backend, the legacy import).

Each check raises ``TypeError`` or ``ValueError`` naming the option, before anything is written.
The options a feature adds (``repeat``, ``repeat_until``, ``timeout``, ``unique``,
``max_attempts``) are checked by the module that owns the feature; ``retry_on`` and ``backoff``
(decoration only) by ``bgtask.retry_policy``.
"""

from __future__ import annotations

from typing import Any

from bgtask.features.repeating import check_repeat, check_repeat_until
from bgtask.features.uniqueness import check_unique, unique_key_for
from bgtask.retry_policy import check_max_attempts
from bgtask.timeouts import check_timeout

MAX_NAME_LENGTH = 255
MAX_QUEUE_LENGTH = 100
PRIORITY_RANGE = (-(2**31), 2**31 - 1)


def check_task_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"Task name must be 1 to {MAX_NAME_LENGTH} characters: {name!r}.")
    return name


def check_queue(queue: Any) -> str:
    if not isinstance(queue, str) or not queue.strip():
        raise TypeError(f"queue must be a non-empty string, got {queue!r}.")
    if len(queue) > MAX_QUEUE_LENGTH:
        raise ValueError(
            f"queue names are at most {MAX_QUEUE_LENGTH} characters: {queue[:40]!r}..."
        )
    return queue


def check_priority(priority: Any) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int (higher runs first), got {priority!r}.")
    low, high = PRIORITY_RANGE
    if not low <= priority <= high:
        raise ValueError(f"priority must be between {low} and {high}, got {priority}.")
    return priority


# Options that make sense as a decorator default; repeat is a property of one call.
DECORATOR_OPTIONS = ("timeout", "unique", "verbose_name", "max_attempts", "retry_on", "backoff")
# Options a call (or .enqueue(), .bulk(), a Call) may give; each becomes a row field.
CALL_OPTIONS = ("repeat", "repeat_until", "timeout", "unique", "verbose_name", "max_attempts")
# Policy code, not data: a row cannot carry it, so only the decorator may set it.
DECORATOR_ONLY = ("retry_on", "backoff")
MAX_VERBOSE_NAME_LENGTH = 255


def check_verbose_name(value: Any) -> str | None:
    """A label of at most 255 characters, or ``None``; an empty label is no label."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"verbose_name must be a string, got {value!r}.")
    if len(value) > MAX_VERBOSE_NAME_LENGTH:
        raise ValueError(
            f"verbose_name is at most {MAX_VERBOSE_NAME_LENGTH} characters, got {len(value)}: "
            f"{value[:40]!r}..."
        )
    return value


_CALL_OPTION_SET = frozenset(CALL_OPTIONS)


def check_call_options(options: dict[str, Any]) -> None:
    """Refuse options a call cannot take, naming them (before anything is written)."""
    if options.keys() <= _CALL_OPTION_SET:  # the common case, once per row of a bulk enqueue
        return
    unknown = sorted(set(options) - _CALL_OPTION_SET)
    policy = [name for name in unknown if name in DECORATOR_ONLY]
    if policy:
        raise TypeError(
            f"{', '.join(policy)} can only be given to @background(...), not per call: the "
            "retry policy is code, which a stored task cannot carry. max_attempts= can be "
            "given per call."
        )
    raise TypeError(
        f"unexpected enqueue option(s) {', '.join(unknown)}; a call takes schedule, queue, "
        f"priority, {', '.join(CALL_OPTIONS)}."
    )


def check_feature_defaults(defaults: dict[str, Any]) -> dict[str, Any]:
    """Validate ``@background(timeout=..., unique=...)`` at decoration time."""
    unknown = sorted(set(defaults) - set(DECORATOR_OPTIONS))
    if unknown:
        raise TypeError(
            f"@background got unexpected option(s) {', '.join(unknown)}; it takes schedule, "
            f"name, queue, priority, {', '.join(DECORATOR_OPTIONS)}."
        )
    checked: dict[str, Any] = {}
    if defaults.get("timeout") is not None:
        checked["timeout"] = check_timeout(defaults["timeout"])
    if defaults.get("unique") is not None:
        checked["unique"] = check_unique(defaults["unique"])
    if defaults.get("verbose_name") is not None:
        checked["verbose_name"] = check_verbose_name(defaults["verbose_name"])
    if defaults.get("max_attempts") is not None:
        # Written on each row, so the rescue of an abandoned task (no task code) honours it.
        checked["max_attempts"] = check_max_attempts(defaults["max_attempts"])
    # retry_on and backoff are validated by RetryPolicy.from_options and stay on the function.
    return checked


def feature_fields(row: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Row fields for ``options``; ``unique_mode`` is popped by the caller before saving.

    repeat, repeat_until, timeout, verbose_name and max_attempts are always present (with their
    defaults when unset), so every row of a bulk enqueue names the same fields."""
    check_call_options(options)
    repeat = check_repeat(options.get("repeat", 0))
    fields: dict[str, Any] = {
        "repeat": repeat,
        "repeat_until": check_repeat_until(options.get("repeat_until"), repeat, row["run_at"]),
        "timeout": check_timeout(options.get("timeout")),
        "verbose_name": check_verbose_name(options.get("verbose_name")),
        "max_attempts": check_max_attempts(options.get("max_attempts")),
    }
    unique = check_unique(options.get("unique"))
    if unique:
        fields["unique_key"] = unique_key_for(row["task_name"], row["arguments"])
        fields["unique_mode"] = unique
    return fields
