"""The web side: the admin, the health dashboard and the status endpoint.

- ``admin``: the read-only task admin and its actions (registered from ``BgtaskConfig.ready``).
- ``status``: per-queue figures, shared by the dashboard and the status endpoint.
- ``views``: the status endpoint (``include("bgtask.urls")``).
- ``charts``: the dashboard's chart, drawn as inline SVG.
- ``permissions``: who may read the queue (one rule for the dashboard and the status endpoint).
- ``framing``: no page of bgtask's may be framed (X-Frame-Options and CSP ``frame-ancestors``).
"""
