"""Fencing with webdock's lease ([lease] in webdock.toml): write only while
our lease epoch is the current one.

The lease holder starts the daemon with WEBDOCK_LEASE_EPOCH, the epoch it
got when it took the lease. A daemon that was frozen (docker pause) or cut
off past the lease window may wake up after another holder took the lease:
its holder kills it within moments, but a write it makes in those moments
must be refused. So every write happens in a transaction that first reads
the current epoch FOR SHARE (a new holder's bump waits for that transaction,
and that transaction sees the bump once it committed) and gives up when the
epoch is not ours.
"""
import os
from contextlib import contextmanager

from django.db import connection, transaction


class Fenced(Exception):
    def __init__(self, ours, current):
        super().__init__(f"fenced: epoch {ours} is stale, current {current}")
        self.ours = ours
        self.current = current


def lease():
    """(name, epoch) of the lease this process runs under, or None."""
    epoch = os.environ.get("WEBDOCK_LEASE_EPOCH")
    name = os.environ.get("WEBDOCK_LEASE_NAME")
    if not epoch or not name:
        return None
    return name, int(epoch)


@contextmanager
def fenced_atomic(name, epoch):
    """A transaction that raises Fenced unless `epoch` is still current."""
    with transaction.atomic():
        with connection.cursor() as c:
            c.execute("SELECT epoch FROM webdock_lease WHERE name = %s FOR SHARE", [name])
            row = c.fetchone()
        if row is None or row[0] != epoch:
            raise Fenced(epoch, row and row[0])
        yield
