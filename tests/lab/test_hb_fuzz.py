"""Captured, replayed, altered, truncated and random messages on both paths of a
running asha-hb: none is accepted, the daemon keeps running and keeps its role."""

import json
import os
import sys

import pytest

from asha_lab import asha, cluster
from asha_lab.cluster import hb_state, logs, steady_pair, wait_for

pytestmark = pytest.mark.lab

# Runs in A's network namespace: capture what A's asha-hb sends to B, then send
# it again (and worse) from A's own address, so only the content can give it away.
ATTACK = r"""
import os, random, socket, struct, sys, time
sys.path.insert(0, sys.argv[1])
from asha.hb.paths import cobs_encode
peer, port, serial = sys.argv[2], int(sys.argv[3]), sys.argv[4]
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))   # ETH_P_ALL: sees outgoing
cap.bind(("eth0", 0))
cap.settimeout(2)
got, end = [], time.time() + 5
while len(got) < 20 and time.time() < end:
    frame, addr = cap.recvfrom(2048)
    if addr[2] != socket.PACKET_OUTGOING or frame[12:14] != b"\x08\x00":
        continue
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] == 17 and socket.inet_ntoa(ip[16:20]) == peer and struct.unpack("!H", ip[ihl + 2:ihl + 4])[0] == port:
        got.append(ip[ihl + 8:])
assert len(got) == 20, len(got)
rnd = random.Random(7)
bad = list(got)                                            # replays
for m in got:
    b = bytearray(m); i = rnd.randrange(len(b)); b[i] ^= 1 << rnd.randrange(8); bad.append(bytes(b))
    bad.append(m[:rnd.randrange(1, len(m))])                # truncated
    bad.append(m[:-1] + bytes([m[-1] ^ 0x80]))              # MAC altered
for _ in range(300):
    bad.append(os.urandom(rnd.randrange(1, 600)))           # random bytes
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for m in bad:
    s.sendto(m, (peer, port)); time.sleep(0.001)
fd = os.open(serial, os.O_WRONLY | os.O_NOCTTY)
for m in got:                                              # replays on the serial line
    os.write(fd, b"\0" + cobs_encode(m) + b"\0")
for _ in range(200):                                       # noise, and frames of noise
    os.write(fd, os.urandom(rnd.randrange(1, 300)))
    os.write(fd, b"\0" + cobs_encode(os.urandom(rnd.randrange(1, 200))) + b"\0")
    time.sleep(0.001)
os.close(fd)
print(len(bad))
"""


def status(node):
    return json.loads(node.run(asha("asha-hb", "status", "--json")).stdout)


def test_nothing_forged_is_accepted_and_the_daemon_keeps_running(lab):
    steady_pair(lab)
    before = status(lab.b)
    lib = os.path.join(cluster.REPO, "lib")
    sent = int(lab.a.run([sys.executable, "-c", ATTACK, lib, lab.b.addr, "694", lab.serial_a],
                         timeout=60).stdout)
    assert sent == 20 * 4 + 300
    after = status(lab.b)
    rejected = sum(after["messages"].get(k, 0) - before["messages"].get(k, 0)
                   for k in after["messages"] if k != "accepted")
    # every UDP datagram and every whole serial frame above was refused; serial
    # noise that never forms a frame is dropped by the framing before any check
    assert rejected >= sent, (before, after)
    assert after["messages"].get("replay", 0) - before["messages"].get("replay", 0) >= 40
    assert after["pid"] == before["pid"]
    assert (hb_state(lab.a)["ROLE"], hb_state(lab.b)["ROLE"]) == ("active", "standby"), logs(lab)
    wait_for(lambda: status(lab.b)["messages"]["accepted"] > after["messages"]["accepted"], 2)
    assert all(p["heard_ago"] < 1 for p in status(lab.b)["paths"]), status(lab.b)
