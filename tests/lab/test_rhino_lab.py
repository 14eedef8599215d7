"""The PRI card in the two-node lab: asha-hb on A and B with RHINOSPF=YES and
the emulated Rhino card attached to A (the primary, which powers it).

Both nodes' asha-hb get the card's test seam, so a node that wrongly drove the
card would show in its switch log; only A ever may."""

import os
import re
import subprocess
import sys

import pytest

from asha_lab import asha, cluster, usbemu
from asha_lab.cluster import answers, hb_state, logs, wait_for

pytestmark = pytest.mark.lab

PIDFILE = "/var/run/asterisk/asterisk.pid"
STEP = re.compile(r"INFO: (PRI card to this node|PRI card to the peer): done in (\d+) ms")


def start_pair(lab, card, extra=""):
    cluster.configure(lab, "RHINOSPF=YES\n" + extra)
    env = dict(os.environ, **card.env())
    for node in (lab.a, lab.b):
        node.popen(asha("asha-hb", "run"), env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: hb_state(lab.a).get("ROLE") == "active" and
                 hb_state(lab.b).get("ROLE") == "standby", 15)
    except AssertionError:
        raise AssertionError("the pair did not settle\n" + logs(lab)) from None


def started_at(node):
    """When node's Asterisk wrote its pid file (epoch seconds)."""
    return float(node.run(["stat", "-c", "%.9Y", PIDFILE]).stdout)


def step_ms(lab, node, step):
    return [int(ms) for what, ms in STEP.findall(cluster.read_log(lab, node)) if what == step]


def failover_from_a(lab, reason):
    """What asha-watchdog does on A when Asterisk there is dead: ask asha-hb to fail over."""
    lab.a.run([sys.executable, "-c",
               "import sys; from asha import config, control; "
               "print(control.request(config.load('/etc/asha.conf'), 'failover', sys.argv[1]))",
               reason])


@pytest.fixture
def card(tmp_path):
    path = tmp_path / "card.json"
    return usbemu.Card.create(path, usbemu.rhino_fields())


def new_switches(card, before):
    return [(s["position"], s["cause"]) for s in card.switches()[before:]]


def test_soft_failover_then_failback(lab, card):
    start_pair(lab, card)
    assert card.position() == "primary", logs(lab)
    assert "PRI card already at primary (IN-NO), read back from the card" in \
        cluster.read_log(lab, lab.a)

    # Asterisk is dead on A, A itself is alive: A must switch the card itself.
    before = len(card.switches())
    failover_from_a(lab, "Asterisk dead (lab test)")
    wait_for(lambda: hb_state(lab.b).get("ROLE") == "active", 10)
    wait_for(lambda: answers(lab, timeout=0.2), 10)
    assert new_switches(card, before) == [("standby", "command")], logs(lab)
    switched = card.switches()[before]["t"]
    assert switched < started_at(lab.b), \
        f"the card moved at {switched}, B's Asterisk started at {started_at(lab.b)}\n" + logs(lab)
    assert f"PRI card: attached to {lab.a.name} (the primary; RHINONODE is empty), not to this " \
           f"node {lab.b.name}; nothing to acquire here" in cluster.read_log(lab, lab.b)

    # Failback: A asks for the resources back; B releases, A switches the card to NO.
    before = len(card.switches())
    lab.a.run(asha("asha-hb", "takeover", "--wait", "20"))
    wait_for(lambda: hb_state(lab.a).get("ROLE") == "active", 20)
    wait_for(lambda: answers(lab, timeout=0.2), 10)
    assert new_switches(card, before) == [("primary", "command")], logs(lab)
    assert card.switches()[before]["t"] < started_at(lab.a), logs(lab)
    assert card.position() == "primary"
    # B never touched the card: every switch so far came from A's chain.
    assert [s["cause"] for s in card.switches()] == ["command", "command"]


def test_a_losing_power_leaves_the_card_at_nc(lab, card):
    start_pair(lab, card)
    assert card.position() == "primary"
    before = len(card.switches())
    lab.a.power_off()
    card.power_off()                 # the card is powered from A
    wait_for(lambda: hb_state(lab.b).get("ROLE") == "active", 10)
    wait_for(lambda: answers(lab, timeout=0.2), 10)
    assert card.position() == "standby"
    assert new_switches(card, before) == [("standby", "power off")], logs(lab)
    assert "nothing to acquire here" in cluster.read_log(lab, lab.b)


def test_a_card_that_times_out_delays_takeover_by_at_most_a_second(lab, card, tmp_path):
    alerts = tmp_path / "alerts"
    card.hang(30, mode="timeout")
    start_pair(lab, card, f"ALERTCMD=\"printf '%s\\\\n' >>{alerts}\"\n")
    wait_for(lambda: answers(lab, timeout=0.2), 10)
    a_log = cluster.read_log(lab, lab.a)
    took = step_ms(lab, lab.a, "PRI card to this node")
    assert len(took) == 1 and took[0] <= 1000 + 300, a_log
    assert "CRITICAL: PRI card not switched to primary (IN-NO): USB device 0a8a:0501 " \
           "(RHINOVENDOR/RHINOPRODUCT): no answer within 0.3 s (RHINOTIMEOUT)" in a_log
    assert wait_for(lambda: alerts.exists() and alerts.read_text(), 5).startswith(
        f"asha on {lab.a.name}: PRI card not switched to primary (IN-NO): ")
    assert cluster.asterisk_running(lab.a)

    # Releasing through a card that does not answer holds up B's takeover no longer.
    failover_from_a(lab, "Asterisk dead (lab test)")
    wait_for(lambda: hb_state(lab.b).get("ROLE") == "active", 10)
    took = step_ms(lab, lab.a, "PRI card to the peer")
    assert len(took) == 1 and took[0] <= 1000 + 300, cluster.read_log(lab, lab.a)
    assert card.switches() == []


def test_primary_that_starts_while_b_is_active_gives_the_card_back(lab, card):
    # A's card bridged IN-NO when A powered up; B holds the PBX: A must put it at NC.
    start_pair(lab, card)
    lab.a.power_off()
    card.power_off()
    wait_for(lambda: hb_state(lab.b).get("ROLE") == "active", 10)
    card.power_on()                               # A powers up: the relay bridges IN-NO
    assert card.position() == "primary"
    lab.a.power_on()
    lab.a.popen(asha("asha-hb", "run"), env=dict(os.environ, **card.env()),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: hb_state(lab.a).get("ROLE") == "standby", 10)
    wait_for(lambda: card.position() == "standby", 5)
    assert hb_state(lab.b).get("ROLE") == "active", logs(lab)
