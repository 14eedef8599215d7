"""Asterisk as asha sees it: find it, start it, stop it, ask it whether it works.

Shared by asha-hb (the resource chain) and asha-watchdog. Asterisk is found by
its pid file (ASTPIDFILE) when that names a live process called ASTPROC, else
by ASTPROC in the process list; a zombie is not a running Asterisk."""

import os
import select
import signal
import socket
import subprocess
import time

import psutil


def _alive_named(pid, name):
    try:
        p = psutil.Process(pid)
        return p.name() == name and p.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def find_pid(cfg):
    """Pid of the running Asterisk, or None."""
    try:
        with open(cfg.ASTPIDFILE) as f:
            pid = int(f.read().split()[0])
        if _alive_named(pid, cfg.ASTPROC):
            return pid
    except (OSError, ValueError, IndexError):
        pass
    for p in psutil.process_iter(["name", "status"]):
        if p.info["name"] == cfg.ASTPROC and p.info["status"] != psutil.STATUS_ZOMBIE:
            return p.pid
    return None


def is_running(cfg):
    return find_pid(cfg) is not None


def _sh(command, timeout):
    try:
        p = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"did not return within {timeout:g} s"
    out = (p.stderr.strip() or p.stdout.strip()).splitlines()
    return p.returncode, (out[-1] if out else "")


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
    try:
        os.kill(pid, signal.SIGKILL)
        log.warning("Asterisk (pid %d) killed: %s", pid, why)
    except ProcessLookupError:
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
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


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


def cli_check(cfg, timeout):
    """True when `ASTBIN -rx "core show uptime"` answers within timeout."""
    try:
        p = subprocess.run([cfg.ASTBIN, "-rx", "core show uptime"], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return p.returncode == 0 and "uptime" in p.stdout.lower()


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


def sip_check(cfg, timeout):
    """True when one SIP OPTIONS gets any SIP answer within timeout."""
    host, port = sip_target(cfg)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.connect((host, port))
        local = s.getsockname()
        tag = os.urandom(6).hex()
        lhost = f"[{local[0]}]" if family == socket.AF_INET6 else local[0]
        rhost = f"[{host}]" if family == socket.AF_INET6 else host
        s.send((f"OPTIONS sip:asha@{rhost}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {lhost}:{local[1]};branch=z9hG4bK{tag};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:asha-watchdog@{lhost}>;tag={tag}\r\n"
                f"To: <sip:asha@{rhost}>\r\nCall-ID: {tag}@asha\r\nCSeq: 1 OPTIONS\r\n"
                f"Content-Length: 0\r\n\r\n").encode())
        end = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.001, end - time.monotonic()))
            data = s.recv(65535)
            if data.startswith(b"SIP/2.0 ") and f"{tag}@asha".encode() in data:
                return True
    except OSError:
        return False
    finally:
        s.close()
