"""asha-sync: the standby pulls the PBX data from the active node, so that a
failover or a failback never loses configuration, greetings, voicemail or the
databases.

A run acts only with HASYNCH=LAZY, only on the node asha-hb calls standby while
its peer is active, only when Asterisk is not running here, one at a time
(ASHARUNDIR/sync.lock). It is one rsync over one ssh session; on the active
node sync_remote.py drops the trees whose source is missing or empty while our
copy is not, and snapshots the SQLite files with SQLite's online backup. Here
each snapshot passes PRAGMA integrity_check before it replaces the database.
Every run that gets the lock records its outcome in ASHARUNDIR/sync.state.

A database that has not changed since the snapshot this node installed is not
snapshotted again: ASHARUNDIR/sync.snapshots keeps, for each database, what the
peer said the snapshot was taken from (its identity, see sync_remote) and what
the copy here looked like once installed; the next run hands that identity to
the peer only while the copy here is untouched and the identity's times are
older than the snapshot by RACY_MARGIN_NS, and the peer skips the snapshot
only when the database's identity is still exactly that one."""

import errno
import logging
import math
import os
import re
import shlex
import signal
import subprocess
import time

from . import asterisk, exits, lock, state, sync_remote

TOOL = "asha-sync"
LOCK_WAIT_NOW = 60.0          # --now waits this long for a running sync to end
SIDE_FILES = ("-wal", "-shm", "-journal")
REMOTE_PYTHON = "python3"
SNAPSHOTS = "sync.snapshots"  # in ASHARUNDIR: what each database here was taken from
SNAPSHOT_FIELDS = ("PATH", "PEER", "PEERADDR", "SOURCE", "TAKEN", "COPY")
# git's racy-timestamp rule: a commit in the same timestamp tick as the change
# before the snapshot leaves the identity as it was, so only an identity whose
# times are this much older than the snapshot proves that nothing changed since.
RACY_MARGIN_NS = 2_000_000_000


class Skip(Exception):
    """This node must not pull now; the reason is normal, not a failure."""


class Terminated(exits.AshaError):
    """SIGTERM during a run: rsync is stopped with it and the run recorded as failed."""


def _terminate(signum, frame):
    raise Terminated(f"stopped by {signal.Signals(signum).name}")


class Outcome:
    """What one run did, as recorded in sync.state."""

    def __init__(self, result, reason="", peer="", peeraddr=""):
        self.result, self.reason = result, reason
        self.peer, self.peeraddr = peer, peeraddr
        self.files = self.bytes = self.deleted = 0
        self.databases = []
        self.unchanged = []
        self.duration = 0.0
        self.problems = []

    def values(self, t0, last_ok):
        return {
            "TIME": f"{t0:.0f}", "RESULT": self.result, "REASON": self.reason,
            "DURATION": f"{self.duration:.3f}", "FILES": str(self.files),
            "BYTES": str(self.bytes), "DELETED": str(self.deleted),
            "DATABASES": " ".join(self.databases), "UNCHANGED": " ".join(self.unchanged),
            "PEER": self.peer,
            "PEERADDR": self.peeraddr, "LASTOK": last_ok,
        }


# ---------------------------------------------------------------------------
# What is synced.

def trees(cfg):
    """[(key, path)] of the trees to pull, without duplicates or trees inside others."""
    items = [("ASTCONFDIR", cfg.ASTCONFDIR), ("GREETDIR", cfg.GREETDIR),
             ("VMAILDIR", cfg.VMAILDIR)]
    if cfg.DAHDIDIR:
        items.append(("DAHDIDIR", cfg.DAHDIDIR))
    items += [("USERSYNC", p) for p in cfg.USERSYNC]
    out = []
    for key, path in items:
        if any(_inside(path, p) for _, p in out):
            continue
        out = [(k, p) for k, p in out if not _inside(p, path)]
        out.append((key, path))
    return out


def databases(cfg):
    out = []
    for key in ("SARKDB", "ASTDB"):
        path = getattr(cfg, key)
        if path not in (p for _, p in out):
            out.append((key, path))
    return out


def _inside(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def has_data(path):
    """True when this node holds something at path (a file, or a directory with entries)."""
    return sync_remote.tree_state(path) in ("data", "file")


def staged_name(path):
    return sync_remote.staged_name(path)


# ---------------------------------------------------------------------------
# Whether to pull, and from where.

def gate(cfg, now=False):
    """(peer, address) to pull from, or raise Skip with the reason not to.

    now (asha-hb's auto-failback, `--now`): also while this node waits or is
    taking the resources back, and from a peer that is releasing them: what
    matters is that nothing here runs Asterisk and the peer holds the data."""
    if cfg.HASYNCH == "LOOSE":
        raise Skip("HASYNCH=LOOSE: nothing is synced")
    hb = state.read_hb(cfg)
    role = hb.get("ROLE", "down")
    if role == "down":
        raise Skip("asha-hb is not running here, so which node is active is unknown")
    peer = hb.get("PEER") or cfg.peer_node()
    peerstate = hb.get("PEERSTATE", "unknown")
    if role == "active":
        raise Skip("this node is active: it holds the data")
    if now:
        if role not in ("standby", "waiting", "taking"):
            raise Skip(f"this node is {role}")
        if peerstate not in ("active", "releasing"):
            raise Skip(f"peer {peer} is {peerstate}, not active: nothing to pull from")
    else:
        if role != "standby":
            raise Skip(f"this node is {role}, not standby")
        if peerstate != "active":
            raise Skip(f"peer {peer} is {peerstate}, not active: nothing to pull from")
    pid = asterisk.find_pid(cfg)
    if pid is not None:
        raise Skip(f"Asterisk is running on this node (pid {pid}): its data is not replaced")
    addr = hb.get("PEERADDR") or cfg.node_addr(peer)
    return peer, addr


# ---------------------------------------------------------------------------
# The transfer.

def ssh_argv(cfg):
    """ssh as asha-sync runs it: key authentication only, no prompts, bounded waits."""
    alive = max(1, math.ceil(cfg.SYNCIOTIMEOUT / 3))
    argv = ["ssh", "-x", "-a", "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={max(1, math.ceil(cfg.SYNCCONNECTTIMEOUT))}",
            "-o", f"ServerAliveInterval={alive}", "-o", "ServerAliveCountMax=3",
            "-o", "LogLevel=ERROR", "-p", str(cfg.HASSHPORT)]
    if cfg.SYNCSSHKEY:
        argv += ["-i", cfg.SYNCSSHKEY, "-o", "IdentitiesOnly=yes"]
    return argv


def rsync_argv(cfg, addr, job, dry_run=False, itemize=False):
    host = f"[{addr}]" if ":" in addr else addr
    argv = [cfg.RSYNC, "-a", "--relative", "--keep-dirlinks",
            "--delete", "--delete-delay", "--stats",
            f"--timeout={max(1, math.ceil(cfg.SYNCIOTIMEOUT))}",
            f"--filter=P {sync_remote.STAGED_PREFIX}*"]
    for _, db in databases(cfg):
        # A database inside a synced tree comes only as a checked snapshot.
        for suffix in ("",) + SIDE_FILES:
            argv.append(f"--filter=- {_rsync_pattern(db + suffix)}")
    if dry_run:
        argv.append("--dry-run")
    if itemize or dry_run:
        argv.append("--itemize-changes")
    argv += ["-e", " ".join(shlex.quote(a) for a in ssh_argv(cfg)),
             "--rsync-path", sync_remote.program(job)]
    argv += [f"{host}:{sync_remote.tree_arg(path, 'data')}" for path, _ in job["trees"]]
    for path, *_ in job["dbs"]:
        argv.append(f"{host}:{staged_name(path)}")
    argv.append("/")
    return argv


def _rsync_pattern(path):
    """An rsync filter pattern that matches exactly path (anchored at the transfer root)."""
    return re.sub(r"([*?\[\\])", r"\\\1", path)


_STATS = {
    "files": re.compile(r"^Number of regular files transferred: ([\d,]+)", re.M),
    "bytes": re.compile(r"^Total transferred file size: ([\d,]+)", re.M),
    "deleted": re.compile(r"^Number of deleted files: ([\d,]+)", re.M),
}


_ITEM = re.compile(r"^(\*deleting|[<>ch.][fdLDS])")


def parse_stats(text):
    out = {}
    for name, rx in _STATS.items():
        m = rx.search(text)
        out[name] = int(m.group(1).replace(",", "")) if m else 0
    return out


def parse_report(stderr):
    """(the helper's report or None, its errors by item, the other stderr lines)."""
    report, errors, rest = None, {}, []
    for line in stderr.splitlines():
        if line.startswith(sync_remote.REPORT):
            report = sync_remote.parse_report(line[len(sync_remote.REPORT):])
        elif line.startswith(sync_remote.ERROR):
            item, _, message = line[len(sync_remote.ERROR):].partition(" ")
            errors[item] = message.strip()
        elif line.strip():
            rest.append(line)
    return report, errors, rest


def why_rsync_failed(rc, lines, peer, addr, port):
    """One line for a failed rsync: ssh's own words when ssh failed."""
    for line in lines:
        if line.startswith("ssh: ") or re.match(r"\S+: Permission denied \(", line) \
                or line.startswith("Host key verification failed"):
            return f"cannot reach {peer} ({addr}) over ssh: {line.removeprefix('ssh: ')}"
    for line in lines:
        if "Connection closed by" in line or "Connection reset" in line or "Connection timed out" in line:
            return f"ssh to {peer} ({addr}) port {port} broke: {line}"
    for line in lines:
        if "No space left on device" in line:
            return f"no space left on this node for what {peer} sends: {line}"
    useful = [ln for ln in lines if not re.match(r"rsync error: (some files|unexplained)", ln)
              and not ln.startswith("rsync: connection unexpectedly closed")]
    if rc == 30:
        return f"no data from {peer} ({addr}) for the I/O timeout: {(useful or lines or ['timeout'])[0]}"
    if useful:
        return f"rsync from {peer} ({addr}) failed (exit {rc}): {useful[0]}"
    if lines:
        return f"rsync from {peer} ({addr}) failed (exit {rc}): {lines[-1]}"
    return f"rsync from {peer} ({addr}) failed with exit status {rc}"


def integrity(path):
    """'ok', or what PRAGMA integrity_check (or opening the file) found."""
    # Here, not at the top: a run that brings no snapshot needs neither (4 ms).
    import sqlite3
    import urllib.parse
    uri = "file:" + urllib.parse.quote(path) + "?mode=ro&immutable=1"
    try:
        c = sqlite3.connect(uri, uri=True)
        try:
            rows = c.execute("PRAGMA integrity_check").fetchall()
        finally:
            c.close()
    except sqlite3.Error as e:
        return str(e)
    text = "; ".join(str(r[0]) for r in rows[:3])
    return "ok" if text == "ok" else text


def install_db(path):
    """Replace the database at path by its checked staged snapshot: the side
    files of the old one first (a -wal or -journal left beside the new file
    would be read as part of it), then the file in one rename."""
    staged = staged_name(path)
    fd = os.open(staged, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for suffix in SIDE_FILES:
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
    os.replace(staged, path)
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------
# Databases unchanged since the snapshot installed here.

_TIME = r"(\d+(?:\.\d+)?)"
_IDENTITY = re.compile(rf"\d+:\d+:\d+:{_TIME}:{_TIME},(?:-|\d+:\d+:\d+:{_TIME})")


def _ns(text):
    """Nanoseconds from stat's seconds with an optional fraction ('1796159824.197620295')."""
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def identity_times(identity):
    """The times (ns) in a database's identity as the peer reports it, or None
    when it is not one (no GNU stat there, a symlink, a file gone meanwhile)."""
    m = _IDENTITY.fullmatch(identity)
    return None if m is None else [_ns(t) for t in m.groups() if t is not None]


def copy_identity(path):
    """This node's copy of a database as a string that any change to it changes."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def read_snapshots(cfg):
    """{config key: {field: value}} from sync.snapshots; {} when unreadable."""
    try:
        values = state.read(state.path(cfg, SNAPSHOTS))
    except (OSError, ValueError):
        return {}
    records = {}
    for key, _ in databases(cfg):
        record = {f: values[f"{key}_{f}"] for f in SNAPSHOT_FIELDS if f"{key}_{f}" in values}
        if len(record) == len(SNAPSHOT_FIELDS):
            records[key] = record
    return records


def write_snapshots(cfg, records, log):
    path = state.path(cfg, SNAPSHOTS)
    try:
        if records:
            state.write(path, {f"{key}_{f}": rec[f] for key, rec in records.items()
                               for f in SNAPSHOT_FIELDS})
        else:
            _unlink(path)
    except OSError as e:
        log.warning("cannot write %s: %s", path, e.strerror)
        try:
            _unlink(path)           # no record: the next run takes every snapshot
        except OSError:
            pass


def unchanged_source(record, path, peer, addr):
    """The identity to hand to peer for the database at path: the one its copy
    here was taken from, when that copy is untouched since it was installed
    and the identity is older than the snapshot by RACY_MARGIN_NS; "" (take a
    snapshot) when anything is unknown or different."""
    if not record or (record["PATH"], record["PEER"], record["PEERADDR"]) != (path, peer, addr):
        return ""
    if copy_identity(path) != record["COPY"] \
            or any(os.path.lexists(path + s) for s in ("-wal", "-journal")):
        return ""
    times = identity_times(record["SOURCE"])
    if times is None or not record["TAKEN"].isdigit() \
            or max(times) >= int(record["TAKEN"]) - RACY_MARGIN_NS:
        return ""
    return record["SOURCE"]


def pull(cfg, log, peer, addr, dry_run=False, out=None):
    """One transfer from peer at addr; returns an Outcome ('ok' or 'failed')."""
    verbose = log.isEnabledFor(logging.DEBUG)
    outcome = Outcome("ok", peer=peer, peeraddr=addr)
    tree_list, db_list = trees(cfg), databases(cfg)
    key_of = dict((p, k) for k, p in tree_list + db_list)
    records = {} if dry_run else read_snapshots(cfg)
    known = {p: unchanged_source(records.get(k), p, peer, addr) for k, p in db_list}
    job = {"trees": [[p, has_data(p)] for _, p in tree_list],
           "dbs": [[p, os.path.exists(p), known[p]] for _, p in db_list],
           "rsync": cfg.RSYNC,
           "busy": max(1.0, min(10.0, cfg.SYNCIOTIMEOUT / 2)), "snapshot": not dry_run}
    if not dry_run:
        for _, db in db_list:
            _unlink(staged_name(db))        # left by a run that was killed; we hold the lock
    argv = rsync_argv(cfg, addr, job, dry_run=dry_run, itemize=verbose)
    env = dict(os.environ, LC_ALL="C", RSYNC_PROTECT_ARGS="0")
    env.pop("RSYNC_OLD_ARGS", None)
    log.debug("running %s", " ".join(shlex.quote(a) for a in argv[:argv.index("--rsync-path")]))
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       errors="replace", env=env)
    report, errors, lines = parse_report(p.stderr)
    log.debug("rsync exit %d; %s reports %s %s", p.returncode, peer, report, errors)
    for line in lines:
        log.debug("rsync: %s", line)
    if report is None:
        raise exits.AshaError(why_rsync_failed(p.returncode, lines, peer, addr, cfg.HASSHPORT))
    if verbose:
        for line in p.stdout.splitlines():
            if _ITEM.match(line):
                log.debug("rsync: %s", line)
    stats = parse_stats(p.stdout)
    outcome.files, outcome.bytes, outcome.deleted = stats["files"], stats["bytes"], stats["deleted"]
    if out is not None and dry_run:
        for line in p.stdout.splitlines():
            if _ITEM.match(line):
                out(f"would {'delete' if line.startswith('*deleting') else 'update'}: "
                    f"/{line.split(' ', 1)[1].strip().lstrip('/')}")
    rsync_ok = p.returncode in (0, 24) or report.get("S") == "0"
    if p.returncode == 24:
        log.warning("some files vanished on %s while they were sent (normal when a message is deleted)",
                    peer)
    if not rsync_ok:
        outcome.problems.append(why_rsync_failed(p.returncode, lines, peer, addr, cfg.HASSHPORT))

    for i, (path, standby_has_data) in enumerate(job["trees"]):
        st = report.get(f"T{i}")
        if st in ("missing", "empty") and standby_has_data:
            outcome.problems.append(
                f"{key_of[path]} {path} is {st} on {peer} while this node's copy is not: "
                f"kept this node's copy (is the disk mounted on {peer}?)")
    kept = {}                   # the records still true after this run
    for i, (path, standby_has_copy, _) in enumerate(job["dbs"]):
        st = report.get(f"D{i}")
        what = f"{key_of[path]} {path}"
        if st == "same" and known[path]:
            kept[key_of[path]] = records[key_of[path]]
            outcome.unchanged.append(os.path.basename(path))
            log.debug("%s unchanged on %s since the snapshot this node holds: none taken", path, peer)
            continue
        if st in ("missing", "empty"):
            if standby_has_copy:
                outcome.problems.append(f"{what} is {st} on {peer} while this node has a copy: "
                                        f"kept this node's copy")
            continue
        if st == "error":
            outcome.problems.append(f"{what}: snapshot on {peer} failed: "
                                    f"{errors.get(f'D{i}') or 'no reason given'}")
            continue
        if dry_run or st != "ok":
            if dry_run and out is not None and st == "ok":
                out(f"would update: {path} (an online-backup snapshot)")
            continue
        staged = staged_name(path)
        if not os.path.exists(staged):
            if rsync_ok:
                outcome.problems.append(f"{what}: the snapshot from {peer} did not arrive")
            continue
        check = integrity(staged)
        if check != "ok":
            _unlink(staged)
            outcome.problems.append(f"{what}: the snapshot from {peer} failed integrity_check "
                                    f"({check}): kept this node's copy")
            continue
        try:
            install_db(path)
        except OSError as e:
            _unlink(staged)
            outcome.problems.append(f"{what}: cannot put the snapshot in place: {e.strerror}")
            continue
        outcome.databases.append(os.path.basename(path))
        log.debug("%s replaced by a checked snapshot from %s", path, peer)
        source, taken, copy = report.get(f"I{i}", ""), report.get("N", ""), copy_identity(path)
        if identity_times(source) is not None and taken.isdigit() and copy:
            kept[key_of[path]] = {"PATH": path, "PEER": peer, "PEERADDR": addr, "SOURCE": source,
                                  "TAKEN": taken, "COPY": copy}
    if not dry_run and kept != records:
        write_snapshots(cfg, kept, log)
    if outcome.problems:
        outcome.result, outcome.reason = "failed", "; ".join(outcome.problems)
    return outcome


# ---------------------------------------------------------------------------
# A run.

def _last_ok(cfg):
    try:
        old = state.read(state.path(cfg, state.SYNC_STATE))
    except (OSError, ValueError):
        return ""
    return old.get("TIME", "") if old.get("RESULT") == "ok" else old.get("LASTOK", "")


def record(cfg, outcome, t0):
    last_ok = f"{t0:.0f}" if outcome.result == "ok" else _last_ok(cfg)
    try:
        state.write(state.path(cfg, state.SYNC_STATE), outcome.values(t0, last_ok))
    except OSError as e:
        raise exits.AshaError(f"cannot write {state.path(cfg, state.SYNC_STATE)}: {e.strerror}") from None


def postsync(cfg, log):
    if not cfg.POSTSYNC:
        return
    t0 = time.monotonic()
    p = subprocess.run(["sh", "-c", cfg.POSTSYNC], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, errors="replace")
    ms = (time.monotonic() - t0) * 1000
    last = (p.stderr.strip() or p.stdout.strip()).splitlines()
    tail = f": {last[-1]}" if last else ""
    if p.returncode == 0:
        log.info("POSTSYNC (%s) exited 0 in %.0f ms%s", cfg.POSTSYNC, ms, tail)
    else:
        log.warning("POSTSYNC (%s) exited %d in %.0f ms%s", cfg.POSTSYNC, p.returncode, ms, tail)


def summary(o):
    dbs = f", databases {' '.join(o.databases)}" if o.databases else ""
    if o.unchanged:
        dbs += f", unchanged {' '.join(o.unchanged)}"
    return (f"pulled from {o.peer} ({o.peeraddr}) in {o.duration:.2f} s: {o.files} files "
            f"({_size(o.bytes)}), {o.deleted} deleted{dbs}")


def _size(n):
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"


def sync_locked(cfg, log, now=False):
    """Gate, pull, install, POSTSYNC, record; the caller holds the lock. Returns the Outcome."""
    t0, m0 = time.time(), time.monotonic()
    try:
        peer, addr = gate(cfg, now=now)
    except Skip as e:
        outcome = Outcome("skipped", str(e))
        log.info("skipped: %s", e)
    else:
        try:
            outcome = pull(cfg, log, peer, addr)
        except exits.AshaError as e:
            outcome = Outcome("failed", str(e), peer, addr)
        except OSError as e:
            outcome = Outcome("failed", f"{e.filename or ''}: {e.strerror}".lstrip(": "), peer, addr)
            if e.errno == errno.ENOSPC:
                outcome.reason = f"no space left on this node: {outcome.reason}"
    outcome.duration = time.monotonic() - m0
    if outcome.result == "ok":
        log.info("%s", summary(outcome))
    elif outcome.result == "failed":
        log.error("sync from %s failed: %s", outcome.peer or "the peer", outcome.reason)
    record(cfg, outcome, t0)
    if outcome.result == "ok":
        postsync(cfg, log)
    return outcome


def run_now(cfg, log, lock_wait=LOCK_WAIT_NOW):
    """asha-hb's auto-failback hook: pull from the active peer at once.

    Waits up to lock_wait seconds for a sync already running to end. True when
    the data was pulled, or when HASYNCH=LOOSE (nothing is synced, nothing to
    wait for); False with the reason logged otherwise. Never raises: it runs
    inside asha-hb."""
    try:
        if cfg.HASYNCH == "LOOSE":
            log.info("HASYNCH=LOOSE: nothing to pull before taking back")
            return True
        held = _acquire(cfg, log, lock_wait)
        if held is None:
            return False
        try:
            outcome = sync_locked(cfg, log, now=True)
        finally:
            held.release()
    except Exception as e:          # noqa: BLE001 - asha-hb must go on, with the reason logged
        log.error("sync before taking back failed: %s", e)
        return False
    if outcome.result == "skipped":
        log.warning("could not pull before taking back: %s", outcome.reason)
    return outcome.result == "ok"


def _acquire(cfg, log, wait):
    """The sync lock, waiting up to wait seconds; None (logged) when still busy."""
    path = state.path(cfg, state.SYNC_LOCK)
    end = time.monotonic() + wait
    while True:
        try:
            return lock.Lock(path).acquire()
        except lock.LockBusy as e:
            if time.monotonic() >= end:
                log.error("%s after %g s: not syncing", e, wait)
                return None
            time.sleep(0.1)


def dry_run(cfg, log, now, out):
    """Say what a run would do; touches nothing here."""
    path = state.path(cfg, state.SYNC_LOCK)
    if lock.is_held(path):
        out(f"a sync is running now (lock {path} held by pid {lock.holder(path) or '?'})")
    try:
        peer, addr = gate(cfg, now=now)
    except Skip as e:
        out(f"would skip: {e}")
        return exits.OK
    out(f"would pull from {peer} ({addr}) over ssh port {cfg.HASSHPORT}:")
    for key, p in trees(cfg):
        out(f"  {key} {p}")
    for key, p in databases(cfg):
        out(f"  {key} {p} (SQLite online backup, integrity_check, atomic replace)")
    outcome = pull(cfg, log, peer, addr, dry_run=True, out=out)
    for problem in outcome.problems:
        out(f"would fail: {problem}")
    if cfg.POSTSYNC:
        out(f"then would run POSTSYNC: {cfg.POSTSYNC}")
    return exits.FAIL if outcome.problems else exits.OK


def run(args):
    """asha-sync's command line; returns the exit status."""
    from . import cli
    # subprocess.run kills rsync when an exception leaves it: a stopped run
    # (systemd's TimeoutStartSec, a person's kill) leaves no rsync behind.
    signal.signal(signal.SIGTERM, _terminate)
    cfg = cli.load_config(args, TOOL)
    log = cli.setup_log(TOOL, cfg, verbose=args["--verbose"])
    cron = args["--cron"]
    now = args["--now"]

    def out(line):
        print(line, flush=True)

    if args["--dry-run"]:
        return dry_run(cfg, log, now, out)
    if now:
        held = _acquire(cfg, log, LOCK_WAIT_NOW)
        if held is None:
            raise exits.AshaError(f"lock {state.path(cfg, state.SYNC_LOCK)} still held after "
                                  f"{LOCK_WAIT_NOW:g} s")
    else:
        try:
            held = lock.Lock(state.path(cfg, state.SYNC_LOCK)).acquire()
        except lock.LockBusy as e:
            log.info("%s, skipping", e)
            if not cron:
                out(f"{e}, skipping")
            return exits.OK
    try:
        outcome = sync_locked(cfg, log, now=now)
    finally:
        held.release()
    if outcome.result == "failed":
        raise exits.AshaError(outcome.reason)
    if not cron:
        out(summary(outcome) if outcome.result == "ok" else f"skipped: {outcome.reason}")
    return exits.OK
