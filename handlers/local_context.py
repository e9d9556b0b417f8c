"""A stand-in for the Lambda context object, for tests and ``handlers.invoke_local``.

>>> context = LocalContext(timeout=60)
>>> context.get_remaining_time_in_millis()
59999
"""

from __future__ import annotations

import time
import uuid


class LocalContext:
    """The attributes of AWS's LambdaContext the handlers read, with a real, ticking deadline."""

    def __init__(self, timeout: float = 60.0, function_name: str = "bgtask-worker-local") -> None:
        self.deadline = time.monotonic() + timeout
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))
