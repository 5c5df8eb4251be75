from django.db import models


class Visit(models.Model):
    """A trivial table: /health/ queries it to prove the migration ran."""

    path = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.path} @ {self.created}"


class Charge(models.Model):
    """One charge of the billing djob. `key` names what is charged (here the
    second it was charged for), so a charge written twice is refused by the
    database; `epoch` and `host` say which lease holder wrote it."""

    key = models.CharField(max_length=100, unique=True)
    epoch = models.BigIntegerField()
    host = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.key} epoch {self.epoch} on {self.host}"
