import os
import re
import signal
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, IntegrityError, connection

from portal.applog import append_line, log_path
from portal.fence import Fenced, fenced_atomic, lease
from portal.heartbeat import beat
from portal.models import Charge

BEAT_SECONDS = 0.2
# A daemon that finds itself fenced exits with this code: for webdock's
# lease holder (and djob-finish) it means "lease lost, wait for it again".
FENCED_EXIT = 75


class Command(BaseCommand):
    help = ("Run the daemon job NAME forever: 'start', then a 'beat' every 0.2 s to "
            "$WEBDOCK_DATA/logs/djob-NAME.log (and webdock's heartbeat file); on SIGTERM write 'stop' and exit 0. "
            "Under webdock's lease (WEBDOCK_LEASE_EPOCH), billing also writes one fenced charge a second.")

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
        billing = lease() if name == "billing" else None
        charged = None
        while not stopping:
            time.sleep(BEAT_SECONDS)
            if stopping:
                break
            append_line(path, "beat")
            beat()
            second = int(time.time())
            if billing and second != charged:
                charged = second
                self.charge(billing, second)
        self.stdout.write(f"djob {name}: " + append_line(path, "stop"), ending="")
        self.stdout.flush()

    def charge(self, billing, second):
        """One charge for this second, written only while our epoch is current."""
        name, epoch = billing
        host = os.environ.get("WEBDOCK_HOST", "?")
        try:
            with fenced_atomic(name, epoch):
                Charge.objects.create(key=f"tick-{second}", epoch=epoch, host=host)
        except Fenced as e:
            self.stdout.write(f"djob billing: {e}")
            self.stdout.flush()
            sys.exit(FENCED_EXIT)
        except IntegrityError:
            pass  # this second is charged already: never twice
        except DatabaseError as e:
            # the database restarted or is unreachable: the lease holder
            # decides whether we go on; never charge without the fence
            self.stdout.write(f"djob billing: database unavailable: {' '.join(str(e).split())}")
            self.stdout.flush()
            try:
                connection.close()
            except DatabaseError:
                pass
