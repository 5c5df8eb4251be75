"""Append-only log lines under $WEBDOCK_DATA/logs/, flushed and fsynced one by one.

Tests read these files to prove that two cron runs or two instances of a djob
never overlapped, so every line must be on disk before the process goes on.
"""
import os
import socket
import time

from django.conf import settings


def log_path(name):
    os.makedirs(settings.LOG_DIR, exist_ok=True)
    return settings.LOG_DIR / name


def append_line(path, event):
    line = f"{event} {socket.gethostname()} {os.getpid()} {time.time_ns()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return line
