"""``path("bgtask/", include("bgtask.urls"))`` serves the status endpoint at ``bgtask/status/``
and the Prometheus metrics at ``bgtask/metrics/``."""

from django.urls import path

from bgtask.web import views

app_name = "bgtask"
urlpatterns = [
    path("status/", views.status, name="status"),
    path("metrics/", views.metrics, name="metrics"),
]
