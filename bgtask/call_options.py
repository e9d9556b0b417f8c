"""The enqueue options the features modules add, validated in one place for every entry point
(a call, ``.enqueue()``, ``.bulk()``, a repetition): ``repeat``, ``repeat_until``, ``timeout``,
``unique``. Each is checked by the module that owns the feature (imported when first needed:
``bgtask`` itself is imported before the app registry is ready, those modules need the model)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bgtask.timeouts import check_timeout

if TYPE_CHECKING:
    from bgtask.decorators import TaskFunction

# Options that make sense as a decorator default; repeat is a property of one call.
DECORATOR_OPTIONS = ("timeout", "unique")


def check_feature_defaults(defaults: dict[str, Any]) -> dict[str, Any]:
    """Validate ``@background(timeout=..., unique=...)`` at decoration time."""
    unknown = sorted(set(defaults) - set(DECORATOR_OPTIONS))
    if unknown:
        raise TypeError(
            f"@background got unexpected option(s) {', '.join(unknown)}; it takes schedule, "
            f"name, queue, priority, {', '.join(DECORATOR_OPTIONS)}."
        )
    from bgtask.uniqueness import check_unique

    checked = {}
    if defaults.get("timeout") is not None:
        checked["timeout"] = check_timeout(defaults["timeout"])
    if defaults.get("unique") is not None:
        checked["unique"] = check_unique(defaults["unique"])
    return checked


def feature_fields(
    function: TaskFunction, row: dict[str, Any], options: dict[str, Any]
) -> dict[str, Any]:
    """Row fields for ``options``; ``unique_mode`` is popped by the caller before saving.

    repeat, repeat_until and timeout are always present (with their defaults when unset), so every
    row of a bulk enqueue names the same fields."""
    from bgtask.repeating import check_repeat, check_repeat_until
    from bgtask.uniqueness import check_unique, unique_key_for

    repeat = check_repeat(options.get("repeat", 0))
    fields: dict[str, Any] = {
        "repeat": repeat,
        "repeat_until": check_repeat_until(options.get("repeat_until"), repeat, row["run_at"]),
        "timeout": check_timeout(options.get("timeout")),
    }
    unique = check_unique(options.get("unique"))
    if unique:
        fields["unique_key"] = unique_key_for(row["task_name"], row["arguments"])
        fields["unique_mode"] = unique
    return fields
