#!/usr/bin/env python3
"""Image delivery (issue 11): a new tag delivered to an engine that already
holds the previous one, three ways side by side in one run:

  registry   `docker push` (the engine call `webdock build --push` makes,
             without the build) into a real registry that holds the
             previous tag, then `webdock pull` (by digest) on the target
  ship       `webdock ship TAG --to TARGET`: export from this engine, the
             layers the target has filtered out, load into the target
  save|load  `docker save IMAGE | DOCKER_HOST=TARGET docker load`

The new tag is a code-only change of the example app (one line appended to
portal/views.py). The target is a private dockerd that starts empty; before
each delivery it holds exactly the previous tag (the new one is removed with
`docker rmi`, which drops its own layers). Each registry round starts from
a copy of a registry storage that holds only the previous tag, so every
round uploads the change again.

Bytes moved: registry = what the push added to the registry's storage plus
the same compressed blobs pulled back down; ship = the bytes webdock sent
into the target's load (its `--json` `bytes_sent`); save|load = the length
of the `docker save` stream. The image's size is the length of its full
save stream.

    python3 bench/delivery_bench.py [--rounds 5]

Needs root (a private dockerd), docker-registry (scripts/setup), and a
webdock binary (WEBDOCK_BIN, else target/release/webdock).
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
from common import (copy_app, docker, fmt_s, free_port, header, log, md_table,  # noqa: E402
                    median, run, wait_until, webdock_bin)

IMAGE = "webdock-dlbench"
OLD, NEW = "1", "2"
EPOCH = "1767225600"


def human(b):
    return f"{b / 1e6:.1f} MB" if b >= 1e6 else f"{b / 1e3:.1f} kB"


def dir_bytes(p):
    return sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file())


class Dockerd:
    """A private engine, as tests/common/dockerd_dl.rs starts it."""

    def __init__(self, d):
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        self.bridge = f"wddb{os.getpid() & 0xffff:04x}"
        run(["ip", "link", "add", "name", self.bridge, "type", "bridge"])
        routes = run(["ip", "-4", "route"]).stdout
        net = next(f"10.233.{i}" for i in range(1, 250) if f"10.233.{i}." not in routes)
        run(["ip", "addr", "add", f"{net}.1/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        (d / "daemon.json").write_text("{}\n")
        self.host = f"unix://{d}/docker.sock"
        self.proc = subprocess.Popen(
            ["dockerd", "--config-file", f"{d}/daemon.json", "--data-root", f"{d}/root",
             "--exec-root", f"{d}/exec", "--pidfile", f"{d}/dockerd.pid", "-H", self.host,
             "--bridge", self.bridge, "--iptables=false", "--ip-masq=false",
             "--ip-forward=false", "--userland-proxy=false", "--storage-driver",
             "fuse-overlayfs", "--cgroup-parent", f"/{self.bridge}"],
            stdout=open(d / "dockerd.log", "w"), stderr=subprocess.STDOUT)
        wait_until("the private dockerd", 60, lambda: self.cli("version", check=False).returncode == 0)

    def cli(self, *args, check=True):
        return run(["docker", *args], check=check, env={"DOCKER_HOST": self.host})

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for line in open("/proc/self/mountinfo").read().splitlines():
            m = line.split()[4]
            if m.startswith(str(self.dir)):
                subprocess.run(["umount", "-l", m], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        for ctl in Path("/sys/fs/cgroup").iterdir():
            try:
                (ctl / self.bridge).rmdir()
            except OSError:
                pass


class Registry:
    def __init__(self, d, storage):
        self.dir = d
        self.storage = storage
        d.mkdir(parents=True, exist_ok=True)
        self.addr = f"127.0.0.1:{free_port()}"
        conf = d / "config.yml"
        conf.write_text(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
                        f"http:\n  addr: {self.addr}\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = int(self.addr.split(":")[1])
        import socket

        def up():
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return True
            except OSError:
                return False
        wait_until("the registry", 30, up)

    def close(self):
        self.proc.terminate()
        self.proc.wait()


def config(tmp, app, registry=None):
    p = tmp / f"webdock-{time.monotonic_ns()}.toml"
    reg = f'registry = "{registry}"\n' if registry else ""
    p.write_text(f'{reg}project = "dlbench"\nimage = "{IMAGE}"\napp = "{app}"\ncrontab = "crontab"\n')
    return p


def wd(cfg, *args, env=None):
    return run([webdock_bin(), "-c", str(cfg), *args], env=env, timeout=1800)


def save_len(ref):
    p = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE)
    n = 0
    while True:
        b = p.stdout.read(1 << 20)
        if not b:
            break
        n += len(b)
    p.wait()
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="webdock-dlbench-"))
    target = registry = None
    try:
        app_old = copy_app(tmp / "app-old")
        app = copy_app(tmp / "app")
        views = app / "portal" / "views.py"
        views.write_text(views.read_text() + "\n# a code-only change\n")
        cfg = config(tmp, app)
        env = {"SOURCE_DATE_EPOCH": EPOCH}
        log(f"building {IMAGE}:{OLD} and a code-only change {IMAGE}:{NEW}")
        wd(config(tmp, app_old), "build", OLD, env=env)
        wd(cfg, "build", NEW, env=env)
        old, new = f"{IMAGE}:{OLD}", f"{IMAGE}:{NEW}"
        image_bytes = save_len(new)
        new_id = docker("image", "inspect", "-f", "{{.Id}}", new).stdout.strip()

        log("starting the target engine and a registry seeded with the previous tag")
        target = Dockerd(tmp / "pd")
        seed = tmp / "seed"
        registry = Registry(tmp / "reg0", seed)
        wd(config(tmp, app_old, registry.addr), "build", OLD, "--push", env=env)
        docker("rmi", f"{registry.addr}/{IMAGE}:{OLD}", check=False)
        registry.close()
        registry = None
        p = subprocess.Popen(["docker", "save", old], stdout=subprocess.PIPE)
        subprocess.run(["docker", "load", "-q"], stdin=p.stdout, env={**os.environ, "DOCKER_HOST": target.host},
                       check=True, capture_output=True)
        p.wait()

        results = {"registry": [], "ship": [], "save|load": []}
        moved = {"registry": [], "ship": [], "save|load": []}
        methods = list(results)
        for r in range(args.rounds):
            order = methods[r % 3:] + methods[:r % 3]
            for m in order:
                # by id, with -f: a pulled image also has a digest reference
                target.cli("rmi", "-f", new_id, check=False)
                assert target.cli("image", "inspect", new_id, check=False).returncode != 0
                if m == "registry":
                    storage = tmp / f"store{r}"
                    shutil.copytree(seed, storage)
                    before = dir_bytes(storage)
                    registry = Registry(tmp / f"regd{r}", storage)
                    rcfg = config(tmp, app, registry.addr)
                    pushed = f"{registry.addr}/{IMAGE}:{NEW}"
                    docker("tag", new, pushed)
                    t0 = time.monotonic()
                    # the same engine call as `build --push`'s push, without its (cached) build
                    docker("push", pushed)
                    wd(rcfg, "pull", NEW, env={"DOCKER_HOST": target.host})
                    dt = time.monotonic() - t0
                    grown = dir_bytes(storage) - before
                    docker("rmi", f"{registry.addr}/{IMAGE}:{NEW}", check=False)
                    registry.close()
                    registry = None
                    shutil.rmtree(storage, ignore_errors=True)
                    b = 2 * grown
                elif m == "ship":
                    t0 = time.monotonic()
                    out = wd(cfg, "ship", NEW, "--to", target.host, "--json").stdout
                    dt = time.monotonic() - t0
                    ev = [json.loads(x) for x in out.splitlines()]
                    b = next(e for e in ev if e["event"] == "shipped")["bytes_sent"]
                else:
                    t0 = time.monotonic()
                    p = subprocess.Popen(["docker", "save", new], stdout=subprocess.PIPE)
                    subprocess.run(["docker", "load", "-q"], stdin=p.stdout, check=True, capture_output=True,
                                   env={**os.environ, "DOCKER_HOST": target.host})
                    p.wait()
                    dt = time.monotonic() - t0
                    b = image_bytes
                got = target.cli("image", "inspect", "-f", "{{.Id}}", new).stdout.strip()
                want = docker("image", "inspect", "-f", "{{.Id}}", new).stdout.strip()
                assert got == want, f"{m}: target holds {got}, not {want}"
                results[m].append(dt)
                moved[m].append(b)
                log(f"round {r + 1} {m}: {dt:.2f} s, {human(b)}")

        rows = []
        for m in methods:
            mb = median(moved[m])
            rows.append([m.replace("|", "\\|"), fmt_s(median(results[m])), fmt_s(min(results[m])),
                         fmt_s(max(results[m])), human(mb), f"{100 * mb / image_bytes:.2f} %"])
        print(header("Delivering a code-only change to an engine that has the previous tag"))
        print(f"- image: {new}, {image_bytes / 1e6:.1f} MB as a save stream; {args.rounds} rounds, "
              f"order rotated\n")
        print(md_table(["method", "median s", "min s", "max s", "bytes moved (median)", "of the image"], rows))
    finally:
        if registry:
            registry.close()
        if target:
            target.close()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
