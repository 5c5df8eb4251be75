"""webdock's djob heartbeat: call beat() at least every `heartbeat` seconds
(webdock.toml, [djobs.NAME] heartbeat = "60s") from the daemon's main loop.
Without a heartbeat configured, WEBDOCK_HEARTBEAT_FILE is unset and this does
nothing. A daemon that stops beating is killed and restarted by the
container's watchdog."""
import os
import pathlib


def beat():
    path = os.environ.get("WEBDOCK_HEARTBEAT_FILE")
    if path:
        pathlib.Path(path).touch()
