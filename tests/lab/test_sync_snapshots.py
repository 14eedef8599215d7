"""asha-sync in the lab: a database unchanged since the snapshot B holds is not
snapshotted again, and yet no committed row is ever missed: a row written on A,
a row in A's -wal only, a same-size update in the same second as the last
snapshot on a filesystem with one-second timestamps, a change to B's own copy."""

import time

import pytest

from .test_sync import (ASTDB, SARKDB, pair, put_pbx_data, sql, sync,  # noqa: F401 (pair: a fixture)
                        sync_state, synclog)

pytestmark = pytest.mark.lab

DBS = "sark.db astdb.sqlite3"


def inode(node, path):
    return node.run(["stat", "-c", "%i", path]).stdout.strip()


def ok(lab, p):
    assert p.returncode == 0, p.stderr + synclog(lab)
    return sync_state(lab.b)


def settle(lab):
    """Runs until B holds snapshots taken over 2 s after A's databases last changed."""
    ok(lab, sync(lab.b))
    time.sleep(2.2)
    ok(lab, sync(lab.b))


def test_an_unchanged_database_is_not_snapshotted_and_every_change_is(pair):
    lab, a, b = pair, pair.a, pair.b
    put_pbx_data(a)
    settle(lab)
    before = {db: inode(b, db) for db in (SARKDB, ASTDB)}
    p = sync(b, "-v")
    st = ok(lab, p)
    assert (st["DATABASES"], st["UNCHANGED"]) == ("", DBS), st
    assert p.stdout.rstrip().endswith(f", unchanged {DBS}"), p.stdout
    for db in (SARKDB, ASTDB):
        assert f"{db} unchanged on {a.name} since the snapshot this node holds: none taken" in synclog(lab)
        assert inode(b, db) == before[db]               # not replaced

    # A row written on A: copied by the next run, the other database still left alone.
    sql(a, ASTDB, "insert into astdb values('/DND/1002','YES')")
    st = ok(lab, sync(b))
    assert (st["DATABASES"], st["UNCHANGED"]) == ("astdb.sqlite3", "sark.db"), st
    assert sql(b, ASTDB, "select value from astdb where key='/DND/1002'") == "YES"

    # A row that sits in A's -wal only (its writer keeps the database open, so
    # nothing is checkpointed into the database file): copied too.
    settle(lab)
    assert ok(lab, sync(b))["UNCHANGED"] == DBS
    a.popen(["python3", "-c", "import sqlite3, time\n"
             f"c = sqlite3.connect('{SARKDB}')\n"
             "c.execute(\"insert into ipphone values('1001', 'lobby')\")\n"
             "c.commit()\n"
             "open('/var/tmp/written', 'w').close()\n"
             "time.sleep(60)\n"])
    lab_wait(a, "/var/tmp/written")
    assert a.exists(SARKDB + "-wal")
    st = ok(lab, sync(b))
    assert "sark.db" in st["DATABASES"].split(), st
    assert sql(b, SARKDB, "select desc from ipphone where pkey='1001'") == "lobby"

    # B's own copy changed (someone wrote to it): replaced by a snapshot again.
    settle(lab)
    assert ok(lab, sync(b))["UNCHANGED"] == DBS
    sql(b, ASTDB, "insert into astdb values('/local/only','x')")
    st = ok(lab, sync(b))
    assert st["DATABASES"] == "astdb.sqlite3", st
    assert sql(b, ASTDB, "select count(*) from astdb where key='/local/only'") == "0"
    assert sql(b, ASTDB, "pragma integrity_check") == "ok"


def lab_wait(node, path, timeout=10):
    end = time.monotonic() + timeout
    while not node.exists(path):
        assert time.monotonic() < end, f"{path} not on {node.name} within {timeout} s"
        time.sleep(0.02)


def test_a_same_size_update_in_the_same_second_as_the_snapshot_is_copied(pair):
    """On ext4 with 128-byte inodes file times are whole seconds: an update of
    the same size in the same second leaves the database's size, times and
    inode as the snapshot saw them. Only the racy-timestamp rule (times not
    older than the snapshot by 2 s prove nothing) makes the next run copy it."""
    lab, a, b = pair, pair.a, pair.b
    a.run(["sh", "-c", "truncate -s 8M /var/tmp/sark.img && mkfs.ext4 -q -F -I 128 /var/tmp/sark.img "
                       "2>/dev/null && mkdir -p /opt/sark/db && mount -o loop /var/tmp/sark.img /opt/sark/db"])
    try:
        sql(a, SARKDB, "create table t(id integer primary key, v text); insert into t values(1, 'v000')")
        assert a.run(["stat", "-c", "%.9Y", SARKDB]).stdout.strip().endswith(".000000000")
        ok(lab, sync(b))
        ident = ["stat", "-c", "%d:%i:%s:%.9Y:%.9Z", SARKDB]
        for attempt in range(1, 6):
            while time.time() % 1 > 0.05:               # at the start of a second
                time.sleep(0.005)
            sql(a, SARKDB, f"update t set v='w{attempt}01' where id=1")
            ok(lab, sync(b))                            # a snapshot of w.01, this same second
            seen = a.run(ident).stdout
            sql(a, SARKDB, f"update t set v='w{attempt}02' where id=1")
            same_second = a.run(ident).stdout == seen
            st = ok(lab, sync(b))
            assert "sark.db" in st["DATABASES"].split(), (attempt, st)
            assert sql(b, SARKDB, "select v from t") == f"w{attempt}02", attempt
            if same_second:
                break                                   # the update left no trace in stat: copied all the same
        else:
            pytest.fail("5 tries, never an update in the same second as the snapshot (a slow machine)")
    finally:
        a.run(["umount", "/opt/sark/db"], check=False)
