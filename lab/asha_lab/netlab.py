"""The two-node lab: PBX nodes A and B and a client C as Linux network
namespaces on a bridge, each node with its own hostname and private disk.

Tests, `make demo` and bench/ all build on this. Nothing is made in the host's
own network namespace: the bridge lives in a switch namespace of the lab's, and
every namespace is named with the lab's prefix, which carries the owner's pid so
that a later run can sweep what a killed run left without touching a live one."""

import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOLDER = os.path.join(HERE, "holder.py")
RELAY = os.path.join(HERE, "relay.py")
PREFIX_BASE = "asl"
_PREFIX_RE = re.compile(rf"^({PREFIX_BASE}-(\d+)-[0-9a-f]{{4}})-")

SUBNET = "198.51.100.0/24"          # TEST-NET-2: documentation addresses, never routed
SUBNET6 = "2001:db8:a5a::/64"
CLUSTER_IP = "198.51.100.100"
CLUSTER_IP6 = "2001:db8:a5a::100"
GATEWAY = "198.51.100.254"
GATEWAY6 = "2001:db8:a5a::fe"

# name, short id, IPv4, IPv6 host part, MAC
NODES = (
    ("asha-a", "a", "198.51.100.1", "2001:db8:a5a::1", "02:00:00:00:00:0a"),
    ("asha-b", "b", "198.51.100.2", "2001:db8:a5a::2", "02:00:00:00:00:0b"),
    ("asha-c", "c", "198.51.100.10", "2001:db8:a5a::10", "02:00:00:00:00:0c"),
)
# What a node keeps on its own "disk" (overlays that survive power_off) and what it loses.
DISK = ("/etc", "/var", "/opt", "/root")


class LabError(Exception):
    pass


def _run(cmd, check=True, timeout=30, input=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
    return p


def _ns_inode(ns):
    try:
        return os.stat(f"/run/netns/{ns}").st_ino
    except FileNotFoundError:
        return None


def _pids_in_netns(inode):
    out = []
    if inode is None:
        return out
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            link = os.readlink(f"/proc/{d}/ns/net")
        except OSError:
            continue
        if link == f"net:[{inode}]":
            out.append(int(d))
    return out


def _kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_gone(pids, timeout=5.0):
    end = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < end:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            # reap our own children so they do not linger as zombies
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.01)


class Node:
    """One host of the lab."""

    def __init__(self, lab, name, short, addr, addr6, mac):
        self.lab = lab
        self.name, self.short = name, short
        self.addr, self.addr6, self.mac = addr, addr6, mac
        self.ifname = "eth0"
        self.port = f"{short}0"            # its port on the switch
        self.ns = f"{lab.prefix}-{short}"
        self.dir = os.path.join(lab.dir, short)
        self.holder = None
        self.init_pid = None
        self._procs = []
        self.powered = False

    def __repr__(self):
        return f"<Node {self.name} {self.addr}>"

    # -- processes --------------------------------------------------------
    def _enter(self):
        if not self.powered or self.holder is None:
            raise LabError(f"{self.name} is powered off")
        return ["nsenter", "-t", str(self.init_pid), "-n", "-u", "-m", "-p", "--"]

    def _argv(self, cmd):
        return self._enter() + (["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd))

    def run(self, cmd, check=True, timeout=30, env=None, input=None, capture=True):
        p = subprocess.run(self._argv(cmd), capture_output=capture, text=True, timeout=timeout,
                           env=env, input=input)
        if check and p.returncode != 0:
            raise LabError(f"{self.name}: {cmd!r} exited {p.returncode}\n"
                           f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def popen(self, cmd, **kw):
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(self._argv(cmd), **kw)
        self._procs.append(p)
        return p

    def pids(self):
        return _pids_in_netns(_ns_inode(self.ns))

    # -- files as the node sees them ---------------------------------------
    def _host_path(self, path):
        """The host's name for path inside the node: /proc/PID/root, with the
        node's symlinks (such as /var/run -> /run) resolved inside the node."""
        if not os.path.isabs(path):
            raise ValueError(f"{path}: give an absolute path")
        root = f"/proc/{self.init_pid}/root"
        todo = [p for p in path.split("/") if p]
        done = []
        hops = 0
        while todo:
            part = todo.pop(0)
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            here = root + "/" + "/".join(done + [part])
            if todo and os.path.islink(here):      # the last part may itself be a link: leave it
                hops += 1
                if hops > 40:
                    raise OSError(f"{path}: too many levels of symbolic links in {self.name}")
                target = os.readlink(here)
                if target.startswith("/"):
                    done = []
                todo = [p for p in target.split("/") if p] + todo
                continue
            done.append(part)
        return root + "/" + "/".join(done)

    def read_file(self, path):
        self._enter()
        with open(self._host_path(path)) as f:
            return f.read()

    def write_file(self, path, text, mode=0o644):
        self._enter()
        host = self._host_path(path)
        os.makedirs(os.path.dirname(host), exist_ok=True)
        tmp = f"{host}.lab-tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, host)

    def exists(self, path):
        self._enter()
        return os.path.lexists(self._host_path(path))

    # -- the link ------------------------------------------------------------
    def cut_link(self):
        self.lab.sw(["ip", "link", "set", self.port, "down"])

    def restore_link(self):
        self.lab.sw(["ip", "link", "set", self.port, "up"])

    def set_loss(self, percent):
        """Drop percent % of the frames on this node's link, both ways (0 clears)."""
        table = f"loss_{self.short}"
        self.lab.sw(["nft", "delete", "table", "bridge", table], check=False)
        if percent <= 0:
            return
        if not 0 < percent <= 100:
            raise ValueError("percent must be from 0 to 100")
        pct, port = int(percent), self.port
        rules = f"""table bridge {table} {{
  chain lab_forward {{
    type filter hook forward priority 0;
    iifname "{port}" numgen random mod 100 < {pct} drop
    oifname "{port}" numgen random mod 100 < {pct} drop
  }}
  chain lab_input {{
    type filter hook input priority 0;
    iifname "{port}" numgen random mod 100 < {pct} drop
  }}
  chain lab_output {{
    type filter hook output priority 0;
    oifname "{port}" numgen random mod 100 < {pct} drop
  }}
}}
"""
        self.lab.sw(["nft", "-f", "-"], input=rules)

    def impair(self, loss=0, delay_ms=0, jitter_ms=0, duration=600, max_frames=2_000_000):
        """Loss, delay and jitter on this node's link through a frame relay in
        the switch, which gives the link back to the bridge by itself after
        duration seconds (or max_frames frames)."""
        self.clear_impair()
        relay_port = f"{self.short}r"
        inner = f"{self.short}q"
        self.lab.sw(["ip", "link", "add", relay_port, "type", "veth", "peer", "name", inner])
        self.lab.sw(["ip", "link", "set", relay_port, "master", "br0", "up"])
        self.lab.sw(["ip", "link", "set", inner, "up", "promisc", "on"])
        self.lab.sw(["ip", "link", "set", self.port, "nomaster", "promisc", "on"])
        self.lab.sw(["ip", "link", "set", self.port, "up"])
        self._relay = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.sw_ns, sys.executable, RELAY,
             self.port, inner, str(loss), str(delay_ms), str(jitter_ms),
             str(duration), str(max_frames)],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lab._relays.append(self._relay)
        line = self._relay.stderr.readline()      # the relay says "ready" once its sockets are bound
        if b"ready" not in line:
            raise LabError(f"frame relay did not start: {line!r}")

    def clear_impair(self):
        relay = getattr(self, "_relay", None)
        if relay is not None:
            relay.terminate()
            try:
                relay.wait(5)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait()
            self._relay = None
        self.lab.sw(["ip", "link", "del", f"{self.short}r"], check=False)
        self.lab.sw(["ip", "link", "set", self.port, "master", "br0", "promisc", "off"], check=False)

    # -- power ---------------------------------------------------------------
    def power_on(self):
        if self.powered:
            return
        for d in DISK:
            os.makedirs(os.path.join(self.dir, "up" + d), exist_ok=True)
            os.makedirs(os.path.join(self.dir, "work" + d), exist_ok=True)
        ready = os.path.join(self.lab.dir, f"{self.short}.ready")
        if os.path.exists(ready):
            os.unlink(ready)
        self.holder = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "--uts", "--mount", "--pid", "--fork",
             "--mount-proc", "--propagation", "private", "--",
             sys.executable, HOLDER, self.name, self.dir, ready, *DISK],
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        end = time.monotonic() + 10
        while not os.path.exists(ready):
            if self.holder.poll() is not None or time.monotonic() > end:
                err = self.holder.stderr.read().decode(errors="replace") if self.holder.poll() is not None else ""
                raise LabError(f"{self.name}: the node did not boot: {err.strip()}")
            time.sleep(0.01)
        # unshare --fork: the node's init (pid 1 inside) is unshare's child
        with open(f"/proc/{self.holder.pid}/task/{self.holder.pid}/children") as f:
            self.init_pid = int(f.read().split()[0])
        self.powered = True
        self.restore_link()

    def power_off(self):
        """Pull the power: every process of the node dies and its link goes down at once."""
        inode = _ns_inode(self.ns)
        pids = _pids_in_netns(inode)
        self.lab.sw(["ip", "link", "set", self.port, "down"])
        _kill_all(pids)
        _wait_gone(pids)
        for p in self._procs:
            try:
                p.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        if self.holder is not None:
            try:
                self.holder.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self._procs = []
        self.holder = None
        self.powered = False


class Lab:
    """with Lab() as lab: ... — see the module docstring."""

    subnet = SUBNET
    cluster_ip = CLUSTER_IP
    cluster_ip6 = CLUSTER_IP6
    gateway = GATEWAY
    gateway6 = GATEWAY6

    def __init__(self, prefix=None, serial=True):
        self.prefix = prefix or f"{PREFIX_BASE}-{os.getpid()}-{secrets.token_hex(2)}"
        self.sw_ns = f"{self.prefix}-sw"
        self.dir = None
        self.with_serial = serial
        self.nodes = []
        self._socat = None
        self._relays = []
        self._started = False

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def sw(self, cmd, check=True, input=None):
        return _run(["ip", "netns", "exec", self.sw_ns] + cmd, check=check, input=input)

    def start(self):
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces)")
        sweep_stale()
        self._started = True
        self.dir = tempfile.mkdtemp(prefix=self.prefix + "-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        _run(["ip", "netns", "add", self.sw_ns])
        self.sw(["ip", "link", "set", "lo", "up"])
        self.sw(["ip", "link", "add", "br0", "type", "bridge", "stp_state", "0",
                 "forward_delay", "0"])
        self.sw(["sysctl", "-qw", "net.ipv6.conf.br0.accept_dad=0"])
        self.sw(["ip", "addr", "add", f"{GATEWAY}/24", "dev", "br0"])
        self.sw(["ip", "addr", "add", f"{GATEWAY6}/64", "dev", "br0", "nodad"])
        self.sw(["ip", "link", "set", "br0", "up"])
        for name, short, addr, addr6, mac in NODES:
            node = Node(self, name, short, addr, addr6, mac)
            self.nodes.append(node)
            os.makedirs(node.dir)
            _run(["ip", "netns", "add", node.ns])
            _run(["ip", "-n", node.ns, "link", "add", "eth0", "address", mac, "type", "veth",
                  "peer", "name", node.port, "netns", self.sw_ns])
            self.sw(["ip", "link", "set", node.port, "master", "br0", "up"])
            n = ["ip", "-n", node.ns]
            _run(n + ["link", "set", "lo", "up"])
            _run(n + ["addr", "add", f"{addr}/24", "dev", "eth0"])
            _run(n + ["addr", "add", f"{addr6}/64", "dev", "eth0", "nodad"])
            _run(n + ["link", "set", "eth0", "up"])
            node.power_on()
        self.a, self.b, self.c = self.nodes
        if self.with_serial:
            self.serial_a = os.path.join(self.dir, "ttyA")
            self.serial_b = os.path.join(self.dir, "ttyB")
            self.plug_serial()
        return self

    # -- the serial cable -------------------------------------------------------
    def plug_serial(self):
        if self._socat is not None and self._socat.poll() is None:
            return
        for p in (self.serial_a, self.serial_b):
            if os.path.lexists(p):
                os.unlink(p)
        self._socat = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.serial_a}", f"pty,raw,echo=0,link={self.serial_b}"],
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        end = time.monotonic() + 5
        while not (os.path.exists(self.serial_a) and os.path.exists(self.serial_b)):
            if self._socat.poll() is not None or time.monotonic() > end:
                raise LabError("socat did not make the serial cable")
            time.sleep(0.01)
        for p in (self.serial_a, self.serial_b):
            os.chmod(os.path.realpath(p), 0o660)

    def unplug_serial(self):
        if self._socat is None:
            return
        self._socat.kill()
        self._socat.wait()
        self._socat = None

    # -- teardown ---------------------------------------------------------------
    def close(self):
        if not self._started:
            return
        self._started = False
        for relay in self._relays:
            if relay.poll() is None:
                relay.kill()
            relay.wait()
        self._relays = []
        if getattr(self, "serial_a", None):
            self.unplug_serial()
        for node in self.nodes:
            if node.powered:
                node.power_off()
        _remove_lab(self.prefix)
        if self.dir and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)


def _lab_namespaces():
    p = _run(["ip", "netns", "list"], check=False)
    out = {}
    for line in p.stdout.splitlines():
        ns = line.split()[0] if line.strip() else ""
        m = _PREFIX_RE.match(ns)
        if m:
            out.setdefault(m.group(1), []).append(ns)
    return out


def _remove_lab(prefix):
    namespaces = _lab_namespaces().get(prefix, [])
    pids = []
    for ns in namespaces:
        pids += _pids_in_netns(_ns_inode(ns))
    _kill_all(pids)
    _wait_gone(pids)
    for ns in namespaces:
        _run(["ip", "netns", "del", ns], check=False)
    for d in os.listdir("/tmp"):
        if d.startswith(prefix + "-"):
            shutil.rmtree(os.path.join("/tmp", d), ignore_errors=True)


def sweep_stale():
    """Remove the labs whose owner process is gone; return their prefixes."""
    swept = []
    for prefix in _lab_namespaces():
        owner = int(prefix.split("-")[1])
        try:
            os.kill(owner, 0)
            continue
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        _remove_lab(prefix)
        swept.append(prefix)
    return swept


def lab_namespaces():
    """Every namespace of any lab on this machine (for tests and the sweeper)."""
    return [ns for group in _lab_namespaces().values() for ns in group]


def addr_in_subnet(addr):
    return ipaddress.ip_address(addr) in ipaddress.ip_network(SUBNET)
