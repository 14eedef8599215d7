"""The cluster IP: probe that nobody else holds it, add it, announce it.

Phones reach the PBX through HACLUSTERIP; when it moves, every host on the LAN
must learn the new MAC at once, so asha-vip announces it itself on a raw packet
socket (gratuitous ARP requests and replies; IPv6 unsolicited neighbour
advertisements), and refuses to take an address another host answers for."""

import ipaddress
import json
import os
import select
import socket
import struct
import subprocess
import threading
import time

from . import config, exits

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = b"\xff" * 6


class Target:
    """The address asha-vip works on: ip (ipaddress), prefix, dev, and where
    each came from (for error messages)."""

    def __init__(self, ip, prefix, dev):
        self.ip, self.prefix, self.dev = ip, prefix, dev

    @property
    def cidr(self):
        return f"{self.ip}/{self.prefix}"

    def __str__(self):
        return f"{self.cidr} on {self.dev}"


# ---------------------------------------------------------------------------
# Working out the address and the interface.

def _ip_json(*args):
    p = subprocess.run(["ip", "-j", *args], capture_output=True, text=True)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout or "[]")


def _interfaces():
    return _ip_json("addr", "show") or []


def resolve(cfg, ip=None, dev=None):
    """The Target for --ip/--dev (or OCF_RESKEY_ip/_nic), else HACLUSTERIP/HAINTERFACE.

    A bad command-line value raises UsageError (64); a configuration that does
    not fit this node raises ConfigError (78)."""
    env_ip, env_dev = os.environ.get("OCF_RESKEY_ip"), os.environ.get("OCF_RESKEY_nic")
    ip = ip if ip is not None else env_ip
    dev = dev if dev is not None else env_dev

    def bad(msg, from_cli):
        if from_cli:
            return exits.UsageError(msg)
        return config.ConfigError([f"{cfg.path}: {msg}"])

    if ip is not None:
        try:
            cip = config.ip_with_prefix(ip)
        except ValueError as e:
            raise exits.UsageError(f"--ip {e}, not {ip!r}") from None
        ip_from_cli, ip_name = True, "--ip"
    else:
        cip, ip_from_cli, ip_name = cfg.HACLUSTERIP, False, "HACLUSTERIP"
    if dev is not None:
        try:
            config.ifname(dev)
        except ValueError as e:
            raise exits.UsageError(f"--dev {e}, not {dev!r}") from None
        dev_from_cli, dev_name = True, "--dev"
    else:
        dev, dev_from_cli, dev_name = cfg.HAINTERFACE, False, "HAINTERFACE"

    links = _interfaces()
    by_name = {link["ifname"]: link for link in links}
    family = "inet" if cip.version == 4 else "inet6"
    if dev:
        if dev not in by_name:
            raise bad(f"{dev_name} {dev}: no such network interface on this node", dev_from_cli)
        candidates = [by_name[dev]]
    else:
        candidates = links
    # The interface's own subnet that holds the address gives dev and prefix.
    match = None
    for link in candidates:
        for a in link.get("addr_info", []):
            if a.get("family") != family or a.get("scope") == "link" \
                    or a["local"] == str(cip.ip):
                continue
            net = ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
            if cip.ip in net:
                match = (link["ifname"], a["prefixlen"], net)
                break
        if match:
            break
    if match is None:
        if dev and cip.prefix is not None:
            return Target(cip.ip, cip.prefix, dev)
        where = f"on {dev}" if dev else "on any interface"
        raise bad(f"{ip_name} {cip}: no address {where} is in its subnet; "
                  f"give the prefix and set {'--dev' if ip_from_cli else 'HAINTERFACE'}",
                  ip_from_cli)
    ifname, prefix, net = match
    if cip.prefix is not None and cip.prefix != prefix:
        raise bad(f"{ip_name} {cip}: prefix /{cip.prefix} does not fit {ifname}'s subnet {net}",
                  ip_from_cli)
    return Target(cip.ip, prefix, ifname)


# ---------------------------------------------------------------------------
# Holding the address.

def held(target):
    data = _ip_json("addr", "show", "dev", target.dev)
    if not data:
        return False
    return any(a.get("local") == str(target.ip) for a in data[0].get("addr_info", []))


def _ip(*args):
    p = subprocess.run(["ip", *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise exits.AshaError(f"ip {' '.join(args)}: {p.stderr.strip()}")


def _mac(dev):
    with open(f"/sys/class/net/{dev}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def mac_text(mac):
    return ":".join(f"{b:02x}" for b in mac)


# ---------------------------------------------------------------------------
# Packets.

def arp_frame(op, src_mac, src_ip, dst_mac, dst_ip, eth_dst=BROADCAST):
    """An Ethernet frame carrying an ARP packet for IPv4 over Ethernet."""
    return (eth_dst + src_mac + struct.pack("!H", ETH_P_ARP) +
            struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) +
            src_mac + ipaddress.IPv4Address(src_ip).packed +
            dst_mac + ipaddress.IPv4Address(dst_ip).packed)


def parse_arp(frame):
    """(op, sender MAC, sender IP, target IP) of an ARP frame, or None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        return None
    return (op, frame[22:28], ipaddress.IPv4Address(frame[28:32]),
            ipaddress.IPv4Address(frame[38:42]))


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def icmp6_frame(src_mac, dst_mac, src_ip, dst_ip, icmp):
    """An Ethernet frame with an IPv6 packet (hop limit 255) carrying icmp,
    whose checksum field (bytes 2-3) is filled in here."""
    src, dst = ipaddress.IPv6Address(src_ip).packed, ipaddress.IPv6Address(dst_ip).packed
    pseudo = src + dst + struct.pack("!I3xB", len(icmp), 58)
    icmp = icmp[:2] + struct.pack("!H", _checksum(pseudo + icmp[:2] + b"\0\0" + icmp[4:])) + icmp[4:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(icmp), 58, 255) + src + dst
    return dst_mac + src_mac + struct.pack("!H", ETH_P_IPV6) + ip6 + icmp


def solicited_node(ip):
    packed = ip.packed
    return ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + packed[13:]), \
        b"\x33\x33\xff" + packed[13:]


def neighbour_solicitation(src_mac, target):
    """A DAD probe: NS from :: to target's solicited-node group, no source option."""
    group, group_mac = solicited_node(target)
    icmp = struct.pack("!BBHI", 135, 0, 0, 0) + target.packed
    return icmp6_frame(src_mac, group_mac, "::", group, icmp)


def unsolicited_na(src_mac, target):
    """An unsolicited NA to all nodes, Override set, with the target link-layer option."""
    icmp = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + target.packed + \
        struct.pack("!BB", 2, 1) + src_mac
    return icmp6_frame(src_mac, b"\x33\x33\x00\x00\x00\x01", target, "ff02::1", icmp)


def parse_nd(frame):
    """(ICMPv6 type, source MAC, target address, source address) of an NS/NA frame, or None."""
    if len(frame) < 14 + 40 + 24 or frame[12:14] != b"\x86\xdd" or frame[20] != 58:
        return None
    kind = frame[54]
    if kind not in (135, 136):
        return None
    return (kind, frame[6:12], ipaddress.IPv6Address(frame[62:78]),
            ipaddress.IPv6Address(frame[22:38]))


def _raw_socket(dev, proto):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    s.bind((dev, proto))
    return s


def probe(target, seconds):
    """MAC of another host that answers for target.ip within seconds, or None."""
    if seconds <= 0:
        return None
    own = _mac(target.dev)
    v6 = target.ip.version == 6
    s = _raw_socket(target.dev, ETH_P_IPV6 if v6 else ETH_P_ARP)
    try:
        s.setblocking(False)
        if v6:
            frame = neighbour_solicitation(own, target.ip)
        else:
            frame = arp_frame(1, own, "0.0.0.0", b"\0" * 6, target.ip)
        start = time.monotonic()
        end = start + seconds
        sends = [start, start + seconds / 2]      # two probes across the window
        while True:
            now = time.monotonic()
            if now >= end:
                return None
            while sends and sends[0] <= now:
                sends.pop(0)
                s.send(frame)
            wait = min(end, sends[0] if sends else end) - now
            r, _, _ = select.select([s], [], [], max(wait, 0))
            if not r:
                continue
            while True:
                try:
                    data, addr = s.recvfrom(2048)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
                holder = _conflict(data, own, target.ip, v6)
                if holder:
                    return holder
    finally:
        s.close()


def _conflict(data, own, ip, v6):
    """The MAC in data that claims ip, if data is such a claim by someone else."""
    if v6:
        nd = parse_nd(data)
        if nd and nd[1] != own and nd[2] == ip:
            # an NA for it, or another host's own DAD probe for it (both want it)
            return nd[1]
        return None
    arp = parse_arp(data)
    if not arp or arp[1] == own:
        return None
    op, mac, sender, target_ip = arp
    if sender == ip:
        return mac                                 # someone uses the address
    if op == 1 and sender == ipaddress.IPv4Address("0.0.0.0") and target_ip == ip:
        return mac                                 # someone else probes for it right now
    return None


def announce(target, rounds, interval, log=None):
    """Send rounds of gratuitous ARP (request and reply) or unsolicited NA."""
    own = _mac(target.dev)
    v6 = target.ip.version == 6
    s = _raw_socket(target.dev, ETH_P_IPV6 if v6 else ETH_P_ARP)
    try:
        if v6:
            frames = [unsolicited_na(own, target.ip)]
        else:
            frames = [arp_frame(1, own, target.ip, b"\0" * 6, target.ip),
                      arp_frame(2, own, target.ip, BROADCAST, target.ip)]
        for i in range(rounds):
            if i:
                time.sleep(interval)
            for f in frames:
                try:
                    s.send(f)
                except OSError as e:
                    if log:
                        log.warning("announcing %s: %s", target, e.strerror)
    finally:
        s.close()


# ---------------------------------------------------------------------------
# The library entry points asha-hb and the CLI use.

def vip_up(cfg, log, ip=None, dev=None, wait_announce=True):
    """Take the cluster IP: probe, add, announce. Already held: announce again."""
    target = resolve(cfg, ip, dev)
    start = time.monotonic()
    if held(target):
        log.info("cluster IP %s already held here, announcing it again", target)
    else:
        holder = probe(target, cfg.VIPPROBETIME)
        if holder:
            raise exits.AshaError(f"cluster IP {target.ip} is held by {mac_text(holder)}; "
                                  f"not taking it")
        args = ["addr", "add", target.cidr, "dev", target.dev]
        if target.ip.version == 6:
            args.append("nodad")                  # our own DAD probe has just run
        _ip(*args)
        log.info("cluster IP %s added in %.0f ms", target, (time.monotonic() - start) * 1000)
    rounds, interval = cfg.VIPGARPCOUNT, cfg.VIPGARPINTERVAL
    announce(target, 1, 0, log)
    if rounds > 1:
        def the_other_rounds():
            time.sleep(interval)
            announce(target, rounds - 1, interval, log)
        if wait_announce:
            the_other_rounds()
        else:                        # asha-hb goes on with the chain meanwhile
            threading.Thread(target=the_other_rounds, name="announce", daemon=True).start()
    log.info("cluster IP %s announced (%d rounds, %g s apart)", target, rounds, interval)
    return target


def vip_down(cfg, log, ip=None, dev=None):
    target = resolve(cfg, ip, dev)
    if not held(target):
        log.info("cluster IP %s not held here, nothing to remove", target)
        return target
    _ip("addr", "del", target.cidr, "dev", target.dev)
    log.info("cluster IP %s removed", target)
    return target


def vip_status(cfg, ip=None, dev=None):
    return held(resolve(cfg, ip, dev))


META_DATA = """<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="asha-vip" version="{version}">
<version>1.0</version>
<longdesc lang="en">
Adds the cluster IP of an asha Asterisk pair to an interface, after probing
(ARP, or IPv6 duplicate address detection) that no other host holds it, and
announces it with gratuitous ARP or unsolicited neighbour advertisements so
that phones and switches learn the new MAC at once.
</longdesc>
<shortdesc lang="en">Cluster IP with probe and announcement</shortdesc>
<parameters>
<parameter name="ip" unique="1" required="0">
<longdesc lang="en">The address, IPv4 or IPv6, with an optional /prefix. Default: HACLUSTERIP of /etc/asha.conf.</longdesc>
<shortdesc lang="en">Cluster IP</shortdesc>
<content type="string" default=""/>
</parameter>
<parameter name="nic" unique="0" required="0">
<longdesc lang="en">Interface to add it to. Default: HAINTERFACE, else the interface whose subnet holds the address.</longdesc>
<shortdesc lang="en">Network interface</shortdesc>
<content type="string" default=""/>
</parameter>
</parameters>
<actions>
<action name="start" timeout="20s"/>
<action name="stop" timeout="20s"/>
<action name="status" timeout="20s"/>
<action name="monitor" timeout="20s" interval="10s" depth="0"/>
<action name="meta-data" timeout="5s"/>
<action name="validate-all" timeout="20s"/>
</actions>
</resource-agent>
"""


# ---------------------------------------------------------------------------
# The command line.

def run(args, log_setup):
    """asha-vip's actions; returns the exit status."""
    from . import cli
    if args["meta-data"]:
        from . import __version__
        print(META_DATA.format(version=__version__), end="")
        return exits.OK
    ocf = args["monitor"] or args["validate-all"]
    try:
        cfg = cli.load_config(args, "asha-vip")
        log = log_setup(cfg)
        ip, dev = args["--ip"], args["--dev"]
        if ocf:
            target = resolve(cfg, ip, dev)
            if args["validate-all"]:
                return exits.OCF_SUCCESS
            return exits.OCF_SUCCESS if held(target) else exits.OCF_NOT_RUNNING
        if args["status"]:
            target = resolve(cfg, ip, dev)
            up = held(target)
            print(f"{target}: {'held' if up else 'not held'}")
            return exits.OK if up else exits.LSB_NOT_RUNNING
        if args["start"]:
            vip_up(cfg, log, ip, dev)
        elif args["stop"]:
            vip_down(cfg, log, ip, dev)
        return exits.OK
    except config.ConfigError as e:
        if not ocf:
            raise
        for line in e.warnings + e.errors:
            print(line)
        return exits.OCF_ERR_CONFIGURED
    except exits.UsageError as e:
        if not ocf:
            raise
        print(f"asha-vip: {e}")
        return exits.OCF_ERR_ARGS
