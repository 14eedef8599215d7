"""The part of asha-sync that runs on the active node, as rsync's remote program.

asha-sync on the standby sends this file's text over ssh as
`python3 -c TEXT JOB --server --sender ... . PATHS` (rsync's --rsync-path), so
the check, the SQLite snapshots and the transfer share one ssh session. It needs
only the Python standard library, not asha, so the peer's asha version does not
matter. Before rsync starts it drops every tree whose source is missing or
empty while the standby's copy is not (an unmounted disk must not wipe the
standby through --delete) and snapshots each SQLite file with SQLite's online
backup to a temporary name beside it (STAGED_PREFIX + name), which rsync sends
to the same place on the standby; it reports what it found on standard error
as one line `asha-sync-peer: {json}` and removes the snapshots when rsync ends.
The snapshots sit beside the databases rather than in a staging tree because
rsync --relative with --delay-updates mixes up sources under different roots
(`/stage/./var/...` and `/var/...`) and deletes files it should keep.

JOB is JSON: {"trees": [[path, standby_has_data], ...], "dbs": [[path,
standby_has_copy], ...], "rsync": program, "busy": seconds, "snapshot": bool}."""

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.parse

REPORT = "asha-sync-peer: "
STAGED_PREFIX = ".asha-sync."        # a snapshot's name beside the standby's database


def tree_state(path):
    """'missing', 'empty', 'data' (a directory with entries) or 'file'."""
    if not os.path.exists(path):
        return "missing"
    if not os.path.isdir(path):
        return "file"
    with os.scandir(path) as it:
        for _ in it:
            return "data"
    return "empty"


def staged_name(path):
    d, base = os.path.split(path)
    return os.path.join(d, STAGED_PREFIX + base)


def snapshot(path, busy):
    """Copy the SQLite database at path with the online backup API to
    staged_name(path), beside it; return its report entry."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {"state": "missing"}
    if st.st_size == 0:
        return {"state": "empty"}
    target = staged_name(path)
    remove(target)                  # left by a run that was killed
    uri = "file:" + urllib.parse.quote(path) + "?mode=rw"
    src = dst = None
    t0 = time.monotonic()
    try:
        # mode=rw: never create a database that is not there; the backup only reads.
        src = sqlite3.connect(uri, uri=True, timeout=busy)
        dst = sqlite3.connect(target)
        # One step (pages=-1): the copy is one consistent snapshot of the source.
        src.backup(dst)
        dst.close()
        dst = None
    except sqlite3.Error as e:
        return {"state": "error", "error": str(e)}
    finally:
        for c in (src, dst):
            if c is not None:
                c.close()
    copy_attributes(st, target)
    return {"state": "ok", "size": os.path.getsize(target),
            "ms": round((time.monotonic() - t0) * 1000)}


def copy_attributes(st, target):
    os.chmod(target, st.st_mode & 0o7777)
    try:
        os.chown(target, st.st_uid, st.st_gid)
    except PermissionError:
        pass                        # not root: the copy keeps the ssh user's ownership
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def split_server_args(argv):
    """rsync's `--server --sender OPTIONS . PATHS`: (everything up to '.', PATHS)."""
    if "." not in argv:
        return argv, []
    i = argv.index(".")
    return argv[:i + 1], argv[i + 1:]


def tree_arg(path, state):
    """How the standby names a tree in its request (and so how it is sent)."""
    return path if state == "file" else path.rstrip("/") + "/"


def main(argv):
    job = json.loads(argv[0])
    head, requested = split_server_args(argv[1:])
    report = {"trees": {}, "dbs": {}}
    paths = []
    for path, standby_has_data in job["trees"]:
        state = tree_state(path)
        report["trees"][path] = state
        if state in ("data", "file") or (state == "empty" and not standby_has_data):
            paths.append(tree_arg(path, state))
    staged = []
    try:
        if job["snapshot"]:
            for path, _ in job["dbs"]:
                entry = snapshot(path, job["busy"])
                report["dbs"][path] = entry
                if entry["state"] == "ok":
                    staged.append(staged_name(path))
                    paths.append(staged_name(path))
        else:
            for path, _ in job["dbs"]:
                report["dbs"][path] = {"state": "ok" if os.path.exists(path) else "missing"}
        # rsync's client refuses names it did not ask for: send only what it asked for.
        asked = set(p.rstrip("/") for p in requested)
        paths = [p for p in paths if p.rstrip("/") in asked]
        report["sending"] = len(paths)
        sys.stderr.write(REPORT + json.dumps(report) + "\n")
        sys.stderr.flush()
        if not paths:
            return 0
        return subprocess.call([job["rsync"]] + head + paths)
    finally:
        for p in staged:
            remove(p)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as e:          # one line the standby can show, not a traceback
        sys.stderr.write(REPORT + json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n")
        sys.exit(1)
