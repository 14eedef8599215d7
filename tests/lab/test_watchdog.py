"""asha-watchdog in the two-node lab with the real asha-hb: a killed Asterisk
fails over at once, a frozen one (the stand-in, then kamailio as the SIP
server) is killed and fails over, ATTEMPTRESTART restarts then fails over, a
hand-started Asterisk on the standby is stopped, a PBX that dies everywhere
stops failing over and alerts once, a respawned watchdog picks up the state."""

import re
import time

import pytest

from asha_lab import STANDIN_ASTERISK, cluster
from asha_lab.cluster import answers, hb_state, logs, read_log, steady_pair, wait_for

pytestmark = pytest.mark.lab

PIDFILE = "/var/run/asterisk/asterisk.pid"


def watched_pair(lab, extra=""):
    """A active and B standby, asha-watchdog running on both; A's Asterisk watched."""
    steady_pair(lab, extra=extra)
    for node in (lab.a, lab.b):
        cluster.start_watchdog(node)
    wait_for(lambda: "watching Asterisk (pid" in read_log(lab, lab.a), 10)
    wait_for(lambda: "asha-watchdog starting" in read_log(lab, lab.b), 10)


def ast_pid(node, pidfile=PIDFILE):
    try:
        return int(node.read_file(pidfile))
    except (FileNotFoundError, ValueError):
        return None


def log_time(lab, node, text):
    """Epoch seconds of the first ASHALOG line of node that contains text."""
    for line in read_log(lab, node).splitlines():
        if text in line:
            stamp, ms = re.match(r"(\S+)\.(\d{3}) ", line).groups()
            return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")) + int(ms) / 1000
    raise AssertionError(f"{node.name}'s log has no {text!r}\n" + logs(lab))


def b_serves(lab):
    return hb_state(lab.b).get("ROLE") == "active" and answers(lab, timeout=0.2)


def stays(what, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert what()
        time.sleep(0.1)


def test_kill_9_fails_over_and_is_noticed_at_once(lab):
    # A process scan every 30 s: only the pidfd can notice the death this soon.
    watched_pair(lab, extra="WDINTERVAL=30\n")
    pid = ast_pid(lab.a)
    t0 = time.time()
    lab.a.run(["kill", "-9", str(pid)])
    wait_for(lambda: b_serves(lab), 10)
    noticed = log_time(lab, lab.a, f"Asterisk (pid {pid}) has exited")
    assert noticed - t0 < 1.0, logs(lab)
    assert hb_state(lab.a)["ROLE"] == "standby"
    assert not cluster.asterisk_running(lab.a)
    assert f"failover asked: Asterisk died on {lab.a.name}" in read_log(lab, lab.a)


def test_sigstop_is_a_hang_killed_then_failed_over(lab):
    watched_pair(lab)
    pid = ast_pid(lab.a)
    time.sleep(0.5)                              # a few hang checks answered
    t0 = time.time()
    lab.a.run(["kill", "-STOP", str(pid)])
    wait_for(lambda: b_serves(lab), 10)
    hung = log_time(lab, lab.a, f"Asterisk (pid {pid}) is hung: 3 hang checks in a row failed")
    # WDHANGCOUNT x WDHANGINTERVAL + WDHANGTIMEOUT at the defaults, with room for a busy host.
    assert hung - t0 < 3 * 0.4 + 0.3 + 1.0, logs(lab)
    assert f"Asterisk (pid {pid}) killed: hung" in read_log(lab, lab.a)
    assert not cluster.asterisk_running(lab.a)
    assert hb_state(lab.a)["ROLE"] == "standby"


KAMAILIO_CFG = """#!KAMAILIO
# asha lab: kamailio standing in as the SIP server, answering OPTIONS
debug=0
log_stderror=no
children=1
listen=udp:{vip}:5060
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "sl.so"
request_route {{
    if (method=="OPTIONS") {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (method=="ACK") {{
        exit;
    }}
    sl_send_reply("501", "Not Implemented");
}}
"""
KPID = "/run/kamailio/asha-lab.pid"


def test_kamailio_frozen_with_sip_hang_check(lab):
    for node in (lab.a, lab.b):
        node.write_file("/etc/kamailio/asha-lab.cfg", KAMAILIO_CFG.format(vip=lab.cluster_ip))
    watched_pair(lab, extra=(
        "ASTPROC=kamailio\n"
        f"ASTPIDFILE={KPID}\n"
        "ASTBIN=/usr/sbin/kamailio\n"
        "ASTSTART='mkdir -p /run/kamailio && kamailio -f /etc/kamailio/asha-lab.cfg "
        f"-P {KPID} -Y /run/kamailio -m 16 -M 4'\n"
        f"ASTSTOP='pkill -F {KPID}'\n"
        "ASTHANGCHECK=SIP\n"))
    pid = ast_pid(lab.a, KPID)
    assert answers(lab), logs(lab)
    time.sleep(0.5)
    lab.a.run(["pkill", "-STOP", "-x", "kamailio"])     # the main process and its workers
    wait_for(lambda: b_serves(lab), 10)
    assert f"Asterisk (pid {pid}) is hung" in read_log(lab, lab.a), logs(lab)
    assert lab.a.run(["pgrep", "-x", "kamailio"], check=False).stdout == "", \
        "a worker of the hung kamailio survived"
    assert ast_pid(lab.b, KPID) is not None


def test_attemptrestart_restarts_then_fails_over(lab):
    watched_pair(lab, extra="ATTEMPTRESTART=YES\nWDRESTARTS=2\n")
    for n in (1, 2):
        pid = ast_pid(lab.a)
        lab.a.run(["kill", "-9", str(pid)])
        wait_for(lambda: ast_pid(lab.a) not in (None, pid) and cluster.asterisk_running(lab.a), 10)
        wait_for(lambda: answers(lab, timeout=0.2), 5)
        assert f"ATTEMPTRESTART, restart {n} of 2" in read_log(lab, lab.a), logs(lab)
        assert (hb_state(lab.a)["ROLE"], hb_state(lab.b)["ROLE"]) == ("active", "standby")
    wait_for(lambda: f"watching Asterisk (pid {ast_pid(lab.a)})" in read_log(lab, lab.a), 5)
    lab.a.run(["kill", "-9", str(ast_pid(lab.a))])
    wait_for(lambda: b_serves(lab), 10)
    assert "(WDRESTARTS): failing over" in read_log(lab, lab.a), logs(lab)


def test_asterisk_started_by_hand_on_the_standby_is_stopped(lab):
    watched_pair(lab)
    lab.b.run([STANDIN_ASTERISK])
    wait_for(lambda: "is running on " + lab.b.name in read_log(lab, lab.b), 10)
    wait_for(lambda: not cluster.asterisk_running(lab.b), 10)
    assert f"the standby, while {lab.a.name} is active: stopping it" in read_log(lab, lab.b)
    assert hb_state(lab.a)["ROLE"] == "active" and cluster.asterisk_running(lab.a)
    assert answers(lab)


def test_flapping_stops_at_the_limit_and_alerts_once(lab):
    alerts = f"{lab.dir}/alerts"
    watched_pair(lab, extra=(
        f"ASTSTART='env ASTERISK_STANDIN_DIE_AFTER=1.5 {STANDIN_ASTERISK}'\n"
        "WDMAXFAILOVERS=2\n"
        f"ALERTCMD='echo >>{alerts}'\n"))
    wait_for(lambda: lab.a.exists(alerts), 30)
    roles = (hb_state(lab.a)["ROLE"], hb_state(lab.b)["ROLE"])
    assert roles == ("active", "standby"), logs(lab)      # A, B, back to A: then no more
    stays(lambda: (hb_state(lab.a)["ROLE"], hb_state(lab.b)["ROLE"]) == roles, 4)
    with open(alerts) as f:
        lines = f.read().splitlines()
    assert lines == [f"Asterisk keeps failing: 2 failovers within 900 s (WDMAXFAILOVERS 2); "
                     f"asha stops failing over and keeps restarting it on {lab.a.name}"], logs(lab)
    assert len(hb_state(lab.a)["FAILOVERS"].split()) == 2
    assert "restarting Asterisk on " + lab.a.name in read_log(lab, lab.a)


def test_a_respawned_watchdog_acts_on_what_happened_meanwhile(lab):
    steady_pair(lab)
    wd = cluster.start_watchdog(lab.a)
    wait_for(lambda: "watching Asterisk (pid" in read_log(lab, lab.a), 10)
    wd.kill()
    wd.wait()
    pid = ast_pid(lab.a)
    lab.a.run(["kill", "-9", str(pid)])
    time.sleep(0.5)
    assert hb_state(lab.a)["ROLE"] == "active"        # nobody watching: nothing moved
    cluster.start_watchdog(lab.a)
    wait_for(lambda: b_serves(lab), 10)
    assert f"Asterisk died (its pid file is left behind) on {lab.a.name}" in read_log(lab, lab.a)
