import time

from django.core.management.base import BaseCommand

from portal.applog import append_line, log_path


class Command(BaseCommand):
    help = "Append a tick line to $WEBDOCK_DATA/logs/cron.log (with --sleep: start, sleep, end)."

    def add_arguments(self, parser):
        parser.add_argument("--sleep", type=float, default=None,
                            help="write 'start', sleep this many seconds, write 'end'")

    def handle(self, *args, sleep=None, **options):
        path = log_path("cron.log")
        if sleep is None:
            self.stdout.write("cron_tick: " + append_line(path, "tick"), ending="")
            return
        self.stdout.write("cron_tick: " + append_line(path, "start"), ending="")
        time.sleep(max(sleep, 0.0))
        self.stdout.write("cron_tick: " + append_line(path, "end"), ending="")
