import re
import signal
import time

from django.core.management.base import BaseCommand, CommandError

from portal.applog import append_line, log_path
from portal.heartbeat import beat

BEAT_SECONDS = 0.2


class Command(BaseCommand):
    help = ("Run the daemon job NAME forever: 'start', then a 'beat' every 0.2 s to "
            "$WEBDOCK_DATA/logs/djob-NAME.log (and webdock's heartbeat file); on SIGTERM write 'stop' and exit 0.")

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise CommandError(f"invalid djob name {name!r}")
        stopping = []

        def on_signal(signum, frame):
            stopping.append(signum)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

        path = log_path(f"djob-{name}.log")
        self.stdout.write(f"djob {name}: " + append_line(path, "start"), ending="")
        self.stdout.flush()
        while not stopping:
            time.sleep(BEAT_SECONDS)
            if stopping:
                break
            append_line(path, "beat")
            beat()
        self.stdout.write(f"djob {name}: " + append_line(path, "stop"), ending="")
        self.stdout.flush()
