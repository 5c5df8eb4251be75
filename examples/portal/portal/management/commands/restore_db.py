"""Restores a backup made by backup_db into a scratch database, for `webdock backup --verify`.

Never touches the live database. SQLite: SCRATCH is a file in the one-off
container; a file that is not a SQLite database fails here, with SQLite's own
message. PostgreSQL: a scratch database on the same server, dropped and
created afresh, then `pg_restore --exit-on-error` into it; SCRATCH names it
when it is a plain name (`[A-Za-z_][A-Za-z0-9_]*`), else (a path, the SQLite
default) it is `<live database>_scratch`. A dump that pg_restore cannot read
fails here, with its message.
"""
import os
import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.management.commands.backup_db import copy_sqlite, engine_of, pg_env, run


def scratch_db(db, scratch):
    """The scratch database's name on the live database's server; never the live one."""
    name = scratch if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", scratch) else f"{db['NAME']}_scratch"
    if name == db["NAME"]:
        raise CommandError(f"scratch database {name!r} is the live database: refusing")
    return name


class Command(BaseCommand):
    help = "Restore the backup FILE into the scratch database SCRATCH."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("scratch")

    def handle(self, *args, file, scratch, **options):
        if not os.path.exists(file):
            raise CommandError(f"backup {file} does not exist")
        db = settings.DATABASES["default"]
        if engine_of(db) == "postgresql":
            name = scratch_db(db, scratch)
            # dropped and created from the server's maintenance database
            admin = pg_env(db, "postgres")
            run(["dropdb", "--if-exists", name], admin)
            run(["createdb", name], admin)
            run(["pg_restore", "--exit-on-error", "--no-owner", "-d", name, file], pg_env(db, name))
            self.stdout.write(f"restore_db: {file} -> PostgreSQL database {name}")
            return
        try:
            copy_sqlite(file, scratch)
        except Exception as e:  # sqlite3.DatabaseError: "file is not a database"
            raise CommandError(f"cannot restore {file}: {e}")
        self.stdout.write(f"restore_db: {file} -> {scratch}")
