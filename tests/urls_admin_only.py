"""A project that serves the admin but not bgtask's URLs (no ``include("bgtask.urls")``)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
