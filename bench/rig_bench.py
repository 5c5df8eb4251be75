#!/usr/bin/env python3
"""How long the fleet test rig takes: `scripts/rig up` for 1 and 3 hosts
(hosts start in parallel), `scripts/rig load` of an image into every host,
and `scripts/rig down`; optionally `up --plain-tcp` (engines on plain TCP
instead of mutual TLS) and `up --postgres`.

Each round brings a rig up, loads the image, and takes it down; rounds
alternate the host counts so the machine's noise falls on all of them.
Prints a header and a markdown table for docs/benchmarks.md.

Needs root and what scripts/setup installs. The image loaded is the base
image `webdock-base:*` if there is one (what a fleet test loads), else
`--image`.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, docker, fmt_s, header, log, md_table, median, run  # noqa: E402

RIG = str(REPO / "scripts" / "rig")


def base_image():
    out = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "webdock-base").stdout.split()
    return out[0] if out else None


def one_round(n, image, opts):
    with tempfile.TemporaryDirectory(prefix="wdrig-", dir="/tmp") as d:
        t = time.monotonic()
        run([RIG, "up", d, str(n), *opts])
        up = time.monotonic() - t
        try:
            t = time.monotonic()
            run([RIG, "load", d, image])
            load = time.monotonic() - t
        finally:
            t = time.monotonic()
            run([RIG, "down", d])
            down = time.monotonic() - t
    return up, load, down


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="rounds per variant (default 5)")
    ap.add_argument("--image", help="image to load (default: the newest webdock-base:*)")
    ap.add_argument("--plain-tcp", action="store_true", help="also measure up --plain-tcp (1 host)")
    ap.add_argument("--postgres", action="store_true", help="also measure up --postgres (1 host)")
    ap.add_argument("--json-out", help="write the raw numbers here")
    a = ap.parse_args()
    image = a.image or base_image()
    if not image:
        sys.exit("no image to load: build the base image (cargo run -- base) or pass --image")
    size = docker("image", "inspect", "--format", "{{.Size}}", image).stdout.strip()
    variants = [("1 host", 1, []), ("3 hosts", 3, [])]
    if a.plain_tcp:
        variants.append(("1 host, --plain-tcp", 1, ["--plain-tcp"]))
    if a.postgres:
        variants.append(("1 host, --postgres", 1, ["--postgres"]))
    raw = {v[0]: [] for v in variants}
    for r in range(a.rounds):
        order = variants if r % 2 == 0 else list(reversed(variants))
        for name, n, opts in order:
            res = one_round(n, image, opts)
            log(f"round {r + 1} {name}: up {res[0]:.2f} s, load {res[1]:.2f} s, down {res[2]:.2f} s")
            raw[name].append(res)
    rows = []
    for name, _n, _o in variants:
        cols = list(zip(*raw[name]))
        rows.append([name] + [f"{fmt_s(median(c))} ({fmt_s(min(c))}–{fmt_s(max(c))})" for c in cols])
    print(header("The fleet test rig: up, load, down"))
    print(f"Image loaded into every host: `{image}` ({int(size) / 1e6:.0f} MB); "
          f"{a.rounds} rounds per variant, medians (min–max) in seconds.\n")
    print(md_table(["rig", "up", f"load {image.split(':')[0]}", "down"], rows))
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
