#!/usr/bin/env python3
"""The release phase's backup (issue 15): what the backup before every new
release command costs, and how long `webdock backup --verify` takes, as the
example's SQLite database grows.

For each database size (rows added to portal_visit from the host, through
SQLite, while the portal runs):

  backup       `webdock backup` wall time, the backup command's own time
               (from backups.json) and the backup file's size
  verify       `webdock backup --verify` wall time: restore the newest backup
               into a scratch file in a one-off container, PRAGMA
               integrity_check, count every table
  promote      the `backup` step's share of a promote (from history), beside
               the `release` step (migrate, nothing to apply)

The example's backup is SQLite's online backup API into a temp file, fsync,
rename. Times include a one-off container's create/start/remove (about a
second here), which dominates small databases.

    WEBDOCK_BIN=target/debug/webdock python3 bench/release_bench.py [--rounds 3] [--rows 0,200000,2000000]
"""
import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (EXAMPLE, Project, ensure_app_images, fmt_s, header, log, md_table,  # noqa: E402
                    median, timed)

IMAGE = "webdock-bench-rel"
TAGS = ("1.0.0", "1.0.1")
BACKUP = """[backup]
command = ["python", "manage.py", "backup_db", "{file}"]
suffix = ".sqlite3"
keep = 2
restore = ["python", "manage.py", "restore_db", "{file}", "{scratch}"]
verify = ["python", "manage.py", "check_db", "{scratch}"]
scratch = "/tmp/webdock-scratch.sqlite3"
"""


def grow(db, rows):
    """Adds `rows` visits (in batches: the portal keeps writing meanwhile)."""
    c = sqlite3.connect(db, timeout=30)
    done = 0
    while done < rows:
        n = min(50000, rows - done)
        c.executemany("INSERT INTO portal_visit (path, created) VALUES (?, ?)",
                      ((f"/bench/{done + i}", "2026-12-04 00:00:00") for i in range(n)))
        c.commit()
        done += n
    c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", default="0,200000,2000000", help="rows added before each size's rounds (cumulative)")
    ap.add_argument("--json-out")
    a = ap.parse_args()
    ensure_app_images(IMAGE, TAGS)
    p = Project("rel", IMAGE, EXAMPLE, extra=BACKUP, processes=2)
    res = []
    try:
        p.webdock("promote", TAGS[0], timeout=600)
        tag = 0
        db = p.data / "db.sqlite3"
        for rows in [int(x) for x in a.rows.split(",")]:
            grow(db, rows)
            size = db.stat().st_size + sum(f.stat().st_size for f in p.data.glob("db.sqlite3-wal"))
            r = {"rows_added": rows, "db_bytes": size, "backup": [], "backup_cmd": [], "verify": [],
                 "promote_backup": [], "promote_release": [], "file_bytes": 0}
            for k in range(a.rounds):
                log(f"rows +{rows}: round {k + 1}")
                t, _ = timed(p.cmd("backup"), timeout=1200)
                rec = json.loads((p.state_dir / "backups.json").read_text())[-1]
                r["backup"].append(t)
                r["backup_cmd"].append(rec["seconds"])
                r["file_bytes"] = (p.data / rec["file"].removeprefix("/data/")).stat().st_size
                t, _ = timed(p.cmd("backup", "--verify"), timeout=1200)
                r["verify"].append(t)
                tag = 1 - tag
                p.webdock("promote", TAGS[tag], timeout=1200)
                steps = dict(p.history()[-1]["steps"])
                r["promote_backup"].append(steps["backup"])
                r["promote_release"].append(steps["release"])
            res.append(r)
    finally:
        p.cleanup()
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(res, indent=1))
    rows = [[f"+{r['rows_added']:,}", f"{r['db_bytes'] / 1e6:.1f}", f"{r['file_bytes'] / 1e6:.1f}",
             fmt_s(median(r["backup"])), fmt_s(median(r["backup_cmd"])), fmt_s(median(r["verify"])),
             fmt_s(median(r["promote_backup"])), fmt_s(median(r["promote_release"]))] for r in res]
    print("\n".join([
        header("Backups before migrations: webdock backup, backup --verify, the backup step of promote"), "",
        f"Medians of {a.rounds} rounds per size, seconds.", "",
        md_table(["rows added", "db MB", "backup MB", "backup (wall)", "backup command",
                  "backup --verify (wall)", "promote: backup step", "promote: release step"], rows),
    ]))


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    log(f"done in {time.monotonic() - t0:.0f} s")
