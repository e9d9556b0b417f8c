"""The JSON status endpoint: per-queue counts for dashboards, probes and alarms.

Open to a session of a user who may read the tasks in the admin (``bgtask.web.permissions``: active
staff with bgtask's view or change permission, the dashboard's rule) or to
``Authorization: Bearer <BGTASK_STATUS_TOKEN>``.

>>> # curl -H "Authorization: Bearer $TOKEN" https://example.com/bgtask/status/
>>> # {"queues": {"default": {"due": 0, ...}}, "time": "2026-11-28T05:20:00+00:00"}
"""

from __future__ import annotations

import hmac
import logging

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bgtask import conf
from bgtask.web import prometheus
from bgtask.web.framing import deny_framing
from bgtask.web.permissions import can_read_queue
from bgtask.web.status import health

logger = logging.getLogger("bgtask.web")


def _bearer_token(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _refusal(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="bgtask"'
    return response


def _refused(request: HttpRequest) -> JsonResponse | None:
    """The refusal for a request that is neither a session of a user who may read the tasks nor
    the bearer token; or None."""
    token = _bearer_token(request)
    if token is not None:
        try:
            expected = conf.status_token()
        except ImproperlyConfigured as exc:
            # Too short to be safe (check bgtask.E003 says so at start-up): it opens nothing.
            logger.error("The status endpoint's token is refused: %s", exc)
            expected = None
        # compare_digest: the time taken does not tell how much of a guess was right.
        if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
            return _refusal(401, "Invalid bearer token.")
    else:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return _refusal(
                401, "Log in as a staff user or send Authorization: Bearer <BGTASK_STATUS_TOKEN>."
            )
        if not can_read_queue(user):
            return _refusal(
                403,
                "Only staff users with bgtask's view or change permission on tasks may read the "
                "task queue status (the dashboard's rule).",
            )
    return None


@deny_framing
@never_cache
@require_GET
def status(request: HttpRequest) -> JsonResponse:
    """Answer ``bgtask.web.status.health()`` as JSON (``{"time": iso, "queues": {name: QueueStats},
    "throughput": ..., "slowest": ..., "most_failing": ..., "workers": ..., "rescued": ...}``);
    401/403 for anyone else."""
    refusal = _refused(request)
    if refusal is not None:
        return refusal
    # DjangoJSONEncoder (JsonResponse's default) writes the datetimes as ISO 8601.
    return JsonResponse(health(timezone.now()))


@deny_framing
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The per-queue figures for Prometheus (``bgtask[prometheus]``), open to the same staff
    session or bearer token as ``status``; 501 when ``prometheus_client`` is not installed.

    >>> # scrape_configs: [{job_name: bgtask, metrics_path: /bgtask/metrics/,
    >>> #                   authorization: {credentials: $TOKEN}, ...}]
    """
    refusal = _refused(request)
    if refusal is not None:
        return refusal
    if not prometheus.AVAILABLE:
        return _refusal(501, "Install prometheus_client: pip install 'bgtask[prometheus]'.")
    return HttpResponse(prometheus.exposition(timezone.now()), content_type=prometheus.CONTENT_TYPE)
