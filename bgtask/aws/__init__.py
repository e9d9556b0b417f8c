"""The AWS side of bgtask: the Lambda worker invocation, wake-on-enqueue, backlog fan-out and
CloudWatch Embedded Metric Format lines.

boto3 is imported here and nowhere else, and only when a feature that needs it is switched on, so
``bgtask`` installs and runs without AWS (``pip install bgtask[aws]`` adds boto3 and Mangum).
"""

# The "source" of the events bgtask sends to its own worker function.
WAKE_SOURCE = "bgtask.wake"
FANOUT_SOURCE = "bgtask.fanout"
