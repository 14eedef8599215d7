"""asha-vip in the lab: the cluster IP moves from A to B and C, which only
watches, learns B's MAC from the announcement; a held address is refused;
start/stop/status/monitor in every state; IPv6; bad input changes nothing."""

import json
import subprocess
import sys
import time

import pytest

from asha_lab import asha

pytestmark = pytest.mark.lab

# Prints "ready", then one line "TIME KIND" (monotonic seconds, a clock every
# namespace shares) per announcement for VIP from MAC that C hears, for SECONDS.
SNIFFER = r"""
import select, socket, sys, time
from asha import arp
mac, ip, seconds = arp.mac_bytes(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("eth0", 0))
print("ready", flush=True)
end = time.monotonic() + seconds
while True:
    left = end - time.monotonic()
    if left <= 0 or not select.select([s], [], [], left)[0]:
        break
    data = s.recv(65535)
    now = time.monotonic()
    if data[6:12] != mac:
        continue
    a, nd = arp.parse_arp(data), arp.parse_nd(data)
    if a and str(a.spa) == ip == str(a.tpa):
        print(f"{now:.6f} garp-{'request' if a.op == 1 else 'reply'}", flush=True)
    elif nd and nd.type == arp.ND_NA and str(nd.target) == ip:
        print(f"{now:.6f} na", flush=True)
"""

# In-process, as asha-hb calls it: vip_up without waiting for the later rounds.
DAEMON = r"""
import logging, sys, time
from asha import config, vip
cfg = config.load("/etc/asha.conf")
vip.vip_up(cfg, logging.getLogger("test"), wait_announce=False)
print(f"{time.monotonic():.6f}", flush=True)
end = time.monotonic() + 10
while vip.announcing(cfg.HACLUSTERIP.ip, "eth0") and time.monotonic() < end:
    time.sleep(0.01)
"""


def conf(lab, ip=None, extra=""):
    return (f"HACLUSTERIP={ip or lab.cluster_ip}\nHAPRINODE={lab.a.name}\n"
            f"HASECNODE={lab.b.name}\nHAPRIADDR={lab.a.addr}\nHASECADDR={lab.b.addr}\n"
            f"VIPGARPCOUNT=3\nVIPGARPINTERVAL=0.1\n{extra}")


@pytest.fixture
def pair(lab):
    for node in (lab.a, lab.b):
        node.write_file("/etc/asha.conf", conf(lab))
    return lab


def vip(node, *args, env=None):
    return node.run(asha("asha-vip", *args), check=False, env=env)


def neigh(node, ip):
    """(MAC, states) of node's neighbour entry for ip, or None."""
    entries = json.loads(node.run(["ip", "-j", "neigh", "show", ip]).stdout or "[]")
    return (entries[0].get("lladdr"), entries[0].get("state")) if entries else None


def addrs(node):
    """Every address of node as "dev addr/prefix" (flags such as tentative left out)."""
    return sorted(f"{link['ifname']} {a['local']}/{a['prefixlen']}"
                  for link in json.loads(node.run(["ip", "-j", "addr", "show"]).stdout)
                  for a in link.get("addr_info", []))


def holds(node, ip):
    return any(a.split()[1].split("/")[0] == ip for a in addrs(node))


def mute(node, v6):
    """From now on node sends no ARP request (IPv6: no neighbour solicitation):
    whatever it learns, it learns from what others send."""
    family, rule = ("ip6", "icmpv6 type nd-neighbor-solicit drop") if v6 else ("arp", "drop")
    rules = (f"table {family} asha_mute {{\n  chain out {{\n"
             f"    type filter hook output priority 0;\n    {rule}\n  }}\n}}\n")
    node.run(["nft", "-f", "-"], input=rules)


def sniff(lab, mac, ip, seconds=3.0):
    p = lab.c.popen([sys.executable, "-c", SNIFFER, mac, ip, str(seconds)],
                    stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def heard(p):
    out, _ = p.communicate(timeout=30)
    return [(float(t), kind) for t, kind in (line.split() for line in out.splitlines())]


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_move_updates_the_client_without_it_asking(pair, v6):
    lab = pair
    ip = lab.cluster_ip6 if v6 else lab.cluster_ip
    args = ["--ip", ip] if v6 else []
    assert vip(lab.a, "start", *args).returncode == 0
    ping = ["ping", "-6" if v6 else "-4", "-c1", "-W1", ip]
    assert lab.c.run(ping, check=False).returncode == 0
    assert neigh(lab.c, ip)[0] == lab.a.mac                 # C has learned A's MAC
    mute(lab.c, v6)
    assert vip(lab.a, "stop", *args).returncode == 0
    p = vip(lab.b, "start", *args)
    returned = time.monotonic()
    mac, state = neigh(lab.c, ip)
    checked = time.monotonic() - returned
    assert p.returncode == 0, p.stderr
    assert (mac, state) == (lab.b.mac, ["STALE"])            # updated by an unsolicited frame
    assert checked < 0.2
    assert holds(lab.b, ip) and not holds(lab.a, ip)


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_start_refuses_an_address_held_elsewhere(pair, v6):
    lab = pair
    ip = lab.cluster_ip6 if v6 else lab.cluster_ip
    args = ["--ip", ip] if v6 else []
    assert vip(lab.a, "start", *args).returncode == 0
    before = addrs(lab.b)
    p = vip(lab.b, "start", *args)
    probe = "duplicate address detection probe" if v6 else "ARP probe"
    assert (p.returncode, p.stderr) == \
        (1, f"asha-vip: {ip} is held by {lab.a.mac} (it answered the {probe} on eth0); not taking it\n")
    assert addrs(lab.b) == before
    assert vip(lab.b, "status", *args).returncode == 3
    assert vip(lab.a, "status", *args).returncode == 0


def test_idempotent_with_status_and_monitor_codes(pair):
    b, ip = pair.b, pair.cluster_ip
    p = vip(b, "status")
    assert (p.returncode, p.stdout) == (3, f"{ip}/24 on eth0: not held\n")
    assert vip(b, "monitor").returncode == 7
    assert vip(b, "stop").returncode == 0                   # not held: nothing to do
    assert vip(b, "start").returncode == 0
    assert vip(b, "start").returncode == 0                  # held: announced again
    assert addrs(b).count(f"eth0 {ip}/24") == 1
    p = vip(b, "status")
    assert (p.returncode, p.stdout) == (0, f"{ip}/24 on eth0: held\n")
    assert vip(b, "monitor").returncode == 0
    assert vip(b, "validate-all").returncode == 0
    assert vip(b, "stop").returncode == 0
    assert vip(b, "stop").returncode == 0
    assert not holds(b, ip)
    assert vip(b, "status").returncode == 3
    assert vip(b, "monitor").returncode == 7


def test_start_sends_every_round_before_it_returns(pair):
    lab = pair
    sniffer = sniff(lab, lab.b.mac, lab.cluster_ip)
    p = vip(lab.b, "start")
    returned = time.monotonic()
    assert p.returncode == 0, p.stderr
    frames = heard(sniffer)
    assert [k for _, k in frames] == ["garp-request", "garp-reply"] * 3
    assert all(t < returned for t, _ in frames)
    gaps = [b - a for (a, _), (b, _) in zip(frames[::2], frames[2::2])]
    assert all(g >= 0.09 for g in gaps), gaps                  # VIPGARPINTERVAL apart


def test_library_returns_after_the_first_round_and_the_rest_follow(pair):
    lab = pair
    lab.b.write_file("/etc/asha.conf", conf(lab, ip=lab.cluster_ip6, extra="VIPGARPCOUNT=4\n"))
    sniffer = sniff(lab, lab.b.mac, lab.cluster_ip6)
    p = lab.b.run([sys.executable, "-c", DAEMON])
    returned = float(p.stdout.split()[0])
    frames = heard(sniffer)
    assert [k for _, k in frames] == ["na"] * 4
    assert frames[0][0] <= returned < frames[1][0]
    assert holds(lab.b, lab.cluster_ip6)


def test_start_refuses_without_carrier(pair):
    b = pair.b
    before = addrs(b)
    b.cut_link()
    try:
        p = vip(b, "start")
    finally:
        b.restore_link()
    assert (p.returncode, p.stderr) == \
        (1, f"asha-vip: eth0 has no carrier (link down); cannot probe for {pair.cluster_ip}, not taking it\n")
    assert addrs(b) == before


BAD_COMMAND_LINES = [
    # args, exit status of start and stop, of monitor, first line of stderr
    (["--ip", "300.1.1.1"], 64, 2,
     "asha-vip: --ip must be an IP address with an optional /prefix, not '300.1.1.1'"),
    (["--ip", "198.51.100.100/33"], 64, 2,
     "asha-vip: --ip must be an IP address with an optional /prefix (1 to 32), not '198.51.100.100/33'"),
    (["--ip", "198.51.100.100/8"], 64, 2,
     "asha-vip: --ip 198.51.100.100/8: prefix /8 does not fit eth0's subnet 198.51.100.0/24 "
     "(give /24, /32 or no prefix)"),
    (["--dev", "nosuch0"], 64, 2, "asha-vip: --dev nosuch0: no such network interface on this node"),
    (["--ip", "203.0.113.7"], 64, 2,
     "asha-vip: --ip 203.0.113.7: no address on any interface is in its subnet; set --dev and give the /prefix"),
]


def test_bad_command_line_changes_nothing(pair):
    b = pair.b
    before = addrs(b)
    for args, status, ocf_status, message in BAD_COMMAND_LINES:
        for action in ("start", "stop", "status"):
            p = vip(b, action, *args)
            assert (p.returncode, p.stderr.splitlines()[0]) == (status, message), (action, args)
        assert vip(b, "monitor", *args).returncode == ocf_status, args
    assert addrs(b) == before


def test_start_refuses_an_interface_that_is_not_ethernet(pair):
    b = pair.b
    before = addrs(b)
    p = vip(b, "start", "--ip", "203.0.113.7/24", "--dev", "lo")
    assert (p.returncode, p.stderr) == (64, "asha-vip: --dev lo: lo is not an Ethernet interface "
                                            "(link/loopback); the address is announced in Ethernet frames\n")
    assert vip(b, "validate-all", "--ip", "203.0.113.7/24", "--dev", "lo").returncode == 2
    assert addrs(b) == before


BAD_CONFIGS = [
    (None, "HAINTERFACE=nosuch0\n", "/etc/asha.conf:8: HAINTERFACE nosuch0: no such network interface on this node"),
    ("203.0.113.7", "", "/etc/asha.conf:1: HACLUSTERIP 203.0.113.7: no address on any interface is in its "
                        "subnet; set HAINTERFACE and give the /prefix"),
    ("198.51.100.100/16", "", "/etc/asha.conf:1: HACLUSTERIP 198.51.100.100/16: prefix /16 does not fit eth0's "
                              "subnet 198.51.100.0/24 (give /24, /32 or no prefix)"),
    (None, "VIPPROBETIME=soon\n", "/etc/asha.conf:8: VIPPROBETIME must be a number of seconds (decimals "
                                  "allowed) from 0 to 10, not 'soon'"),
]


def test_bad_config_changes_nothing(pair):
    b = pair.b
    before = addrs(b)
    for ip, extra, message in BAD_CONFIGS:
        b.write_file("/etc/asha.conf", conf(pair, ip=ip, extra=extra))
        for action in ("start", "stop", "status"):
            p = vip(b, action)
            assert (p.returncode, p.stderr.strip()) == (78, message), (action, extra)
        assert vip(b, "validate-all").returncode == 6, extra
        assert vip(b, "monitor").returncode == 6, extra
    assert addrs(b) == before


def test_ocf_resource_agent_without_asha_conf(pair):
    b = pair.b
    b.run(["rm", "-f", "/etc/asha.conf"])
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
           "OCF_RESKEY_ip": f"{pair.cluster_ip}/24", "OCF_RESKEY_nic": "eth0"}
    for action, status in [("validate-all", 0), ("monitor", 7), ("stop", 0), ("start", 0),
                           ("monitor", 0), ("start", 0), ("stop", 0), ("monitor", 7)]:
        p = vip(b, action, env=env)
        assert p.returncode == status, f"{action}: {p.stderr}"
    assert vip(b, "start", env={**env, "OCF_RESKEY_nic": "nosuch0"}).returncode == 6
    assert vip(b, "monitor", env={**env, "OCF_RESKEY_ip": "300.1.1.1"}).returncode == 6
    assert not holds(b, pair.cluster_ip)
