"""Task arguments as JSON: refused at enqueue when they would not come back unchanged.

No pickle anywhere: a row holds plain JSON, so reading a row can never execute code.
"""

from __future__ import annotations

import json
import math
from typing import Any

from bgtask import conf


def _find_unfaithful(value: Any, path: str) -> tuple[str, Any, str] | None:
    """(path, value, reason) of the first part of ``value`` that JSON would not return as is."""
    if value is None or isinstance(value, (bool, str)):
        return None
    if isinstance(value, int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value, "NaN and infinity are not JSON")
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_unfaithful(item, f"{path}[{index}]")
            if found:
                return found
        return None
    if isinstance(value, tuple):
        return (path, value, "a tuple would come back as a list; pass a list")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return (path, key, f"dict key {key!r} is not a string; JSON keys are strings")
            found = _find_unfaithful(item, f"{path}[{key!r}]")
            if found:
                return found
        return None
    return (path, value, f"{type(value).__name__} is not JSON; pass its id or a plain value")


def encode_arguments(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> str:
    """Encode call arguments for storage, or raise ``TypeError`` naming the value that cannot be.

    >>> encode_arguments((1, "a"), {"user_id": 7})
    '{"args":[1,"a"],"kwargs":{"user_id":7}}'
    """
    for index, value in enumerate(args):
        found = _find_unfaithful(value, f"args[{index}]")
        if found:
            break
    else:
        found = _find_unfaithful(kwargs, "kwargs")
    if found:
        where, value, reason = found
        shown = repr(value)
        if len(shown) > 200:
            shown = shown[:200] + "..."
        raise TypeError(
            f"Task argument {where} = {shown} cannot be stored: {reason}. "
            "Task arguments must survive a JSON round trip unchanged."
        )
    encoded = json.dumps({"args": list(args), "kwargs": kwargs}, separators=(",", ":"))
    limit = conf.max_args_bytes()
    size = len(encoded.encode())
    if size > limit:
        raise ValueError(
            f"Task arguments encode to {size} bytes, over BGTASK_MAX_ARGS_BYTES ({limit}). "
            "Store large data elsewhere (a model, a file) and pass its id."
        )
    return encoded


class UndecodableArguments(ValueError):
    """A stored row's arguments are not the JSON bgtask writes."""


def decode_arguments(stored: str) -> tuple[list[Any], dict[str, Any]]:
    """Decode a row's arguments; raise ``UndecodableArguments`` saying what is wrong with them."""
    try:
        data = json.loads(stored)
    except (TypeError, ValueError) as exc:
        raise UndecodableArguments(f"Stored arguments are not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UndecodableArguments("Stored arguments must be a JSON object with args and kwargs.")
    args, kwargs = data.get("args", []), data.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise UndecodableArguments("Stored args must be a JSON list and kwargs a JSON object.")
    return args, kwargs


def encode_result(value: Any) -> str | None:
    """JSON text of a return value, or ``None`` when it is ``None`` or not JSON (never raises)."""
    if value is None or _find_unfaithful(value, "result"):
        return None
    return json.dumps(value, separators=(",", ":"))
