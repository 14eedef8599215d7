"""Asterisk as asha sees it: find it, start it, stop it, ask it whether it works.

Shared by asha-hb (the resource chain) and asha-watchdog. Asterisk is found by
its pid file (ASTPIDFILE) when that names a live process called ASTPROC, else
by ASTPROC in the process list; a zombie is not a running Asterisk. Finding it
reads /proc as psutil does, with psutil's meaning of a process's name, without
psutil's import (asha-sync asks at every run). start() and
stop() are idempotent and verified: they return True only once the process is
there, or gone. The checks (cli_check, sip_check) are bounded by their timeout;
CliProbe and SipProbe are the same checks without blocking, for a select loop."""

import os
import select
import signal
import socket
import subprocess
import time

CLI_COMMAND = "core show uptime"
PROC = "/proc"
COMM_MAX = 15       # the kernel keeps this many bytes of a process's name in /proc/PID/stat


def _stat(pid):
    """(name, state, ppid) from /proc/PID/stat, or None when pid is gone or
    unreadable. The name is the kernel's, cut to COMM_MAX bytes: see _name."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as f:
            data = f.read()
        # The name is between the first "(" and the last ")": it may hold either.
        rpar = data.rindex(b")")
        fields = data[rpar + 2:].split()
        return (os.fsdecode(data[data.index(b"(") + 1:rpar]), fields[0].decode(), int(fields[1]))
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid):
    """pid's argv as psutil's Process.cmdline() reads it; None when unreadable."""
    try:
        with open(f"{PROC}/{pid}/cmdline", "rb") as f:
            data = os.fsdecode(f.read())
    except OSError:
        return None
    if not data:
        return []
    # Arguments end in NUL; a process that rewrote its title may use spaces.
    sep = "\x00" if data.endswith("\x00") else " "
    argv = data.removesuffix(sep).split(sep)
    if sep == "\x00" and len(argv) == 1 and " " in argv[0]:
        argv = argv[0].split(" ")
    return argv


def _name(pid, comm):
    """pid's name as psutil's Process.name() gives it: the kernel's, unless that
    is cut at COMM_MAX bytes and argv[0]'s base name starts with it."""
    if len(comm) >= COMM_MAX:
        argv = _cmdline(pid)
        if argv and os.path.basename(argv[0]).startswith(comm):
            return os.path.basename(argv[0])
    return comm


def _alive_named(pid, name):
    st = _stat(pid)
    return st is not None and st[1] != "Z" and _name(pid, st[0]) == name


def pidfile_pid(cfg):
    """The pid written in ASTPIDFILE, or None (no file, or not a pid)."""
    try:
        with open(cfg.ASTPIDFILE) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid > 0 else None


def find_pid(cfg):
    """Pid of the running Asterisk, or None."""
    pid = pidfile_pid(cfg)
    if pid is not None and _alive_named(pid, cfg.ASTPROC):
        return pid
    found = {}
    for entry in os.listdir(PROC):
        if not entry.isdigit():
            continue
        pid = int(entry)
        st = _stat(pid)
        if st is not None and st[1] != "Z" and _name(pid, st[0]) == cfg.ASTPROC \
                and not _remote_console(_cmdline(pid)):
            found[pid] = st[2]
    # A server that forks workers under the same name (kamailio does): its top.
    tops = [pid for pid, ppid in found.items() if ppid not in found]
    return min(tops or found, default=None)


def _remote_console(argv):
    """True for `asterisk -rx ...`, `-r`, `-R`, `-x`: a client of the PBX
    (SARK runs many), not the PBX, though it has the same name."""
    return any(w.startswith("-") and not w.startswith("--") and set(w[1:]) & set("rRx")
               for w in (argv or [])[1:])


def is_running(cfg):
    return find_pid(cfg) is not None


def started_at(pid):
    """Epoch seconds at which pid started, or None when it is gone."""
    import psutil       # here, not at the top: asha-sync only finds Asterisk and need not load it
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _sh(command, timeout):
    """Run command with sh; (status or None on timeout, last line of its output).

    The output goes to a file, not a pipe: a command that starts a daemon
    would otherwise keep us waiting for the daemon's copy of the pipe."""
    import tempfile     # here, not at the top: asha-sync never starts Asterisk
    with tempfile.TemporaryFile() as out:
        try:
            p = subprocess.run(["sh", "-c", command], stdout=out, stderr=out,
                               timeout=timeout, stdin=subprocess.DEVNULL)
            status = p.returncode
        except subprocess.TimeoutExpired:
            status = None
        except OSError as e:
            return 127, e.strerror
        out.seek(0)
        lines = out.read().decode(errors="replace").strip().splitlines()
    if status is None:
        return None, f"did not return within {timeout:g} s"
    return status, (lines[-1].strip() if lines else "")


def start(cfg, log, timeout=10.0):
    """Run ASTSTART and wait for the process; True when Asterisk runs."""
    pid = find_pid(cfg)
    if pid:
        log.info("Asterisk already running (pid %d)", pid)
        return True
    t0 = time.monotonic()
    rc, msg = _sh(cfg.ASTSTART, timeout)
    if rc != 0:
        log.error("ASTSTART (%s) failed: %s", cfg.ASTSTART, f"exit {rc}: {msg}" if rc is not None else msg)
        return False
    end = t0 + timeout
    while time.monotonic() < end:
        pid = find_pid(cfg)
        if pid:
            log.info("Asterisk started (pid %d) in %.0f ms", pid, (time.monotonic() - t0) * 1000)
            return True
        time.sleep(0.01)
    log.error("ASTSTART (%s) returned but no %s process appeared within %g s",
              cfg.ASTSTART, cfg.ASTPROC, timeout)
    return False


def kill(pid, log, why):
    """SIGKILL pid and its descendants (helpers, a server's workers); logged."""
    import psutil       # here, not at the top: see started_at
    try:
        children = psutil.Process(pid).children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        children = []
    try:
        os.kill(pid, signal.SIGKILL)
        log.warning("Asterisk (pid %d) killed: %s", pid, why)
    except ProcessLookupError:
        pass
    for c in children:
        try:
            c.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def wait_gone(pid, timeout):
    """True when pid has exited within timeout (zombies count as gone)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        end = time.monotonic() + timeout
        while True:
            r, _, _ = select.select([fd], [], [], max(0.0, min(0.05, end - time.monotonic())))
            if r or not _alive_named_any(pid):
                return True
            if time.monotonic() >= end:
                return False
    finally:
        os.close(fd)


def _alive_named_any(pid):
    st = _stat(pid)
    return st is not None and st[1] != "Z"


def stop(cfg, log):
    """Run ASTSTOP, wait up to ASTSTOPTIMEOUT for Asterisk to go, then SIGKILL it.
    True once no Asterisk runs."""
    pid = find_pid(cfg)
    if pid is None:
        log.info("Asterisk not running, nothing to stop")
        return True
    t0 = time.monotonic()
    rc, msg = _sh(cfg.ASTSTOP, cfg.ASTSTOPTIMEOUT)
    if rc != 0:
        log.warning("ASTSTOP (%s): %s", cfg.ASTSTOP, f"exit {rc}: {msg}" if rc is not None else msg)
    left = max(0.0, cfg.ASTSTOPTIMEOUT - (time.monotonic() - t0))
    if not wait_gone(pid, left):
        kill(pid, log, f"still there {cfg.ASTSTOPTIMEOUT:g} s after ASTSTOP")
        wait_gone(pid, 2.0)
    other = find_pid(cfg)
    if other:
        kill(other, log, "a second Asterisk process")
        wait_gone(other, 2.0)
    if is_running(cfg):
        log.error("Asterisk still running after ASTSTOP and SIGKILL")
        return False
    log.info("Asterisk stopped in %.0f ms", (time.monotonic() - t0) * 1000)
    return True


# ---------------------------------------------------------------------------
# Is it working? Each probe is one question in flight: fileno() for select(),
# read() when that is readable, result None (no verdict yet), True or False,
# why (a few words for the log when it failed), close() always.

class CliProbe:
    """`ASTBIN -rx "core show uptime"`: True when it prints the uptime."""

    def __init__(self, cfg):
        self.result, self.why, self.out = None, "", b""
        try:
            self.proc = subprocess.Popen([cfg.ASTBIN, "-rx", CLI_COMMAND], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as e:
            self.proc = None
            self.result, self.why = False, f"{cfg.ASTBIN}: {e.strerror}"
            return
        os.set_blocking(self.proc.stdout.fileno(), False)

    def fileno(self):
        return self.proc.stdout.fileno()

    def read(self):
        if self.result is not None:
            return self.result
        try:
            data = os.read(self.fileno(), 65536)
        except BlockingIOError:
            return None
        if data:
            self.out += data
            return None
        # End of output: the command is finishing; its words decide.
        try:
            status = self.proc.wait(0.2)
        except subprocess.TimeoutExpired:
            status = None
        text = self.out.decode(errors="replace").strip()
        if status in (0, None) and "uptime" in text.lower():
            self.result = True
        else:
            self.result = False
            line = text.splitlines()[-1] if text else "no output"
            self.why = f"exit {status}: {line}" if status else line
        return self.result

    def close(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc = None


def sip_target(cfg):
    """(host, port) the SIP check asks: WDSIPURI, else the cluster IP on 5060."""
    uri = cfg.WDSIPURI
    if not uri:
        return str(cfg.HACLUSTERIP.ip), 5060
    rest = uri.split(":", 1)[1] if uri.startswith(("sip:", "sips:")) else uri
    rest = rest.split(";", 1)[0].rsplit("@", 1)[-1]
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]")
        return host, int(port.lstrip(":") or 5060)
    host, _, port = rest.partition(":")
    return host, int(port or 5060)


class SipProbe:
    """One SIP OPTIONS over a connected UDP socket: True on any SIP response
    carrying our Call-ID (a 404 or 503 still proves the SIP stack works), False
    when the port is closed (ICMP unreachable) or the network refuses."""

    def __init__(self, cfg):
        self.result, self.why = None, ""
        host, port = sip_target(cfg)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        tag = os.urandom(8).hex()
        self.callid = f"{tag}@asha-watchdog".encode()
        try:
            self.sock.connect((host, port))
            local = self.sock.getsockname()
            lhost = f"[{local[0]}]" if family == socket.AF_INET6 else local[0]
            rhost = f"[{host}]" if family == socket.AF_INET6 else host
            self.sock.send((
                f"OPTIONS sip:asha@{rhost}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {lhost}:{local[1]};branch=z9hG4bK{tag};rport\r\n"
                f"Max-Forwards: 70\r\n"
                f"From: <sip:asha-watchdog@{lhost}>;tag={tag[:8]}\r\n"
                f"To: <sip:asha@{rhost}>\r\n"
                f"Call-ID: {self.callid.decode()}\r\n"
                f"CSeq: 1 OPTIONS\r\n"
                f"User-Agent: asha-watchdog\r\n"
                f"Content-Length: 0\r\n\r\n").encode())
        except OSError as e:
            self.result, self.why = False, f"{host} port {port}: {e.strerror}"
        self.target = f"{host} port {port}"

    def fileno(self):
        return self.sock.fileno()

    def read(self):
        for _ in range(16):                # bounded: a flood cannot hold the loop
            if self.result is not None:
                break
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                break
            except OSError as e:
                self.result, self.why = False, f"{self.target}: {e.strerror}"
                break
            if data.startswith(b"SIP/2.0 ") and self.callid in data:
                self.result = True
        return self.result

    def close(self):
        self.sock.close()


def wait_probe(probe, timeout):
    """Wait for a probe's verdict; False (and why) when none comes within timeout."""
    try:
        end = time.monotonic() + timeout
        while probe.result is None:
            left = end - time.monotonic()
            if left <= 0:
                probe.result, probe.why = False, f"no answer within {timeout:g} s"
                break
            r, _, _ = select.select([probe], [], [], left)
            if r:
                probe.read()
        return probe.result
    finally:
        probe.close()


def cli_check(cfg, timeout):
    """True when `ASTBIN -rx "core show uptime"` answers within timeout."""
    return wait_probe(CliProbe(cfg), timeout)


def sip_check(cfg, timeout):
    """True when one SIP OPTIONS gets any SIP answer within timeout."""
    return wait_probe(SipProbe(cfg), timeout)
