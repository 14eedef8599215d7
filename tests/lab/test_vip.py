"""asha-vip in the lab: the cluster IP moves and C learns the new MAC at once."""

import json
import time

import pytest

from asha_lab import asha

pytestmark = pytest.mark.lab


def conf(lab, ip=None, extra=""):
    return (f"HACLUSTERIP={ip or lab.cluster_ip}\nHAPRINODE={lab.a.name}\n"
            f"HASECNODE={lab.b.name}\nHAPRIADDR={lab.a.addr}\nHASECADDR={lab.b.addr}\n"
            f"VIPGARPCOUNT=3\nVIPGARPINTERVAL=0.1\n{extra}")


@pytest.fixture
def pair(lab):
    for node in (lab.a, lab.b):
        node.write_file("/etc/asha.conf", conf(lab))
    return lab


def vip(node, *args, check=False):
    return node.run(asha("asha-vip", *args), check=check)


def neigh_mac(node, ip):
    entries = json.loads(node.run(["ip", "-j", "neigh", "show", ip]).stdout or "[]")
    return entries[0].get("lladdr") if entries else None


def addrs(node):
    return node.run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout


def test_move_updates_the_client_without_it_asking(pair):
    lab = pair
    assert vip(lab.a, "start").returncode == 0
    assert lab.c.run(["ping", "-c1", "-W1", lab.cluster_ip], check=False).returncode == 0
    assert neigh_mac(lab.c, lab.cluster_ip) == lab.a.mac
    assert vip(lab.a, "stop").returncode == 0
    assert vip(lab.b, "start").returncode == 0
    returned = time.monotonic()
    mac = neigh_mac(lab.c, lab.cluster_ip)
    assert time.monotonic() - returned < 0.2
    assert mac == lab.b.mac


def test_start_refuses_an_address_held_elsewhere(pair):
    lab = pair
    assert vip(lab.a, "start").returncode == 0
    before = addrs(lab.b)
    p = vip(lab.b, "start")
    assert p.returncode == 1
    assert f"held by {lab.a.mac}" in p.stderr
    assert addrs(lab.b) == before
    assert vip(lab.b, "status").returncode == 3


def test_idempotent_with_status_and_monitor_codes(pair):
    a = pair.a
    assert vip(a, "status").returncode == 3
    assert vip(a, "monitor").returncode == 7
    assert vip(a, "stop").returncode == 0
    assert vip(a, "start").returncode == 0
    assert vip(a, "start").returncode == 0
    assert addrs(a).count(pair.cluster_ip) == 1
    assert vip(a, "status").returncode == 0
    assert vip(a, "monitor").returncode == 0
    assert vip(a, "validate-all").returncode == 0
    assert vip(a, "stop").returncode == 0
    assert vip(a, "stop").returncode == 0
    assert pair.cluster_ip not in addrs(a)
    assert vip(a, "status").returncode == 3


def test_ipv6_move_updates_the_client(pair):
    lab = pair
    ip6 = f"{lab.cluster_ip6}/64"
    assert vip(lab.a, "start", "--ip", ip6).returncode == 0
    assert lab.c.run(["ping", "-c1", "-W1", lab.cluster_ip6], check=False).returncode == 0
    assert neigh_mac(lab.c, lab.cluster_ip6) == lab.a.mac
    p = vip(lab.b, "start", "--ip", ip6)
    assert p.returncode == 1 and f"held by {lab.a.mac}" in p.stderr     # DAD saw A
    assert vip(lab.a, "stop", "--ip", ip6).returncode == 0
    assert vip(lab.b, "start", "--ip", ip6).returncode == 0
    returned = time.monotonic()
    mac = neigh_mac(lab.c, lab.cluster_ip6)
    assert time.monotonic() - returned < 0.2
    assert mac == lab.b.mac


@pytest.mark.parametrize("args,status,message", [
    (["--ip", "300.1.1.1"], 64, "asha-vip: --ip must be an IP address with an optional /prefix, not '300.1.1.1'"),
    (["--ip", "198.51.100.100/8"], 64, "asha-vip: --ip 198.51.100.100/8: prefix /8 does not fit eth0's subnet 198.51.100.0/24"),
    (["--dev", "nosuch0"], 64, "asha-vip: --dev nosuch0: no such network interface on this node"),
    (["--ip", "203.0.113.7"], 64, "asha-vip: --ip 203.0.113.7: no address on any interface is in its subnet; give the prefix and set --dev"),
])
def test_bad_command_line_changes_nothing(pair, args, status, message):
    before = addrs(pair.a)
    p = vip(pair.a, "start", *args)
    assert (p.returncode, p.stderr.strip().splitlines()[0]) == (status, message)
    assert addrs(pair.a) == before
    assert vip(pair.a, "monitor", *args).returncode == 2


def test_bad_config_changes_nothing(pair):
    pair.a.write_file("/etc/asha.conf", conf(pair, extra="HAINTERFACE=nosuch0\n"))
    before = addrs(pair.a)
    p = vip(pair.a, "start")
    assert p.returncode == 78
    assert p.stderr.strip() == "/etc/asha.conf: HAINTERFACE nosuch0: no such network interface on this node"
    assert addrs(pair.a) == before
    assert vip(pair.a, "validate-all").returncode == 6


def test_ocf_environment_names_the_address(pair):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_RESKEY_ip": f"{pair.cluster_ip}/24",
           "OCF_RESKEY_nic": "eth0"}
    a = pair.a
    assert a.run(asha("asha-vip", "monitor"), check=False, env=env).returncode == 7
    assert a.run(asha("asha-vip", "start"), check=False, env=env).returncode == 0
    assert a.run(asha("asha-vip", "monitor"), check=False, env=env).returncode == 0
    assert a.run(asha("asha-vip", "stop"), check=False, env=env).returncode == 0
