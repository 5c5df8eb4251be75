"""A consistent copy of the SQLite database to FILE, for webdock's [backup] command.

SQLite's online backup API copies a consistent snapshot even while the portal
and the djobs write (WAL mode). The copy goes to FILE.tmp, is fsynced and then
renamed, so FILE is either a whole backup or absent. With PostgreSQL the
[backup] command would be `pg_dump -Fc -f {file}` instead.
"""
import os
import sqlite3

from django.conf import settings
from django.core.management.base import BaseCommand


def copy_sqlite(src, dst):
    """Copies the database at src to dst atomically (dst.tmp, fsync, rename)."""
    tmp = f"{dst}.tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True) if os.path.exists(src) else sqlite3.connect(":memory:")
    target = sqlite3.connect(tmp)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    # Restoring over a database: its write-ahead log belongs to the old file.
    for stale in (f"{dst}-wal", f"{dst}-shm"):
        if os.path.exists(stale):
            os.unlink(stale)
    os.replace(tmp, dst)
    dfd = os.open(os.path.dirname(os.path.abspath(dst)), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Command(BaseCommand):
    help = "Copy the database consistently to FILE (SQLite online backup, atomic rename)."

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, file, **options):
        src = str(settings.DATABASES["default"]["NAME"])
        os.makedirs(os.path.dirname(os.path.abspath(file)), exist_ok=True)
        existed = os.path.exists(src)
        copy_sqlite(src, file)
        what = src if existed else "an empty database (none yet)"
        self.stdout.write(f"backup_db: {what} -> {file} ({os.path.getsize(file)} bytes)")
