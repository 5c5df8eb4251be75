"""Checks a restored database, for `webdock backup --verify`: SQLite's integrity
check must pass and every table must be readable; prints the applied migrations.
"""
import sqlite3

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Check the database file SCRATCH: integrity, tables, applied migrations."

    def add_arguments(self, parser):
        parser.add_argument("scratch")

    def handle(self, *args, scratch, **options):
        try:
            db = sqlite3.connect(f"file:{scratch}?mode=ro", uri=True)
            ok = db.execute("PRAGMA integrity_check").fetchone()[0]
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            rows = {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        except sqlite3.DatabaseError as e:
            raise CommandError(f"{scratch}: {e}")
        if ok != "ok":
            raise CommandError(f"{scratch}: integrity check: {ok}")
        migrations = rows.get("django_migrations", 0)
        self.stdout.write(
            f"check_db: integrity ok, {len(tables)} tables, {sum(rows.values())} rows, {migrations} migrations applied"
        )
