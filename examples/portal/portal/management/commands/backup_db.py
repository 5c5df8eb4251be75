"""A consistent copy of the database to FILE, for webdock's [backup] command.

SQLite: the online backup API copies a consistent snapshot even while the
portal and the djobs write (WAL mode). PostgreSQL (DATABASE_URL): `pg_dump
-Fc`, one consistent snapshot of the database. Either way the copy goes to
FILE.tmp, is fsynced and then renamed, so FILE is either a whole backup or
absent. Any other database engine is an error naming it: never a silent empty
backup.
"""
import os
import sqlite3
import subprocess

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def engine_of(db):
    """`sqlite` or `postgresql` for Django's database settings; else an error."""
    engine = db["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        return "sqlite"
    if engine == "django.db.backends.postgresql":
        return "postgresql"
    raise CommandError(f"database engine {engine!r}: backup_db knows sqlite3 and postgresql only")


def pg_env(db, name=None):
    """The libpq environment for Django's database settings (`name`: another database on that server)."""
    env = dict(os.environ)
    for var, key in (("PGHOST", "HOST"), ("PGPORT", "PORT"), ("PGUSER", "USER"), ("PGPASSWORD", "PASSWORD")):
        if db.get(key):
            env[var] = str(db[key])
    env["PGDATABASE"] = name or str(db["NAME"])
    return env


def run(cmd, env):
    """Runs a client tool; its failure is an error with its own message."""
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise CommandError(f"{cmd[0]} exited with {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def fsync_rename(tmp, dst):
    """fsyncs tmp, renames it over dst and fsyncs the directory."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dst)
    dfd = os.open(os.path.dirname(os.path.abspath(dst)), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


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
    # Restoring over a database: its write-ahead log belongs to the old file.
    for stale in (f"{dst}-wal", f"{dst}-shm"):
        if os.path.exists(stale):
            os.unlink(stale)
    fsync_rename(tmp, dst)


def dump_postgres(db, dst):
    """pg_dump -Fc of the database to dst atomically (dst.tmp, fsync, rename)."""
    tmp = f"{dst}.tmp"
    run(["pg_dump", "-Fc", "--no-owner", "-f", tmp], pg_env(db))
    fsync_rename(tmp, dst)


class Command(BaseCommand):
    help = "Copy the database consistently to FILE (SQLite online backup or pg_dump -Fc, atomic rename)."

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, file, **options):
        db = settings.DATABASES["default"]
        os.makedirs(os.path.dirname(os.path.abspath(file)), exist_ok=True)
        if engine_of(db) == "postgresql":
            dump_postgres(db, file)
            what = f"PostgreSQL database {db['NAME']} (pg_dump -Fc)"
        else:
            src = str(db["NAME"])
            what = src if os.path.exists(src) else "an empty database (none yet)"
            copy_sqlite(src, file)
        self.stdout.write(f"backup_db: {what} -> {file} ({os.path.getsize(file)} bytes)")
