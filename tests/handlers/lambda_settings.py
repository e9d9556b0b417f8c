"""tests.settings plus the serverless settings a child process takes from its environment."""

import os

from tests.settings import *  # noqa: F403

BGTASK_LAMBDA_SAFETY_MARGIN = float(os.environ.get("BGTASK_LAMBDA_SAFETY_MARGIN", "5"))
BGTASK_LAMBDA_LEASE_GRACE = float(os.environ.get("BGTASK_LAMBDA_LEASE_GRACE", "30"))
