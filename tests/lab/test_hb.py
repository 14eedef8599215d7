"""asha-hb in the lab: who is active, and failover when the active node dies."""

import json
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
