"""The Ethernet frames that move an IP address from one host to another, built
and read by hand and sent on AF_PACKET raw sockets, so no arping is needed.

IPv4: the ARP probe (RFC 5227: sender IP 0.0.0.0) and the gratuitous ARP
announcement in its request and reply forms (sender IP = target IP = the
address). IPv6: the duplicate address detection probe (RFC 4862: a neighbour
solicitation from :: to the solicited-node group) and the unsolicited
neighbour advertisement to all nodes with the Override flag and the target
link-layer address (RFC 4861 7.2.6). Builders return a whole frame; parsers
return a small record, or None for anything else. Only Link touches the network."""

import collections
import ipaddress
import select
import socket
import struct
import time

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
UNSPECIFIED4 = ipaddress.IPv4Address("0.0.0.0")
UNSPECIFIED6 = ipaddress.IPv6Address("::")

ARP_REQUEST, ARP_REPLY = 1, 2
ND_NS, ND_NA = 135, 136
NA_OVERRIDE = 0x20000000
OPT_SOURCE_LLADDR, OPT_TARGET_LLADDR = 1, 2
MIN_FRAME = 60                  # an Ethernet frame without its FCS is padded to this

Arp = collections.namedtuple("Arp", "eth_src eth_dst op sha spa tha tpa")
Nd = collections.namedtuple("Nd", "eth_src eth_dst src dst type flags target lladdr")
Claim = collections.namedtuple("Claim", "mac probing")   # probing: it is asking for the address too


def mac_bytes(text):
    """b'\\x02\\x00...' from '02:00:00:00:00:0a'."""
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def mac_text(mac):
    return ":".join(f"{b:02x}" for b in mac)


def ether(dst, src, ethertype, payload):
    """An Ethernet II frame, padded to the 60-byte minimum (a NIC that does not
    pad would send a runt that switches drop)."""
    frame = dst + src + struct.pack("!H", ethertype) + payload
    return frame + b"\x00" * (MIN_FRAME - len(frame)) if len(frame) < MIN_FRAME else frame


# ---------------------------------------------------------------------------
# IPv4: ARP.

def arp_frame(op, sha, spa, tha, tpa, eth_dst=BROADCAST):
    """An ARP packet for IPv4 over Ethernet (RFC 826) in a frame from sha."""
    return ether(eth_dst, sha, ETH_P_ARP,
                 struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) +
                 sha + ipaddress.IPv4Address(spa).packed + tha + ipaddress.IPv4Address(tpa).packed)


def arp_probe(mac, ip):
    """RFC 5227 probe: who has ip? asked from 0.0.0.0, so that nobody's cache changes."""
    return arp_frame(ARP_REQUEST, mac, UNSPECIFIED4, ZERO_MAC, ip)


def garp_request(mac, ip):
    """Gratuitous ARP, request form: sender and target IP are both ip."""
    return arp_frame(ARP_REQUEST, mac, ip, ZERO_MAC, ip)


def garp_reply(mac, ip):
    """Gratuitous ARP, reply form. Linux counts a reply as gratuitous only when
    its target hardware address equals the sender's (arp_is_garp); only then does
    it override an entry updated within the last second (locktime)."""
    return arp_frame(ARP_REPLY, mac, ip, mac, ip)


def parse_arp(frame):
    """An Arp record of an ARP-for-IPv4-over-Ethernet frame, or None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        return None
    return Arp(frame[6:12], frame[0:6], op, frame[22:28], ipaddress.IPv4Address(frame[28:32]),
               frame[32:38], ipaddress.IPv4Address(frame[38:42]))


# ---------------------------------------------------------------------------
# IPv6: neighbour discovery.

def checksum(data):
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _pseudo_header(src, dst, length):
    return src.packed + dst.packed + struct.pack("!I3xB", length, 58)


def icmp6_frame(eth_src, eth_dst, src, dst, icmp):
    """A frame with an IPv6 packet (hop limit 255, as neighbour discovery needs)
    carrying the ICMPv6 message icmp, whose checksum (bytes 2-3) is set here."""
    src, dst = ipaddress.IPv6Address(src), ipaddress.IPv6Address(dst)
    body = icmp[:2] + b"\x00\x00" + icmp[4:]
    body = body[:2] + struct.pack("!H", checksum(_pseudo_header(src, dst, len(body)) + body)) + body[4:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(body), 58, 255) + src.packed + dst.packed
    return ether(eth_dst, eth_src, ETH_P_IPV6, ip6 + body)


def solicited_node(ip):
    """(group, its MAC) of ip: ff02::1:ffXX:XXXX and 33:33:ff:XX:XX:XX."""
    tail = ipaddress.IPv6Address(ip).packed[13:]
    return ipaddress.IPv6Address(b"\xff\x02" + b"\x00" * 9 + b"\x01\xff" + tail), b"\x33\x33\xff" + tail


def dad_probe(mac, ip):
    """RFC 4862 5.4.2: NS from :: to ip's solicited-node group, with no source
    link-layer option (none is allowed from ::)."""
    ip = ipaddress.IPv6Address(ip)
    group, group_mac = solicited_node(ip)
    icmp = struct.pack("!BBHI", ND_NS, 0, 0, 0) + ip.packed
    return icmp6_frame(mac, group_mac, UNSPECIFIED6, group, icmp)


def unsolicited_na(mac, ip):
    """RFC 4861 7.2.6: NA from ip to all nodes, Override set, Solicited clear,
    with the target link-layer address option. Linux moves an existing entry to
    STALE with the new MAC; it makes no new entry (accept_untracked_na=0)."""
    ip = ipaddress.IPv6Address(ip)
    icmp = struct.pack("!BBHI", ND_NA, 0, 0, NA_OVERRIDE) + ip.packed + \
        struct.pack("!BB", OPT_TARGET_LLADDR, 1) + mac
    return icmp6_frame(mac, ALL_NODES_MAC, ip, ALL_NODES, icmp)


def parse_nd(frame):
    """An Nd record of a valid NS or NA frame (RFC 4861 7.1: hop limit 255,
    code 0, right checksum), or None. lladdr is the source (NS) or target (NA)
    link-layer option, or None."""
    if len(frame) < 14 + 40 + 24 or frame[12:14] != b"\x86\xdd":
        return None
    if frame[14] >> 4 != 6 or frame[20] != 58 or frame[21] != 255:
        return None                       # not IPv6, an extension header, or forwarded
    length = struct.unpack("!H", frame[18:20])[0]
    icmp = frame[54:54 + length]
    if length < 24 or len(icmp) != length or icmp[0] not in (ND_NS, ND_NA) or icmp[1] != 0:
        return None
    src, dst = ipaddress.IPv6Address(frame[22:38]), ipaddress.IPv6Address(frame[38:54])
    if checksum(_pseudo_header(src, dst, length) + icmp) != 0:
        return None
    kind = icmp[0]
    flags = struct.unpack("!I", icmp[4:8])[0]
    lladdr, i = None, 24
    while i + 2 <= length:
        otype, olen = icmp[i], icmp[i + 1] * 8
        if olen == 0 or i + olen > length:
            return None                   # RFC 4861: a zero-length option voids the packet
        if otype == (OPT_SOURCE_LLADDR if kind == ND_NS else OPT_TARGET_LLADDR) and olen >= 8:
            lladdr = icmp[i + 2:i + 8]
        i += olen
    return Nd(frame[6:12], frame[0:6], src, dst, kind, flags,
              ipaddress.IPv6Address(icmp[8:24]), lladdr)


# ---------------------------------------------------------------------------
# What a received frame says about an address.

def claim(frame, ip, own_mac):
    """A Claim when frame shows another host holding ip or probing for it, else None.

    IPv4 (RFC 5227 2.1.1): any ARP whose sender IP is ip; an ARP probe (sender
    0.0.0.0) for ip. IPv6: an NA for ip; a DAD probe (NS from ::) for ip. An NS
    from a real address is a host *looking* for ip (a phone whose entry has gone
    stale during the failover): it claims nothing. Frames from own_mac are ours."""
    ip = ipaddress.ip_address(ip)
    if frame[6:12] == own_mac:
        return None
    if ip.version == 4:
        a = parse_arp(frame)
        if a is None or a.sha == own_mac:
            return None
        if a.spa == ip:
            return Claim(a.sha, False)
        if a.op == ARP_REQUEST and a.spa == UNSPECIFIED4 and a.tpa == ip:
            return Claim(a.sha, True)
        return None
    nd = parse_nd(frame)
    if nd is None or nd.target != ip:
        return None
    if nd.type == ND_NA:
        mac = nd.lladdr or nd.eth_src
        return None if mac == own_mac else Claim(mac, False)
    if nd.src == UNSPECIFIED6:
        return Claim(nd.eth_src, True)
    return None


def announcement(mac, ip):
    """The frames of one announcement round for ip from mac."""
    ip = ipaddress.ip_address(ip)
    if ip.version == 4:
        return [garp_request(mac, ip), garp_reply(mac, ip)]
    return [unsolicited_na(mac, ip)]


# ---------------------------------------------------------------------------
# The network.

class Link:
    """A raw packet socket on one interface. proto: the ethertype to receive
    (ETH_P_ARP, ETH_P_IPV6), or 0 to only send.

    Speed: a packet socket made with a protocol starts receiving at once, and
    binding it to an interface then waits for an RCU grace period (10 ms and
    more); made with 0 and bound with the protocol, it does not. Closing one
    waits for a grace period too, so a caller in a hurry sends on the socket it
    probed with and closes it once the hurry is over."""

    def __init__(self, dev, proto=0):
        self.dev = dev
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self.sock.bind((dev, proto))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, frame):
        self.sock.send(frame)

    def receive(self, until):
        """Frames that arrive from the network before the monotonic time until
        (our own outgoing frames, which a packet socket also sees, are left out)."""
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return
            while True:
                try:
                    data, addr = self.sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] != socket.PACKET_OUTGOING:
                    yield data


def probe_protocol(ip):
    """The ethertype that answers to a probe for ip arrive in."""
    return ETH_P_ARP if ipaddress.ip_address(ip).version == 4 else ETH_P_IPV6


def probe(link, mac, ip, seconds, probes=2):
    """Ask for ip on link (a Link receiving probe_protocol(ip)) for seconds:
    the first Claim heard, or None.

    RFC 5227 waits 1-2 s between three probes and 2 s more; a PBX failover has
    half a second in all, and on a LAN an answer comes in under a millisecond.
    So the probe is sent `probes` times spread over `seconds` (a lost frame is
    not the end of it) and the socket listens for the whole time."""
    ip = ipaddress.ip_address(ip)
    frame = arp_probe(mac, ip) if ip.version == 4 else dad_probe(mac, ip)
    start = time.monotonic()
    end = start + seconds
    for n in range(probes):
        link.send(frame)
        until = end if n == probes - 1 else start + seconds * (n + 1) / probes
        for data in link.receive(until):
            found = claim(data, ip, mac)
            if found:
                return found
    return None
