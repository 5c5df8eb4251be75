#!/usr/bin/env python3
"""A release across a fleet, measured on the test rig (scripts/rig) under
steady keep-alive load through a load balancer, beside a host-by-host
sequential release (what Kamal does).

One rig of 3 hosts, one project on it. Variants, each round:

  1 host      a config with only web1: `promote` the other tag, `rollback`;
              load through an LB over web1 (`webdock lb-snippet` of that config)
  3 hosts     the config with web1..web3: `promote`, `rollback`; load through
              an LB over all three (`webdock lb-snippet`)
  sequential  the other tag host by host: `promote` with a config of web1 only,
              then web2 only, then web3 only (each a fleet of one), under the
              same load through the 3-host LB

Measured per operation: wall time of the webdock command(s); the flip window
first→last host from history's `flip_window_ms` (fleet promotes and warm
rollbacks); the
mixed-version window seen from outside, by one poller per host that asks the
host's nginx for /health/ over keep-alive without pause and notes when each
host first answers with the new tag (window = last host's first new answer −
first host's); and the requests the load generator (bench/loadgen.py,
paced, GET and POST alternating, nothing retried) counted as failed.

The configs have no cron or djobs: the bench measures the switch of the web
tier. The release command is the default (`manage.py migrate`, nothing to
migrate after the first promote): once per fleet promote, and in the
sequential release once per host, as each host is a fleet of its own.

Needs root, what scripts/setup installs, and the example app's images
(built with the example config if missing, as scripts/demo does). Prints a
header and a markdown table for docs/benchmarks.md.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (EXAMPLE, REPO, fmt_s, header, image_exists, log, md_table,  # noqa: E402
                    median, run, webdock_bin)

RIG = str(REPO / "scripts" / "rig")
LOADGEN = str(REPO / "bench" / "loadgen.py")
HOSTS = ["web1", "web2", "web3"]
PROJECT = "fb"
TAGS = ("1.0.0", "1.0.1")


def rig_env(d, host=None):
    out = run([RIG, "env", d] + ([host] if host else [])).stdout
    env = {}
    for line in out.splitlines():
        if line.startswith("export ") and "=" in line:
            k, _, v = line[len("export "):].partition("=")
            env[k] = v.strip("'\"")
    return env


def write_config(path, app, image, hosts, info):
    text = f'''project = "{PROJECT}"
image = "{image}"
app = "{EXAMPLE}"
socket_root = "{app}/controller/run"
state_root = "{app}/controller/state"
volumes = ["{app}/data:/data"]
[env]
DJANGO_ALLOWED_HOSTS = "*"
DJANGO_SECRET_KEY = "bench-not-secret"
[portal]
wsgi = "portal.wsgi:application"
processes = 2
stop_grace = "10s"
[health]
path = "/health/"
host = "localhost"
consecutive = 3
[cron]
enabled = false
'''
    for h in hosts:
        e = info[h]
        c = e["RIG_DOCKER_CERT_PATH"]
        text += (f'[hosts.{h}]\nengine = "{e["RIG_DOCKER_TCP"]}"\n'
                 f'tls = {{ ca = "{c}/ca.pem", cert = "{c}/cert.pem", key = "{c}/key.pem" }}\n'
                 f'roles = ["portal"]\npublic_url = "{e["RIG_NGINX"]}/health/"\n'
                 f'socket_root = "{app}/{h}/run"\nstate_root = "{app}/{h}/state"\n')
    Path(path).write_text(text)
    return str(path)


def wd(config, *args):
    return run([webdock_bin(), "-c", config, *args], timeout=600)


def last_history(app):
    lines = (Path(app) / "controller" / "state" / PROJECT / "history.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


class Pollers:
    """One thread per host asking its nginx for the release without pause."""

    def __init__(self, info):
        self.info = info
        self.samples = {h: [] for h in HOSTS}
        self.errors = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.poll, args=(h,), daemon=True) for h in HOSTS]
        for t in self.threads:
            t.start()

    def poll(self, h):
        addr = self.info[h]["RIG_ADDR"]
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(addr, 80, timeout=5)
                conn.request("GET", "/health/", headers={"Host": "localhost"})
                r = conn.getresponse()
                r.read()
                self.samples[h].append((time.monotonic(), r.getheader("X-Release")))
                time.sleep(0.005)
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn = None
                time.sleep(0.01)

    def mixed_window_ms(self, since, tag):
        """last host's first answer with TAG after SINCE − the first host's."""
        firsts = []
        for h in HOSTS:
            t = next((t for t, v in self.samples[h] if t >= since and v == tag), None)
            if t is None:
                return None
            firsts.append(t)
        return (max(firsts) - min(firsts)) * 1000

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)


class Load:
    def __init__(self, port, conns, rate):
        self.p = subprocess.Popen([sys.executable, LOADGEN, "--port", str(port), "--conns", str(conns),
                                   "--rate", str(rate)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stderr.readline()
        if "ready" not in line:
            raise RuntimeError(f"loadgen did not start: {line}")
        time.sleep(1)

    def finish(self):
        time.sleep(1)
        self.p.send_signal(signal.SIGINT)
        out, err = self.p.communicate(timeout=60)
        r = json.loads(out)
        failed = r["connect"] + r["write"] + r["read"] + r["timeout"] + sum(r["non2xx"].values())
        if failed:
            log(f"failed requests: {failed}: {r['errors'][:5]}")
        return r["requests"], failed


def start_lb(d, configs):
    lbdir = Path(d) / "benchlb"
    lbdir.mkdir(exist_ok=True)
    os.chmod(lbdir, 0o777)
    ports, snippets = {}, ""
    for name, cfg in configs.items():
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports[name] = s.getsockname()[1]
        s.close()
        snip = wd(cfg, "lb-snippet", "--listen", f"127.0.0.1:{ports[name]}").stdout
        # both balancers are of one project: give each upstream its own name
        tag = name.replace(" ", "_")
        snippets += snip.replace(f"webdock_{PROJECT}", f"webdock_{PROJECT}_{tag}") + "\n"
    t = lbdir
    (t / "nginx.conf").write_text(
        f"worker_processes 1;\nuser nobody nogroup;\npid {t}/nginx.pid;\nerror_log {t}/error.log warn;\n"
        f"events {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n"
        f"  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fastcgi;\n"
        f"  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n{snippets}}}\n")
    run(["nginx", "-c", str(t / "nginx.conf")])
    return ports, str(t / "nginx.conf")


def other(tag):
    return TAGS[1] if tag == TAGS[0] else TAGS[0]


def ensure_images(image):
    for tag in TAGS:
        if not image_exists(f"{image}:{tag}"):
            log(f"building {image}:{tag} with the example config")
            run([webdock_bin(), "-c", str(EXAMPLE / "webdock.toml"), "build", tag], timeout=1800)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="rounds per variant (default 5)")
    ap.add_argument("--conns", type=int, default=16, help="load generator connections (default 16)")
    ap.add_argument("--rate", type=float, default=200, help="requests per second in all (default 200)")
    ap.add_argument("--json-out", help="write the raw numbers here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("error: the fleet bench needs root (scripts/rig)")
    image = next(line.split('"')[1] for line in (EXAMPLE / "webdock.toml").read_text().splitlines()
                 if line.startswith("image ="))
    ensure_images(image)
    d = tempfile.mkdtemp(prefix="wdfb-", dir="/tmp")
    os.chmod(d, 0o755)
    raw = {"1 host": [], "3 hosts": [], "sequential": []}
    lb_conf = None
    pollers = None
    try:
        run([RIG, "up", d, "3"], timeout=300)
        run([RIG, "load", d, f"{image}:{TAGS[0]}", f"{image}:{TAGS[1]}"], timeout=900)
        info = {h: rig_env(d, h) for h in HOSTS}
        app = Path(d) / "app"
        app.mkdir()
        os.chmod(app, 0o755)
        fleet = write_config(app / "fleet.toml", app, image, HOSTS, info)
        one = {h: write_config(app / f"{h}.toml", app, image, [h], info) for h in HOSTS}
        for h in HOSTS:
            Path(info[h]["RIG_NGINX_INCLUDE"]).write_text(wd(fleet, "nginx-snippet", "--host", h).stdout)
            run([RIG, "reload-nginx", d, h])
        ports, lb_conf = start_lb(d, {"1 host": one["web1"], "3 hosts": fleet})
        # Two promotes so that every host has both colors warm, as in steady use.
        wd(fleet, "promote", TAGS[1])
        wd(fleet, "promote", TAGS[0])
        live = TAGS[0]
        time.sleep(2)
        pollers = Pollers(info)
        for r in range(a.rounds):
            for variant in (["1 host", "3 hosts", "sequential"] if r % 2 == 0
                            else ["sequential", "3 hosts", "1 host"]):
                new = other(live)
                load = Load(ports["3 hosts" if variant == "sequential" else variant], a.conns, a.rate)
                since = time.monotonic()
                if variant == "sequential":
                    t = time.monotonic()
                    for h in HOSTS:
                        wd(one[h], "promote", new)
                    promote_s = time.monotonic() - t
                    rollback_s = flip_ms = rollback_flip_ms = None
                    mixed = pollers.mixed_window_ms(since, new)
                    live = new
                else:
                    cfg = fleet if variant == "3 hosts" else one["web1"]
                    t = time.monotonic()
                    wd(cfg, "promote", new)
                    promote_s = time.monotonic() - t
                    flip_ms = last_history(app).get("flip_window_ms")
                    mixed = pollers.mixed_window_ms(since, new) if variant == "3 hosts" else None
                    t = time.monotonic()
                    wd(cfg, "rollback")
                    rollback_s = time.monotonic() - t
                    rollback_flip_ms = last_history(app).get("flip_window_ms")
                requests, failed = load.finish()
                row = {"promote_s": promote_s, "rollback_s": rollback_s, "flip_ms": flip_ms,
                       "rollback_flip_ms": rollback_flip_ms, "mixed_ms": mixed, "requests": requests, "failed": failed}
                log(f"round {r + 1} {variant}: {row}")
                raw[variant].append(row)
    finally:
        if pollers:
            pollers.close()
        if lb_conf:
            run(["nginx", "-c", lb_conf, "-s", "quit"], check=False)
        down = run([RIG, "down", d], check=False, timeout=300)
        if down.returncode == 0 and not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(d, ignore_errors=True)
        else:
            log(f"kept {d} (rig down exited {down.returncode}, or BENCH_KEEP is set)")

    def col(rows, k, digits=2, mx=True):
        xs = [x.get(k) for x in rows if x.get(k) is not None]
        if not xs:
            return "–"
        return f"{fmt_s(median(xs), digits)} (max {fmt_s(max(xs), digits)})" if mx else fmt_s(median(xs), digits)

    rows = []
    labels = {"1 host": "webdock, 1 host", "3 hosts": "webdock, 3 hosts",
              "sequential": "host by host, 3 hosts (Kamal's way)"}
    for v in ("1 host", "3 hosts", "sequential"):
        rs = raw[v]
        rows.append([labels[v], col(rs, "promote_s"), col(rs, "rollback_s"), col(rs, "flip_ms", 1),
                     col(rs, "rollback_flip_ms", 1), col(rs, "mixed_ms", 1), sum(x["requests"] for x in rs), sum(x["failed"] for x in rs)])
    print(header("A release across a fleet: webdock's switch beside host by host"))
    print(f"scripts/rig with 3 hosts (engines over mutual TLS), example app `{image}` {TAGS[0]} ⇄ {TAGS[1]}, "
          f"{a.rounds} rounds per variant, variants interleaved; load: bench/loadgen.py, {a.conns} keep-alive "
          f"connections, {a.rate:.0f} requests/s in all (GET /health/ and POST /echo/), through an nginx made "
          f"from `webdock lb-snippet`. Medians (max) over the rounds; failed requests summed. The poller "
          f"window is the time between the first and the last host answering the new tag, seen from outside "
          f"(one keep-alive poller per host nginx, a request every 5 ms plus its answer time).\n")
    print(md_table(["release", "promote, s", "rollback, s", "flip window (history), ms",
                    "rollback's flip window, ms", "mixed versions (pollers), ms", "requests", "failed"], rows))
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
