"""One run_batch call in its own process, for the multi-process tests.

python tests/run_batch_process.py DURATION [--queue NAME] [--concurrency N]
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("duration", type=float)
    parser.add_argument("--queue", default=None)
    parser.add_argument("--concurrency", type=int, default=None)
    options = parser.parse_args()
    django.setup()
    from bgtask import run_batch

    result = run_batch(options.duration, queue=options.queue, concurrency=options.concurrency)
    print(json.dumps(result.as_dict()))


if __name__ == "__main__":
    main()
