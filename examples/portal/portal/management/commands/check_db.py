"""Checks a restored database, for `webdock backup --verify`: every table must
be readable (and, for SQLite, the integrity check must pass); prints the
applied migrations. SCRATCH as for restore_db: a file for SQLite, the scratch
database for PostgreSQL (dropped once checked).
"""
import sqlite3

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.management.commands.backup_db import engine_of, pg_env, run
from portal.management.commands.restore_db import scratch_db


def check_postgres(db, scratch):
    name = scratch_db(db, scratch)
    env = pg_env(db, name)
    query = "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
    tables = [t for t in run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", query], env).split() if t]
    rows = {}
    for t in tables:
        rows[t] = int(run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", f"SELECT count(*) FROM {t}"], env))
    run(["dropdb", "--if-exists", name], pg_env(db, "postgres"))
    return tables, rows, rows.get("public.django_migrations", 0)


class Command(BaseCommand):
    help = "Check the scratch database SCRATCH: integrity, tables, applied migrations."

    def add_arguments(self, parser):
        parser.add_argument("scratch")

    def handle(self, *args, scratch, **options):
        db = settings.DATABASES["default"]
        if engine_of(db) == "postgresql":
            tables, rows, migrations = check_postgres(db, scratch)
            self.stdout.write(
                f"check_db: restored ok, {len(tables)} tables, {sum(rows.values())} rows, {migrations} migrations applied"
            )
            return
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
