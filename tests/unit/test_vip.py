"""asha.vip with a fake interface table, fake ip and fake raw sockets: which
address and interface it picks, what it refuses and how, what it runs and
sends in each state; the OCF meta-data; and the real executable's exit
statuses for bad input (nothing it is given here can change this host)."""

import ipaddress
import json
import logging
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from asha import arp, config, exits, vip

REPO = Path(__file__).resolve().parents[2]
A_MAC, B_MAC = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def link(name, mac, *addrs, link_type="ether", flags=("BROADCAST", "MULTICAST", "UP", "LOWER_UP")):
    info = []
    for a in addrs:
        ip, _, pfx = a.partition("/")
        fam = "inet6" if ":" in ip else "inet"
        scope = "link" if ip.startswith("fe80") else "global"
        info.append({"family": fam, "local": ip, "prefixlen": int(pfx), "scope": scope})
    return {"ifname": name, "address": mac, "link_type": link_type, "flags": list(flags),
            "addr_info": info}


def table():
    return [
        link("lo", "00:00:00:00:00:00", "127.0.0.1/8", "::1/128", link_type="loopback",
             flags=("LOOPBACK", "UP", "LOWER_UP")),
        link("eth0", B_MAC, "198.51.100.2/24", "2001:db8:a5a::2/64", "fe80::b/64"),
        link("eth1", "02:00:00:00:01:0b", "10.0.0.2/16"),
        link("eth2", "02:00:00:00:02:0b", "10.0.5.2/24"),          # inside eth1's /16: longer wins
        link("eth3", "02:00:00:00:03:0b", "172.16.0.1/24"),
        link("eth4", "02:00:00:00:04:0b", "172.16.0.2/24"),         # same subnet as eth3
        link("down0", "02:00:00:00:05:0b", "192.168.7.2/24", flags=("BROADCAST", "MULTICAST")),
        link("nocarrier0", "02:00:00:00:06:0b", "192.168.8.2/24",
             flags=("BROADCAST", "MULTICAST", "UP", "NO-CARRIER")),
        link("tun0", "", "192.168.9.2/24", link_type="none", flags=("POINTOPOINT", "UP", "LOWER_UP")),
    ]


class FakeHost:
    """The interface table, `ip addr add/del` acting on it, and raw sockets."""

    def __init__(self, monkeypatch, claim=None):
        self.links = table()
        self.ip_calls, self.sent, self.probes, self.sockets = [], [], [], []
        self.claim = claim
        monkeypatch.setattr(vip, "interfaces", lambda: json.loads(json.dumps(self.links)))
        monkeypatch.setattr(vip, "_ip_run", self.ip_run)
        monkeypatch.setattr(arp, "probe", self.probe)
        host = self

        class Link:
            def __init__(self, dev, proto=0):
                self.dev, self.proto, self.closed = dev, proto, False
                host.sockets.append(self)

            def send(self, frame):
                assert not self.closed
                host.sent.append((time.monotonic(), self.dev, frame))

            def close(self):
                self.closed = True
        monkeypatch.setattr(arp, "Link", Link)

    def by_name(self, name):
        return next(lk for lk in self.links if lk["ifname"] == name)

    def ip_run(self, args):
        self.ip_calls.append(args)
        cmd, verb, cidr, _, dev = args[:5]
        ip, _, pfx = cidr.partition("/")
        info = self.by_name(dev)["addr_info"]
        fam = "inet6" if ":" in ip else "inet"
        if verb == "add":
            info.append({"family": fam, "local": ip, "prefixlen": int(pfx), "scope": "global"})
        else:
            info[:] = [a for a in info if not (a["local"] == ip and a["prefixlen"] == int(pfx))]
        return subprocess.CompletedProcess(args, 0, "", "")

    def probe(self, link, mac, ip, seconds):
        self.probes.append((link.dev, link.proto, arp.mac_text(mac), str(ip), seconds))
        return self.claim

    def holds(self, dev, ip):
        return any(a["local"] == ip for a in self.by_name(dev)["addr_info"])


def cfg(extra="", path="/etc/asha.conf"):
    text = ("HACLUSTERIP=198.51.100.100\nHAPRINODE=asha-a\nHASECNODE=asha-b\n"
            "VIPGARPCOUNT=3\nVIPGARPINTERVAL=0.05\n" + extra)
    return config.loads(text, path)


@pytest.fixture
def host(monkeypatch):
    return FakeHost(monkeypatch)


@pytest.fixture
def log():
    lg = logging.getLogger("test-asha-vip")
    lg.setLevel(logging.DEBUG)
    return lg


# --- resolve: the address and the interface --------------------------------------

@pytest.mark.parametrize("ip, dev, want", [
    (None, None, ("198.51.100.100", 24, "eth0")),                 # HACLUSTERIP, subnet's prefix
    ("198.51.100.100/32", None, ("198.51.100.100", 32, "eth0")),   # a host prefix fits any subnet
    ("10.0.5.9", None, ("10.0.5.9", 24, "eth2")),                  # the longest prefix wins
    ("10.0.7.9", None, ("10.0.7.9", 16, "eth1")),
    ("10.0.5.9", "eth1", ("10.0.5.9", 16, "eth1")),                # the named interface's subnet
    ("203.0.113.7/24", "eth0", ("203.0.113.7", 24, "eth0")),       # own subnet on a named interface
    ("2001:db8:a5a::100", None, ("2001:db8:a5a::100", 64, "eth0")),
    ("2001:db8:a5a::100/128", "eth0", ("2001:db8:a5a::100", 128, "eth0")),
])
def test_resolve_picks_address_prefix_and_interface(host, ip, dev, want):
    t = vip.resolve(cfg(), ip, dev)
    assert (str(t.ip), t.prefix, t.dev, t.held) == (*want, False)
    assert t.mac == host.by_name(want[2])["address"]


def test_resolve_finds_the_address_where_it_is_held(host):
    host.by_name("eth0")["addr_info"].append(
        {"family": "inet", "local": "198.51.100.100", "prefixlen": 32, "scope": "global"})
    t = vip.resolve(cfg())
    assert (t.dev, t.prefix, t.held_prefix, t.held) == ("eth0", 32, 32, True)
    assert not vip.resolve(cfg(), dev="eth1", ip="198.51.100.100/24").held


def test_resolve_uses_hainterface(host):
    t = vip.resolve(cfg("HAINTERFACE=eth1\nHACLUSTERIP=10.0.5.9\n"))
    assert (t.dev, t.prefix) == ("eth1", 16)


CONF = "/etc/asha.conf"


@pytest.mark.parametrize("extra, ip, dev, kind, message", [
    ("", "300.1.1.1", None, exits.UsageError,
     "--ip must be an IP address with an optional /prefix, not '300.1.1.1'"),
    ("", "198.51.100.100/33", None, exits.UsageError,
     "--ip must be an IP address with an optional /prefix (1 to 32), not '198.51.100.100/33'"),
    ("", "198.51.100.100/8", None, exits.UsageError,
     "--ip 198.51.100.100/8: prefix /8 does not fit eth0's subnet 198.51.100.0/24 "
     "(give /24, /32 or no prefix)"),
    ("", None, "nosuch0", exits.UsageError, "--dev nosuch0: no such network interface on this node"),
    ("", None, "eth0/x", exits.UsageError,
     "--dev must be a network interface name (1 to 15 characters), not 'eth0/x'"),
    ("", "203.0.113.7", None, exits.UsageError,
     "--ip 203.0.113.7: no address on any interface is in its subnet; set --dev and give the /prefix"),
    ("", "203.0.113.7/24", None, exits.UsageError,
     "--ip 203.0.113.7/24: no address on any interface is in its subnet; set --dev"),
    ("", "203.0.113.7", "eth0", exits.UsageError,
     "--ip 203.0.113.7: no address on eth0 is in its subnet; give the /prefix"),
    ("HAINTERFACE=nosuch0\n", None, None, config.ConfigError,
     f"{CONF}:6: HAINTERFACE nosuch0: no such network interface on this node"),
    ("HACLUSTERIP=203.0.113.7\n", None, None, config.ConfigError,
     f"{CONF}:6: HACLUSTERIP 203.0.113.7: no address on any interface is in its subnet; "
     f"set HAINTERFACE and give the /prefix"),
    ("HACLUSTERIP=198.51.100.100/16\n", None, None, config.ConfigError,
     f"{CONF}:6: HACLUSTERIP 198.51.100.100/16: prefix /16 does not fit eth0's subnet "
     f"198.51.100.0/24 (give /24, /32 or no prefix)"),
    ("HACLUSTERIP=172.16.0.100\n", None, None, config.ConfigError,
     f"{CONF}: HAINTERFACE is not set, and 172.16.0.100 is in a subnet of both eth3 and eth4; "
     f"name the interface"),
])
def test_resolve_refuses_bad_input_naming_its_source(host, extra, ip, dev, kind, message):
    with pytest.raises(kind) as e:
        vip.resolve(cfg(extra), ip, dev)
    if kind is config.ConfigError:
        assert e.value.errors == [message]
    else:
        assert (str(e.value), e.value.status) == (message, exits.USAGE)


def test_resolve_blames_the_ocf_environment_as_configuration(host):
    with pytest.raises(exits.AshaError) as e:
        vip.resolve(cfg(), "1.2.3", None, ip_from="OCF_RESKEY_ip")
    assert (str(e.value), e.value.status) == \
        ("OCF_RESKEY_ip must be an IP address with an optional /prefix, not '1.2.3'", exits.CONFIG)
    with pytest.raises(exits.AshaError) as e:
        vip.resolve(cfg(), None, "nosuch0", dev_from="OCF_RESKEY_nic")
    assert (str(e.value), e.value.status) == \
        ("OCF_RESKEY_nic nosuch0: no such network interface on this node", exits.CONFIG)


def test_resolve_wants_ethernet_to_start(host):
    assert vip.resolve(cfg(), "192.168.9.100", None).dev == "tun0"      # status may look
    with pytest.raises(exits.UsageError) as e:
        vip.resolve(cfg(), "192.168.9.100", None, ethernet=True)
    assert str(e.value) == ("--ip 192.168.9.100: tun0 is not an Ethernet interface (link/none); "
                            "the address is announced in Ethernet frames")
    with pytest.raises(exits.UsageError) as e:
        vip.resolve(cfg(), "203.0.113.100/24", "lo", ethernet=True)
    assert str(e.value).startswith("--dev lo: lo is not an Ethernet interface (link/loopback)")


# --- vip_up / vip_down / vip_status ------------------------------------------------------

def arp_rounds(host):
    """(op, sender IP) of the ARP frames sent, in order."""
    out = []
    for _, dev, f in host.sent:
        a = arp.parse_arp(f)
        out.append((dev, a.op, str(a.spa), arp.mac_text(a.sha)))
    return out


def test_up_probes_adds_and_announces(host, log):
    t = vip.vip_up(cfg(), log)
    assert (t.cidr, t.dev, t.held) == ("198.51.100.100/24", "eth0", True)
    assert host.probes == [("eth0", arp.ETH_P_ARP, B_MAC, "198.51.100.100", 0.05)]
    (sock,) = host.sockets                                     # probed and announced on one socket
    assert sock.closed
    assert host.ip_calls == [["addr", "add", "198.51.100.100/24", "dev", "eth0"]]
    one = [("eth0", arp.ARP_REQUEST, "198.51.100.100", B_MAC), ("eth0", arp.ARP_REPLY, "198.51.100.100", B_MAC)]
    assert arp_rounds(host) == one * 3                         # VIPGARPCOUNT rounds, all sent
    times = [s[0] for s in host.sent[::2]]
    assert all(b - a >= 0.05 for a, b in zip(times, times[1:]))  # VIPGARPINTERVAL apart
    assert vip.vip_status(cfg())
    assert not vip.announcing("198.51.100.100", "eth0")


def test_up_refuses_an_address_someone_answers_for(monkeypatch, log):
    host = FakeHost(monkeypatch, claim=arp.Claim(arp.mac_bytes(A_MAC), False))
    with pytest.raises(exits.AshaError) as e:
        vip.vip_up(cfg(), log)
    assert e.value.status == exits.FAIL
    assert str(e.value) == ("198.51.100.100 is held by 02:00:00:00:00:0a (it answered the ARP probe "
                            "on eth0); not taking it")
    assert host.ip_calls == [] and host.sent == []
    assert all(sock.closed for sock in host.sockets)
    assert not vip.vip_status(cfg())


def test_up_refuses_while_another_host_probes(monkeypatch, log):
    host = FakeHost(monkeypatch, claim=arp.Claim(arp.mac_bytes(A_MAC), True))
    with pytest.raises(exits.AshaError) as e:
        vip.vip_up(cfg(), log, ip="2001:db8:a5a::100")
    assert str(e.value) == ("2001:db8:a5a::100: 02:00:00:00:00:0a is probing for it at the same "
                            "time on eth0; not taking it")
    assert host.ip_calls == []


def test_up_ipv6_adds_without_kernel_dad_and_sends_unsolicited_na(host, log):
    vip.vip_up(cfg(), log, ip="2001:db8:a5a::100")
    assert host.ip_calls == [["addr", "add", "2001:db8:a5a::100/64", "dev", "eth0", "nodad"]]
    nds = [arp.parse_nd(f) for _, _, f in host.sent]
    assert [(n.type, str(n.target), n.flags, arp.mac_text(n.lladdr)) for n in nds] == \
        [(arp.ND_NA, "2001:db8:a5a::100", arp.NA_OVERRIDE, B_MAC)] * 3


def test_up_when_held_announces_again_without_probe_or_add(host, log):
    vip.vip_up(cfg(), log)
    host.ip_calls.clear(), host.probes.clear(), host.sent.clear()
    vip.vip_up(cfg(), log)
    assert host.ip_calls == [] and host.probes == []
    assert len(host.sent) == 6


def test_up_without_probe_time_skips_the_probe(host, log):
    vip.vip_up(cfg("VIPPROBETIME=0\n"), log)
    assert host.probes == [] and len(host.ip_calls) == 1


@pytest.mark.parametrize("ip, message", [
    ("192.168.7.100", "down0 is down; not taking 192.168.7.100"),
    ("192.168.8.100", "nocarrier0 has no carrier (link down); cannot probe for 192.168.8.100, not taking it"),
])
def test_up_refuses_a_link_that_is_down(host, log, ip, message):
    with pytest.raises(exits.AshaError) as e:
        vip.vip_up(cfg(), log, ip=ip)
    assert (str(e.value), e.value.status) == (message, exits.FAIL)
    assert host.ip_calls == [] and host.probes == [] and host.sent == []


def test_up_returns_after_the_first_round_and_the_rest_follow(host, log):
    c = cfg("VIPGARPCOUNT=4\nVIPGARPINTERVAL=0.1\n")
    vip.vip_up(c, log, wait_announce=False)
    returned = time.monotonic()
    assert len(host.sent) == 2                                # the first round only
    assert vip.announcing("198.51.100.100", "eth0")
    deadline = time.monotonic() + 5
    while vip.announcing("198.51.100.100", "eth0") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(host.sent) == 8
    assert all(t > returned for t, _, _ in host.sent[2:])
    assert host.sockets[0].closed


def test_down_stops_the_rounds_still_to_come(host, log):
    c = cfg("VIPGARPCOUNT=50\nVIPGARPINTERVAL=0.05\n")
    vip.vip_up(c, log, wait_announce=False)
    time.sleep(0.12)
    vip.vip_down(c, log)
    stopped = len(host.sent)
    assert not vip.announcing("198.51.100.100", "eth0")
    time.sleep(0.15)
    assert len(host.sent) == stopped < 100
    assert not vip.vip_status(c)
    assert not any(t.name.startswith("announce ") for t in threading.enumerate())


def test_down_removes_the_prefix_it_is_held_with(host, log):
    host.by_name("eth0")["addr_info"].append(
        {"family": "inet", "local": "198.51.100.100", "prefixlen": 32, "scope": "global"})
    t = vip.vip_down(cfg(), log)
    assert host.ip_calls == [["addr", "del", "198.51.100.100/32", "dev", "eth0"]]
    assert not t.held and not host.holds("eth0", "198.51.100.100")


def test_down_when_not_held_changes_nothing(host, log):
    vip.vip_down(cfg(), log)
    assert host.ip_calls == []


def test_up_down_through_the_ip_errors(monkeypatch, log):
    host = FakeHost(monkeypatch)
    monkeypatch.setattr(vip, "_ip_run", lambda args: subprocess.CompletedProcess(
        args, 2, "", "RTNETLINK answers: Operation not permitted\n"))
    with pytest.raises(exits.AshaError) as e:
        vip.vip_up(cfg(), log)
    assert str(e.value) == ("ip addr add 198.51.100.100/24 dev eth0: "
                            "RTNETLINK answers: Operation not permitted")
    assert host.sent == []


# --- the OCF face -------------------------------------------------------------------------

def test_meta_data_is_an_ocf_resource_agent_description():
    root = ET.fromstring(vip.meta_data())
    assert (root.tag, root.get("name"), root.findtext("version")) == ("resource-agent", "asha-vip", "1.0")
    assert root.find("shortdesc").text and root.find("longdesc").text.strip()
    params = {p.get("name"): p for p in root.find("parameters")}
    assert list(params) == ["ip", "nic", "config"]
    assert params["ip"].get("unique") == "1"
    assert params["config"].find("content").get("default") == "/etc/asha.conf"
    for p in params.values():
        assert p.find("shortdesc").text and p.find("longdesc").text
        assert p.find("content").get("type") == "string"
    actions = {a.get("name"): a.attrib for a in root.find("actions")}
    assert set(actions) == {"start", "stop", "monitor", "meta-data", "validate-all"}
    assert actions["monitor"]["interval"] == "10s"
    assert all(a["timeout"].endswith("s") for a in actions.values())


# --- the real executable: bad input gets one line and an exit status, and changes nothing ----

def run_vip(*args, env=None, conf=None):
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    argv = [sys.executable, str(REPO / "bin" / "asha-vip")]
    if conf is not None:
        argv += ["-c", str(conf)]
    return subprocess.run(argv + list(args), capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=30)


def host_addresses():
    return subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True).stdout


@pytest.fixture
def conf(tmp_path):
    def write(extra=""):
        p = tmp_path / "asha.conf"
        # 203.0.113.0/24 (TEST-NET-3) is on no interface of a test host
        p.write_text("HACLUSTERIP=203.0.113.100\nHAPRINODE=pbx1\nHASECNODE=pbx2\n" + extra)
        return p
    return write


BAD_INPUT = [
    # (config extra, args, env, exit status, first line of stderr)
    ("", ["start", "--ip", "300.1.1.1"], {}, 64,
     "asha-vip: --ip must be an IP address with an optional /prefix, not '300.1.1.1'"),
    ("", ["stop", "--ip", "203.0.113.100/33"], {}, 64,
     "asha-vip: --ip must be an IP address with an optional /prefix (1 to 32), not '203.0.113.100/33'"),
    ("", ["start", "--ip", "2001:db8::1/129"], {}, 64,
     "asha-vip: --ip must be an IP address with an optional /prefix (1 to 128), not '2001:db8::1/129'"),
    ("", ["start", "--ip", "203.0.113.0/24", "--dev", "lo"], {}, 64,
     "asha-vip: --ip must not be the network or broadcast address of 203.0.113.0/24, not '203.0.113.0/24'"),
    ("", ["start", "--dev", "nosuch0"], {}, 64,
     "asha-vip: --dev nosuch0: no such network interface on this node"),
    ("", ["status", "--dev", "nosuch0"], {}, 64,
     "asha-vip: --dev nosuch0: no such network interface on this node"),
    ("", ["start", "--ip", "203.0.113.100/24", "--dev", "lo"], {}, 64,
     "asha-vip: --dev lo: lo is not an Ethernet interface (link/loopback); the address is "
     "announced in Ethernet frames"),
    ("", ["start", "--bogus"], {}, 64, None),
    ("", ["frobnicate"], {}, 64, None),
    ("HAINTERFACE=nosuch0\n", ["start"], {}, 78,
     "{conf}:4: HAINTERFACE nosuch0: no such network interface on this node"),
    ("HAINTERFACE=nosuch0\n", ["stop"], {}, 78,
     "{conf}:4: HAINTERFACE nosuch0: no such network interface on this node"),
    ("", ["start"], {}, 78,
     "{conf}:1: HACLUSTERIP 203.0.113.100: no address on any interface is in its subnet; "
     "set HAINTERFACE and give the /prefix"),
    ("VIPGARPCOUNT=0\n", ["start"], {}, 78,
     "{conf}:4: VIPGARPCOUNT must be a whole number from 1 to 100, not '0'"),
    # OCF actions: 2 for bad arguments, 6 for a bad configuration
    ("", ["monitor", "--ip", "300.1.1.1"], {}, 2,
     "asha-vip: --ip must be an IP address with an optional /prefix, not '300.1.1.1'"),
    ("HAINTERFACE=nosuch0\n", ["validate-all"], {}, 6,
     "{conf}:4: HAINTERFACE nosuch0: no such network interface on this node"),
    ("HAINTERFACE=nosuch0\n", ["monitor"], {}, 6,
     "{conf}:4: HAINTERFACE nosuch0: no such network interface on this node"),
    ("VIPGARPCOUNT=0\n", ["validate-all"], {}, 6,
     "{conf}:4: VIPGARPCOUNT must be a whole number from 1 to 100, not '0'"),
    # as a resource agent under a cluster manager, start and stop speak OCF too
    ("", ["start"], {"OCF_RESKEY_ip": "300.1.1.1"}, 6,
     "asha-vip: OCF_RESKEY_ip must be an IP address with an optional /prefix, not '300.1.1.1'"),
    ("", ["monitor"], {"OCF_RESKEY_ip": "300.1.1.1"}, 6,
     "asha-vip: OCF_RESKEY_ip must be an IP address with an optional /prefix, not '300.1.1.1'"),
    ("", ["stop"], {"OCF_RESKEY_ip": "203.0.113.100/24", "OCF_RESKEY_nic": "nosuch0"}, 6,
     "asha-vip: OCF_RESKEY_nic nosuch0: no such network interface on this node"),
    ("", ["start", "--ip", "300.1.1.1"], {"OCF_ROOT": "/usr/lib/ocf"}, 2,
     "asha-vip: --ip must be an IP address with an optional /prefix, not '300.1.1.1'"),
]


@pytest.mark.parametrize("extra, args, env, status, first", BAD_INPUT,
                         ids=[" ".join(r[1]) + (" " + r[0].strip() if r[0] else "") +
                              (" " + " ".join(r[2]) if r[2] else "") for r in BAD_INPUT])
def test_bad_input_exit_status_and_first_line(conf, extra, args, env, status, first):
    path = conf(extra)
    before = host_addresses()
    p = run_vip(*args, env=env, conf=path)
    assert p.returncode == status, p.stderr
    if first is not None:
        assert p.stderr.splitlines()[0] == first.format(conf=path)
    else:
        assert p.stderr.strip()
    assert p.stdout == ""
    assert host_addresses() == before


def test_status_and_monitor_of_an_address_not_held(conf):
    path = conf()
    p = run_vip("status", "--ip", "203.0.113.100/24", "--dev", "lo", conf=path)
    assert (p.returncode, p.stdout, p.stderr) == (3, "203.0.113.100/24 on lo: not held\n", "")
    p = run_vip("monitor", "--ip", "203.0.113.100/24", "--dev", "lo", conf=path)
    assert (p.returncode, p.stdout, p.stderr) == (7, "", "")


def test_status_of_an_address_held_here():
    # an address this host has: "held", without changing anything
    held = [(link["ifname"], a["local"]) for link in json.loads(host_addresses())
            for a in link.get("addr_info", [])
            if a["family"] == "inet" and a.get("scope") == "global"]
    if not held:
        pytest.skip("this host has no global IPv4 address")
    dev, ip = held[0]
    conf = REPO / "tests" / "unit" / "configs" / "good_with_unknown_key.conf"
    p = run_vip("status", "--ip", ip, conf=conf)
    assert p.returncode == 0 and p.stdout.endswith(f" on {dev}: held\n"), p.stderr
    assert run_vip("monitor", "--ip", ip, "--dev", dev, conf=conf).returncode == 0


def test_ocf_without_a_configuration_file_uses_the_defaults(tmp_path):
    env = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESKEY_ip": "203.0.113.100/24", "OCF_RESKEY_nic": "lo",
           "OCF_RESKEY_config": ""}
    p = run_vip("monitor", env=env)           # /etc/asha.conf need not exist under Pacemaker
    if not os.path.exists(config.DEFAULT_PATH):
        assert (p.returncode, p.stderr) == (7, "")
    p = run_vip("monitor", env={**env, "OCF_RESKEY_config": str(tmp_path / "absent.conf")})
    assert p.returncode == 6                  # one that is named must exist
    assert "absent.conf: no such file" in p.stderr


def test_meta_data_from_the_executable_needs_no_configuration():
    p = run_vip("meta-data", env={"OCF_ROOT": "/usr/lib/ocf"})
    assert p.returncode == 0 and p.stderr == ""
    assert ET.fromstring(p.stdout).get("name") == "asha-vip"
