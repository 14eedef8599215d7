"""asha-hb in the lab: who is active, and failover when the active node dies."""

import json
import re
import time

import pytest

from asha_lab import asha, cluster
from asha_lab.cluster import answers, hb_state, logs, steady_pair, wait_for, wait_role

pytestmark = pytest.mark.lab


def test_steady_state_a_active_b_standby(lab):
    steady_pair(lab)
    got = answers(lab)
    assert got is not None, logs(lab)
    assert got[1] == lab.cluster_ip
    assert cluster.asterisk_running(lab.a) and not cluster.asterisk_running(lab.b)
    st = json.loads(lab.b.run(asha("asha-hb", "status", "--json")).stdout)
    assert st["role"] == "standby" and st["peer_state"] == "active"
    assert {p["name"] for p in st["paths"]} == {f"udp:{lab.a.addr}", f"serial:{lab.serial_b}"}
    assert all(p["heard_ago"] is not None and p["heard_ago"] < 1 for p in st["paths"]), st
    assert st["messages"]["accepted"] > 0
    # asha-hb beats at real-time priority; the Asterisk it started must not inherit it
    pid = hb_state(lab.a)["PID"]
    assert lab.a.run(["ps", "-o", "cls=", "-p", pid]).stdout.split() == ["RR"]
    assert set(lab.a.run(["ps", "-o", "cls=", "-C", "asterisk"]).stdout.split()) == {"TS"}


def test_power_loss_b_takes_over(lab):
    steady_pair(lab)
    lab.a.power_off()
    wait_for(lambda: answers(lab, timeout=0.2), 10)
    assert hb_state(lab.b)["ROLE"] == "active", logs(lab)
    assert "dead" in cluster.read_log(lab, lab.b)


def test_stop_releases_everything(lab):
    steady_pair(lab)
    p = lab.a.run(asha("asha-hb", "stop"))
    assert "stopped" in p.stdout
    assert not cluster.asterisk_running(lab.a)
    assert lab.cluster_ip not in lab.a.run(["ip", "addr"]).stdout
    wait_role(lab.b, "active")
    wait_for(lambda: answers(lab, timeout=0.2), 5)


def roles(lab):
    return hb_state(lab.a).get("ROLE"), hb_state(lab.b).get("ROLE")


def stays(what, seconds):
    """what() holds the whole time (checked every 50 ms)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert what()
        time.sleep(0.05)


def test_lan_cut_alone_is_no_failover_but_a_warning(lab):
    steady_pair(lab)
    lab.a.cut_link()
    stays(lambda: roles(lab) == ("active", "standby"), 2)
    lab.a.restore_link()
    assert f"path udp:{lab.a.addr} silent" in cluster.read_log(lab, lab.b), logs(lab)
    assert "no failover" in cluster.read_log(lab, lab.b)


def test_serial_unplugged_alone_is_no_failover_but_a_warning(lab):
    steady_pair(lab)
    lab.unplug_serial()
    stays(lambda: roles(lab) == ("active", "standby"), 2)
    log_b = cluster.read_log(lab, lab.b)
    assert f"serial:{lab.serial_b}" in log_b and "WARNING" in log_b, logs(lab)
    lab.plug_serial()
    wait_for(lambda: f"path serial:{lab.serial_b} carries heartbeats" in
             cluster.read_log(lab, lab.b), 5)


def test_both_paths_cut_b_takes_over_and_the_healed_pair_keeps_one(lab):
    steady_pair(lab, extra="HBKEEPALIVE=0.1\nHBWARNTIME=0.5\nHBDEADTIME=0.6\n")
    lab.unplug_serial()
    lab.a.cut_link()
    wait_for(lambda: roles(lab) == ("active", "active"), 10)
    lab.a.restore_link()
    lab.plug_serial()
    wait_for(lambda: roles(lab) == ("active", "standby"), 10)
    log_b = cluster.read_log(lab, lab.b)
    assert "both nodes active" in log_b, logs(lab)
    # B decided at the first beat it heard from A after the heal
    heard = [ln for ln in log_b.splitlines() if f"peer {lab.a.name} alive" in ln][-1]
    released = [ln for ln in log_b.splitlines() if "both nodes active" in ln][-1]
    gap = _stamp(released) - _stamp(heard)
    assert 0 <= gap <= 2 * 0.1, (gap, logs(lab))
    wait_for(lambda: answers(lab, timeout=0.2), 5)
    assert not cluster.asterisk_running(lab.b)


def _stamp(line):
    from datetime import datetime
    return datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def test_isolated_standby_with_a_ping_node_does_not_take_over(lab):
    steady_pair(lab, extra=f"HBPINGNODES={lab.gateway}\n")
    lab.unplug_serial()
    lab.b.cut_link()
    stays(lambda: hb_state(lab.b).get("ROLE") == "standby", 3)
    assert hb_state(lab.a).get("ROLE") == "active"
    assert "no ping node answers: not taking" in cluster.read_log(lab, lab.b), logs(lab)
    lab.b.restore_link()
    lab.plug_serial()
    wait_for(lambda: hb_state(lab.b).get("PEERSTATE") == "active", 5)


def test_both_paths_cut_with_a_reachable_ping_node_b_takes_over(lab):
    steady_pair(lab, extra=f"HBPINGNODES={lab.gateway}\n")
    lab.unplug_serial()
    lab.a.cut_link()                     # A is cut off: it must let go, B must take
    wait_for(lambda: roles(lab) == ("standby", "active"), 10)
    assert "no ping node answers: this node is cut off" in cluster.read_log(lab, lab.a), logs(lab)


def test_primary_alone_waits_initdead_then_takes_over(lab):
    cluster.configure(lab, extra="HBINITDEAD=2\n")
    t0 = time.monotonic()
    cluster.start_hb(lab.a)
    wait_role(lab.a, "waiting", 5)
    wait_role(lab.a, "active", 10)
    assert time.monotonic() - t0 >= 2
    assert "not heard within HBINITDEAD" in cluster.read_log(lab, lab.a)
    assert answers(lab) is not None


def test_standby_never_takes_while_it_hears_an_active_primary(lab):
    steady_pair(lab)
    lab.b.run(asha("asha-hb", "stop"))
    cluster.start_hb(lab.b)
    wait_for(lambda: roles(lab) == ("active", "standby"), 5)
    stays(lambda: roles(lab) == ("active", "standby"), 2.5)    # past HBINITDEAD=2


def test_manual_standby_and_takeover(lab):
    steady_pair(lab)
    p = lab.a.run(asha("asha-hb", "standby"))
    assert "asha-a is standby, asha-b is active" in p.stdout
    assert roles(lab) == ("standby", "active")
    wait_for(lambda: answers(lab, timeout=0.2), 5)
    p = lab.a.run(asha("asha-hb", "takeover"))
    assert "asha-a is active, asha-b is standby" in p.stdout
    wait_for(lambda: answers(lab, timeout=0.2), 5)
    again = lab.a.run(asha("asha-hb", "takeover"))
    assert "already active" in again.stdout


def test_peer_roles_are_never_seen_going_backwards(lab):
    # A beat goes out on the LAN and the serial line with one number; the copy
    # that comes second must not set the peer's role back for a moment.
    steady_pair(lab)
    for _ in range(3):
        lab.a.run(asha("asha-hb", "standby"))
        lab.a.run(asha("asha-hb", "takeover"))
    backwards = {("standby", "releasing"), ("active", "taking"), ("standby", "taking", "standby")}
    for node in (lab.a, lab.b):
        seen = re.findall(r"peer \S+ is (\w+)$", cluster.read_log(lab, node), re.M)
        assert len(seen) >= 6, cluster.read_log(lab, node)
        pairs = set(zip(seen, seen[1:])) | set(zip(seen, seen[1:], seen[2:]))
        assert not pairs & backwards, (node.name, seen)


def test_beats_keep_the_neighbour_entry_of_the_peer_reachable(lab):
    # With a short reachable time the kernel lets an unconfirmed entry go stale
    # and probes it again (on a lossy LAN the probes can all be lost): authentic
    # beats from the peer confirm it instead (MSG_CONFIRM).
    for node in (lab.a, lab.b):
        node.run(["sysctl", "-qw", "net.ipv4.neigh.eth0.base_reachable_time_ms=400",
                  "net.ipv4.neigh.eth0.delay_first_probe_time=1"])
    steady_pair(lab, serial=False)
    time.sleep(2.5)                 # an entry made by the peer's ARP request leaves DELAY
    states = []
    for _ in range(12):
        for node, peer in ((lab.a, lab.b), (lab.b, lab.a)):
            states.append(node.run(["ip", "neigh", "show", peer.addr, "dev", "eth0"]).stdout.split()[-1:])
        time.sleep(0.2)
    assert all(s == ["REACHABLE"] for s in states), states


def test_standby_refused_when_the_peer_is_dead(lab):
    steady_pair(lab)
    lab.b.power_off()
    wait_for(lambda: hb_state(lab.a).get("PEERSTATE") == "dead", 5)
    p = lab.a.run(asha("asha-hb", "standby"), check=False)
    assert p.returncode == 1
    assert "refusing to leave the cluster with no active node" in p.stderr
    assert hb_state(lab.a)["ROLE"] == "active"


@pytest.mark.parametrize("failback", ["on", "off"])
def test_auto_failback(lab, failback):
    steady_pair(lab, extra=f"HAAUTOFAILBACK={failback}\n")
    lab.a.power_off()
    wait_role(lab.b, "active", 10)
    lab.a.power_on()
    cluster.start_hb(lab.a)
    if failback == "on":
        wait_for(lambda: roles(lab) == ("active", "standby"), 15)
    else:
        wait_for(lambda: hb_state(lab.a).get("ROLE") == "standby", 10)
        stays(lambda: roles(lab) == ("standby", "active"), 2)
    wait_for(lambda: answers(lab, timeout=0.2), 5)
