"""The JSON status endpoint: per-queue counts for dashboards, probes and alarms.

Open to a staff session (the admin's login) or to ``Authorization: Bearer <BGTASK_STATUS_TOKEN>``.

>>> # curl -H "Authorization: Bearer $TOKEN" https://example.com/bgtask/status/
>>> # {"queues": {"default": {"due": 0, ...}}, "time": "2026-11-28T05:20:00+00:00"}
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bgtask import conf
from bgtask.web import prometheus
from bgtask.web.status import health


def _bearer_token(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _refusal(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="bgtask"'
    return response


def _refused(request: HttpRequest) -> JsonResponse | None:
    """The refusal for a request that is neither a staff session nor the bearer token; or None."""
    token = _bearer_token(request)
    if token is not None:
        expected = conf.status_token()
        # compare_digest: the time taken does not tell how much of a guess was right.
        if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
            return _refusal(401, "Invalid bearer token.")
    else:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return _refusal(
                401, "Log in as a staff user or send Authorization: Bearer <BGTASK_STATUS_TOKEN>."
            )
        if not (user.is_active and user.is_staff):
            return _refusal(403, "Only staff users may read the task queue status.")
    return None


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
