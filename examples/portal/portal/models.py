from django.db import models


class Visit(models.Model):
    """A trivial table: /health/ queries it to prove the migration ran."""

    path = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.path} @ {self.created}"
