"""asha-sync in the lab: real sshd on each node, real rsync and sqlite3.

Most tests play asha-hb on B with a hand-written hb.state (the contract:
NODE, PID of a live process, ROLE, PEER, PEERSTATE, PEERADDR), so that only
asha-sync is under test; the failover tests run the real asha-hb."""

import os
import time

import pytest

from asha import config
from asha_lab import STANDIN_ASTERISK, asha, cluster
from asha_lab.ssh import start_sshd, stop_sshd, trust

pytestmark = pytest.mark.lab

VM = "/var/spool/asterisk/voicemail"
SARKDB = "/opt/sark/db/sark.db"
ASTDB = "/var/lib/asterisk/astdb.sqlite3"


def conf(lab, extra="", hasynch="LAZY"):
    return (f"HACLUSTERIP={lab.cluster_ip}/24\nHAPRINODE={lab.a.name}\nHASECNODE={lab.b.name}\n"
            f"HAPRIADDR={lab.a.addr}\nHASECADDR={lab.b.addr}\nHASYNCH={hasynch}\n"
            f"SYNCCONNECTTIMEOUT=1\nSYNCIOTIMEOUT=5\nDAHDIDIR=/etc/dahdi\n"
            f"USERSYNC='/var/lib/asterisk/keys /etc/asha-extra.conf'\n"
            f"ASHALOG={os.path.join(lab.dir, 'sync.log')}\n{extra}")


def synclog(lab):
    try:
        with open(os.path.join(lab.dir, "sync.log")) as f:
            return "----- asha-sync log -----\n" + f.read()
    except FileNotFoundError:
        return "(no asha-sync log)"


def play_hb(node, **fields):
    """Write hb.state as asha-hb would, with the PID of a live process in node."""
    if not node.exists("/run/asha/standin-hb.pid"):
        node.popen(["sh", "-c", "mkdir -p /run/asha; echo $$ > /run/asha/standin-hb.tmp; "
                    "mv /run/asha/standin-hb.tmp /run/asha/standin-hb.pid; exec sleep 600"])
        cluster.wait_for(lambda: node.exists("/run/asha/standin-hb.pid"), 10)
    values = {"NODE": node.name, "PID": node.read_file("/run/asha/standin-hb.pid").strip()}
    values.update(fields)
    node.write_file("/run/asha/hb.state", "".join(f"{k}={config.quote(v)}\n" for k, v in values.items()))


def as_standby(lab):
    play_hb(lab.b, ROLE="standby", PEER=lab.a.name, PEERSTATE="active", PEERADDR=lab.a.addr)


@pytest.fixture
def pair(lab):
    """A and B with sshd, keys both ways, asha.conf; B plays standby to an active A."""
    for node in (lab.a, lab.b):
        start_sshd(node)
    trust(lab.b, lab.a)
    trust(lab.a, lab.b)
    for node in (lab.a, lab.b):
        node.write_file("/etc/asha.conf", conf(lab))
    as_standby(lab)
    return lab


def sync(node, *args, config_path=None):
    extra = ["-c", config_path] if config_path else []
    return node.run(asha("asha-sync", *extra, *args), check=False, timeout=60)


def sql(node, db, query):
    return node.run(["sqlite3", "-cmd", ".timeout 5000", db, query]).stdout.strip()


def sync_state(node):
    return {a.key: a.value for a in config.parse_text(node.read_file("/run/asha/sync.state"), "s")[0]}


def files(node, top):
    """{path: sha256 of its content} of the regular files under top in node."""
    out = node.run(["sh", "-c", f"cd {top} 2>/dev/null && find . -type f -exec sha256sum {{}} + || :"]).stdout
    return {name[2:]: digest for digest, name in (line.split("  ", 1) for line in out.splitlines())}


def put_pbx_data(a):
    a.write_file("/etc/asterisk/extensions.conf", "[default]\nexten => 1000,1,Dial(PJSIP/1000)\n")
    a.write_file("/etc/dahdi/system.conf", "span=1,1,0,ccs,hdb3\n")
    a.write_file("/etc/asha-extra.conf", "extra\n")
    a.write_file("/var/lib/asterisk/keys/pbx.pub", "KEY\n")
    a.write_file("/var/lib/asterisk/sounds/custom/welcome.wav", "RIFF welcome")
    a.write_file(f"{VM}/default/1000/INBOX/msg0000.txt", "[message]\norigmailbox=1000\n")
    a.write_file(f"{VM}/default/1000/INBOX/msg0000.wav", "RIFF message")
    a.run(["mkdir", "-p", "/opt/sark/db"])
    sql(a, ASTDB, "create table astdb(key varchar(256) primary key, value varchar(256));"
                  "insert into astdb values('/DND/1000','YES'),('/CFIM/1001','2000');")
    sql(a, SARKDB, "pragma journal_mode=wal; create table ipphone(pkey text primary key, desc text);"
                   "insert into ipphone values('1000','reception');")


def test_one_run_brings_everything_and_deletions_follow(pair):
    lab, a, b = pair, pair.a, pair.b
    put_pbx_data(a)
    b.write_file("/etc/asterisk/stale.conf", "gone on A\n")
    p = sync(b, "--dry-run")
    assert p.returncode == 0, p.stderr + synclog(lab)
    assert p.stdout.startswith(f"would pull from {a.name} ({a.addr}) over ssh port 22:\n"), p.stdout
    for line in (f"would update: {VM}/default/1000/INBOX/msg0000.wav",
                 "would delete: /etc/asterisk/stale.conf",
                 f"would update: {ASTDB} (an online-backup snapshot)"):
        assert line in p.stdout.splitlines(), p.stdout
    assert not b.exists(f"{VM}/default") and not b.exists("/run/asha/sync.state")
    assert not a.exists("/var/lib/asterisk/.asha-sync.astdb.sqlite3")
    p = sync(b)
    assert p.returncode == 0, p.stderr + synclog(lab)
    assert p.stdout.startswith(f"pulled from {a.name} ({a.addr}) in "), p.stdout
    for top in ("/etc/asterisk", "/etc/dahdi", "/var/lib/asterisk/sounds", "/var/lib/asterisk/keys", VM):
        assert files(b, top) == files(a, top), top
    assert b.read_file("/etc/asha-extra.conf") == "extra\n"
    assert sql(b, ASTDB, "select value from astdb where key='/CFIM/1001'") == "2000"
    assert sql(b, SARKDB, "select desc from ipphone") == "reception"
    for db in (ASTDB, SARKDB):
        assert sql(b, db, "pragma integrity_check") == "ok"
        assert not b.exists(os.path.join(os.path.dirname(db), ".asha-sync." + os.path.basename(db)))
        assert not a.exists(os.path.join(os.path.dirname(db), ".asha-sync." + os.path.basename(db)))
    st = sync_state(b)
    assert st["RESULT"] == "ok" and st["PEER"] == a.name and st["REASON"] == ""
    assert int(st["FILES"]) >= 9 and int(st["BYTES"]) > 0 and st["LASTOK"] == st["TIME"]
    assert st["DATABASES"] == "sark.db astdb.sqlite3"

    # A message deleted and a row changed on A: both follow; --cron says nothing.
    a.run(["rm", f"{VM}/default/1000/INBOX/msg0000.txt", f"{VM}/default/1000/INBOX/msg0000.wav"])
    sql(a, ASTDB, "update astdb set value='NO' where key='/DND/1000'")
    p = sync(b, "--cron")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", ""), synclog(lab)
    assert files(b, VM) == {}
    assert sql(b, ASTDB, "select value from astdb where key='/DND/1000'") == "NO"
    assert sync_state(b)["DELETED"] == "2"


def test_postsync_runs_after_success_only_with_its_status_logged(pair):
    lab, a, b = pair, pair.a, pair.b
    b.write_file("/etc/asha-post.conf", conf(lab, "POSTSYNC='echo ran >> /var/tmp/postsync; exit 3'\n"))
    put_pbx_data(a)
    p = sync(b, config_path="/etc/asha-post.conf")
    assert p.returncode == 0, p.stderr + synclog(lab)
    assert b.read_file("/var/tmp/postsync") == "ran\n"
    assert "POSTSYNC (echo ran >> /var/tmp/postsync; exit 3) exited 3" in synclog(lab)
    a.run(["sh", "-c", f"rm -rf {VM}/*"])           # the run fails: no POSTSYNC
    p = sync(b, config_path="/etc/asha-post.conf")
    assert p.returncode == 1
    assert b.read_file("/var/tmp/postsync") == "ran\n"


def test_rightly_skipped_runs_move_nothing_and_exit_0(pair):
    lab, a, b = pair, pair.a, pair.b
    put_pbx_data(a)
    b.write_file("/etc/asha-loose.conf", conf(lab, hasynch="LOOSE"))
    cases = [
        ("/etc/asha-loose.conf", None, "skipped: HASYNCH=LOOSE: nothing is synced"),
        (None, dict(ROLE="active", PEERSTATE="standby"), "skipped: this node is active: it holds the data"),
        (None, dict(ROLE="standby", PEERSTATE="dead"),
         f"skipped: peer {a.name} is dead, not active: nothing to pull from"),
        (None, dict(ROLE="taking", PEERSTATE="dead"), "skipped: this node is taking, not standby"),
    ]
    for config_path, role, want in cases:
        if role:
            play_hb(b, PEER=a.name, PEERADDR=a.addr, **role)
        p = sync(b, config_path=config_path)
        assert (p.returncode, p.stdout.strip()) == (0, want), p.stderr
        assert sync_state(b)["RESULT"] == "skipped"
        p = sync(b, "--cron", config_path=config_path)
        assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert not b.exists(f"{VM}/default") and not b.exists(ASTDB)

    b.run(["rm", "/run/asha/hb.state"])
    p = sync(b)
    assert (p.returncode, p.stdout.strip()) == \
        (0, "skipped: asha-hb is not running here, so which node is active is unknown")

    # Asterisk running on B: its data is never replaced under it.
    as_standby(lab)
    b.run([STANDIN_ASTERISK])
    try:
        pid = b.read_file("/var/run/asterisk/asterisk.pid").strip()
        p = sync(b)
        assert (p.returncode, p.stdout.strip()) == \
            (0, f"skipped: Asterisk is running on this node (pid {pid}): its data is not replaced")
        assert not b.exists(f"{VM}/default")
    finally:
        b.run([STANDIN_ASTERISK, "-rx", "core stop now"], check=False)
    cluster.wait_for(lambda: not cluster.asterisk_running(b), 5)
    assert sync(b).returncode == 0
    assert b.exists(f"{VM}/default/1000/INBOX/msg0000.wav")


def test_two_runs_at_once_one_works_one_exits(pair):
    lab, a, b = pair, pair.a, pair.b
    put_pbx_data(a)
    b.write_file("/etc/asha-slow.conf", conf(lab, "POSTSYNC='sleep 2'\n"))
    first = b.popen(asha("asha-sync", "-c", "/etc/asha-slow.conf"), stdout=-1, stderr=-1, text=True)
    cluster.wait_for(lambda: b.exists("/run/asha/sync.lock") and
                     b.read_file("/run/asha/sync.lock").strip(), 10)
    holder = b.read_file("/run/asha/sync.lock").strip()
    second = sync(b)
    assert (second.returncode, second.stdout.strip()) == \
        (0, f"lock /run/asha/sync.lock held by pid {holder}, skipping")
    assert sync(b, "--cron").stdout == ""
    out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err + synclog(lab)
    assert out.startswith("pulled from")
    assert sync_state(b)["RESULT"] == "ok"
    assert b.read_file("/run/asha/sync.lock") == ""


def test_empty_or_unmounted_source_keeps_the_standby_copy_and_fails_loudly(pair):
    lab, a, b = pair, pair.a, pair.b
    put_pbx_data(a)
    assert sync(b).returncode == 0, synclog(lab)
    before = files(b, VM)
    assert before

    a.run(["sh", "-c", f"rm -rf {VM}/*"])                 # emptied
    a.write_file("/etc/asterisk/new.conf", "[new]\n")    # the other trees still come
    p = sync(b)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        f"asha-sync: VMAILDIR {VM} is empty on {a.name} while this node's copy is not: "
        f"kept this node's copy (is the disk mounted on {a.name}?)"), p.stderr
    assert p.stdout == ""
    assert files(b, VM) == before
    assert b.read_file("/etc/asterisk/new.conf") == "[new]\n"
    st = sync_state(b)
    assert st["RESULT"] == "failed" and st["REASON"] == p.stderr.strip().removeprefix("asha-sync: ")
    assert st["LASTOK"] and int(st["LASTOK"]) <= int(st["TIME"])

    # Not mounted: the directory itself is gone (a mount point left empty looks the same).
    a.run(["rm", "-rf", VM])
    p = sync(b, "--cron")
    assert p.returncode == 1 and p.stdout == ""
    assert f"VMAILDIR {VM} is missing on {a.name}" in p.stderr
    assert files(b, VM) == before

    # A damaged database on A: its snapshot fails there, B keeps its copy.
    a.write_file(SARKDB, "not a database " * 300)
    p = sync(b)
    assert p.returncode == 1
    assert f"SARKDB {SARKDB}: snapshot on {a.name} failed: " in p.stderr
    assert "file is not a database" in p.stderr
    assert sql(b, SARKDB, "select desc from ipphone") == "reception"

    # A database gone on A: B keeps its copy, the run says so.
    a.run(["rm", "-f", ASTDB])
    p = sync(b)
    assert p.returncode == 1
    assert f"ASTDB {ASTDB} is missing on {a.name} while this node has a copy: kept this node's copy" \
        in p.stderr
    assert sql(b, ASTDB, "select count(*) from astdb") == "2"


WRITER = r"""
import os, sqlite3, sys, time
dbs, progress = sys.argv[1:3], sys.argv[3]
conns = [sqlite3.connect(p, timeout=10, isolation_level=None) for p in dbs]
end = time.monotonic() + 120
i = 0
while time.monotonic() < end and not os.path.exists(progress + ".stop"):
    i += 1
    for c in conns:
        c.execute("BEGIN IMMEDIATE")
        c.execute("insert into t(id, v) values (?, ?)", (i, "x" * 300))
        c.execute("COMMIT")
    with open(progress + ".tmp", "w") as f:
        f.write(str(i))
    os.replace(progress + ".tmp", progress)
    time.sleep(0.001)
"""


def test_snapshots_under_continuous_writes_are_whole_and_complete(pair):
    lab, a, b = pair, pair.a, pair.b
    a.run(["mkdir", "-p", "/opt/sark/db", "/var/lib/asterisk"])
    sql(a, SARKDB, "pragma journal_mode=wal; create table t(id integer primary key, v text)")
    sql(a, ASTDB, "create table t(id integer primary key, v text)")          # rollback journal
    a.write_file("/var/tmp/writer.py", WRITER)
    writer = a.popen(["python3", "/var/tmp/writer.py", SARKDB, ASTDB, "/var/tmp/progress"])
    try:
        cluster.wait_for(lambda: a.exists("/var/tmp/progress"), 10)
        for run in range(20):
            committed = int(a.read_file("/var/tmp/progress"))
            p = sync(b)
            assert p.returncode == 0, f"run {run}: {p.stderr}" + synclog(lab)
            for db in (SARKDB, ASTDB):
                assert sql(b, db, "pragma integrity_check") == "ok", (run, db)
                count, top = sql(b, db, "select count(*), max(id) from t").split("|")
                assert int(count) == int(top) >= committed, (run, db, count, top, committed)
        assert writer.poll() is None, "the writer stopped early"
        assert int(a.read_file("/var/tmp/progress")) > committed
    finally:
        a.write_file("/var/tmp/progress.stop", "")
        writer.wait(timeout=20)
    assert sql(a, SARKDB, "pragma integrity_check") == "ok"


def test_refused_down_and_full_fail_with_one_line_and_half_of_nothing(pair):
    lab, a, b = pair, pair.a, pair.b
    put_pbx_data(a)
    # B's voicemail and SARK database directories on small disks of their own.
    for d in (VM, "/opt/sark/db"):
        b.run(["mkdir", "-p", d])
        b.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", d])
    assert sync(b).returncode == 0, synclog(lab)
    vm_before, db_before = files(b, VM), sql(b, SARKDB, "select count(*) from ipphone")

    # Disk full on B: a message and the SARK database grow beyond what fits.
    a.run(["sh", "-c", f"head -c 400000 /dev/urandom > {VM}/default/1000/INBOX/msg0001.wav"])
    sql(a, SARKDB, "create table blob(b); insert into blob values(randomblob(400000));")
    p = sync(b)
    assert p.returncode == 1, synclog(lab)
    assert p.stderr.startswith("asha-sync: ") and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "No space left on device" in p.stderr, p.stderr
    got = files(b, VM)
    for name, content in got.items():
        assert content == files(a, VM)[name], name       # whole files only
    assert set(got) == set(vm_before)
    assert not any(n.startswith(".") for n in b.run(["find", VM, "/opt/sark/db", "-printf", "%f\n"]).stdout.split())
    assert sql(b, SARKDB, "pragma integrity_check") == "ok"
    assert sql(b, SARKDB, "select count(*) from ipphone") == db_before
    assert sync_state(b)["RESULT"] == "failed"
    for d in (VM, "/opt/sark/db"):
        b.run(["umount", d])

    # ssh refused: no sshd on A.
    stop_sshd(a)
    p = sync(b)
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr.strip() == (f"asha-sync: cannot reach {a.name} ({a.addr}) over ssh: "
                                f"connect to host {a.addr} port 22: Connection refused"), p.stderr
    assert sync_state(b)["REASON"] == p.stderr.strip().removeprefix("asha-sync: ")

    # Peer down: its link is cut; the connect timeout (1 s) bounds the run.
    start_sshd(a)
    a.cut_link()
    t0 = time.monotonic()
    p = sync(b, "--cron")
    assert time.monotonic() - t0 < 20
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr.startswith(f"asha-sync: cannot reach {a.name} ({a.addr}) over ssh: "
                               f"connect to host {a.addr} port 22: "), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    a.restore_link()
    assert sync(b).returncode == 0, synclog(lab)


def test_failover_leaves_voicemail_on_b_and_a_has_it_after_one_run(lab):
    for node in (lab.a, lab.b):
        start_sshd(node)
    trust(lab.b, lab.a)
    trust(lab.a, lab.b)
    cluster.steady_pair(lab, extra="HASYNCH=LAZY\nSYNCCONNECTTIMEOUT=2\n")
    a, b = lab.a, lab.b
    a.write_file(f"{VM}/default/1000/INBOX/msg0000.txt", "[message]\nfrom A\n")
    p = b.run(asha("asha-sync"), check=False)
    assert p.returncode == 0, p.stderr + cluster.logs(lab)
    assert b.read_file(f"{VM}/default/1000/INBOX/msg0000.txt") == "[message]\nfrom A\n"

    a.run(asha("asha-hb", "standby"))
    cluster.wait_role(b, "active")
    cluster.wait_role(a, "standby")
    b.write_file(f"{VM}/default/1000/INBOX/msg0001.txt", "[message]\nleft on B\n")
    p = b.run(asha("asha-sync"), check=False)
    assert (p.returncode, p.stdout.strip()) == (0, "skipped: this node is active: it holds the data")
    p = a.run(asha("asha-sync"), check=False)
    assert p.returncode == 0, p.stderr + cluster.logs(lab)
    assert p.stdout.startswith(f"pulled from {b.name} ({b.addr})")
    assert a.read_file(f"{VM}/default/1000/INBOX/msg0001.txt") == "[message]\nleft on B\n"
    assert a.read_file(f"{VM}/default/1000/INBOX/msg0000.txt") == "[message]\nfrom A\n"


def test_auto_failback_pulls_the_voicemail_before_taking_back(lab):
    for node in (lab.a, lab.b):
        start_sshd(node)
    trust(lab.b, lab.a)
    trust(lab.a, lab.b)
    cluster.steady_pair(lab, extra="HASYNCH=LAZY\nSYNCCONNECTTIMEOUT=2\nHAAUTOFAILBACK=on\n")
    a, b = lab.a, lab.b
    a.power_off()
    cluster.wait_role(b, "active")
    b.write_file(f"{VM}/default/1000/INBOX/msg0007.txt", "[message]\nduring the outage\n")
    a.power_on()
    start_sshd(a)
    cluster.start_hb(a)
    try:
        cluster.wait_role(a, "active", timeout=30)
    except AssertionError:
        raise AssertionError("A did not take back\n" + cluster.logs(lab)) from None
    assert a.read_file(f"{VM}/default/1000/INBOX/msg0007.txt") == "[message]\nduring the outage\n"
    st = sync_state(a)
    assert st["RESULT"] == "ok" and st["PEER"] == b.name, st
    assert float(st["TIME"]) <= float(cluster.hb_state(a)["SINCE"]), (st, cluster.hb_state(a))
    log = cluster.read_log(lab, a)
    assert log.rindex("failback: data pulled") < log.rindex("takeover complete"), log


def test_pulls_over_ipv6_too(pair):
    lab, a, b = pair, pair.a, pair.b
    put_pbx_data(a)
    play_hb(b, ROLE="standby", PEER=a.name, PEERSTATE="active", PEERADDR=a.addr6)
    p = sync(b)
    assert p.returncode == 0, p.stderr + synclog(lab)
    assert p.stdout.startswith(f"pulled from {a.name} ({a.addr6}) in ")
    assert files(b, VM) == files(a, VM)
    assert sql(b, ASTDB, "select count(*) from astdb") == "2"
