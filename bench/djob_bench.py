#!/usr/bin/env python3
"""Djob downtime (issue 4): how long a djob is down — its old process
stopped, its new process up — during `webdock restart djob` and during
`webdock promote`, beside the same container stopped and started with the
docker CLI. Side by side in one run, the order rotated every round.

  restart      `webdock restart djob billing`
  promote      `webdock promote TAG` (the other tag each time): cron and both
               djobs replaced stop-first, in parallel (billing and email2fax
               are reported separately)
  cli-restart  `docker stop` + `docker start` of the same container: the
               container's own stop + start time
  cli-replace  `docker stop` + `docker rm` + `docker run` with the container's
               configuration (what webdock's stop-first replacement does, by
               hand with the CLI)

Down time comes from the djob's own heartbeat log in the data directory
(examples/portal/portal/management/commands/djob.py writes `start`, `beat`
every 0.2 s and `stop` lines with the container, pid and time.time_ns(),
fsynced): down = `start` of the new instance − `stop` of the old one. The
`stop` line is written when the old process has handled SIGTERM, the `start`
line when the new process has loaded Django and entered its loop: the time
nothing runs. Also reported: webdock's own `down_ms` (remove + create +
start, as the command prints it) and the command wall times, and any overlap
(a beat of the old instance after the new one started: must be 0).

    python3 bench/djob_bench.py [--rounds 20]
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (Project, docker, ensure_app_images, fmt_s, header, log, md_table,  # noqa: E402
                    median, run, wait_until)

IMAGE = "webdock-bench"
TAGS = ("1.0.0", "1.0.1")


def read_log(path):
    """[(event, instance, ns)], instance = (container hostname, pid)."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4:
            out.append((parts[0], (parts[1], parts[2]), int(parts[3])))
    return out


class Djob:
    def __init__(self, p, name):
        self.p = p
        self.name = name
        self.log = p.data / "logs" / f"djob-{name}.log"
        self.container = f"{p.name}-djob-{name}"

    def current(self):
        """Index (in the log) of the `start` line of the instance that started
        last. A `docker start` of the same container gives the same container
        and often the same pid, so instances are told apart by their start line."""
        ev = read_log(self.log)
        starts = [k for k, e in enumerate(ev) if e[0] == "start"]
        return starts[-1] if starts else None

    def wait_running(self, not_instance=None, secs=60):
        def f():
            k = self.current()
            if k is not None and k != not_instance:
                return [k]  # truthy even for index 0
            return None
        return wait_until(f"djob {self.name} running", secs, f)[0]

    def gap(self, old, new):
        """(down seconds, overlapping lines) between the instances whose start
        lines are at `old` and `new`: `start` of new − `stop` of old; lines of
        the old instance stamped after the new one's start are an overlap."""
        ev = read_log(self.log)
        key = ev[old][1]
        new_start = ev[new][2]
        stop = None
        overlap = 0
        for e, inst, ns in ev[old + 1:]:
            if inst != key:
                continue
            if ns > new_start:
                overlap += 1
            if e == "stop":
                stop = ns
                break
        if stop is None:
            raise RuntimeError(f"djob {self.name}: no stop line of the old instance in {self.log}")
        return (new_start - stop) / 1e9, overlap


def cli_replace(name):
    """docker stop + rm + run with the container's own configuration."""
    info = json.loads(docker("inspect", name).stdout)[0]
    cfg, host = info["Config"], info["HostConfig"]
    args = ["run", "-d", "--name", name]
    for e in cfg.get("Env") or []:
        args += ["-e", e]
    for k, v in (cfg.get("Labels") or {}).items():
        args += ["--label", f"{k}={v}"]
    for b in host.get("Binds") or []:
        args += ["-v", b]
    rp = host.get("RestartPolicy") or {}
    if rp.get("Name"):
        args += ["--restart", rp["Name"]]
    if cfg.get("StopTimeout"):
        args += ["--stop-timeout", str(cfg["StopTimeout"])]
    image = cfg["Image"]
    t = {}
    t0 = time.monotonic()
    docker("stop", name)
    t["stop"] = time.monotonic() - t0
    docker("rm", name)
    t1 = time.monotonic()
    docker(*args, image)
    t["run"] = time.monotonic() - t1
    t["wall"] = time.monotonic() - t0
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--ops", default="restart,cli-restart,cli-replace,promote")
    ap.add_argument("--json-out")
    a = ap.parse_args()
    ensure_app_images(IMAGE, TAGS)
    p = Project("dj", IMAGE, "/nonexistent-app")
    res = {}
    try:
        log(f"project {p.name}: promote {TAGS[0]}")
        p.webdock("promote", TAGS[0], timeout=600)
        live = TAGS[0]
        jobs = {n: Djob(p, n) for n in ("billing", "email2fax")}
        for j in jobs.values():
            j.wait_running()
        ops = [o for o in a.ops.split(",") if o]
        for r in range(a.rounds):
            order = ops[r % len(ops):] + ops[:r % len(ops)]
            log(f"round {r + 1}/{a.rounds}: {' '.join(order)}")
            for op in order:
                targets = ["billing", "email2fax"] if op == "promote" else ["billing"]
                before = {n: jobs[n].wait_running() for n in targets}
                rec = {}
                t0 = time.monotonic()
                if op == "restart":
                    out = p.webdock("--json", "restart", "djob", "billing", timeout=300).stdout
                    rec["down_ms"] = json.loads(out.strip().splitlines()[-1])["down_ms"]
                elif op == "promote":
                    tag = TAGS[1] if live == TAGS[0] else TAGS[0]
                    p.webdock("promote", tag, timeout=600)
                    live = tag
                    h = p.history()[-1]
                    rec["workers_s"] = dict(h["steps"]).get("workers")
                elif op == "cli-restart":
                    docker("stop", jobs["billing"].container)
                    rec["stop"] = time.monotonic() - t0
                    t1 = time.monotonic()
                    docker("start", jobs["billing"].container)
                    rec["start"] = time.monotonic() - t1
                elif op == "cli-replace":
                    rec.update(cli_replace(jobs["billing"].container))
                rec["wall"] = time.monotonic() - t0
                for n in targets:
                    new = jobs[n].wait_running(not_instance=before[n])
                    down, overlap = jobs[n].gap(before[n], new)
                    key = f"{op}:{n}" if op == "promote" else op
                    res.setdefault(key, []).append({**rec, "down": down, "overlap": overlap})
                    log(f"  {key:18} down {down:5.2f} s  (command {rec['wall']:5.2f} s)"
                        + (f", overlap {overlap}" if overlap else ""))
        print(report(a, res))
        if a.json_out:
            Path(a.json_out).write_text(json.dumps(res, indent=1))
    finally:
        p.cleanup()


def report(a, res):
    out = [header("Djob downtime: webdock restart / promote vs the docker CLI"), ""]
    names = {
        "restart": "`webdock restart djob billing`",
        "promote:billing": "`webdock promote` — billing",
        "promote:email2fax": "`webdock promote` — email2fax",
        "cli-restart": "`docker stop` + `docker start` (same container)",
        "cli-replace": "`docker stop` + `docker rm` + `docker run`",
    }
    rows = []
    for k in ("restart", "promote:billing", "promote:email2fax", "cli-restart", "cli-replace"):
        v = res.get(k)
        if not v:
            continue
        d = [x["down"] for x in v]
        w = [x["wall"] for x in v]
        extra = ""
        if k == "restart":
            dm = [x["down_ms"] / 1000 for x in v]
            extra = f"webdock's `down_ms`: median {median(dm):.2f} s, max {max(dm):.2f} s"
        elif k.startswith("promote"):
            ws = [x["workers_s"] for x in v if x.get("workers_s")]
            extra = f"`workers` step: median {median(ws):.2f} s"
        elif k == "cli-restart":
            extra = (f"`docker stop` {median([x['stop'] for x in v]):.2f} s + "
                     f"`docker start` {median([x['start'] for x in v]):.2f} s (medians)")
        elif k == "cli-replace":
            extra = (f"`docker stop` {median([x['stop'] for x in v]):.2f} s, "
                     f"`docker run` {median([x['run'] for x in v]):.2f} s (medians)")
        rows.append([names[k], len(v), f"**{fmt_s(median(d))}**", fmt_s(max(d)), fmt_s(min(d)),
                     sum(x["overlap"] for x in v), fmt_s(median(w)), extra])
    out.append(md_table(["operation", "n", "down median s", "down max s", "down min s",
                         "overlapping beats", "command wall median s", "notes"], rows))
    return "\n".join(out)


if __name__ == "__main__":
    main()
