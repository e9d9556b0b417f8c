from django.db import models


class Execution(models.Model):
    """One row per run of a sample task: the side effect the tests count."""

    key = models.CharField(max_length=100, db_index=True)
    pid = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.key} (pid {self.pid})"
