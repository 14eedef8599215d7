"""asha.arp: the frames asha-vip builds, and what it reads in the frames it hears.

The two KERNEL_* frames were sent by Linux 6.18 in the lab (A holding the
cluster IP, answering B's probes); reading them checks the parsers against
the kernel rather than against themselves."""

import ipaddress

import pytest

from asha import arp

A = arp.mac_bytes("02:00:00:00:00:0a")
B = arp.mac_bytes("02:00:00:00:00:0b")
C = arp.mac_bytes("02:00:00:00:00:0c")
VIP = ipaddress.ip_address("198.51.100.100")
VIP6 = ipaddress.ip_address("2001:db8:a5a::100")

# A's ARP reply to B's ARP probe for 198.51.100.100 (unicast to B, target IP 0.0.0.0)
KERNEL_ARP_REPLY = bytes.fromhex(
    "02000000000b02000000000a0806000108000604000202000000000ac633646402000000000b00000000")
# A's answer to B's DAD probe for 2001:db8:a5a::100: an NA to all nodes, Override set
KERNEL_NA = bytes.fromhex(
    "33330000000102000000000a86dd6000000000203aff20010db80a5a00000000000000000100ff020000"
    "00000000000000000000000188" "00e26f2000000020010db80a5a00000000000000000100020102000000000a")


def test_mac_text_round_trip_and_refusal():
    assert arp.mac_text(A) == "02:00:00:00:00:0a"
    assert arp.mac_bytes("02:00:00:00:00:0A") == A
    for bad in ("02:00:00:00:00", "2:0:0:0:0:a", "02-00-00-00-00-0a", "zz:00:00:00:00:0a"):
        with pytest.raises(ValueError):
            arp.mac_bytes(bad)


def test_arp_probe_is_who_has_from_nowhere():
    f = arp.arp_probe(B, VIP)
    assert f.hex() == ("ffffffffffff" "02000000000b" "0806"
                       "0001" "0800" "06" "04" "0001"
                       "02000000000b" "00000000" "000000000000" "c6336464") + "00" * 18
    assert len(f) == 60


def test_garp_request_and_reply_forms():
    req, rep = arp.announcement(B, VIP)
    r = arp.parse_arp(req)
    assert (r.eth_dst, r.eth_src, r.op, r.sha, r.spa, r.tha, r.tpa) == \
        (arp.BROADCAST, B, arp.ARP_REQUEST, B, VIP, arp.ZERO_MAC, VIP)
    r = arp.parse_arp(rep)
    # Linux takes a reply as gratuitous (and overrides a fresh entry) only with tha == sha.
    assert (r.eth_dst, r.op, r.sha, r.spa, r.tha, r.tpa) == (arp.BROADCAST, arp.ARP_REPLY, B, VIP, B, VIP)
    assert len(req) == len(rep) == 60


def test_parse_arp_reads_the_kernels_reply_and_refuses_other_frames():
    r = arp.parse_arp(KERNEL_ARP_REPLY)
    assert (r.op, r.sha, r.spa, r.tha, r.tpa) == (arp.ARP_REPLY, A, VIP, B, ipaddress.ip_address("0.0.0.0"))
    assert arp.parse_arp(KERNEL_NA) is None
    assert arp.parse_arp(KERNEL_ARP_REPLY[:41]) is None
    not_ipv4 = KERNEL_ARP_REPLY[:16] + b"\x86\xdd" + KERNEL_ARP_REPLY[18:]
    assert arp.parse_arp(not_ipv4) is None


def test_checksum_rfc1071_example():
    # RFC 1071 section 3: the sum of these bytes is 0xddf2, so the checksum is its complement
    assert arp.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2
    assert arp.checksum(b"\x01") == 0xFFFF - 0x0100        # odd length: padded with a zero


def test_solicited_node_group():
    group, mac = arp.solicited_node(VIP6)
    assert group == ipaddress.ip_address("ff02::1:ff00:100")
    assert mac == bytes.fromhex("3333ff000100")
    group, mac = arp.solicited_node("fe80::1234:5678:9abc")
    assert (str(group), mac.hex()) == ("ff02::1:ff78:9abc", "3333ff789abc")


def test_parse_nd_reads_the_kernels_na():
    nd = arp.parse_nd(KERNEL_NA)
    assert nd is not None, "the kernel's checksum must check"
    assert (nd.type, nd.flags, nd.target, nd.lladdr, nd.eth_src) == (arp.ND_NA, arp.NA_OVERRIDE, VIP6, A, A)
    assert (nd.src, nd.dst) == (VIP6, arp.ALL_NODES)


def test_dad_probe_comes_from_nowhere_to_the_solicited_node_group():
    f = arp.dad_probe(B, VIP6)
    nd = arp.parse_nd(f)
    assert (nd.type, nd.src, nd.dst, nd.target, nd.lladdr) == \
        (arp.ND_NS, ipaddress.ip_address("::"), ipaddress.ip_address("ff02::1:ff00:100"), VIP6, None)
    assert (nd.eth_dst, nd.eth_src) == (bytes.fromhex("3333ff000100"), B)
    assert f[21] == 255 and len(f) == 14 + 40 + 24          # hop limit; no option from ::


def test_unsolicited_na_matches_what_the_kernel_sends():
    ours = arp.unsolicited_na(A, VIP6)
    # the kernel's answer is the same message: same source, group, flags, option
    assert ours == KERNEL_NA
    nd = arp.parse_nd(arp.unsolicited_na(B, VIP6))
    assert (nd.type, nd.flags, nd.target, nd.lladdr, nd.eth_dst) == \
        (arp.ND_NA, arp.NA_OVERRIDE, VIP6, B, arp.ALL_NODES_MAC)


@pytest.mark.parametrize("offset, value, why", [
    (21, 254, "hop limit below 255: the packet crossed a router"),
    (20, 0, "an extension header before ICMPv6"),
    (55, 1, "code not 0"),
    (70, 0x77, "a changed byte breaks the checksum"),
])
def test_parse_nd_refuses_invalid_messages(offset, value, why):
    f = bytearray(KERNEL_NA)
    f[offset] = value
    assert arp.parse_nd(bytes(f)) is None, why


def test_parse_nd_refuses_a_zero_length_option():
    f = arp.icmp6_frame(A, arp.ALL_NODES_MAC, VIP6, arp.ALL_NODES,
                        bytes([arp.ND_NA, 0, 0, 0, 0x20, 0, 0, 0]) + VIP6.packed + b"\x02\x00" + A)
    assert arp.parse_nd(f) is None


# --- claims: what counts as another host holding the address -------------

def arp_from(mac, op, spa, tpa, tha=arp.ZERO_MAC):
    return arp.arp_frame(op, mac, spa, tha, tpa)


@pytest.mark.parametrize("frame, want", [
    (KERNEL_ARP_REPLY, arp.Claim(A, False)),
    (arp.garp_request(A, VIP), arp.Claim(A, False)),
    (arp.garp_reply(A, VIP), arp.Claim(A, False)),
    (arp_from(A, arp.ARP_REQUEST, VIP, "198.51.100.10"), arp.Claim(A, False)),  # A asks C, from the VIP
    (arp.arp_probe(A, VIP), arp.Claim(A, True)),                  # A wants it too, right now
    (arp_from(C, arp.ARP_REQUEST, "198.51.100.10", VIP), None),   # C looking for the VIP: no claim
    (arp.arp_probe(A, "198.51.100.101"), None),                   # another address
    (arp.garp_request(A, "198.51.100.101"), None),
    (arp.garp_request(B, VIP), None),                             # our own announcement
    (KERNEL_NA, None),                                            # IPv6 frame for an IPv4 question
], ids=["kernel reply", "garp request", "garp reply", "request from the vip", "probe",
        "resolution", "probe other", "garp other", "own", "ipv6"])
def test_claims_on_ipv4(frame, want):
    assert arp.claim(frame, VIP, B) == want


def test_claims_on_ipv6():
    assert arp.claim(KERNEL_NA, VIP6, B) == arp.Claim(A, False)
    assert arp.claim(KERNEL_NA, VIP6, A) is None                       # our own
    assert arp.claim(KERNEL_NA, "2001:db8:a5a::101", B) is None
    assert arp.claim(arp.dad_probe(A, VIP6), VIP6, B) == arp.Claim(A, True)
    assert arp.claim(arp.dad_probe(B, VIP6), VIP6, B) is None
    # A phone whose entry went stale during the failover asks for the VIP from its
    # own address: that is no claim, or B would refuse exactly when it is needed.
    group, group_mac = arp.solicited_node(VIP6)
    ns = arp.icmp6_frame(C, group_mac, "2001:db8:a5a::10", group,
                         bytes([arp.ND_NS, 0, 0, 0, 0, 0, 0, 0]) + VIP6.packed + b"\x01\x01" + C)
    assert arp.parse_nd(ns).lladdr == C
    assert arp.claim(ns, VIP6, B) is None
    # An NA whose option names another MAC than the frame's source: the option says who.
    relayed = arp.unsolicited_na(A, VIP6)
    relayed = relayed[:6] + C + relayed[12:]
    assert arp.claim(relayed, VIP6, B) == arp.Claim(A, False)


# --- probe(): asks twice across the time, stops at the first claim ----------

class FakeLink:
    """arp.Link with scripted arrivals: {number of probes sent: [frames]}."""

    def __init__(self, arrivals=None):
        self.sent, self.arrivals = [], arrivals or {}

    def send(self, frame):
        self.sent.append(frame)

    def receive(self, until):
        yield from self.arrivals.get(len(self.sent), [])


def test_probe_protocol():
    assert (arp.probe_protocol(VIP), arp.probe_protocol(VIP6)) == (arp.ETH_P_ARP, arp.ETH_P_IPV6)


def test_probe_asks_twice_and_hears_nothing():
    link = FakeLink({1: [arp.arp_probe(B, VIP)], 2: [arp.garp_request(C, "198.51.100.10")]})
    assert arp.probe(link, B, VIP, 0.01) is None
    assert link.sent == [arp.arp_probe(B, VIP)] * 2


def test_probe_returns_the_first_claim():
    link = FakeLink({1: [KERNEL_ARP_REPLY]})
    assert arp.probe(link, B, VIP, 0.01) == arp.Claim(A, False)
    assert len(link.sent) == 1


def test_probe_ipv6_uses_dad():
    link = FakeLink({2: [KERNEL_NA]})
    assert arp.probe(link, B, VIP6, 0.01) == arp.Claim(A, False)
    assert link.sent == [arp.dad_probe(B, VIP6)] * 2
