"""Shared pieces of the webdock benchmarks (bench/*.py).

Everything runs on this host, against the local Docker engine, in throwaway
directories; loads go only to 127.0.0.1. Each benchmark prints a header
(date, machine, command, webdock commit) and markdown tables that are pasted
into docs/benchmarks.md as they are.

Environment:
  WEBDOCK_BIN   the webdock binary (default: /work/target-bench/release/webdock,
                else target/release/webdock of this repository)
  WEBDOCK_SRC   the source tree that binary was built from (default: this
                repository): example app, Dockerfile, images/
  BENCH_KEEP=1  keep temp dirs and containers for inspection
"""
import datetime
import json
import math
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The webdock source the binary was built from: the example app, the
# Dockerfile and the image rootfs are read from here. Default: this checkout.
# Benchmarks of a definite commit: export it (git archive) to a directory,
# write the commit into its .bench-commit, build there and set WEBDOCK_SRC.
SRC = Path(os.environ.get("WEBDOCK_SRC") or REPO).resolve()
EXAMPLE = SRC / "examples" / "portal"


def webdock_bin():
    env = os.environ.get("WEBDOCK_BIN")
    if env:
        return env
    for p in (Path("/work/target-bench/release/webdock"), REPO / "target" / "release" / "webdock"):
        if p.is_file():
            return str(p)
    sys.exit("no webdock binary: build it (cargo build --release) or set WEBDOCK_BIN")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, env=None, cwd=None, timeout=None, input=None):
    """Runs a command, capturing its output; raises with the output on failure."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    p = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd,
                       timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise RuntimeError(f"{shlex.join(map(str, cmd))} exited {p.returncode}\n"
                           f"stdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}")
    return p


def timed(cmd, **kw):
    t = time.monotonic()
    p = run(cmd, **kw)
    return time.monotonic() - t, p


def docker(*args, check=True, **kw):
    return run(["docker", *args], check=check, **kw)


def image_exists(ref):
    return docker("image", "inspect", ref, check=False).returncode == 0


# ---------------------------------------------------------------- statistics

def median(xs):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def pct(xs_sorted, p):
    """Nearest-rank percentile of an already sorted list."""
    if not xs_sorted:
        return float("nan")
    k = max(0, min(len(xs_sorted) - 1, math.ceil(p / 100 * len(xs_sorted)) - 1))
    return xs_sorted[k]


def fmt_s(x, digits=2):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def md_table(headers, rows):
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---:" if i else "---" for i in range(len(headers))) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


# ---------------------------------------------------------------- machine

def machine():
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    dv = docker("version", "--format", "{{.Server.Version}}", check=False).stdout.strip()
    drv = docker("info", "--format", "{{.Driver}}", check=False).stdout.strip()
    ngx = run(["nginx", "-v"], check=False).stderr.strip().replace("nginx version: ", "")
    if (SRC / ".bench-commit").is_file():
        commit, dirty = (SRC / ".bench-commit").read_text().strip()[:7], ""
    else:
        commit = run(["git", "rev-parse", "--short", "HEAD"], cwd=SRC, check=False).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--", "src", "dockerfiles", "images",
                     "examples"], cwd=SRC, check=False).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "mem": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "docker": f"{dv} ({drv})",
        "nginx": ngx,
        "webdock": commit + ("+dirty" if dirty else ""),
    }


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


START_LOAD = loadavg()


def header(title):
    m = machine()
    envs = " ".join(f"{k}={os.environ[k]}" for k in ("WEBDOCK_SRC", "WEBDOCK_BIN") if k in os.environ)
    cmd = (envs + " " if envs else "") + "python3 " + shlex.join(
        [os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])
    return (f"### {title}\n\n"
            f"- date: {m['date']}; webdock {m['webdock']}\n"
            f"- machine: nproc {m['nproc']}, memory {m['mem']}, kernel {m['kernel']}, "
            f"docker {m['docker']}, nginx {m['nginx']}\n"
            f"- load average (1/5/15 min) at the start: {START_LOAD}; at the end: {loadavg()} "
            f"(the machine is shared; others' tests and builds run meanwhile)\n"
            f"- command: `{cmd}`\n")


# ---------------------------------------------------------------- app copies

def copy_app(dst):
    """A copy of the example app (no caches), as a fresh git repository so
    webdock's provenance (revision, created) is that of a real checkout."""
    def ignore(_d, names):
        return [n for n in names if n in ("__pycache__", "staticfiles", "webdock.toml")]
    shutil.copytree(EXAMPLE, dst, ignore=ignore)
    git_init(dst)
    return Path(dst)


def git(repo, *args):
    return run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                "-c", "commit.gpgsign=false", *args], cwd=repo).stdout.strip()


def git_init(repo):
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench: example app")


def git_commit(repo, msg):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", msg)


# ---------------------------------------------------------------- nginx

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Nginx:
    """A private nginx on 127.0.0.1 playing the host nginx (same shape as
    tests/common/mod.rs: workers as nobody, temp paths, daemon off)."""

    def __init__(self, dir, server_body, workers=2):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        self.conf = self.dir / "nginx.conf"
        t = self.dir
        self.conf.write_text(
            f"worker_processes {workers};\nuser nobody nogroup;\npid {t}/nginx.pid;\n"
            f"error_log {t}/error.log warn;\nevents {{ worker_connections 4096; }}\n"
            f"http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n"
            f"  proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fastcgi;\n"
            f"  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n"
            f"  keepalive_requests 100000;\n"
            f"  server {{\n    listen 127.0.0.1:{self.port};\n{server_body}\n  }}\n}}\n")
        self.proc = subprocess.Popen(
            ["nginx", "-e", f"{t}/error.log", "-c", str(self.conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("nginx did not start: " + self.error_log())
                time.sleep(0.02)

    def error_log(self):
        try:
            return (self.dir / "error.log").read_text()[-2000:]
        except OSError:
            return ""

    def reload(self):
        run(["nginx", "-e", f"{self.dir}/error.log", "-c", str(self.conf), "-s", "reload"])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def http_get(port, path="/health/", timeout=5):
    """One GET on a fresh connection: (status, X-Release) or (None, error)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        rel = None
        for h in head[1:]:
            k, _, v = h.partition(":")
            if k.strip().lower() == "x-release":
                rel = v.strip()
        return status, rel
    except (OSError, ValueError, IndexError) as e:
        return None, str(e)


def unix_get(sock, path="/health/", timeout=5):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        rel = None
        for h in head[1:]:
            k, _, v = h.partition(":")
            if k.strip().lower() == "x-release":
                rel = v.strip()
        return status, rel
    except (OSError, ValueError, IndexError) as e:
        return None, str(e)


def wait_until(what, secs, f, every=0.05):
    deadline = time.monotonic() + secs
    while True:
        v = f()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {secs} s waiting for {what}")
        time.sleep(every)


# ---------------------------------------------------------------- projects

class Project:
    """A throwaway webdock project, like the tests make: its own socket,
    state and data directories under one temp dir; containers removed by
    label at the end."""

    def __init__(self, hint, image, app, extra="", processes=4, workdir=None, binary=None,
                 name=None):
        self.tmp = Path(tempfile.mkdtemp(prefix=f"webdock-bench-{hint}-", dir=workdir))
        os.chmod(self.tmp, 0o755)
        self.name = name or f"b{hint}{os.getpid() % 100000:05d}"
        # None: webdock_bin(); a path: this project is driven by that binary
        # (promote_bench --worker-step runs two builds side by side)
        self.binary = binary
        self.image = image
        self.app = Path(app)
        self.config = self.tmp / "webdock.toml"
        self.processes = processes
        self.public_url = None
        self.extra = extra
        (self.tmp / "data").mkdir()
        self.write_config()

    @property
    def data(self):
        return self.tmp / "data"

    @property
    def socket_dir(self):
        return self.tmp / "run" / self.name

    @property
    def state_dir(self):
        return self.tmp / "state" / self.name

    def write_config(self):
        d = self.tmp
        public = f'public_url = "{self.public_url}"\n' if self.public_url else ""
        self.config.write_text(f'''project = "{self.name}"
image = "{self.image}"
app = "{self.app}"
crontab = "crontab"
socket_root = "{d}/run"
state_root = "{d}/state"
volumes = ["{d}/data:/data"]
keep_images = 100
[env]
DJANGO_ALLOWED_HOSTS = "localhost,127.0.0.1"
DJANGO_SECRET_KEY = "bench-not-secret"
[portal]
processes = {self.processes}
stop_grace = "30s"
{public}[health]
consecutive = 3
interval = "100ms"
deadline = "90s"
[cron]
stop_grace = "10s"
[djobs.billing]
command = ["python", "manage.py", "djob", "billing"]
stop_grace = "10s"
[djobs.email2fax]
command = ["python", "manage.py", "djob", "email2fax"]
stop_grace = "10s"
{self.extra}
''')

    def cmd(self, *args):
        return [self.binary or webdock_bin(), "-c", str(self.config), *args]

    def webdock(self, *args, check=True, **kw):
        return run(self.cmd(*args), check=check, **kw)

    def snippet(self):
        return self.webdock("nginx-snippet").stdout

    def history(self):
        p = self.state_dir / "history.jsonl"
        if not p.exists():
            return []
        return [json.loads(l) for l in p.read_text().splitlines() if l.strip()]

    def cleanup(self):
        if os.environ.get("BENCH_KEEP"):
            log(f"BENCH_KEEP: leaving {self.tmp} and project {self.name}")
            return
        remove_containers(f"label=webdock.project={self.name}")
        # files written by the containers (uid 10001) are removable by root
        shutil.rmtree(self.tmp, ignore_errors=True)


def remove_containers(filter_):
    ids = docker("ps", "-aq", "--filter", filter_, check=False).stdout.split()
    if ids:
        docker("rm", "-f", *ids, check=False)


EXAMPLE_DJOBS = ("billing", "email2fax")


def djob_tables(names):
    """[djobs.NAME] tables running the example app's `manage.py djob NAME`."""
    return "".join(f'[djobs.{n}]\ncommand = ["python", "manage.py", "djob", "{n}"]\n'
                   for n in names)


def build_config(dir, image, app, djobs=EXAMPLE_DJOBS):
    """A config that only builds (like tests/common build_config). The
    image knows the djobs named here (promote refuses a djob it lacks)."""
    p = Path(dir) / "build.toml"
    p.write_text(
        f'project = "benchbuild"\nimage = "{image}"\napp = "{app}"\ncrontab = "crontab"\n'
        + djob_tables(djobs) + EXAMPLE_ASSETS)
    return p


# The example app's asset step, as in examples/portal/webdock.toml.
EXAMPLE_ASSETS = '''[build.assets]
inputs = ["frontend"]
output = "frontend-dist"
commands = [
  ["esbuild", "frontend/app.js", "--bundle", "--minify", "--log-level=warning", "--outfile=frontend-dist/portal/app.js"],
  ["sassc", "--style", "compressed", "frontend/app.scss", "frontend-dist/portal/app.css"],
]
'''


def ensure_app_images(image, tags, workdir=None, djobs=EXAMPLE_DJOBS):
    """`image:TAG` of the example app for each tag, built with webdock when
    missing (the tag is baked in: /health/ answers X-Release: TAG)."""
    missing = [t for t in tags if not image_exists(f"{image}:{t}")]
    if not missing:
        return
    tmp = Path(tempfile.mkdtemp(prefix="webdock-bench-img-", dir=workdir))
    try:
        app = copy_app(tmp / "app")
        cfg = build_config(tmp, image, app, djobs)
        for t in missing:
            log(f"building {image}:{t} with webdock")
            run([webdock_bin(), "-c", str(cfg), "build", t], timeout=1800)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
