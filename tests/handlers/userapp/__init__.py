"""An app whose model refers to the user model: a project's app the worker's settings must not
load without django.contrib.auth (tests/handlers/test_worker_settings.py)."""
