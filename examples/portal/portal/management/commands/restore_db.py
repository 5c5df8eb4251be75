"""Restores a backup made by backup_db into a scratch database, for `webdock backup --verify`.

Never touches the live database: SCRATCH is a file in the one-off container.
A file that is not a SQLite database fails here, with SQLite's own message.
"""
import os

from django.core.management.base import BaseCommand, CommandError

from portal.management.commands.backup_db import copy_sqlite


class Command(BaseCommand):
    help = "Restore the backup FILE into the scratch database SCRATCH."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("scratch")

    def handle(self, *args, file, scratch, **options):
        if not os.path.exists(file):
            raise CommandError(f"backup {file} does not exist")
        try:
            copy_sqlite(file, scratch)
        except Exception as e:  # sqlite3.DatabaseError: "file is not a database"
            raise CommandError(f"cannot restore {file}: {e}")
        self.stdout.write(f"restore_db: {file} -> {scratch}")
