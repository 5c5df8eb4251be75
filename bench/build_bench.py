#!/usr/bin/env python3
"""Build benchmark (issue 2): `webdock build` beside `docker build` from the
CLI on the same context, side by side in one run.

Scenarios (each measured for both builders, the order alternating A B / B A
from one repetition to the next):

  nochange  the same tag of unchanged code built again
  app       a one-line change to the app (portal/views.py), committed, new tag
  req       a requirements change (one pin added or removed, and a unique
            comment so no earlier layer matches) whose wheels are already in
            the wheel cache, new tag
  cold      a base of its own (WEBDOCK_BASE_REPO=webdock-bench-cold-SIDE-REP:
            mmdebstrap runs; the machine's shared webdock-base is never
            touched), empty wheel cache, no layer cache (a new base name
            means new dependency and app layers)

"Same work" is what both sides are given:
  - the same inputs: the CLI side builds the classic context that webdock
    itself writes with `webdock build TAG --emit-context DIR` (the Dockerfile
    with the release as literal ENV + LABEL lines and the real base as
    BASE_IMAGE, webdock's rootfs overlay, djob services and crontab, the
    wheels from the wheel cache, the app minus .dockerignore, and the
    compiled front-end assets), with `DOCKER_BUILDKIT=0 docker build
    --force-rm DIR`. Writing that context is not timed, which favours the CLI.
  - the same cache state: each timed build gets its own change (its own line
    in views.py, its own requirements comment) that no build of either side
    has seen; the no-change rebuild builds each side's last tag again. The
    wheel cache is warmed for every requirements text before either side
    builds it (by the --emit-context call), so neither downloads.
  - webdock does not run Dockerfile steps: its --json events give the time
    of each phase (base, wheels, deps, assets, files, app, image); the CLI's
    per-step times come from when each "Step N/M" line arrives.
  - cold: webdock makes the base (mmdebstrap + load) and downloads the
    wheels itself; the CLI side runs the same mmdebstrap and `docker import`
    and the same `pip download` by hand, timed, then `docker build`. Each
    cold build gets a base of its own name, made anew (the engine may still
    hold identical layers: the base is reproducible, so webdock's cold base
    has the id of the machine's, and the CLI's import the same layer).
    The cold bases are removed by tag at the end.

    python3 bench/build_bench.py [--reps 3] [--req-reps 1] [--cold-reps 0]
"""
import argparse
import email.utils
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (SRC, build_config, copy_app, docker, fmt_s, git_commit, header,  # noqa: E402
                    log, md_table, median, run, webdock_bin)

WD_IMAGE = "webdock-bench-wd"
CLI_IMAGE = "webdock-bench-cli"
EXTRA_PIN = "six==1.17.0"
PHASES = ("base", "wheels", "deps", "assets", "files", "app", "image")


# ------------------------------------------------------------ inputs

def base_packages():
    """The base's package list (images/base/packages.txt), for the CLI side
    of a cold build, which runs mmdebstrap by hand."""
    text = (SRC / "images/base/packages.txt").read_text()
    return [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]


def base_ref():
    """webdock's base image reference (made by the warm-up)."""
    return run([webdock_bin(), "base"]).stdout.strip()


# ------------------------------------------------------------ builders

STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (\S+)(.*)$")


def stream_timed(cmd, env=None, lines_of=None):
    """Runs cmd; returns (wall seconds, [(t, line)], returncode, stderr).
    Lines are timestamped when they arrive (relative to the start)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=full_env, bufsize=1)
    lines = []
    for line in p.stdout:
        lines.append((time.monotonic() - t0, line.rstrip("\n")))
    err = p.stderr.read()
    rc = p.wait()
    wall = time.monotonic() - t0
    if rc != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {rc}\n{err[-3000:]}\n"
                           + "\n".join(l for _, l in lines[-30:]))
    return wall, lines, err


def steps_from(lines, wall):
    """[(step label, seconds, cached)] from the CLI's timestamped output."""
    marks = []  # (t, label)
    cached_after = set()
    for t, line in lines:
        text = line.strip()
        m = STEP_RE.match(text)
        if m:
            rest = re.sub(r'(WEBDOCK_RELEASE|webdock\.tag)=.*', r'\1=…', m.group(4).strip())
            marks.append((t, f"{m.group(1)} {m.group(3).upper()} {rest[:38]}"))
        elif "Using cache" in text and marks:
            cached_after.add(len(marks) - 1)
    out = []
    for i, (t, label) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else wall
        out.append((label, end - t, i in cached_after))
    pre = marks[0][0] if marks else wall
    return pre, out


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="webdock-bench-build-"))
        self.app = copy_app(self.tmp / "app")
        self.cfg = build_config(self.tmp, WD_IMAGE, self.app)
        # A private cache (wheels seeded from the machine's), so the bench
        # never adds to or removes from the cache other users share.
        shared = Path(os.environ.get("WEBDOCK_CACHE") or Path.home() / ".cache/webdock")
        self.cache = self.tmp / "cache"
        (self.cache / "wheels").mkdir(parents=True)
        if (shared / "wheels").is_dir():
            for d in (shared / "wheels").iterdir():
                if d.is_dir() and not d.name.endswith(".tmp"):
                    shutil.copytree(d, self.cache / "wheels" / d.name)
        os.environ["WEBDOCK_CACHE"] = str(self.cache)
        self.results = {}  # scenario -> side -> [dict]
        self.made_bases = []  # the cold builds' own base tags
        self.n = 0
        self.base_req = (self.app / "requirements.txt").read_text()
        self.deps_before = set(self.deps_images())

    @staticmethod
    def deps_images():
        return docker("images", "--format", "{{.Repository}}:{{.Tag}}", "webdock-deps").stdout.split()

    # -- the two builders

    def wd_build(self, tag, env=None, extra=()):
        wall, lines, _ = stream_timed([webdock_bin(), "-c", str(self.cfg), "--json", "build", tag,
                                       *extra], env=env)
        events = [json.loads(l) for _, l in lines if l.startswith("{")]
        built = next(e for e in events if e.get("event") == "built")
        ran = [e["phase"] for e in events if e.get("event") == "build" and not e["cached"]]
        return {"wall": wall, "phases": built["phases"], "ran": ran, "id": built["id"],
                "cached": built["cached_steps"], "nsteps": built["steps"]}

    def emit(self, tag, env=None):
        """webdock's classic context for TAG, in a fresh directory (untimed)."""
        self.n += 1
        ctx = self.tmp / f"ctx-{self.n}"
        run([webdock_bin(), "-c", str(self.cfg), "build", tag, "--emit-context", str(ctx)],
            env=env, timeout=1800)
        return ctx

    def cli_build(self, tag, ctx):
        cmd = ["docker", "build", "--force-rm", "-t", f"{CLI_IMAGE}:{tag}", str(ctx)]
        wall, lines, _ = stream_timed(cmd, env={"DOCKER_BUILDKIT": "0"})
        shutil.rmtree(ctx, ignore_errors=True)
        pre, steps = steps_from(lines, wall)
        cached = sum(1 for _, l in lines if "Using cache" in l)
        nsteps = sum(1 for s in steps if s[0].split()[1] not in ("FROM", "ARG"))
        return {"wall": wall, "steps": steps, "pre": pre, "cached": cached, "nsteps": nsteps,
                "ran": [s[0] for s in steps if not s[2] and s[0].split()[1] not in ("FROM", "ARG")]}

    def floor(self, rep):
        """The engine's cost of one metadata step: FROM the base + one LABEL
        with a new value (a container created and a layer committed)."""
        d = self.tmp / "floor"
        d.mkdir(exist_ok=True)
        (d / "Dockerfile").write_text(f'FROM {base_ref()}\nLABEL bench.floor="{rep}-{time.time_ns()}"\n')
        t0 = time.monotonic()
        run(["docker", "build", "-q", "--force-rm", "-t", f"{CLI_IMAGE}:floor", str(d)],
            env={"DOCKER_BUILDKIT": "0"})
        self.record("floor", "cli", {"wall": time.monotonic() - t0, "cached": 0, "nsteps": 1})

    def record(self, scenario, side, r):
        self.results.setdefault(scenario, {}).setdefault(side, []).append(r)
        log(f"  {scenario:8} {side:7} {r['wall']:6.1f} s  ({r['cached']}/{r['nsteps']} cached)")

    # -- scenarios

    def change_app(self, label):
        views = self.app / "portal/views.py"
        views.write_text(views.read_text() + f"# bench change {label}\n")
        git_commit(self.app, f"bench: one-line change {label}")

    def change_req(self, label, with_extra):
        pins = self.base_req + (EXTRA_PIN + "\n" if with_extra else "")
        (self.app / "requirements.txt").write_text(pins + f"# bench change {label}\n")
        git_commit(self.app, f"bench: requirements change {label}")

    def one(self, scenario, side, rep):
        label = f"{rep}{side}{self.n}"
        tag = f"nochange-{side}" if scenario == "nochange" else f"{scenario}-{label}"
        if scenario == "app":
            self.change_app(label)
        elif scenario == "req":
            self.change_req(label, rep % 2 == 0)
        # The context for the CLI, written by webdock (untimed); it also
        # warms the wheel cache for this requirements text, for both sides.
        ctx = self.emit(tag)
        if scenario == "nochange":
            # bring this side's tag up to the current input first (untimed)
            if side == "webdock":
                self.wd_build(tag)
            else:
                self.cli_build(tag, ctx)
                ctx = self.emit(tag)
        if side == "webdock":
            shutil.rmtree(ctx, ignore_errors=True)
            r = self.wd_build(tag)
        else:
            r = self.cli_build(tag, ctx)
        self.record(scenario, side, r)

    def cold(self, side, rep):
        # A base of its own (WEBDOCK_BASE_REPO), never the machine's shared
        # webdock-base:<hash>, which other builds use meanwhile: mmdebstrap
        # runs, and every layer on top is made anew (its name is new).
        repo = f"webdock-bench-cold-{side}-{rep}"
        ref = f"{repo}:{base_ref().partition(':')[2]}"
        self.made_bases.append(ref)
        cache = self.tmp / f"cold-cache-{side}-{rep}"
        cache.mkdir()
        env = {"WEBDOCK_CACHE": str(cache), "WEBDOCK_BASE_REPO": repo}
        self.change_app(f"cold{rep}{side}")
        tag = f"cold-{rep}-{side}"
        if side == "webdock":
            r = self.wd_build(tag, env=env)
        else:
            r = self.cli_cold(tag, cache, ref, env)
        self.record("cold", side, r)

    def cli_cold(self, tag, cache, ref, env):
        mirror = os.environ.get("WEBDOCK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
        tar = cache / "rootfs.tar"
        t0 = time.monotonic()
        release = run(["curl", "-fsSL", f"{mirror}/dists/bookworm/Release"]).stdout
        date = next(l[5:].strip() for l in release.splitlines() if l.startswith("Date:"))
        epoch = str(int(email.utils.parsedate_to_datetime(date).timestamp()))
        run(["mmdebstrap", "--variant=apt", "--quiet", "--include=" + ",".join(base_packages()),
             '--customize-hook=chroot "$1" apt-get clean',
             '--customize-hook=rm -rf "$1"/var/lib/apt/lists/*',
             '--customize-hook=rm -f "$1"/etc/resolv.conf "$1"/etc/hostname',
             "bookworm", str(tar), mirror],
            env={"SOURCE_DATE_EPOCH": epoch}, timeout=1800)
        t_deb = time.monotonic() - t0
        repo, _, btag = ref.partition(":")
        run(["docker", "import", "--change", f'LABEL webdock.base="{btag}"',
             "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             str(tar), ref])
        t_imp = time.monotonic() - t0 - t_deb
        tar.unlink()
        t1 = time.monotonic()
        run([os.environ.get("WEBDOCK_PYTHON", "python3"), "-m", "pip", "download", "--quiet",
             "--disable-pip-version-check", "--only-binary=:all:", "--python-version", "3.11",
             "--platform", "manylinux2014_x86_64", "--platform", "any",
             "-r", str(self.app / "requirements.txt"), "-d", str(cache / "pipdl")], timeout=600)
        t_pip = time.monotonic() - t1
        # the context (with those wheels: webdock's cache is warmed from it) is untimed
        ctx = self.emit(tag, env=env)
        r = self.cli_build(tag, ctx)
        log(f"  cold CLI: mmdebstrap {t_deb:.1f} s, import {t_imp:.1f} s, pip {t_pip:.1f} s, "
            f"docker build {r['wall']:.1f} s")
        r["wall"] += t_deb + t_imp + t_pip
        r["phases"] = {"mmdebstrap": t_deb, "import": t_imp, "pip": t_pip, "build": r["wall"] - t_deb - t_imp - t_pip}
        return r

    # -- the run

    def warmup(self):
        log("warm-up: base image, wheel cache, one build per side (not timed)")
        run([webdock_bin(), "base"], timeout=1800)
        self.wd_build("warmup")
        self.cli_build("warmup", self.emit("warmup"))
        r = self.cli_build("warmup", self.emit("warmup"))
        if r["cached"] != r["nsteps"]:
            sys.exit("the CLI rebuilt steps of an unchanged context:\n"
                     + "\n".join(f"{l} {'cached' if c else 'RUN'}" for l, _, c in r["steps"]))
        # the requirements change needs the extra pin's wheels once (network)
        (self.app / "requirements.txt").write_text(self.base_req + EXTRA_PIN + "\n")
        git_commit(self.app, "bench: extra pin (warm-up)")
        self.wd_build("warmup-req")
        (self.app / "requirements.txt").write_text(self.base_req)
        git_commit(self.app, "bench: back to the original pins")

    def main(self):
        a = self.args
        self.warmup()
        for rep in range(max(a.reps, a.req_reps)):
            order = ["webdock", "cli"] if rep % 2 == 0 else ["cli", "webdock"]
            log(f"repetition {rep + 1} (order {' '.join(order)})")
            if rep < a.reps:
                self.floor(rep)
            for scenario in ("nochange", "app", "req"):
                if rep >= (a.req_reps if scenario == "req" else a.reps):
                    continue
                for side in order:
                    self.one(scenario, side, rep)
        for rep in range(a.cold_reps):
            order = ["webdock", "cli"] if rep % 2 == 0 else ["cli", "webdock"]
            log(f"cold {rep + 1}/{a.cold_reps} (order {' '.join(order)})")
            for side in order:
                self.cold(side, rep)

    def report(self):
        out = [header("Build: webdock build vs docker build (classic builder), same inputs"), ""]
        rows = []
        names = {"nochange": "rebuild, no change", "app": "rebuild, one-line app change",
                 "req": "rebuild, requirements change (warm wheel cache)",
                 "cold": "cold (base + wheels + all layers)"}
        for sc in ("cold", "nochange", "app", "req"):
            r = self.results.get(sc)
            if not r or not r.get("webdock") or not r.get("cli"):
                continue
            w = [x["wall"] for x in r["webdock"]]
            c = [x["wall"] for x in r["cli"]]
            mw, mc = median(w), median(c)
            ran_w = sorted({",".join(x["ran"]) or "nothing" for x in r["webdock"]})
            ran_c = sorted({str(len(x["ran"])) for x in r["cli"]})
            rows.append([names[sc], len(w), fmt_s(mw, 2), fmt_s(mc, 2),
                         f"{mc / mw:.1f}×" if mw > 0 else "-",
                         f"{fmt_s(min(w), 2)}–{fmt_s(max(w), 2)}",
                         f"{fmt_s(min(c), 2)}–{fmt_s(max(c), 2)}",
                         " / ".join(ran_w), "/".join(ran_c) + f" of {r['cli'][0]['nsteps']}"])
        out.append(md_table(["scenario", "n", "webdock median s", "docker CLI median s",
                             "CLI ÷ webdock", "webdock range", "CLI range",
                             "webdock phases run", "CLI steps run"], rows))
        for sc in ("app", "req", "cold"):
            r = self.results.get(sc)
            if not r or not r.get("webdock"):
                continue
            out.append("")
            out.append(f"Where webdock's time goes, {names[sc]} (median seconds per phase, "
                       "from its --json events):")
            out.append("")
            rows = []
            for ph in PHASES:
                v = [x["phases"].get(ph, 0.0) for x in r["webdock"]]
                ran = sum(1 for x in r["webdock"] if ph in x["ran"])
                rows.append([f"`{ph}`", fmt_s(median(v)), f"{ran} of {len(v)}"])
            rows.append(["total (wall, with start-up)", fmt_s(median([x["wall"] for x in r["webdock"]])), ""])
            out.append(md_table(["phase", "webdock s", "runs (not cached)"], rows))
            cli = r.get("cli")
            if cli and "steps" in cli[0] and sc != "cold":
                out.append("")
                out.append(f"The CLI, same change (median seconds per Dockerfile step that ran):")
                out.append("")
                rows = [["(before step 1: start, context upload)", fmt_s(median([x["pre"] for x in cli]))]]
                for i, (lab, _, cached) in enumerate(cli[0]["steps"]):
                    if cached or lab.split()[1] in ("FROM", "ARG"):
                        continue
                    v = [x["steps"][i][1] for x in cli if i < len(x["steps"])]
                    rows.append([f"`{lab}`", fmt_s(median(v))])
                out.append(md_table(["step", "CLI s"], rows))
        fl = self.results.get("floor", {}).get("cli")
        if fl:
            v = [x["wall"] for x in fl]
            out.append("")
            out.append(f"Engine floor, one metadata step (`docker build` of `FROM <base>` + one "
                       f"`LABEL` with a new value: a container made and a layer committed): median "
                       f"{median(v):.1f} s, range {min(v):.1f}–{max(v):.1f} s over {len(v)} builds.")
        cold = self.results.get("cold", {}).get("cli")
        if cold:
            out.append("")
            out.append("Cold builds of the CLI side, by phase (seconds): " + "; ".join(
                ", ".join(f"{k} {v:.1f}" for k, v in x["phases"].items()) for x in cold))
        return "\n".join(out)

    def cleanup(self):
        if os.environ.get("BENCH_KEEP"):
            log(f"BENCH_KEEP: leaving {self.tmp} and the {WD_IMAGE}/{CLI_IMAGE} images")
            return
        for repo in (WD_IMAGE, CLI_IMAGE):
            refs = docker("images", "--format", "{{.Repository}}:{{.Tag}}", repo).stdout.split()
            if refs:
                docker("rmi", *refs, check=False)
        made = [d for d in self.deps_images() if d not in self.deps_before]
        if made:  # the requirements changes' dependency images
            docker("rmi", *made, check=False)
        for b in self.made_bases:  # by tag: a reproducible base shares its id with the machine's
            p = docker("rmi", b, check=False)
            if p.returncode and "No such" not in p.stderr:
                log(f"could not remove cold-build base {b}: {p.stderr.strip()}")
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3,
                    help="repetitions of the no-change and one-line-change rebuilds per side")
    ap.add_argument("--req-reps", type=int, default=1,
                    help="repetitions of the requirements-change rebuild per side (~1-1.5 min each)")
    ap.add_argument("--cold-reps", type=int, default=0,
                    help="cold builds per side (~3-4 min each), each on a base of its own "
                         "(the machine's shared webdock-base is never untagged)")
    ap.add_argument("--json-out", help="also write the raw results here")
    a = ap.parse_args()
    b = Bench(a)
    try:
        b.main()
        print(b.report())
        if a.json_out:
            Path(a.json_out).write_text(json.dumps(b.results, indent=1))
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
