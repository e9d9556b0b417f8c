"""No page of bgtask's may be shown inside another site's frame.

The admin pages carry buttons that change tasks (Run now, Retry, Cancel); framed invisibly by
another site, a click meant for that site could press one (clickjacking). Each of bgtask's views
therefore says ``X-Frame-Options: DENY`` (for older browsers) and the CSP
``frame-ancestors 'none'`` (the current standard), whether or not the project installs
``XFrameOptionsMiddleware`` or a CSP.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpResponseBase
from django.views.decorators.clickjacking import xframe_options_deny

CSP_HEADER = "Content-Security-Policy"
FRAME_ANCESTORS = "frame-ancestors 'none'"
CSP_MIDDLEWARE = "django.middleware.csp.ContentSecurityPolicyMiddleware"


def _forbid_frames(response: HttpResponseBase) -> None:
    if CSP_HEADER in response:
        policy = response[CSP_HEADER]
        if "frame-ancestors" not in policy:
            response[CSP_HEADER] = f"{policy.rstrip('; ')}; {FRAME_ANCESTORS}"
        return
    project_policy = getattr(settings, "SECURE_CSP", None)
    if project_policy and CSP_MIDDLEWARE in settings.MIDDLEWARE:
        # Django's CSP middleware (6.0+) writes its header after the view and skips a response
        # that has one: hand it the project's policy plus ours, so neither is lost.
        response._csp_config = {**project_policy, "frame-ancestors": ["'none'"]}  # type: ignore[attr-defined]
    else:
        response[CSP_HEADER] = FRAME_ANCESTORS


def deny_framing(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a view so that its responses may not be framed (X-Frame-Options and CSP)."""

    @wraps(view)
    # Any: the response is whatever the wrapped view returns (a response, by Django's contract).
    def wrapped(request: Any, *args: Any, **kwargs: Any) -> Any:
        response = view(request, *args, **kwargs)
        _forbid_frames(response)
        return response

    return xframe_options_deny(wrapped)
