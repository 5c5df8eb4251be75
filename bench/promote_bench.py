#!/usr/bin/env python3
"""Promote under load (issue 3): failed requests and latency through the host
nginx while the portal switches releases, four ways, side by side in one run.

  webdock   `webdock promote TAG` (release command, idle color, health over
            the unix socket, symlink flip, verify, cron + djobs, prune)
  naive     `docker stop` the portal, `docker rm`, `docker run` the new tag on
            the same socket directory
  compose   `docker-compose up -d` with the new tag in the image name
            (bench/compose.yml): compose recreates the container
  reload    blue/green like webdock (idle color started, health-checked over
            its socket the same way, old color kept warm), but the host nginx
            is switched by rewriting its upstream file and `nginx -s reload`
            instead of the symlink flip

Each variant has its own host nginx (127.0.0.1, the config of
tests/common/mod.rs) whose proxy block is webdock's `nginx-snippet` (so the
proxy settings are identical; only the socket path differs), its own data
directory (SQLite, migrated once) and the same two images, built by webdock
from the example app: `webdock-bench:1.0.0` and `:1.0.1`.

One trial = start bench/loadgen.py (paced keep-alive GET+POST load, counts
every failure, no retries) on the variant's nginx, wait PAD s, switch to the
other tag, wait until the host nginx answers with the new tag, wait PAD s,
stop the load. A round runs one trial of every variant, in an order rotated
each round (interleaved, so the noise of this shared machine falls on all
variants alike); a webdock rollback trial follows the webdock promote in
every round with --rollback-every 1 (default: every second round).

Reported: requests, failures by kind, p50/p99/max latency of all answered
requests in the trials' windows; the switch time (command start until the
host nginx answers with the new tag); webdock's promote split by step (from
history.jsonl) and the rollback wall time.

    python3 bench/promote_bench.py [--rounds 20] [--rate 150] [--conns 32]

--worker-step OLD_BIN (issue 10, item 5) measures instead the `workers` step
of a promote (cron and every djob replaced stop-first, each followed by its
settle) with two webdock binaries side by side in one run: OLD_BIN and the
usual binary (WEBDOCK_BIN, default /work/target-bench/release/webdock). Each
binary drives its own project (its own host nginx, data directory, cron and
--djobs djobs, 4 by default) on the same two images (`webdock-bench10:1.0.0`
and `:1.0.1`, built by the usual binary from the example app, knowing the
djobs billing, email2fax, reports, sync). A third project, driven by the
usual binary, has one djob and no cron: the reference of what one worker's
swap + settle costs alone (--no-one-worker drops it). Every round promotes
each project to the other tag, in an order rotated every round, so the noise
of the shared machine falls on all alike; no load generator (the portal's
traffic is not what is measured). Read from each promote's `--json` events:
the `workers` step's `seconds` and each role's `down_ms` (stop, remove,
create, start); the whole promote is history's `seconds`. Reported: median
and min–max per project, the ratios of the medians (old/new, new/one worker),
and each worker's down plus its settle added up (the step as it would be done
one worker after another, computed).

    python3 bench/promote_bench.py --worker-step OLD_BIN --old-name COMMIT [--rounds 10] [--djobs 4]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (Nginx, Project, docker, ensure_app_images, fmt_s, header, http_get,  # noqa: E402
                    log, machine, md_table, median, pct, remove_containers, run, unix_get,
                    wait_until, webdock_bin)

BENCH = Path(__file__).resolve().parent
IMAGE = "webdock-bench"
TAGS = ("1.0.0", "1.0.1")
LABEL = "webdock.bench=promote"
PROCESSES = 4


def portal_env(project):
    return {
        "WEBDOCK_ROLE": "portal", "WEBDOCK_PROJECT": project,
        "WEBDOCK_WSGI": "portal.wsgi:application", "WEBDOCK_UWSGI_PROCESSES": str(PROCESSES),
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1", "DJANGO_SECRET_KEY": "bench-not-secret",
    }


def docker_run_portal(name, tag, sock_dir, data_dir, project):
    args = ["run", "-d", "--name", name, "--label", LABEL, "--stop-timeout", "35",
            "-v", f"{data_dir}:/data", "-v", f"{sock_dir}:/run/webdock/sock"]
    for k, v in portal_env(project).items():
        args += ["-e", f"{k}={v}"]
    # what webdock sets from the image's webdock.tag label (and older images bake in)
    args += ["-e", f"WEBDOCK_RELEASE={tag}"]
    docker(*args, f"{IMAGE}:{tag}")


def migrate(data_dir, project):
    args = ["run", "--rm", "--label", LABEL, "-v", f"{data_dir}:/data",
            "-e", "WEBDOCK_ROLE=release"]
    for k, v in portal_env(project).items():
        if k != "WEBDOCK_ROLE":
            args += ["-e", f"{k}={v}"]
    docker(*args, f"{IMAGE}:{TAGS[0]}", "python", "manage.py", "migrate", "--noinput")


def snippet_for(template, sock_path):
    """webdock's snippet with the proxied socket replaced."""
    lines = []
    for l in template.splitlines():
        if l.strip().startswith("proxy_pass http://unix:"):
            l = f"    proxy_pass http://unix:{sock_path}:;"
        lines.append(l)
    return "\n".join(lines) + "\n"


def wait_healthy_unix(sock, tag, consecutive=3, interval=0.1, deadline=90):
    """What webdock's health check does, by hand: N consecutive 2xx naming tag."""
    end = time.monotonic() + deadline
    ok = 0
    while time.monotonic() < end:
        st, rel = unix_get(sock) if Path(sock).exists() else (None, None)
        if st and 200 <= st < 300 and rel == tag:
            ok += 1
            if ok >= consecutive:
                return
        else:
            ok = 0
        time.sleep(interval)
    raise RuntimeError(f"{sock} not healthy for {tag} within {deadline} s")


class Variant:
    name = ""

    def __init__(self, root, template):
        self.dir = Path(tempfile.mkdtemp(prefix=f"webdock-bench-{self.name}-", dir=root))
        os.chmod(self.dir, 0o755)
        self.data = self.dir / "data"
        self.data.mkdir()
        self.project = f"bench{self.name}{os.getpid() % 100000}"
        self.template = template
        self.live = None
        self.nginx = None

    def other(self):
        return TAGS[1] if self.live == TAGS[0] else TAGS[0]

    def sockdir(self, sub):
        d = self.dir / sub
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)
        return d

    def stop(self):
        if self.nginx:
            self.nginx.stop()


class Webdock(Variant):
    name = "webdock"

    def setup(self):
        self.p = Project("pw", IMAGE, self.dir / "app-unused")
        self.p.app.mkdir()
        snip = self.p.tmp / "snippet.conf"
        snip.write_text(self.p.snippet())
        self.nginx = Nginx(self.p.tmp / "nginx", f"    include {snip};")
        self.p.public_url = f"http://127.0.0.1:{self.nginx.port}/health/"
        self.p.write_config()
        self.p.webdock("promote", TAGS[0], timeout=600)
        self.live = TAGS[0]
        self.promotes = []  # history entries + external wall
        self.rollbacks = []

    def switch(self, tag):
        t0 = time.monotonic()
        p = subprocess.Popen(self.p.cmd("--json", "promote", tag), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        flip_at = None
        for line in p.stdout:
            if '"step":"flip"' in line and '"status":"done"' in line:
                flip_at = time.monotonic() - t0
        err = p.stderr.read()
        if p.wait() != 0:
            raise RuntimeError(f"webdock promote {tag} failed: {err[-2000:]}")
        wall = time.monotonic() - t0
        h = self.p.history()[-1]
        assert h["tag"] == tag and h["outcome"] == "ok", h
        self.promotes.append({"wall": wall, "flip_at": flip_at, "history": h})
        self.live = tag

    def rollback(self):
        t0 = time.monotonic()
        p = subprocess.Popen(self.p.cmd("--json", "rollback"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        flip_at = None
        for line in p.stdout:
            if '"step":"flip"' in line and '"status":"done"' in line:
                flip_at = time.monotonic() - t0
        err = p.stderr.read()
        if p.wait() != 0:
            raise RuntimeError(f"webdock rollback failed: {err[-2000:]}")
        wall = time.monotonic() - t0
        h = self.p.history()[-1]
        assert h["action"] == "rollback" and h["outcome"] == "ok", h
        self.rollbacks.append({"wall": wall, "flip_at": flip_at, "history": h})
        self.live = h["tag"]

    def stop(self):
        super().stop()
        self.p.cleanup()


class Naive(Variant):
    name = "naive"

    def setup(self):
        self.sock = self.sockdir("sock")
        self.cname = f"{self.project}-portal"
        self.nginx = Nginx(self.dir / "nginx", snippet_for(self.template, self.sock / "nginx.sock"))
        migrate(self.data, self.project)
        docker_run_portal(self.cname, TAGS[0], self.sock, self.data, self.project)
        self.live = TAGS[0]

    def switch(self, tag):
        docker("stop", "-t", "35", self.cname)
        docker("rm", self.cname)
        docker_run_portal(self.cname, tag, self.sock, self.data, self.project)
        self.live = tag


class Compose(Variant):
    name = "compose"

    def env(self, tag):
        return {"BENCH_IMAGE": IMAGE, "BENCH_TAG": tag, "BENCH_SOCK": str(self.sock),
                "BENCH_DATA": str(self.data), "BENCH_PROJECT": self.project,
                "BENCH_PROCESSES": str(PROCESSES)}

    def compose(self, tag, *args):
        return run(["docker-compose", "-p", self.project, "-f", str(BENCH / "compose.yml"), *args],
                   env=self.env(tag), timeout=300)

    def setup(self):
        self.sock = self.sockdir("sock")
        self.nginx = Nginx(self.dir / "nginx", snippet_for(self.template, self.sock / "nginx.sock"))
        migrate(self.data, self.project)
        self.compose(TAGS[0], "up", "-d")
        self.live = TAGS[0]

    def switch(self, tag):
        self.compose(tag, "up", "-d")
        self.live = tag

    def stop(self):
        super().stop()
        if not os.environ.get("BENCH_KEEP"):
            run(["docker-compose", "-p", self.project, "-f", str(BENCH / "compose.yml"), "down",
                 "-t", "5"], env=self.env(self.live or TAGS[0]), check=False, timeout=300)


class Reload(Variant):
    name = "reload"

    def setup(self):
        self.colors = {c: self.sockdir(c) for c in ("blue", "green")}
        self.upstream = self.dir / "upstream.conf"
        self.color = "blue"
        self.upstream.write_text(snippet_for(self.template, self.colors["blue"] / "nginx.sock"))
        self.nginx = Nginx(self.dir / "nginx", f"    include {self.upstream};")
        migrate(self.data, self.project)
        self.start_color("blue", TAGS[0])
        self.live = TAGS[0]
        self.start_to_healthy = []

    def cname(self, color):
        return f"{self.project}-portal-{color}"

    def start_color(self, color, tag):
        """(seconds to stop + remove the color's old container, seconds from
        `docker run` to healthy)."""
        sock = self.colors[color] / "nginx.sock"
        t0 = time.monotonic()
        docker("stop", "-t", "35", self.cname(color), check=False)
        docker("rm", self.cname(color), check=False)
        if sock.exists():
            sock.unlink()
        t1 = time.monotonic()
        docker_run_portal(self.cname(color), tag, self.colors[color], self.data, self.project)
        wait_healthy_unix(sock, tag)
        return t1 - t0, time.monotonic() - t1

    def switch(self, tag):
        idle = "green" if self.color == "blue" else "blue"
        self.start_to_healthy.append(self.start_color(idle, tag))
        self.upstream.write_text(snippet_for(self.template, self.colors[idle] / "nginx.sock"))
        self.nginx.reload()
        self.color = idle
        self.live = tag


class Load:
    def __init__(self, port, args):
        self.p = subprocess.Popen(
            [sys.executable, str(BENCH / "loadgen.py"), "--port", str(port), "--conns",
             str(args.conns), "--rate", str(args.rate), "--timeout", str(args.timeout)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stderr.readline()
        if "ready" not in line:
            raise RuntimeError(f"loadgen did not start: {line}{self.p.stderr.read()}")

    def finish(self):
        self.p.send_signal(signal.SIGINT)
        out, err = self.p.communicate(timeout=120)
        if self.p.returncode != 0:
            raise RuntimeError(f"loadgen failed: {err}")
        return json.loads(out)


def trial(v, args, action):
    """Load on v's nginx, PAD, the action, wait for the new tag, PAD, stop."""
    load = Load(v.nginx.port, args)
    time.sleep(args.pad)
    t0 = time.monotonic()
    action()
    t_cmd = time.monotonic() - t0
    want = v.live
    wait_until(f"{v.name} answering {want}", 120,
               lambda: http_get(v.nginx.port)[1] == want, every=0.02)
    t_new = time.monotonic() - t0
    time.sleep(args.pad)
    r = load.finish()
    r["cmd_s"] = t_cmd
    r["switch_s"] = t_new
    fails = sum(r[k] for k in ("connect", "write", "read", "timeout")) + sum(r["non2xx"].values())
    log(f"  {v.name:8} → {want}: cmd {t_cmd:5.2f} s, new tag after {t_new:5.2f} s, "
        f"{r['requests']} requests, {fails} failed")
    return r


def summarize(trials):
    lat = sorted(x for t in trials for x in t["lat_us"])
    s = {k: sum(t[k] for t in trials) for k in ("requests", "ok", "connect", "write", "read",
                                                 "timeout", "read_idle")}
    non = {}
    for t in trials:
        for code, n in t["non2xx"].items():
            non[code] = non.get(code, 0) + n
    s["non2xx"] = non
    s["failed"] = s["connect"] + s["write"] + s["read"] + s["timeout"] + sum(non.values())
    s["trials_with_failures"] = sum(
        1 for t in trials
        if t["connect"] + t["write"] + t["read"] + t["timeout"] + sum(t["non2xx"].values()))
    s["p50"], s["p99"], s["max"] = (pct(lat, 50) / 1000, pct(lat, 99) / 1000, lat[-1] / 1000) \
        if lat else (float("nan"),) * 3
    s["switch"] = median([t["switch_s"] for t in trials])
    s["switch_max"] = max(t["switch_s"] for t in trials)
    s["n"] = len(trials)
    s["errors"] = [e for t in trials for e in t["errors"]][:8]
    return s


def report(args, results, wd, rl):
    out = [header("Promote under load: webdock vs naive restart vs docker-compose vs nginx reload"), ""]
    out.append(f"Load: {args.conns} keep-alive connections, {args.rate:g} requests/s in total "
               f"(GET /health/ and POST /echo/ alternating), through the host nginx; "
               f"{args.pad:g} s of load before and after each switch; {args.rounds} rounds.")
    out.append("")
    rows = []
    for name in ("webdock", "rollback", "naive", "compose", "reload"):
        if name not in results:
            continue
        s = summarize(results[name])
        non = ", ".join(f"{k}: {v}" for k, v in sorted(s["non2xx"].items())) or "0"
        rows.append([name, s["n"], s["requests"], f"**{s['failed']}**", s["trials_with_failures"],
                     s["connect"], s["write"],
                     f"{s['read']} ({s['read_idle']} idle)" if s["read"] else "0",
                     s["timeout"], non, fmt_s(s["p50"], 1), fmt_s(s["p99"], 1),
                     fmt_s(s["max"], 0), fmt_s(s["switch"], 2), fmt_s(s["switch_max"], 2)])
    out.append(md_table(["variant", "switches", "requests", "failed", "switches with failures",
                         "connect", "write", "read", "timeout", "non-2xx", "p50 ms", "p99 ms",
                         "max ms", "switch median s", "switch max s"], rows))
    out.append("")
    out.append("`switch` = from the start of the command until the host nginx answers with the new "
               "tag (webdock and compose: the command itself; naive and reload: the script's "
               "docker/nginx commands). `read (n idle)`: n of the read failures were a reused "
               "keep-alive connection closed with no byte of answer.")
    # webdock promote split by step
    steps = {}
    for p in wd.promotes:
        for name, secs in p["history"]["steps"]:
            steps.setdefault(name, []).append(secs)
    if wd.promotes:
        out.append("")
        out.append(f"webdock promote, split by step (history.jsonl, {len(wd.promotes)} promotes "
                   "under load), median / max seconds:")
        out.append("")
        rows = [[f"`{k}`", fmt_s(median(v)), fmt_s(max(v))] for k, v in steps.items()]
        walls = [p["wall"] for p in wd.promotes]
        hist = [p["history"]["seconds"] for p in wd.promotes]
        flips = [p["flip_at"] for p in wd.promotes if p["flip_at"]]
        rows.append(["total in history (`seconds`)", fmt_s(median(hist)), fmt_s(max(hist))])
        rows.append(["wall time of the command (client side)", fmt_s(median(walls)), fmt_s(max(walls))])
        rows.append(["… of which until the flip was done", fmt_s(median(flips)), fmt_s(max(flips))])

        def per(p, names):
            return sum(s for n, s in p["history"]["steps"] if n in names)
        sth = [per(p, ("start-portal", "health")) for p in wd.promotes]
        over = [p["wall"] - per(p, ("start-portal", "health")) for p in wd.promotes]
        own = [p["wall"] - per(p, ("start-portal", "health", "release", "workers")) for p in wd.promotes]
        rows.append(["new container start-to-healthy (`start-portal` + `health`; "
                     "`start-portal` includes stopping and removing the idle color's old "
                     "container)", fmt_s(median(sth)), fmt_s(max(sth))])
        rows.append(["**overhead beyond start-to-healthy** (wall − start-portal − health)",
                     fmt_s(median(over)), fmt_s(max(over))])
        rows.append(["… minus the release command and the workers too (webdock's own)",
                     fmt_s(median(own)), fmt_s(max(own))])
        if rl and rl.start_to_healthy:
            both = [a + b for a, b in rl.start_to_healthy]
            run_h = [b for _, b in rl.start_to_healthy]
            rows.append(["by hand in the same run (reload variant): `docker stop` + `docker rm` of "
                         "the idle color's old container, `docker run`, the same health check",
                         fmt_s(median(both)), fmt_s(max(both))])
            rows.append(["… of which `docker run` to healthy", fmt_s(median(run_h)),
                         fmt_s(max(run_h))])
        out.append(md_table(["step", "median s", "max s"], rows))
    if wd.rollbacks:
        out.append("")
        out.append(f"webdock rollback ({len(wd.rollbacks)} under load), median / max seconds:")
        out.append("")
        rsteps = {}
        for p in wd.rollbacks:
            for name, secs in p["history"]["steps"]:
                rsteps.setdefault(name, []).append(secs)
        rows = [[f"`{k}`", fmt_s(median(v)), fmt_s(max(v))] for k, v in rsteps.items()]
        walls = [p["wall"] for p in wd.rollbacks]
        flips = [p["flip_at"] for p in wd.rollbacks if p["flip_at"]]
        rows.append(["wall time of `webdock rollback`", fmt_s(median(walls)), fmt_s(max(walls))])
        rows.append(["… until the flip was done (traffic back on the previous release)",
                     fmt_s(median(flips)), fmt_s(max(flips))])
        out.append(md_table(["step", "median s", "max s"], rows))
    errs = []
    for name in ("webdock", "rollback", "naive", "compose", "reload"):
        if name in results:
            e = summarize(results[name])["errors"]
            if e:
                errs.append(f"- {name}: " + "; ".join(e[:4]))
    if errs:
        out.append("")
        out.append("First failures seen (seconds since that trial's load started):")
        out.append("")
        out.extend(errs)
    return "\n".join(out)


# ---------------------------------------------------------------- --worker-step

WS_IMAGE = "webdock-bench10"
WS_DJOBS = ("billing", "email2fax", "reports", "sync")
CRON_SETTLE = 1.0   # webdock's default [cron] settle, s
DJOB_SETTLE = 2.0   # webdock's default [djobs.*] settle, s


class WorkerStepProject:
    """One binary's project: cron + djobs on WS_IMAGE, its own host nginx.
    With cron=False and one djob: the reference of one worker alone."""

    def __init__(self, label, binary, djobs, root, cron=True):
        self.label = label
        self.binary = binary
        self.workers = (["cron"] if cron else []) + list(djobs)
        # Project's config has billing and email2fax; the others go in extra
        extra = "".join(f'[djobs.{n}]\ncommand = ["python", "manage.py", "djob", "{n}"]\n'
                        f'stop_grace = "10s"\n' for n in djobs if n not in ("billing", "email2fax"))
        self.p = Project(f"ws{label}", WS_IMAGE, Path(root) / "app-unused", extra=extra,
                         workdir=root, binary=binary,
                         name=f"bench10-{label}-{os.getpid() % 100000}")
        self.p.app.mkdir(exist_ok=True)
        write = self.p.write_config

        def write_config():
            write()
            text = self.p.config.read_text()
            for n in ("billing", "email2fax"):
                if n not in djobs:
                    text = text.replace(f'[djobs.{n}]\ncommand = ["python", "manage.py", "djob", '
                                        f'"{n}"]\nstop_grace = "10s"\n', "")
            if not cron:
                text = text.replace("[cron]\n", "[cron]\nenabled = false\n")
            self.p.config.write_text(text)
        self.p.write_config = write_config
        write_config()
        self.nginx = None
        self.promotes = []
        self.live = None

    def setup(self):
        snip = self.p.tmp / "snippet.conf"
        snip.write_text(self.p.snippet())
        self.nginx = Nginx(self.p.tmp / "nginx", f"    include {snip};")
        self.p.public_url = f"http://127.0.0.1:{self.nginx.port}/health/"
        self.p.write_config()
        self.promote(TAGS[0], record=False)

    def promote(self, tag, record=True):
        t0 = time.monotonic()
        p = run(self.p.cmd("--json", "promote", tag), timeout=900)
        wall = time.monotonic() - t0
        workers = None
        for line in p.stdout.splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("step") == "workers" and ev.get("status") == "done":
                workers = ev
        h = self.p.history()[-1]
        assert h["tag"] == tag and h["outcome"] == "ok", h
        if workers is None:  # no event: take the step's seconds from history
            secs = [s for n, s in h["steps"] if n == "workers"]
            workers = {"seconds": secs[0] if secs else float("nan"), "replaced": []}
        down = {r["role"]: r["down_ms"] / 1000 for r in workers.get("replaced", [])}
        self.live = tag
        if record:
            self.promotes.append({"workers": workers["seconds"], "down": down,
                                  "seconds": h["seconds"], "wall": wall, "steps": h["steps"]})
        log(f"  {self.label:>8} → {tag}: workers {workers['seconds']:5.2f} s "
            f"(down {median(list(down.values())):5.2f} s median of {len(down)}), "
            f"promote {h['seconds']:5.2f} s")

    def stop(self):
        if self.nginx:
            self.nginx.stop()
        self.p.cleanup()


def worker_step_report(args, projs):
    by = {pr.label: pr for pr in projs}
    old, new = by["old"], by["new"]
    shown = {"old": f"old ({args.old_name})", "new": f"new ({machine()['webdock']})",
             "one": "new, one djob alone"}
    rounds = len(new.promotes)
    out = [header("The workers step of a promote: two webdock builds side by side"), ""]
    out.append(f"- binaries: **old** = `{old.binary}` (built from {args.old_name}); "
               f"**new** = `{new.binary}` (built from the commit above)")
    out.append(f"- per binary: its own project ({', '.join(new.workers)}; each `settle` at its "
               f"default: cron {CRON_SETTLE:g} s, djobs {DJOB_SETTLE:g} s) and host nginx, the "
               f"same images `{WS_IMAGE}:{TAGS[0]}` ⇄ `:{TAGS[1]}`; {rounds} promotes each, "
               "interleaved (the order rotates every round), no load")
    if "one" in by:
        out.append(f"- reference **one worker**: the new binary on a third project with "
                   f"{' and '.join(by['one'].workers)} only (cron off), in the same rotation: "
                   "what one worker's swap + settle costs by itself")
    out.append("")
    rows = []
    med = {}
    for pr in projs:
        w = [x["workers"] for x in pr.promotes]
        tot = [x["seconds"] for x in pr.promotes]
        dn = [d for x in pr.promotes for d in x["down"].values()]
        med[pr.label] = (median(w), median(tot), median(dn))
        rows.append([shown[pr.label], len(pr.workers), len(w), f"**{fmt_s(median(w))}**",
                     f"{fmt_s(min(w))}–{fmt_s(max(w))}", fmt_s(median(dn)),
                     fmt_s(median(tot)), f"{fmt_s(min(tot))}–{fmt_s(max(tot))}"])
    in_turn = None
    if "one" in by:
        # the same workers replaced one after another, each as fast as one
        # djob alone: its down each, plus each worker's own settle
        in_turn = sum(med["one"][2] + (CRON_SETTLE if w == "cron" else DJOB_SETTLE)
                      for w in new.workers)
        rows.append([f"{len(new.workers)} workers one after another (estimate: each the "
                     "one-djob `down` + its settle)", len(new.workers), "",
                     f"{fmt_s(in_turn)}", "", "", "", ""])
    rows.append(["ratio old/new (medians)", "", "", f"**{med['old'][0] / med['new'][0]:.2f}×**",
                 "", f"{med['old'][2] / med['new'][2]:.2f}×",
                 f"{med['old'][1] / med['new'][1]:.2f}×", ""])
    if "one" in by:
        rows.append(["ratio new/one djob alone (medians)", "", "",
                     f"{med['new'][0] / med['one'][0]:.2f}×", "",
                     f"{med['new'][2] / med['one'][2]:.2f}×", "", ""])
        rows.append(["ratio one after another (estimate)/new", "", "",
                     f"{in_turn / med['new'][0]:.2f}×", "", "", "", ""])
    out.append(md_table(["binary", "workers", "promotes", "workers step median s",
                         "workers step min–max s", "one worker's swap (`down`) median s",
                         "whole promote median s", "whole promote min–max s"], rows))
    out.append("")
    out.append("`workers step` = the step's `seconds` in the promote's `--json` `done` event "
               "(the same as history's). `down` = one worker's stop + remove + create + start "
               "(`replaced[].down_ms`, all workers of all promotes pooled). Whole promote = "
               "history's `seconds`. The one-after-another row is computed, not run.")
    # per step, both binaries
    names = []
    for pr in projs:
        for x in pr.promotes:
            for n, _ in x["steps"]:
                if n not in names:
                    names.append(n)
    rows = []
    for n in names:
        row = [f"`{n}`"]
        for pr in projs:
            v = [sec for x in pr.promotes for m, sec in x["steps"] if m == n]
            row.append(fmt_s(median(v)) if v else "–")
        rows.append(row)
    out.append("")
    out.append("Each step, median s (history.jsonl):")
    out.append("")
    out.append(md_table(["step"] + [shown[pr.label] for pr in projs], rows))
    return "\n".join(out)


def worker_step_main(args):
    djobs = WS_DJOBS[: args.djobs]
    new_bin = webdock_bin()
    ensure_app_images(WS_IMAGE, TAGS, djobs=WS_DJOBS)
    root = Path(tempfile.mkdtemp(prefix="webdock-bench-workers-"))
    os.chmod(root, 0o755)
    projs = [WorkerStepProject("old", args.worker_step, djobs, root),
             WorkerStepProject("new", new_bin, djobs, root)]
    if args.one_worker:
        projs.append(WorkerStepProject("one", new_bin, djobs[:1], root, cron=False))
    t_start = time.monotonic()
    try:
        for pr in projs:
            log(f"setting up {pr.label}: {pr.binary}, project {pr.p.name}")
            pr.setup()
        for r in range(args.rounds):
            order = projs[r % len(projs):] + projs[:r % len(projs)]
            log(f"round {r + 1}/{args.rounds}: {' '.join(pr.label for pr in order)}")
            for pr in order:
                pr.promote(TAGS[1] if pr.live == TAGS[0] else TAGS[0])
        log(f"done in {time.monotonic() - t_start:.0f} s")
        print(worker_step_report(args, projs))
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(
                {pr.label: {"binary": pr.binary, "promotes": pr.promotes} for pr in projs},
                indent=1))
    finally:
        for pr in projs:
            try:
                pr.stop()
            except Exception as e:  # keep cleaning up the other
                log(f"cleanup of {pr.label}: {e}")
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20, help="switches per variant")
    ap.add_argument("--rollback-every", type=int, default=2,
                    help="a webdock rollback trial after the webdock promote every N rounds (0: none)")
    ap.add_argument("--variants", default="webdock,naive,compose,reload")
    ap.add_argument("--rate", type=float, default=150,
                    help="requests/s in total (this machine answers ~400/s steady: keep it well below)")
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=5, help="per-request timeout of the load, s")
    ap.add_argument("--pad", type=float, default=1.0, help="seconds of load before and after a switch")
    ap.add_argument("--json-out")
    ap.add_argument("--worker-step", metavar="OLD_BIN",
                    help="instead: the workers step of OLD_BIN's promote beside WEBDOCK_BIN's, "
                         f"interleaved, --rounds promotes each (images {WS_IMAGE}:*)")
    ap.add_argument("--old-name", default="OLD_BIN",
                    help="with --worker-step: the commit OLD_BIN was built from, for the report")
    ap.add_argument("--djobs", type=int, default=4, choices=range(2, len(WS_DJOBS) + 1),
                    help="with --worker-step: djobs per project beside cron (the example's "
                         "billing and email2fax, then reports, sync)")
    ap.add_argument("--no-one-worker", dest="one_worker", action="store_false",
                    help="with --worker-step: skip the reference project of one djob alone")
    args = ap.parse_args()
    if args.worker_step:
        return worker_step_main(args)
    ensure_app_images(IMAGE, TAGS)
    root = Path(tempfile.mkdtemp(prefix="webdock-bench-promote-"))
    os.chmod(root, 0o755)
    tmpl_proj = Project("tmpl", IMAGE, root)
    template = tmpl_proj.snippet()
    tmpl_proj.cleanup()
    classes = {"webdock": Webdock, "naive": Naive, "compose": Compose, "reload": Reload}
    names = [n for n in args.variants.split(",") if n]
    variants = {}
    results = {}
    t_start = time.monotonic()
    try:
        for n in names:
            log(f"setting up {n}")
            v = classes[n](root, template)
            variants[n] = v
            v.setup()
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            log(f"round {r + 1}/{args.rounds}: {' '.join(order)}")
            for n in order:
                v = variants[n]
                results.setdefault(n, []).append(trial(v, args, lambda: v.switch(v.other())))
                if n == "webdock" and args.rollback_every and r % args.rollback_every == 0:
                    results.setdefault("rollback", []).append(trial(v, args, v.rollback))
        log(f"done in {time.monotonic() - t_start:.0f} s")
        print(report(args, results, variants.get("webdock"), variants.get("reload")))
        if args.json_out:
            slim = {k: [{kk: vv for kk, vv in t.items() if kk != "lat_us"} for t in v]
                    for k, v in results.items()}
            Path(args.json_out).write_text(json.dumps(slim, indent=1))
    finally:
        for v in variants.values():
            try:
                v.stop()
            except Exception as e:  # keep cleaning up the others
                log(f"cleanup of {v.name}: {e}")
        if not os.environ.get("BENCH_KEEP"):
            remove_containers(f"label={LABEL}")
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
