"""URLs with a view that crashes, for the web function's 500 test."""

from django.urls import path


def boom(request):
    raise RuntimeError("a bug in a view")


urlpatterns = [path("boom/", boom)]
