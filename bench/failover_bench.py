#!/usr/bin/env python3
"""Takeover and planned moves of a djob across hosts (issue 13), on the test
rig (scripts/rig) with a real PostgreSQL (`up --postgres`) holding the lease.

One rig of 3 hosts, one project, the example app's `billing` djob placed on
`hosts = ["web2", "web3"]` with `[lease] window = WINDOW` (default 6 s). A
watcher thread reads this machine's process table (every rig container is a
process here) every 20 ms for the whole run: the running billing daemons of
the project are the processes whose command line is `manage.py djob billing`
and whose environ has WEBDOCK_PROJECT=<project>; WEBDOCK_HOST says the host.

  1. takeover   `failover = "auto"`: cut the host whose daemon runs
                (`scripts/rig cut`, its link down), time until the daemon runs
                on the other host; the old daemon's last sample and the new
                one's first give the gap (must be > 0); heal; wait until
                stable (2 windows, one daemon); repeat, so the cuts alternate
                between web2 and web3.
  2. planned    the same project switched to `failover = "manual"` (the
                config rewritten, applied by a `restart djob billing`), then
                rounds of `webdock failover djob billing --to OTHER` beside
                `webdock restart djob billing` (stop + start on the same
                host, no move), interleaved. Downtime = the stretch with no
                billing daemon in the process table around the command (from
                the last sample with the old daemon to the first with the new).

Through the whole run the watcher counts samples with two daemons of the
project (must be 0), and at the end the charges in the database are checked
for one written with a stale epoch after a newer holder wrote.

Needs root, what scripts/setup installs (psql), and an image of the example
app with the billing djob (`webdock-failbench:1.0.0`, built with webdock from
the current source: cached when nothing changed). Prints a header and
markdown tables for docs/benchmarks.md.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (EXAMPLE, REPO, build_config, copy_app, fmt_s, header, log,  # noqa: E402
                    md_table, median, run, webdock_bin)

RIG = str(REPO / "scripts" / "rig")
HOSTS = ["web1", "web2", "web3"]
WORKERS = ["web2", "web3"]
IMAGE = "webdock-failbench"
TAG = "1.0.0"


def rig_env(d, host=None):
    out = run([RIG, "env", d] + ([host] if host else [])).stdout
    env = {}
    for line in out.splitlines():
        if line.startswith("export ") and "=" in line:
            k, _, v = line[len("export "):].partition("=")
            env[k] = v.strip("'\"")
    return env


def build_image():
    """The example app as IMAGE:TAG, built by webdock from this source
    (the lease holder is part of the image): a cached no-op when unchanged."""
    tmp = Path(tempfile.mkdtemp(prefix="wdfo-img-"))
    try:
        app = copy_app(tmp / "app")
        cfg = build_config(tmp, IMAGE, app)
        log(f"building {IMAGE}:{TAG} with webdock")
        run([webdock_bin(), "-c", str(cfg), "build", TAG], timeout=1800)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_config(app, project, info, failover, window):
    text = f'''env_file = "app.env"
project = "{project}"
image = "{IMAGE}"
app = "{EXAMPLE}"
crontab = "crontab"
socket_root = "{app}/ctl/run"
state_root = "{app}/ctl/state"
volumes = ["{app}/data:/data"]
[env]
DJANGO_ALLOWED_HOSTS = "*"
DJANGO_SECRET_KEY = "bench-not-secret"
[portal]
processes = 2
stop_grace = "10s"
[health]
consecutive = 3
interval = "100ms"
deadline = "60s"
[lease]
postgres = "LEASE_DATABASE_URL"
window = "{window}s"
[cron]
enabled = false
[djobs.billing]
command = ["python", "manage.py", "djob", "billing"]
stop_grace = "5s"
hosts = ["web2", "web3"]
failover = "{failover}"
'''
    for h in HOSTS:
        e = info[h]
        c = e["RIG_DOCKER_CERT_PATH"]
        roles = '["portal", "worker"]' if h in WORKERS else '["portal"]'
        text += (f'[hosts.{h}]\nengine = "{e["RIG_DOCKER_TCP"]}"\n'
                 f'tls = {{ ca = "{c}/ca.pem", cert = "{c}/cert.pem", key = "{c}/key.pem" }}\n'
                 f'roles = {roles}\npublic_url = "{e["RIG_NGINX"]}/health/"\n'
                 f'socket_root = "{app}/{h}/run"\nstate_root = "{app}/{h}/state"\n')
    cfg = Path(app) / "webdock.toml"
    cfg.write_text(text)
    return str(cfg)


def billing_hosts(project):
    """WEBDOCK_HOST of every running billing daemon of PROJECT."""
    want = f"WEBDOCK_PROJECT={project}".encode()
    hosts = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            if b"manage.py" not in cmd or b"djob\0billing" not in cmd:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if want in env:
            host = next((v[len(b"WEBDOCK_HOST="):].decode() for v in env
                         if v.startswith(b"WEBDOCK_HOST=")), "?")
            hosts.append(host)
    return sorted(hosts)


class Watcher:
    """The process table every `every` seconds: (monotonic time, hosts)."""

    def __init__(self, project, every=0.02):
        self.project = project
        self.every = every
        self.samples = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop.is_set():
            t = time.monotonic()
            self.samples.append((t, billing_hosts(self.project)))
            time.sleep(max(0.0, self.every - (time.monotonic() - t)))

    def now(self):
        return self.samples[-1][1] if self.samples else None

    def doubles(self):
        return sum(1 for _, h in self.samples if len(h) > 1)

    def intervals(self):
        ts = [t for t, _ in self.samples]
        return sorted(b - a for a, b in zip(ts, ts[1:]))

    def close(self):
        self.stop.set()
        self.t.join(10)


def wait_for(what, secs, f, every=0.02):
    deadline = time.monotonic() + secs
    while True:
        v = f()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {secs} s waiting for {what}")
        time.sleep(every)


def one_daemon(w, secs=90):
    return wait_for("exactly one billing daemon", secs, lambda: len(w.now() or []) == 1 and w.now()[0])


def gap_around(w, t0, t1):
    """The first stretch without a daemon in [t0, t1]: (last sample with the
    old daemon, first sample with the new one), or None if never empty."""
    s = [x for x in w.samples if t0 - 1 <= x[0] <= t1]
    i = next((k for k in range(1, len(s)) if s[k][0] >= t0 and not s[k][1]), None)
    if i is None:
        return None
    j = next((k for k in range(i, len(s)) if s[k][1]), None)
    if j is None:
        return None
    return s[i - 1][0], s[j][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cuts", type=int, default=10, help="host cuts with auto failover (default 10)")
    ap.add_argument("--rounds", type=int, default=10,
                    help="planned rounds: a move to the other host and a restart each (default 10)")
    ap.add_argument("--window", type=int, default=6, help="[lease] window in seconds (default 6)")
    ap.add_argument("--json-out", help="write the raw numbers here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("error: the failover bench needs root (scripts/rig)")
    build_image()
    d = tempfile.mkdtemp(prefix="wdfo-", dir="/tmp")
    os.chmod(d, 0o755)
    project = f"fo{os.getpid() % 100000:05d}"
    raw = {"window_s": a.window, "cuts": [], "moves": [], "restarts": []}
    watcher = None
    pg = None
    stale = None
    try:
        run([RIG, "up", d, "3", "--postgres"], timeout=300)
        run([RIG, "load", d, f"{IMAGE}:{TAG}"], timeout=900)
        info = {h: rig_env(d, h) for h in HOSTS}
        pg = rig_env(d)["RIG_PG"]
        app = Path(d) / "app"
        app.mkdir()
        os.chmod(app, 0o755)
        envf = app / "app.env"
        envf.write_text(f"DATABASE_URL={pg}\nLEASE_DATABASE_URL={pg}\n")
        os.chmod(envf, 0o600)
        cfg = write_config(app, project, info, "auto", a.window)
        path_env = {"PATH": f"{d}/bin:{os.environ.get('PATH', '')}"}

        def wd(*args, check=True):
            return run([webdock_bin(), "-c", cfg, *args], timeout=600, env=path_env, check=check)

        for h in HOSTS:
            Path(info[h]["RIG_NGINX_INCLUDE"]).write_text(wd("nginx-snippet", "--host", h).stdout)
            run([RIG, "reload-nginx", d, h])
        watcher = Watcher(project)
        wd("promote", TAG)
        host = one_daemon(watcher)
        log(f"billing runs on {host}")
        time.sleep(3)

        # 1. takeover after a cut, failover = "auto"
        for i in range(a.cuts):
            host = one_daemon(watcher)
            other = WORKERS[1] if host == WORKERS[0] else WORKERS[0]
            t_cut = time.monotonic()
            run([RIG, "cut", d, host])
            try:
                wait_for(f"billing on {other}", a.window * 4 + 60, lambda: watcher.now() == [other])
            finally:
                run([RIG, "heal", d, host])
            s = [x for x in watcher.samples if x[0] >= t_cut - 1]
            first_new = next(t for t, hs in s if other in hs)
            last_old = max((t for t, hs in s if host in hs and t <= first_new), default=None)
            row = {"cut": host, "to": other, "takeover_s": first_new - t_cut,
                   "old_died_s": (last_old - t_cut) if last_old else None,
                   "gap_s": (first_new - last_old) if last_old else None}
            log(f"cut {i + 1} {host}: {row}")
            raw["cuts"].append(row)
            # stable: two windows after the heal, still one daemon, on `other`
            time.sleep(a.window * 2)
            if one_daemon(watcher) != other:
                raise RuntimeError(f"billing went back to {host} after the heal")
            time.sleep(2)

        # 2. planned moves beside restarts, failover = "manual"
        cfg = write_config(app, project, info, "manual", a.window)
        wd("restart", "djob", "billing")
        st = json.loads(wd("status", "--json").stdout)
        b = next(w for w in st["workers"] if w["role"] == "djob billing")
        if b.get("failover") != "manual":
            raise RuntimeError(f"billing is not manual after the restart: {b}")
        one_daemon(watcher)
        time.sleep(2)
        for r in range(a.rounds):
            ops = ["move", "restart"] if r % 2 == 0 else ["restart", "move"]
            for op in ops:
                host = one_daemon(watcher)
                other = WORKERS[1] if host == WORKERS[0] else WORKERS[0]
                target = other if op == "move" else host
                t0 = time.monotonic()
                if op == "move":
                    wd("failover", "djob", "billing", "--to", other)
                else:
                    wd("restart", "djob", "billing")
                wall = time.monotonic() - t0
                wait_for(f"billing on {target}", 90, lambda: watcher.now() == [target])
                g = gap_around(watcher, t0, time.monotonic())
                row = {"from": host, "to": target, "wall_s": wall,
                       "down_s": (g[1] - g[0]) if g else None}
                log(f"round {r + 1} {op}: {row}")
                raw["moves" if op == "move" else "restarts"].append(row)
                time.sleep(1)
        time.sleep(2)
        q = ("SELECT count(*) FROM (SELECT epoch, max(epoch) OVER (ORDER BY id ROWS BETWEEN "
             "UNBOUNDED PRECEDING AND 1 PRECEDING) AS before FROM portal_charge) c WHERE epoch < before")
        stale = run(["psql", "-X", "-q", "-At", rig_env(d)["RIG_PG_LOCAL"], "-c", q], check=False).stdout.strip()
        counts = run(["psql", "-X", "-q", "-At", rig_env(d)["RIG_PG_LOCAL"], "-c",
                      "SELECT count(DISTINCT epoch) || ' ' || count(*) FROM portal_charge"],
                     check=False).stdout.strip()
        raw["stale_charges"], raw["epochs_charges"] = stale, counts
    finally:
        if watcher:
            watcher.close()
        down = run([RIG, "down", d], check=False, timeout=300)
        if down.returncode == 0 and not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(d, ignore_errors=True)
        else:
            log(f"kept {d} (rig down exited {down.returncode}, or BENCH_KEEP is set)")

    raw["doubles"] = watcher.doubles()
    raw["samples"] = len(watcher.samples)
    iv = watcher.intervals()
    raw["interval_ms"] = {"median": median(iv) * 1000, "max": max(iv) * 1000}

    def mm(xs, digits=2):
        xs = [x for x in xs if x is not None]
        if not xs:
            return "–"
        return f"{fmt_s(median(xs), digits)} ({fmt_s(min(xs), digits)}–{fmt_s(max(xs), digits)})"

    cuts, moves, rest = raw["cuts"], raw["moves"], raw["restarts"]
    take = [c["takeover_s"] for c in cuts]
    gaps = [c["gap_s"] for c in cuts if c["gap_s"] is not None]
    print(header("A djob across hosts: takeover after a cut, planned move beside restart"))
    print(f"scripts/rig with 3 hosts and PostgreSQL (`up --postgres`), example app `{IMAGE}:{TAG}`, "
          f"billing on `hosts = [\"web2\", \"web3\"]`, `[lease] window = \"{a.window}s\"`; "
          f"{len(cuts)} cuts with `failover = \"auto\"`, then {len(moves)} moves and {len(rest)} restarts "
          f"with `failover = \"manual\"`, interleaved. Times from the process table read every 20 ms "
          f"(median interval {raw['interval_ms']['median']:.0f} ms, max {raw['interval_ms']['max']:.0f} ms; "
          f"{raw['samples']} samples). Medians (min–max), seconds.\n")
    target = a.window + 2
    print(md_table(["cut the host running billing (auto)", "n", "takeover (cut → new daemon)",
                    "old daemon's last sample after the cut", "gap old → new", f"target < {target} s"],
                   [["web2 ⇄ web3", len(cuts), mm(take), mm([c["old_died_s"] for c in cuts]), mm(gaps),
                     "met" if take and max(take) < target else "**not met**"]]))
    print()
    mdown = [m["down_s"] for m in moves if m["down_s"] is not None]
    rdown = [m["down_s"] for m in rest if m["down_s"] is not None]
    ok = mdown and rdown and median(mdown) <= median(rdown) + 0.5
    print(md_table(["planned (manual)", "n", "downtime (no daemon)", "command wall time"],
                   [["`failover djob billing --to OTHER` (move)", len(moves), mm(mdown),
                     mm([m["wall_s"] for m in moves])],
                    ["`restart djob billing` (same host)", len(rest), mm(rdown),
                     mm([m["wall_s"] for m in rest])]]))
    print()
    print(f"- move downtime − restart downtime (medians): "
          f"{(median(mdown) - median(rdown)) if ok is not None and mdown and rdown else float('nan'):+.2f} s; "
          f"target ≤ +0.5 s: {'met' if ok else '**not met**'}")
    print(f"- samples with two billing daemons over the whole run: {raw['doubles']} of {raw['samples']}; "
          f"cuts with a gap ≤ 0 (or none seen): {sum(1 for c in cuts if not c['gap_s'] or c['gap_s'] <= 0)}; "
          f"moves/restarts with no empty sample: {sum(1 for m in moves + rest if m['down_s'] is None)}")
    print(f"- charges written with a stale epoch after a newer holder wrote: {stale}; "
          f"distinct epochs and charges: {raw.get('epochs_charges')}")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
