"""asha-sync without a network: what is synced, when a run may pull, the
commands it builds, the peer-side program run for real on this host with a
stand-in rsync, the database checks and swaps, the outcome file, the CLI."""

import os
import shlex
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from asha import config, lock, state, sync, sync_remote

from .test_asterisk import Log

REPO = Path(__file__).resolve().parents[2]


def make_cfg(tmp_path, **over):
    text = {"HACLUSTERIP": "192.0.2.100/24", "HAPRINODE": "pbx1", "HASECNODE": "pbx2",
            "HAPRIADDR": "192.0.2.1", "HASECADDR": "192.0.2.2", "ASHARUNDIR": str(tmp_path / "run"),
            "ASTPIDFILE": str(tmp_path / "asterisk.pid"), "ASTPROC": "noasterisk"}
    text.update({k: str(v) for k, v in over.items()})
    return config.loads("".join(f"{k}={config.quote(v)}\n" for k, v in text.items()), "test.conf")


def write_hb(cfg, **fields):
    values = {"NODE": "pbx2", "PID": str(os.getpid()), "ROLE": "standby", "PEER": "pbx1",
              "PEERSTATE": "active", "PEERADDR": "192.0.2.1"}
    values.update(fields)
    state.write(state.path(cfg, state.HB_STATE), values)


# ---------------------------------------------------------------------------
# What is synced.

def test_trees_in_order_without_duplicates_or_nested_paths(tmp_path):
    cfg = make_cfg(tmp_path, DAHDIDIR="/etc/dahdi",
                   USERSYNC="/etc/asterisk/extra /var/www/prov /var/www/prov /var/www")
    assert sync.trees(cfg) == [("ASTCONFDIR", "/etc/asterisk"), ("GREETDIR", "/var/lib/asterisk/sounds"),
                               ("VMAILDIR", "/var/spool/asterisk/voicemail"), ("DAHDIDIR", "/etc/dahdi"),
                               ("USERSYNC", "/var/www")]
    assert ("DAHDIDIR", "") not in sync.trees(make_cfg(tmp_path))
    assert [k for k, _ in sync.trees(make_cfg(tmp_path))] == ["ASTCONFDIR", "GREETDIR", "VMAILDIR"]


def test_databases_once_each(tmp_path):
    assert sync.databases(make_cfg(tmp_path)) == [("SARKDB", "/opt/sark/db/sark.db"),
                                                  ("ASTDB", "/var/lib/asterisk/astdb.sqlite3")]
    assert sync.databases(make_cfg(tmp_path, SARKDB="/x.db", ASTDB="/x.db")) == [("SARKDB", "/x.db")]


# ---------------------------------------------------------------------------
# When a run may pull.

@pytest.mark.parametrize("fields, now, reason", [
    (dict(ROLE="active"), False, "this node is active: it holds the data"),
    (dict(ROLE="active"), True, "this node is active: it holds the data"),
    (dict(ROLE="waiting"), False, "this node is waiting, not standby"),
    (dict(ROLE="releasing"), True, "this node is releasing"),
    (dict(PEERSTATE="dead"), False, "peer pbx1 is dead, not active: nothing to pull from"),
    (dict(PEERSTATE="releasing"), False, "peer pbx1 is releasing, not active: nothing to pull from"),
    (dict(PEERSTATE="standby"), True, "peer pbx1 is standby, not active: nothing to pull from"),
    (dict(PID="0"), False, "asha-hb is not running here, so which node is active is unknown"),
])
def test_gate_skips_with_the_reason(tmp_path, fields, now, reason):
    cfg = make_cfg(tmp_path)
    write_hb(cfg, **fields)
    with pytest.raises(sync.Skip) as e:
        sync.gate(cfg, now=now)
    assert str(e.value) == reason


@pytest.mark.parametrize("fields, now", [
    ({}, False), ({}, True), (dict(ROLE="waiting"), True), (dict(ROLE="taking"), True),
    (dict(PEERSTATE="releasing"), True),
])
def test_gate_pulls_from_the_peer_address(tmp_path, fields, now):
    cfg = make_cfg(tmp_path)
    write_hb(cfg, PEERADDR="192.0.2.77", **fields)
    assert sync.gate(cfg, now=now) == ("pbx1", "192.0.2.77")


def test_gate_uses_the_configured_address_without_peeraddr(tmp_path):
    cfg = make_cfg(tmp_path)
    write_hb(cfg, PEERADDR="")
    assert sync.gate(cfg) == ("pbx1", "192.0.2.1")


def test_gate_loose_and_no_hb_state(tmp_path):
    with pytest.raises(sync.Skip, match="^HASYNCH=LOOSE: nothing is synced$"):
        sync.gate(make_cfg(tmp_path, HASYNCH="LOOSE"))
    with pytest.raises(sync.Skip, match="asha-hb is not running here"):
        sync.gate(make_cfg(tmp_path))


def test_gate_skips_while_asterisk_runs_here(tmp_path):
    me = psutil.Process()
    cfg = make_cfg(tmp_path, ASTPROC=me.name()[:15])
    write_hb(cfg)
    (tmp_path / "asterisk.pid").write_text(f"{me.pid}\n")
    with pytest.raises(sync.Skip) as e:
        sync.gate(cfg)
    assert str(e.value) == f"Asterisk is running on this node (pid {me.pid}): its data is not replaced"


# ---------------------------------------------------------------------------
# The commands.

def test_ssh_options_bound_every_wait(tmp_path):
    cfg = make_cfg(tmp_path, SYNCCONNECTTIMEOUT="2.5", SYNCIOTIMEOUT="30", HASSHPORT="2222",
                   SYNCSSHKEY="/etc/asha/sync_key")
    argv = sync.ssh_argv(cfg)
    joined = " ".join(argv)
    for want in ("-o BatchMode=yes", "-o ConnectTimeout=3", "-o ServerAliveInterval=10",
                 "-o ServerAliveCountMax=3", "-p 2222", "-i /etc/asha/sync_key", "-o IdentitiesOnly=yes"):
        assert want in joined
    assert "-i" not in sync.ssh_argv(make_cfg(tmp_path))


def test_rsync_command(tmp_path):
    cfg = make_cfg(tmp_path, SYNCIOTIMEOUT="7.5", USERSYNC="/var/lib/asterisk")
    job = {"trees": [[p, False] for _, p in sync.trees(cfg)],
           "dbs": [[p, False] for _, p in sync.databases(cfg)], "rsync": "/usr/bin/rsync",
           "busy": 3, "snapshot": True}
    argv = sync.rsync_argv(cfg, "2001:db8::1", job)
    assert argv[:6] == ["/usr/bin/rsync", "-a", "--relative", "--keep-dirlinks", "--delete",
                        "--delete-delay"]
    assert "--timeout=8" in argv and "--dry-run" not in argv
    assert "--filter=- /var/lib/asterisk/astdb.sqlite3-wal" in argv
    assert argv[argv.index("--rsync-path") + 1].startswith("sh -c ")
    assert argv[-1] == "/"
    assert argv[-4:-1] == ["[2001:db8::1]:/var/lib/asterisk/",
                           "[2001:db8::1]:/opt/sark/db/.asha-sync.sark.db",
                           "[2001:db8::1]:/var/lib/asterisk/.asha-sync.astdb.sqlite3"]
    dry = sync.rsync_argv(cfg, "192.0.2.1", job, dry_run=True)
    assert "--dry-run" in dry and "--itemize-changes" in dry


def test_filter_pattern_escapes_wildcards():
    assert sync._rsync_pattern("/db/a*b?[c].db") == r"/db/a\*b\?\[c].db"


# ---------------------------------------------------------------------------
# The peer-side program, run here with a stand-in rsync.

FAKE_RSYNC = """\
#!/bin/sh
# Stand-in for rsync's sender: record the arguments and what the snapshots hold.
log={log}
printf '%s\\n' "$@" > "$log"
for a do
  case "$a" in
    */.asha-sync.*) sqlite3 "$a" 'pragma integrity_check; select count(*) from t' >> "$log.db" ;;
  esac
done
exit {status}
"""


def make_db(path, rows=3, wal=False):
    c = sqlite3.connect(path)
    if wal:
        c.execute("pragma journal_mode=wal")
    c.execute("create table t(id integer primary key)")
    c.executemany("insert into t values (?)", [(i,) for i in range(1, rows + 1)])
    c.commit()
    c.close()


def run_program(tmp_path, job, requested, status=0, path=None):
    fake = tmp_path / "fake-rsync"
    log = tmp_path / "rsync-args"
    for old in (log, tmp_path / "rsync-args.db"):
        if old.exists():
            old.unlink()
    fake.write_text(FAKE_RSYNC.format(log=shlex.quote(str(log)), status=status))
    fake.chmod(0o755)
    job = dict({"rsync": str(fake), "busy": 2, "snapshot": True}, **job)
    cmd = sync_remote.program(job) + " --server --sender -logDtprRe.iLsfxCIvu --timeout=5 . " + \
        " ".join(shlex.quote(r) for r in requested)
    env = dict(os.environ, PATH=path or os.environ["PATH"])
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, timeout=30)
    args = log.read_text().splitlines() if log.exists() else None
    dbs = (tmp_path / "rsync-args.db").read_text().split() if (tmp_path / "rsync-args.db").exists() else []
    return p, args, dbs


def identity(db, wal=False):
    """A database's identity as the peer's program reports it: stat of it and its -wal."""
    def one(path):
        st = os.stat(path)
        return (f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns // 10**9}.{st.st_mtime_ns % 10**9:09d}:"
                f"{st.st_ctime_ns // 10**9}.{st.st_ctime_ns % 10**9:09d}")
    return one(db) + "," + (one(f"{db}-wal").rpartition(":")[0] if wal else "-")


def layout(tmp_path):
    data, empty, file_ = tmp_path / "data", tmp_path / "empty", tmp_path / "file.conf"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "x").write_text("x")
    empty.mkdir()
    file_.write_text("f")
    dotonly = tmp_path / "dotonly"
    dotonly.mkdir()
    (dotonly / ".hidden").write_text("h")
    db_ok, db_wal, db_bad = tmp_path / "ok.db", tmp_path / "wal.db", tmp_path / "bad.db"
    make_db(db_ok)
    make_db(db_wal, rows=5, wal=True)
    db_bad.write_text("this is not an SQLite database, but long enough to look like a file\n" * 20)
    return data, empty, file_, dotonly, db_ok, db_wal, db_bad


def test_program_keeps_drops_snapshots_and_cleans_up(tmp_path):
    data, empty, file_, dotonly, db_ok, db_wal, db_bad = layout(tmp_path)
    missing, empty_db = tmp_path / "missing", tmp_path / "empty.db"
    empty_db.write_text("")
    trees = [[str(data), True], [str(empty), True], [str(empty), False], [str(missing), True],
             [str(file_), True], [str(dotonly), True]]
    dbs = [[str(db_ok), True], [str(db_wal), False], [str(db_bad), True], [str(tmp_path / "none.db"), True],
           [str(empty_db), True]]
    requested = [sync_remote.tree_arg(p) for p, _ in trees] + \
        [sync_remote.staged_name(p) for p, _ in dbs]
    t0 = time.time_ns()
    p, args, seen = run_program(tmp_path, {"trees": trees, "dbs": dbs}, requested)
    assert p.returncode == 0, p.stderr
    report, errors, rest = sync.parse_report(p.stderr)
    assert report == {"T0": "data", "T1": "empty", "T2": "empty", "T3": "missing", "T4": "file",
                      "T5": "data", "D0": "ok", "D1": "ok", "D2": "error", "D3": "missing", "D4": "empty",
                      "I0": identity(db_ok), "I1": identity(db_wal), "N": report["N"], "S": "6"}, p.stderr
    assert t0 <= int(report["N"]) <= time.time_ns()
    assert "file is not a database" in errors["D2"], errors
    assert rest == []
    head = ["--server", "--sender", "-logDtprRe.iLsfxCIvu", "--timeout=5", "."]
    assert args == head + [f"{data}/", f"{empty}/", str(file_), f"{dotonly}/",
                           sync_remote.staged_name(str(db_ok)), sync_remote.staged_name(str(db_wal))]
    assert seen == ["ok", "3", "ok", "5"]               # whole snapshots while rsync ran
    assert not list(tmp_path.glob(".asha-sync.*"))      # and gone after


def test_program_snapshot_keeps_mode_and_times(tmp_path):
    db = tmp_path / "m.db"
    make_db(db)
    os.chmod(db, 0o640)
    os.utime(db, (1_600_000_000, 1_600_000_000))
    fake = tmp_path / "stat-rsync"
    fake.write_text("#!/bin/sh\nfor a do case \"$a\" in */.asha-sync.*) stat -c '%a %Y' \"$a\" > "
                    f"{tmp_path}/stat;; esac; done\n")
    fake.chmod(0o755)
    job = {"trees": [], "dbs": [[str(db), False]], "rsync": str(fake), "busy": 1, "snapshot": True}
    cmd = sync_remote.program(job) + " --server --sender -a . " + sync_remote.staged_name(str(db))
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "stat").read_text().split() == ["640", "1600000000"]


def test_program_without_the_sqlite3_shell_uses_python3(tmp_path):
    _, _, _, _, db_ok, db_wal, db_bad = layout(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "rm", "chmod", "chown", "touch", "tail", "tr", "cat"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        os.symlink(found, bin_dir / tool)
    os.symlink(os.path.realpath(sys.executable), bin_dir / "python3")
    dbs = [[str(db_ok), True], [str(db_wal), True], [str(db_bad), True]]
    requested = [sync_remote.staged_name(p) for p, _ in dbs]
    fake = tmp_path / "fake-rsync"
    fake.write_text(f"#!{sys.executable}\nimport sqlite3, sys\n"
                    f"with open({str(tmp_path / 'seen')!r}, 'w') as f:\n"
                    "    for a in sys.argv[1:]:\n"
                    "        if '.asha-sync.' in a:\n"
                    "            c = sqlite3.connect(a)\n"
                    "            f.write(str(c.execute('select count(*) from t').fetchone()[0]) + ' ')\n")
    fake.chmod(0o755)
    job = {"trees": [], "dbs": dbs, "rsync": str(fake), "busy": 1, "snapshot": True}
    cmd = sync_remote.program(job) + " --server --sender -a . " + " ".join(requested)
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, PATH=str(bin_dir)))
    assert p.returncode == 0, p.stderr
    report, errors, _ = sync.parse_report(p.stderr)
    assert (report["D0"], report["D1"], report["D2"]) == ("ok", "ok", "error"), p.stderr
    assert "not a database" in errors["D2"]
    assert (tmp_path / "seen").read_text().split() == ["3", "5"]


def test_program_passes_rsync_status_and_sends_nothing_when_nothing_is_kept(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("f")
    p, args, _ = run_program(tmp_path, {"trees": [[str(data), False]], "dbs": []}, [f"{data}/"], status=23)
    assert p.returncode == 23
    p, args, _ = run_program(tmp_path, {"trees": [[str(tmp_path / "gone"), True]], "dbs": []},
                             [f"{tmp_path}/gone/"])
    assert p.returncode == 0 and args is None
    assert sync.parse_report(p.stderr)[0] == {"T0": "missing", "N": "", "S": "0"}


def test_program_dry_run_takes_no_snapshot(tmp_path):
    db = tmp_path / "d.db"
    make_db(db)
    p, args, seen = run_program(tmp_path, {"trees": [], "dbs": [[str(db), True],
                                                               [str(tmp_path / "no.db"), True]],
                                          "snapshot": False}, [sync_remote.staged_name(str(db))])
    assert sync.parse_report(p.stderr)[0] == {"D0": "ok", "D1": "missing", "N": "", "S": "0"}
    assert args is None and not list(tmp_path.glob(".asha-sync.*"))


def test_program_quotes_odd_paths(tmp_path):
    odd = tmp_path / "it's a \"dir\" $HOME `x`"
    odd.mkdir()
    (odd / "f").write_text("f")
    db = tmp_path / "o'dd \"db\" \\x.db"
    make_db(db)
    p, args, seen = run_program(tmp_path, {"trees": [[str(odd), False]], "dbs": [[str(db), False]]},
                                [f"{odd}/", sync_remote.staged_name(str(db))])
    assert p.returncode == 0, p.stderr
    assert args[-2:] == [f"{odd}/", sync_remote.staged_name(str(db))]
    assert seen == ["ok", "3"]


def test_program_skips_the_snapshot_of_a_database_the_standby_holds(tmp_path):
    """Given the identity the standby's copy was taken from: no snapshot while
    the database (and its -wal) still has it; one as soon as anything differs."""
    db, walled = tmp_path / "d.db", tmp_path / "w.db"
    make_db(db)
    make_db(walled, wal=True)
    writer = sqlite3.connect(walled)            # open: its -wal stays
    writer.execute("insert into t values (100)")
    writer.commit()
    try:
        assert os.path.exists(f"{walled}-wal")
        same = [[str(db), True, identity(db)], [str(walled), True, identity(walled, wal=True)]]
        requested = [sync_remote.staged_name(str(db)), sync_remote.staged_name(str(walled))]
        p, args, seen = run_program(tmp_path, {"trees": [], "dbs": same}, requested)
        assert p.returncode == 0, p.stderr
        report = sync.parse_report(p.stderr)[0]
        assert (report["D0"], report["D1"], report["S"]) == ("same", "same", "0"), p.stderr
        assert args is None and seen == [] and "I0" not in report

        # A row in the -wal only: the database file is as it was, the -wal is not.
        writer.execute("insert into t values (101)")
        writer.commit()
        p, args, seen = run_program(tmp_path, {"trees": [], "dbs": same}, requested)
        report = sync.parse_report(p.stderr)[0]
        assert (report["D0"], report["D1"], report["S"]) == ("same", "ok", "1"), p.stderr
        assert seen == ["ok", "5"] and report["I1"] == identity(walled, wal=True)
    finally:
        writer.close()
    # Another file under the same name; the standby names nothing; the -wal gone.
    os.rename(db, tmp_path / "old.db")
    make_db(db)
    for known in (identity(tmp_path / "old.db"), ""):
        p, _, seen = run_program(tmp_path, {"trees": [], "dbs": [[str(db), True, known]]}, requested[:1])
        assert sync.parse_report(p.stderr)[0]["D0"] == "ok" and seen == ["ok", "3"]
    p, _, seen = run_program(tmp_path, {"trees": [], "dbs": [[str(walled), True, same[1][2]]]}, requested[1:])
    assert sync.parse_report(p.stderr)[0]["I0"].endswith(",-") and seen == ["ok", "5"]


def test_program_reports_no_identity_it_cannot_vouch_for(tmp_path):
    """A symlinked database (SQLite keeps the -wal beside its target) and a
    peer without GNU stat or date: the identity is unknown, never reused."""
    target = tmp_path / "real.db"
    make_db(target)
    link = tmp_path / "link.db"
    os.symlink(target, link)
    p, _, seen = run_program(tmp_path, {"trees": [], "dbs": [[str(link), True, "x"]]},
                             [sync_remote.staged_name(str(link))])
    report = sync.parse_report(p.stderr)[0]
    assert (report["D0"], report["I0"], seen) == ("ok", "?", ["ok", "3"])
    assert sync.identity_times(report["I0"]) is None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "rm", "chmod", "chown", "touch", "tail", "sqlite3", "cat"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        os.symlink(found, bin_dir / tool)
    p, _, seen = run_program(tmp_path, {"trees": [], "dbs": [[str(target), True, ""]]},
                             [sync_remote.staged_name(str(target))], path=str(bin_dir))
    report = sync.parse_report(p.stderr)[0]
    assert (report["D0"], report["I0"], report["N"], seen) == ("ok", "?", "", ["ok", "3"]), p.stderr


def test_unchanged_source_only_for_an_untouched_copy_and_an_old_enough_identity(tmp_path):
    cfg = make_cfg(tmp_path)
    db = tmp_path / "copy.db"
    make_db(db)
    taken = 1_800_000_000 * 10**9
    old = f"1:2:8192:{taken // 10**9 - 3}.5:{taken // 10**9 - 3}.5"
    good = {"PATH": str(db), "PEER": "pbx1", "PEERADDR": "192.0.2.1", "SOURCE": old + ",-",
            "TAKEN": str(taken), "COPY": sync.copy_identity(db)}
    assert sync.unchanged_source(good, str(db), "pbx1", "192.0.2.1") == old + ",-"
    walled = f"{old},3:4:9000:{taken // 10**9 - 3}"
    assert sync.unchanged_source(dict(good, SOURCE=walled), str(db), "pbx1", "192.0.2.1") == walled
    # Racy: a change in the same tick as the last one before the snapshot would not show.
    racy = f"1:2:8192:{taken // 10**9 - 1}.5:{taken // 10**9 - 1}.5"
    for source in (racy + ",-", f"{old},3:4:9000:{taken // 10**9 - 1}.5",
                   f"1:2:8192:{taken // 10**9 - 3}:{taken // 10**9}.0,-"):
        assert sync.unchanged_source(dict(good, SOURCE=source), str(db), "pbx1", "192.0.2.1") == "", source
    for bad in ({"SOURCE": "?"}, {"SOURCE": old}, {"SOURCE": "1:2:3,-"}, {"SOURCE": f"{old},{old}"},
                {"SOURCE": f"{old},-,-"}, {"TAKEN": ""}, {"COPY": ""}):
        assert sync.unchanged_source(dict(good, **bad), str(db), "pbx1", "192.0.2.1") == "", bad
    assert sync.unchanged_source(good, str(db), "pbx3", "192.0.2.1") == ""
    assert sync.unchanged_source(good, str(db), "pbx1", "192.0.2.3") == ""
    assert sync.unchanged_source(None, str(db), "pbx1", "192.0.2.1") == ""
    for side in ("-wal", "-journal"):
        Path(f"{db}{side}").write_text("")
        assert sync.unchanged_source(good, str(db), "pbx1", "192.0.2.1") == ""
        os.unlink(f"{db}{side}")
    c = sqlite3.connect(db)
    c.execute("update t set id = 9 where id = 3")     # same size, this second
    c.commit()
    c.close()
    assert sync.unchanged_source(good, str(db), "pbx1", "192.0.2.1") == ""
    # The records round-trip through sync.snapshots, by configuration key.
    sync.write_snapshots(cfg, {"SARKDB": good}, Log())
    assert sync.read_snapshots(cfg) == {"SARKDB": good}
    sync.write_snapshots(cfg, {}, Log())
    assert sync.read_snapshots(cfg) == {} and not os.path.exists(state.path(cfg, sync.SNAPSHOTS))


# ---------------------------------------------------------------------------
# rsync's output and failures.

def test_parse_stats_with_thousands_separators():
    text = textwrap.dedent("""\
        Number of files: 10,113 (reg: 10,004, dir: 109)
        Number of created files: 1 (reg: 1)
        Number of deleted files: 3 (reg: 3)
        Number of regular files transferred: 1,203
        Total file size: 20,586,117 bytes
        Total transferred file size: 1,234,567 bytes
        """)
    assert sync.parse_stats(text) == {"files": 1203, "bytes": 1234567, "deleted": 3}
    assert sync.parse_stats("") == {"files": 0, "bytes": 0, "deleted": 0}


@pytest.mark.parametrize("rc, lines, want", [
    (255, ["ssh: connect to host 192.0.2.1 port 22: Connection refused",
           "rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]",
           "rsync error: unexplained error (code 255) at io.c(232) [Receiver=3.2.7]"],
     "cannot reach pbx1 (192.0.2.1) over ssh: connect to host 192.0.2.1 port 22: Connection refused"),
    (255, ["root@192.0.2.1: Permission denied (publickey)."],
     "cannot reach pbx1 (192.0.2.1) over ssh: root@192.0.2.1: Permission denied (publickey)."),
    (255, ["Host key verification failed."],
     "cannot reach pbx1 (192.0.2.1) over ssh: Host key verification failed."),
    (11, ['rsync: [receiver] write failed on "/v/m.wav": No space left on device (28)',
          "rsync error: error in file IO (code 11) at receiver.c(381) [receiver=3.2.7]"],
     'no space left on this node for what pbx1 sends: rsync: [receiver] write failed on "/v/m.wav": '
     'No space left on device (28)'),
    (23, ['rsync: [generator] failed to set permissions on "/v": Permission denied (13)',
          "rsync error: some files/attrs were not transferred (see previous errors) (code 23)"],
     'rsync from pbx1 (192.0.2.1) failed (exit 23): rsync: [generator] failed to set permissions on '
     '"/v": Permission denied (13)'),
    (30, ["[receiver] io timeout after 30 seconds -- exiting"],
     "no data from pbx1 (192.0.2.1) for the I/O timeout: [receiver] io timeout after 30 seconds -- exiting"),
    (12, [], "rsync from pbx1 (192.0.2.1) failed with exit status 12"),
])
def test_why_rsync_failed_in_one_line(rc, lines, want):
    assert sync.why_rsync_failed(rc, lines, "pbx1", "192.0.2.1", 22) == want


def test_parse_report_separates_its_lines():
    report, errors, rest = sync.parse_report(
        "Warning: something\nasha-sync-peer:  T0=data D0=error S=1\n"
        "asha-sync-peer-error: D0 Error: database is locked\n")
    assert report == {"T0": "data", "D0": "error", "S": "1"}
    assert errors == {"D0": "Error: database is locked"}
    assert rest == ["Warning: something"]
    assert sync.parse_report("ssh: connect to host x port 22: Connection refused\n")[0] is None


# ---------------------------------------------------------------------------
# Databases here.

def test_integrity_of_good_wal_and_damaged_files(tmp_path):
    good, wal, bad = tmp_path / "g.db", tmp_path / "w.db", tmp_path / "b.db"
    make_db(good)
    make_db(wal, wal=True)
    data = good.read_bytes()
    bad.write_bytes(data[:4096] + b"\xff" * (len(data) - 4096))
    assert sync.integrity(str(good)) == "ok"
    assert sync.integrity(str(wal)) == "ok"
    assert sync.integrity(str(bad)) != "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.db", "g.db", "w.db"]   # no side files made


def test_install_db_swaps_in_one_rename_and_drops_old_side_files(tmp_path):
    db = tmp_path / "astdb.sqlite3"
    make_db(db, rows=1)
    (tmp_path / "astdb.sqlite3-wal").write_bytes(b"old wal that belongs to the old file")
    (tmp_path / "astdb.sqlite3-journal").write_bytes(b"old journal")
    staged = Path(sync.staged_name(str(db)))
    make_db(staged, rows=7)
    inode = staged.stat().st_ino
    sync.install_db(str(db))
    assert db.stat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astdb.sqlite3"]
    assert sqlite3.connect(db).execute("select count(*) from t").fetchone()[0] == 7


# ---------------------------------------------------------------------------
# Outcome, library hook, command line.

def test_record_keeps_the_last_success(tmp_path):
    cfg = make_cfg(tmp_path)
    ok = sync.Outcome("ok", peer="pbx1", peeraddr="192.0.2.1")
    ok.files, ok.bytes, ok.databases, ok.duration = 3, 1200, ["sark.db"], 0.4
    sync.record(cfg, ok, 1000.0)
    st = state.read(state.path(cfg, state.SYNC_STATE))
    assert st == {"TIME": "1000", "RESULT": "ok", "REASON": "", "DURATION": "0.400", "FILES": "3",
                  "BYTES": "1200", "DELETED": "0", "DATABASES": "sark.db", "UNCHANGED": "", "PEER": "pbx1",
                  "PEERADDR": "192.0.2.1", "LASTOK": "1000"}
    sync.record(cfg, sync.Outcome("failed", "peer gone: it's down", "pbx1", "192.0.2.1"), 1060.0)
    sync.record(cfg, sync.Outcome("skipped", "HASYNCH=LOOSE"), 1120.0)
    st = state.read(state.path(cfg, state.SYNC_STATE))
    assert (st["RESULT"], st["TIME"], st["LASTOK"]) == ("skipped", "1120", "1000")


def test_run_now(tmp_path):
    log = Log()
    assert sync.run_now(make_cfg(tmp_path, HASYNCH="LOOSE"), log) is True
    cfg = make_cfg(tmp_path)
    write_hb(cfg, ROLE="active")
    assert sync.run_now(cfg, log) is False
    assert "could not pull before taking back: this node is active: it holds the data" in log.text()
    write_hb(cfg)
    with lock.Lock(state.path(cfg, state.SYNC_LOCK)):
        assert sync.run_now(cfg, log, lock_wait=0.3) is False
    assert f"held by pid {os.getpid()} after 0.3 s: not syncing" in log.text()
    cfg_bad = make_cfg(tmp_path / "no" / "such", ASHARUNDIR="/proc/asha-cannot-be-here")
    assert sync.run_now(cfg_bad, log) is False          # never raises inside asha-hb
    assert "sync before taking back failed" in log.text()


def cli(tmp_path, conf_text, *args):
    conf = tmp_path / "asha.conf"
    conf.write_text(conf_text)
    return subprocess.run([sys.executable, str(REPO / "bin" / "asha-sync"), "-c", str(conf), *args],
                          capture_output=True, text=True, timeout=30)


def conf_text(tmp_path, **over):
    values = {"HACLUSTERIP": "192.0.2.100/24", "HAPRINODE": "pbx1", "HASECNODE": "pbx2",
              "HAPRIADDR": "192.0.2.1", "HASECADDR": "192.0.2.2", "ASHARUNDIR": str(tmp_path / "run"),
              "ASTPIDFILE": str(tmp_path / "asterisk.pid"), "ASTPROC": "noasterisk"}
    values.update(over)
    return "".join(f"{k}={config.quote(v)}\n" for k, v in values.items())


def test_cli_skips_say_why_and_cron_is_quiet(tmp_path):
    p = cli(tmp_path, conf_text(tmp_path, HASYNCH="LOOSE"))
    assert (p.returncode, p.stdout, p.stderr) == (0, "skipped: HASYNCH=LOOSE: nothing is synced\n", "")
    p = cli(tmp_path, conf_text(tmp_path, HASYNCH="LOOSE"), "--cron")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    st = state.read(str(tmp_path / "run" / "sync.state"))
    assert (st["RESULT"], st["REASON"]) == ("skipped", "HASYNCH=LOOSE: nothing is synced")
    p = cli(tmp_path, conf_text(tmp_path), "--dry-run")
    assert (p.returncode, p.stdout) == \
        (0, "would skip: asha-hb is not running here, so which node is active is unknown\n")


def test_cli_lock_busy_exits_0(tmp_path):
    text = conf_text(tmp_path)
    (tmp_path / "run").mkdir()
    with lock.Lock(str(tmp_path / "run" / "sync.lock")):
        p = cli(tmp_path, text)
        assert (p.returncode, p.stdout) == \
            (0, f"lock {tmp_path}/run/sync.lock held by pid {os.getpid()}, skipping\n")
        assert cli(tmp_path, text, "--cron").stdout == ""
    assert not (tmp_path / "run" / "sync.state").exists()


def test_cli_usage_and_config_errors(tmp_path):
    p = cli(tmp_path, conf_text(tmp_path), "--bogus")
    assert p.returncode == 64
    p = cli(tmp_path, conf_text(tmp_path, SYNCIOTIMEOUT="forever"))
    assert p.returncode == 78
    assert "SYNCIOTIMEOUT must be a number of seconds" in p.stderr


def test_sigterm_stops_rsync_and_is_recorded(tmp_path):
    fake = tmp_path / "slow-rsync"
    fake.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/rsync.pid\nexec sleep 30\n")
    fake.chmod(0o755)
    text = conf_text(tmp_path, RSYNC=str(fake))
    cfg = config.loads(text, "t.conf")
    write_hb(cfg)
    conf = tmp_path / "asha.conf"
    conf.write_text(text)
    p = subprocess.Popen([sys.executable, str(REPO / "bin" / "asha-sync"), "-c", str(conf)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pidfile = tmp_path / "rsync.pid"
        for _ in range(500):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            time.sleep(0.01)
        rsync_pid = int(pidfile.read_text())
        p.terminate()
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    assert (p.returncode, out, err) == (1, "", "asha-sync: stopped by SIGTERM\n")
    assert not psutil.pid_exists(rsync_pid) or psutil.Process(rsync_pid).status() == psutil.STATUS_ZOMBIE
    st = state.read(str(tmp_path / "run" / "sync.state"))
    assert (st["RESULT"], st["REASON"], st["PEER"]) == ("failed", "stopped by SIGTERM", "pbx1")


def test_a_run_loads_only_what_it_needs(tmp_path):
    """A cron run through the gate (Asterisk looked for) and a transfer does not
    import psutil, ast, sqlite3 or logging.handlers: they cost it 30 ms a start."""
    text = conf_text(tmp_path, RSYNC="/bin/false")
    write_hb(config.loads(text, "t.conf"))
    conf = tmp_path / "asha.conf"
    conf.write_text(text)
    p = subprocess.run([sys.executable, "-X", "importtime", str(REPO / "bin" / "asha-sync"),
                        "-c", str(conf), "--cron"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "rsync from pbx1 (192.0.2.1) failed with exit status 1" in p.stderr
    loaded = {line.split("|")[-1].strip() for line in p.stderr.splitlines()
              if line.startswith("import time:")}
    assert {"asha.sync", "asha.asterisk", "docopt"} <= loaded
    assert not loaded & {"psutil", "ast", "sqlite3", "urllib.parse", "logging.handlers"}
