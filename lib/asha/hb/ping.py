"""Ping nodes (HBPINGNODES): the split-brain guard.

A node that cannot reach any ping node does not take the resources and does
not keep them: when the peer falls silent, only a node that still reaches the
LAN may serve the phones. ICMP echo on raw sockets, driven by the daemon's loop."""

import ipaddress
import os
import socket
import struct

from ..arp import checksum


class Pinger:
    INTERVAL = 0.5          # seconds between echo rounds
    WINDOW = 2.0            # a reply this recent means "reachable"

    def __init__(self, hosts, log):
        self.log = log
        self.targets = []
        for h in hosts:
            try:
                ip = ipaddress.ip_address(h)
            except ValueError:
                try:
                    ip = ipaddress.ip_address(socket.getaddrinfo(h, None)[0][4][0])
                except (socket.gaierror, IndexError):
                    log.error("ping node %s: cannot resolve it; it will never answer", h)
                    continue
            self.targets.append(ip)
        self.ident = os.getpid() & 0xFFFF
        self.seq = 0
        self.socks = {}
        for version, fam, proto in ((4, socket.AF_INET, socket.IPPROTO_ICMP),
                                    (6, socket.AF_INET6, socket.IPPROTO_ICMPV6)):
            if any(t.version == version for t in self.targets):
                s = socket.socket(fam, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, proto)
                self.socks[version] = s
        self.last_reply = None          # monotonic time of the newest reply from any ping node
        self.next_round = 0.0
        self.was_ok = None

    def filenos(self):
        return [s.fileno() for s in self.socks.values()]

    def due(self):
        return self.next_round

    def send_round(self, now):
        self.next_round = now + self.INTERVAL
        self.seq = (self.seq + 1) & 0xFFFF
        for ip in self.targets:
            s = self.socks[ip.version]
            kind = 8 if ip.version == 4 else 128
            payload = struct.pack("!d", now)
            head = struct.pack("!BBHHH", kind, 0, 0, self.ident, self.seq)
            if ip.version == 4:
                head = struct.pack("!BBHHH", kind, 0, checksum(head + payload), self.ident, self.seq)
            try:
                s.sendto(head + payload, (str(ip), 0))
            except OSError:
                pass            # unreachable right now: that is what we measure

    def receive(self, now):
        for version, s in self.socks.items():
            while True:
                try:
                    data, src = s.recvfrom(2048)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                if version == 4:
                    data = data[(data[0] & 0x0F) * 4:]
                if len(data) < 8:
                    continue
                kind, _, _, ident, _ = struct.unpack("!BBHHH", data[:8])
                if kind == (0 if version == 4 else 129) and ident == self.ident and \
                        ipaddress.ip_address(src[0].split("%")[0]) in self.targets:
                    self.last_reply = now

    def ok(self, now, since=None):
        """True when a ping node answered within WINDOW (and after since, if given)."""
        if self.last_reply is None:
            return False
        if since is not None and self.last_reply < since:
            return False
        return now - self.last_reply <= self.WINDOW

    def close(self):
        for s in self.socks.values():
            s.close()

