"""The paths heartbeats travel: UDP to the peer, and serial lines.

Each path sends whole messages and hands back whole messages; it never raises
on a network or line fault (it logs the change once), since the daemon must
go on beating on the other paths. Serial frames are COBS-encoded between zero
bytes, so noise and a frame cut by a pulled cable cost only that frame."""

import errno
import ipaddress
import os
import select
import socket
import time

from .. import exits

MAX_FRAME = 1024
CONFIRM_FOR = 1.0       # seconds a heartbeat from the peer vouches for its link-layer address
_IP_FREEBIND = 15                   # <linux/in.h>; not in Python's socket module
_IPV6_FREEBIND = 78                 # <linux/in6.h>, Linux 4.15 and later


class UDPPath:
    def __init__(self, local_addr, peer_addr, port, log):
        self.log = log
        self.peer = str(ipaddress.ip_address(peer_addr))
        self.port = port
        self.name = f"udp:{self.peer}"
        family = socket.AF_INET6 if ":" in self.peer else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xB8)     # EF: beats first
        # Bind even before this node's heartbeat address is up (a slow link or
        # DHCP at boot): sends fail and are logged until it is, then it works.
        # Without this asha-hb would exit at start and init would respawn it.
        try:
            if family == socket.AF_INET:
                self.sock.setsockopt(socket.IPPROTO_IP, _IP_FREEBIND, 1)
            else:
                self.sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_FREEBIND, 1)
        except OSError:
            pass                             # an old kernel: bind as before
        bind_addr = local_addr or ("::" if family == socket.AF_INET6 else "0.0.0.0")
        try:
            self.sock.bind((bind_addr, port))
        except OSError as e:
            self.sock.close()
            raise exits.AshaError(f"{self.name}: cannot listen on {bind_addr} port {port}: "
                                  f"{e.strerror}") from None
        self.foreign = 0
        self.heard_at = -CONFIRM_FOR        # monotonic time of the last authentic beat (the daemon sets it)
        self._error = None
        self._dest = (self.peer, port)
        self._poll = select.poll()
        self._poll.register(self.sock, select.POLLIN)

    def fileno(self):
        return self.sock.fileno()

    def send(self, data):
        # While authentic beats come back from the peer, tell the kernel that its
        # neighbour entry is good (MSG_CONFIRM). Without it the entry goes stale
        # every half minute and is probed again; on a lossy LAN the probes can
        # all be lost, and the beats wait unsent for a new ARP round: a second
        # of silence that looks like a dead peer.
        flags = socket.MSG_CONFIRM if time.monotonic() - self.heard_at < CONFIRM_FOR else 0
        try:
            self.sock.sendto(data, flags, self._dest)
        except OSError as e:
            if self._error != e.errno:
                self._error = e.errno
                self.log.warning("%s: cannot send: %s", self.name, e.strerror)
            return
        if self._error is not None:
            self._error = None
            self.log.info("%s: sending again", self.name)

    def recv(self):
        out = []
        # Ask before each read: an empty socket is the usual end, and finding it
        # by poll costs less than the exception of a read that would block.
        for _ in range(64):
            if not self._poll.poll(0):
                break
            try:
                data, src = self.sock.recvfrom(MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:                  # ICMP errors surface here: nothing to read
                break
            if src[0].removeprefix("::ffff:") != self.peer:
                self.foreign += 1
                continue
            out.append(data)
        return out

    def close(self):
        self.sock.close()


def cobs_encode(data):
    """COBS: data with every zero byte replaced, so that zero can end a frame."""
    out = bytearray()
    for part in bytes(data).split(b"\0"):
        while len(part) >= 254:             # a full block carries no implied zero
            out.append(255)
            out += part[:254]
            part = part[254:]
        out.append(len(part) + 1)
        out += part
    return bytes(out)


def cobs_decode(data):
    """Decoded bytes, or None when data is not valid COBS."""
    if 0 in data:                       # as a code byte or within a block: invalid either way
        return None
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        end = i + data[i]
        if end > n:
            return None
        out += data[i + 1:end]
        if data[i] < 255 and end < n:
            out.append(0)
        i = end
    return bytes(out)


class SerialPath:
    def __init__(self, device, baud, log):
        self.device, self.baud, self.log = device, baud, log
        self.name = f"serial:{device}"
        self.port = None
        self.buf = bytearray()
        self.dropped = 0                    # garbage and cut frames
        self._next_open = 0.0
        self._down_logged = False
        self.poll_reopen(time.monotonic())

    def _open(self):
        import serial                       # pyserial
        port = serial.Serial()
        port.port, port.baudrate, port.timeout, port.write_timeout = self.device, self.baud, 0, 0
        port.exclusive = True
        port.open()
        self.port = port
        self.buf.clear()
        self._poll = select.poll()
        self._poll.register(port.fileno(), select.POLLIN)

    def poll_reopen(self, now):
        if self.port is not None or now < self._next_open:
            return
        self._next_open = now + 1.0
        try:
            self._open()
        except Exception as e:              # pyserial raises SerialException/OSError/ValueError
            if not self._down_logged:
                self._down_logged = True
                self.log.warning("%s: cannot open: %s", self.name, _why(e))
            return
        if self._down_logged:
            self.log.info("%s: open again", self.name)
        self._down_logged = False

    def _fail(self, e):
        if not self._down_logged:
            self._down_logged = True
            self.log.warning("%s: line lost (%s); reopening every second", self.name, _why(e))
        self.close()

    def fileno(self):
        return self.port.fileno() if self.port is not None else None

    def send(self, data):
        if self.port is None:
            return
        try:
            os.write(self.port.fileno(), b"\0" + cobs_encode(data) + b"\0")
        except BlockingIOError:
            pass                             # the line is full: this beat is lost, the next one goes
        except OSError as e:
            self._fail(e)

    def recv(self):
        if self.port is None:
            return []
        fd = self.port.fileno()
        try:
            # A tty set to VMIN=0 reads b"" when it is merely empty: only an end
            # that polls readable and then reads nothing has hung up.
            if not self._poll.poll(0):
                return []
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return []
        except OSError as e:
            self._fail(e)
            return []
        if not chunk:                        # hangup: the other end went away
            self._fail(OSError(errno.EIO, "hangup"))
            return []
        self.buf += chunk
        out = []
        while True:
            i = self.buf.find(0)
            if i < 0:
                if len(self.buf) > MAX_FRAME * 2:
                    self.dropped += 1
                    self.buf.clear()
                break
            frame = bytes(self.buf[:i])
            del self.buf[:i + 1]
            if not frame:
                continue
            decoded = cobs_decode(frame) if len(frame) <= MAX_FRAME + 8 else None
            if decoded is None:
                self.dropped += 1
                continue
            out.append(decoded)
        return out

    def close(self):
        if self.port is not None:
            try:
                self.port.close()
            except Exception:
                pass
            self.port = None
            self._next_open = time.monotonic() + 1.0


def _why(e):
    # pyserial wraps an OSError as SerialException(errno, "could not open port
    # DEV: [Errno 2] ..."): the errno alone says it without repeating the device.
    code = getattr(e, "errno", None)
    if isinstance(code, int) and code > 0:
        return os.strerror(code)
    return getattr(e, "strerror", None) or str(e) or type(e).__name__
