"""The two-node lab: PBX nodes A and B and a client C as Linux namespaces on a
bridge, each node with its own hostname, processes, disk and /run.

Tests, `make demo` and bench/ all build on this. Nothing is made in the host's
own network namespace: the bridge lives in a switch namespace of the lab's, and
every namespace is named with the lab's prefix, which carries the owner's pid so
that a later run can sweep what a killed run left without touching a live one.

A node is a network namespace, plus a holder process started there with
`unshare --uts --mount --pid --fork --mount-proc` that becomes the node's init
(pid 1, it reaps orphans), sets the hostname and mounts the node's filesystems:
an overlay over each of /etc, /var, /opt and /root whose upper layer lives in
lab.dir/<node>/ (the node's disk: it survives power_off) and a fresh tmpfs on
/run (lost at power_off). /tmp, /work and the rest are the host's. Commands run
in a node with `nsenter -t INIT -n -u -m` after the lab has put the spawning
thread's future children into the node's pid namespace, so the Popen's pid is
the command itself: signals, timeouts and kill() reach the real process.

The serial cable is a socat pty pair run in the switch namespace with links at
lab.serial_a and lab.serial_b. unplug_serial() kills socat and removes both
links. An end still open then polls readable and reads EOF (pyserial:
SerialException "returned no data"), writes fail with EIO, and it stays dead
after plug_serial(); opening the path fails with ENOENT until plug_serial()
makes a new pair behind the same two paths. A daemon must reopen the path.

Limits: pids inside a node (pid files, `ps` there) are the node's own, while
Node.pids() and Popen.pid are the host's. impair() relays frames through a
Python process (some thousand frames a second; jitter reorders, as netem's
does). The switch floods multicast and learns MACs like a dumb switch. A lab
whose owner died without close() (SIGKILL, SIGTERM) stays until the next Lab()
or `python -m asha_lab sweep` removes it.
"""

import atexit
import ctypes
import glob
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOLDER = os.path.join(HERE, "holder.py")
RELAY = os.path.join(HERE, "relay.py")
PREFIX_BASE = "asl"
_PREFIX_RE = re.compile(rf"^({PREFIX_BASE}-(\d+)-[0-9a-f]{{4}})-")
OWNER_FILE = "owner"                 # in lab.dir: "PID STARTTIME" of the process that owns the lab

SUBNET = "198.51.100.0/24"          # TEST-NET-2: documentation addresses, never routed
SUBNET6 = "2001:db8:a5a::/64"
CLUSTER_IP = "198.51.100.100"
CLUSTER_IP6 = "2001:db8:a5a::100"
GATEWAY = "198.51.100.254"
GATEWAY6 = "2001:db8:a5a::fe"

# name, short id, IPv4, IPv6, MAC
NODES = (
    ("asha-a", "a", "198.51.100.1", "2001:db8:a5a::1", "02:00:00:00:00:0a"),
    ("asha-b", "b", "198.51.100.2", "2001:db8:a5a::2", "02:00:00:00:00:0b"),
    ("asha-c", "c", "198.51.100.10", "2001:db8:a5a::10", "02:00:00:00:00:0c"),
)
# What a node keeps on its own "disk" (overlays that survive power_off) and what it loses.
DISK = ("/etc", "/var", "/opt", "/root")

CLONE_NEWPID = 0x20000000
_libc = ctypes.CDLL(None, use_errno=True)
_spawn_lock = threading.Lock()
_own_pidns = None


class LabError(Exception):
    pass


def _run(cmd, check=True, timeout=30, input=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
    return p


def _setns(fd, kind):
    if _libc.setns(fd, kind) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


def _ns_inode(ns):
    try:
        return os.stat(f"/run/netns/{ns}").st_ino
    except FileNotFoundError:
        return None


def _pids_in_netns(inode):
    """Host pids of the live processes whose network namespace is inode (zombies have none)."""
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


def _start_time(pid):
    """The kernel's start time of pid (clock ticks since boot), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _gone(pid):
    """True when pid has exited: no such process, or a zombie nobody reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_gone(pids, timeout=5.0, procs=()):
    """Wait until every pid has exited. Zombies count as gone; the Popen objects
    procs are polled so that our own children are reaped with their status (a
    pid namespace's init waits for the zombies in its namespace to be reaped)."""
    end = time.monotonic() + timeout
    left = set(pids)
    while left:
        for p in procs:
            p.poll()
        left = {pid for pid in left if not _gone(pid)}
        if not left or time.monotonic() > end:
            return
        time.sleep(0.002)


class Node:
    """One host of the lab (see the module docstring)."""

    def __init__(self, lab, name, short, addr, addr6, mac):
        self.lab = lab
        self.name, self.short = name, short
        self.addr, self.addr6, self.mac = addr, addr6, mac
        self.ifname = "eth0"
        self.port = f"{short}0"            # its port on the switch
        self.ns = f"{lab.prefix}-{short}"
        self.dir = os.path.join(lab.dir, short)
        self.holder = None                 # the unshare process (host side)
        self.init_pid = None               # host pid of the node's init (pid 1 inside)
        self._procs = []
        self._relay = None
        self.powered = False

    def __repr__(self):
        return f"<Node {self.name} {self.addr}>"

    # -- processes --------------------------------------------------------
    def _argv(self, cmd, cwd=None):
        if not self.powered or self.init_pid is None:
            raise LabError(f"{self.name} is powered off")
        enter = ["nsenter", "-t", str(self.init_pid), "-n", "-u", "-m"]
        if cwd is not None:
            enter.append(f"--wd={cwd}")
        return enter + ["--"] + (["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd))

    def _spawn(self, cmd, cwd=None, **kw):
        """Popen cmd in the node: its pid namespace by setns on this thread's
        future children, the rest by nsenter, which then execs cmd itself."""
        global _own_pidns
        argv = self._argv(cmd, cwd)
        with _spawn_lock:
            if _own_pidns is None:
                _own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            try:
                fd = os.open(f"/proc/{self.init_pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise LabError(f"{self.name} is powered off") from None
            try:
                _setns(fd, CLONE_NEWPID)
                try:
                    return subprocess.Popen(argv, **kw)
                finally:
                    _setns(_own_pidns, CLONE_NEWPID)
            finally:
                os.close(fd)

    def run(self, cmd, check=True, timeout=30, env=None, input=None, capture=True):
        """Run cmd (a list, or a str for sh -c) in the node and wait for it.
        On timeout the command is killed and subprocess.TimeoutExpired raised;
        with check, a non-zero exit raises LabError quoting stdout and stderr."""
        pipe = subprocess.PIPE if capture else None
        p = self._spawn(cmd, env=env, text=True, stdout=pipe, stderr=pipe,
                        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
        with p:
            try:
                out, err = p.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                raise
        res = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        if check and res.returncode != 0:
            raise LabError(f"{self.name}: {cmd!r} exited {res.returncode}\n"
                           f"stdout: {res.stdout}\nstderr: {res.stderr}")
        return res

    def popen(self, cmd, **kw):
        """Start cmd in the node in the background (subprocess.Popen keywords,
        cwd as the node sees it). Its pid is the command's own host pid; it is
        killed at power_off and close."""
        kw.setdefault("start_new_session", True)
        p = self._spawn(cmd, **kw)
        self._procs.append(p)
        # Return once it is in the node (nsenter has entered), so pids() lists it.
        want = f"net:[{_ns_inode(self.ns)}]"
        end = time.monotonic() + 2
        while time.monotonic() < end and p.poll() is None:
            try:
                if os.readlink(f"/proc/{p.pid}/ns/net") == want:
                    break
            except OSError:
                break
            time.sleep(0.001)
        return p

    def pids(self):
        """Host pids of every live process of the node."""
        return _pids_in_netns(_ns_inode(self.ns))

    def enter_command(self):
        """A shell command line that opens a shell in the node (for people)."""
        return f"nsenter -t {self.init_pid} -n -u -m -p"

    # -- files as the node sees them ---------------------------------------
    def _host_path(self, path):
        """The host's name for path inside the node: /proc/INIT/root, with the
        node's symlinks (such as /var/run -> /run) resolved inside the node."""
        if not os.path.isabs(path):
            raise ValueError(f"{path}: give an absolute path")
        if not self.powered or self.init_pid is None:
            raise LabError(f"{self.name} is powered off")
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
        with open(self._host_path(path)) as f:
            return f.read()

    def write_file(self, path, text, mode=0o644):
        """Write text to path in the node (atomically), making its directories."""
        host = self._host_path(path)
        os.makedirs(os.path.dirname(host), exist_ok=True)
        tmp = f"{host}.lab-tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, host)

    def exists(self, path):
        return os.path.lexists(self._host_path(path))

    # -- the link ------------------------------------------------------------
    def cut_link(self):
        """Unplug the node's LAN cable at the switch (its eth0 loses carrier)."""
        self.lab.sw(["ip", "link", "set", "dev", self.port, "down"])

    def restore_link(self):
        self.lab.sw(["ip", "link", "set", "dev", self.port, "up"])

    def set_loss(self, percent):
        """Drop percent % of the frames on this node's link, each way (0 clears)."""
        if not 0 <= percent <= 100:
            raise ValueError(f"loss must be from 0 to 100 %, not {percent}")
        table = f"loss_{self.short}"
        self.lab.sw(["nft", "delete", "table", "bridge", table], check=False)
        pct = int(round(percent))
        if pct == 0:
            return
        # the node's port, or the relay's while impair() runs
        port = f'{{ "{self.port}", "{self.short}-relay" }}'
        drop = "drop" if pct >= 100 else f"numgen random mod 100 < {pct} drop"
        rules = f"""table bridge {table} {{
  chain lab_forward {{
    type filter hook forward priority 0;
    iifname {port} {drop}
    oifname {port} {drop}
  }}
  chain lab_input {{
    type filter hook input priority 0;
    iifname {port} {drop}
  }}
  chain lab_output {{
    type filter hook output priority 0;
    oifname {port} {drop}
  }}
}}
"""
        self.lab.sw(["nft", "-f", "-"], input=rules)

    def impair(self, loss=30, delay_ms=50, jitter_ms=50, duration=600, max_frames=2_000_000,
               rt_prio=0):
        """Loss (%), delay and jitter (ms, each way) on this node's link through
        a frame relay in the switch, which gives the link back to the bridge by
        itself after duration seconds or max_frames frames. Jitter reorders.
        rt_prio: run the relay at that SCHED_FIFO priority, so that a busy
        machine cannot stall it (the kernel's own netem would not stall)."""
        if not 0 <= loss <= 100 or delay_ms < 0 or jitter_ms < 0 or duration <= 0:
            raise ValueError("impair: loss 0-100 %, delay and jitter >= 0 ms, duration > 0 s")
        self.clear_impair()
        relay_port, inner = f"{self.short}-relay", f"{self.short}-inner"
        self.lab.sw(["ip", "link", "add", "name", relay_port, "type", "veth", "peer", "name", inner])
        self.lab.sw(["ip", "link", "set", "dev", relay_port, "master", "br0", "up"])
        self.lab.sw(["ip", "link", "set", "dev", inner, "up", "promisc", "on"])
        self.lab.sw(["ip", "link", "set", "dev", self.port, "nomaster", "promisc", "on"])
        self._relay = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.sw_ns, sys.executable, RELAY,
             self.port, inner, str(loss), str(delay_ms), str(jitter_ms),
             str(duration), str(max_frames)],
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        self.lab._relays.append(self._relay)
        line = self._relay.stderr.readline()      # the relay says "ready" once its sockets are bound
        if b"ready" not in line:
            raise LabError(f"{self.name}: the frame relay did not start: "
                           f"{(line + self._relay.stderr.read()).decode(errors='replace')}")
        if rt_prio:
            os.sched_setscheduler(self._relay.pid, os.SCHED_FIFO, os.sched_param(rt_prio))

    def impaired(self):
        """True while the frame relay of impair() runs (it ends by itself after duration)."""
        return self._relay is not None and self._relay.poll() is None

    def clear_impair(self):
        relay, self._relay = self._relay, None
        if relay is None:
            return
        if relay.poll() is None:
            relay.terminate()
            try:
                relay.wait(5)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait()
        # The relay gives the port back as it ends; do it here too in case it was killed.
        self.lab.sw(["ip", "link", "del", "dev", f"{self.short}-inner"], check=False)
        self.lab.sw(["ip", "link", "set", "dev", self.port, "master", "br0", "promisc", "off"],
                    check=False)

    # -- power ---------------------------------------------------------------
    def power_on(self):
        """Boot the node: same hostname and disk, an empty /run, the link up."""
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
                self.holder.kill()
                err = self.holder.communicate()[1].decode(errors="replace")
                raise LabError(f"{self.name}: the node did not boot: {err.strip()}")
            time.sleep(0.005)
        # unshare --fork: the node's init (pid 1 inside) is unshare's child
        with open(f"/proc/{self.holder.pid}/task/{self.holder.pid}/children") as f:
            self.init_pid = int(f.read().split()[0])
        self.powered = True
        self._flush_serial()
        self.restore_link()

    def _flush_serial(self):
        """Drop what reached the node's end of the serial cable while it was off:
        a UART without power keeps nothing (the pty would hand it over)."""
        end = {"a": self.lab.serial_a, "b": self.lab.serial_b}.get(self.short)
        if not end or not os.path.exists(end):
            return
        try:
            fd = os.open(end, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            termios.tcflush(fd, termios.TCIFLUSH)
        finally:
            os.close(fd)

    def power_off(self):
        """Pull the power: the link goes down and every process of the node is
        SIGKILLed at once (the init first: the kernel then kills the rest of its
        pid namespace); /run goes with the init's mount namespace."""
        pids = sorted(self.pids(), key=lambda pid: pid != self.init_pid)
        self.lab.sw(["ip", "link", "set", "dev", self.port, "down"], check=False)
        _kill_all(pids)
        _wait_gone(pids, procs=self._procs + [p for p in (self.holder,) if p is not None])
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
            self.holder.stderr.close()
        self._procs = []
        self.holder = None
        self.init_pid = None
        self.powered = False


class Lab:
    """with Lab() as lab: ... (see the module docstring).

    close() is idempotent and safe after a partial start; it also runs at
    interpreter exit (atexit) for a lab left open."""

    subnet = SUBNET
    subnet6 = SUBNET6
    cluster_ip = CLUSTER_IP
    cluster_ip6 = CLUSTER_IP6
    gateway = GATEWAY
    gateway6 = GATEWAY6

    def __init__(self, prefix=None, serial=True):
        self.prefix = prefix or f"{PREFIX_BASE}-{os.getpid()}-{secrets.token_hex(2)}"
        if not _PREFIX_RE.match(self.prefix + "-"):
            raise ValueError(f"lab prefix must look like {PREFIX_BASE}-PID-XXXX, not {self.prefix!r}")
        self.sw_ns = f"{self.prefix}-sw"
        self.dir = None
        self.with_serial = serial
        self.nodes = []
        self.a = self.b = self.c = None
        self.serial_a = self.serial_b = None
        self._socat = None
        self._relays = []
        self._started = False

    def __repr__(self):
        return f"<Lab {self.prefix} {self.dir}>"

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def pids(self):
        """Host pids of every live process of the lab: its nodes' and its switch's
        (socat, frame relays)."""
        return [pid for ns in [self.sw_ns] + [n.ns for n in self.nodes]
                for pid in _pids_in_netns(_ns_inode(ns))]

    def sw(self, cmd, check=True, input=None):
        """Run cmd in the switch namespace."""
        return _run(["ip", "netns", "exec", self.sw_ns] + cmd, check=check, input=input)

    def start(self):
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces)")
        if self._started:
            return self
        sweep_stale()
        self._started = True
        self.nodes = []
        atexit.register(self.close)
        self.dir = tempfile.mkdtemp(prefix=self.prefix + "-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        with open(os.path.join(self.dir, OWNER_FILE), "w") as f:
            f.write(f"{os.getpid()} {_start_time(os.getpid())}\n")
        _run(["ip", "netns", "add", self.sw_ns])
        self.sw(["ip", "link", "set", "lo", "up"])
        # A dumb switch: no spanning tree, no learning delay, multicast flooded.
        self.sw(["ip", "link", "add", "br0", "type", "bridge", "stp_state", "0",
                 "forward_delay", "0", "mcast_snooping", "0"])
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
            # nodad: the node's own addresses are usable at once; DAD stays on
            # for any other address (the cluster address's probe needs it).
            _run(n + ["addr", "add", f"{addr}/24", "dev", "eth0"])
            _run(n + ["addr", "add", f"{addr6}/64", "dev", "eth0", "nodad"])
            _run(n + ["link", "set", "eth0", "up"])
            # Checksums computed in software, as on a real wire: with veth's offload
            # a frame relayed by impair() would carry an unfinished UDP checksum.
            _run(["ip", "netns", "exec", node.ns, "ethtool", "-K", "eth0", "tx", "off"])
            self.sw(["ethtool", "-K", node.port, "tx", "off"])
            node.power_on()
        self.a, self.b, self.c = self.nodes
        self.serial_a = os.path.join(self.dir, "ttyA")
        self.serial_b = os.path.join(self.dir, "ttyB")
        if self.with_serial:
            self.plug_serial()
        return self

    # -- the serial cable -------------------------------------------------------
    def plug_serial(self):
        """Connect the cable: a new pty pair behind lab.serial_a and lab.serial_b."""
        if self._socat is not None and self._socat.poll() is None:
            return
        self._unlink_serial()
        self._socat = subprocess.Popen(
            ["ip", "netns", "exec", self.sw_ns, "socat",
             f"pty,raw,echo=0,link={self.serial_a}", f"pty,raw,echo=0,link={self.serial_b}"],
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        end = time.monotonic() + 5
        while not (os.path.exists(self.serial_a) and os.path.exists(self.serial_b)):
            if self._socat.poll() is not None or time.monotonic() > end:
                self._socat.kill()
                err = self._socat.communicate()[1].decode(errors="replace")
                self._socat = None
                raise LabError(f"socat did not make the serial cable: {err.strip()}")
            time.sleep(0.005)
        for p in (self.serial_a, self.serial_b):
            os.chmod(os.path.realpath(p), 0o660)

    def unplug_serial(self):
        """Pull the cable: socat ends and both paths disappear (see the module docstring)."""
        if self._socat is not None:
            self._socat.kill()
            self._socat.wait()
            self._socat.stderr.close()
            self._socat = None
        self._unlink_serial()

    def _unlink_serial(self):
        # A dangling link could later point at somebody else's /dev/pts/N.
        for p in (self.serial_a, self.serial_b):
            if p and os.path.lexists(p):
                os.unlink(p)

    # -- logs ---------------------------------------------------------------------
    def log_files(self):
        """The logs worth showing when a test fails: *.log in lab.dir and every
        file under each node's /var/log."""
        if not self.dir:
            return []
        files = sorted(glob.glob(os.path.join(self.dir, "*.log")))
        for node in self.nodes:
            files += sorted(p for p in glob.glob(os.path.join(node.dir, "up", "var", "log", "**"),
                                                 recursive=True) if os.path.isfile(p))
        return files

    def save_logs(self, dest):
        """Copy log_files() under dest (keeping their place below lab.dir); return the copies."""
        out = []
        for path in self.log_files():
            to = os.path.join(dest, os.path.relpath(path, self.dir))
            os.makedirs(os.path.dirname(to), exist_ok=True)
            try:
                shutil.copyfile(path, to)
            except OSError:
                continue
            out.append(to)
        return out

    # -- teardown ---------------------------------------------------------------
    def close(self):
        """Kill every process of the lab and remove its namespaces and lab.dir."""
        if not self._started:
            return
        self._started = False
        atexit.unregister(self.close)
        try:
            for relay in self._relays:
                if relay.poll() is None:
                    relay.kill()
                relay.wait()
                relay.stderr.close()
            self._relays = []
            if self._socat is not None:
                self._socat.kill()
                self._socat.wait()
                self._socat.stderr.close()
                self._socat = None
            for node in self.nodes:
                if node.powered:
                    node.power_off()
        finally:
            _remove_lab(self.prefix)


def _lab_namespaces():
    p = _run(["ip", "netns", "list"], check=False)
    out = {}
    for line in p.stdout.splitlines():
        ns = line.split()[0] if line.strip() else ""
        m = _PREFIX_RE.match(ns)
        if m:
            out.setdefault(m.group(1), []).append(ns)
    return out


def _lab_dirs(prefix):
    return glob.glob(os.path.join("/tmp", glob.escape(prefix) + "-*"))


def _remove_lab(prefix):
    namespaces = _lab_namespaces().get(prefix, [])
    pids = []
    for ns in namespaces:
        pids += _pids_in_netns(_ns_inode(ns))
    _kill_all(pids)
    _wait_gone(pids)
    for ns in namespaces:
        _run(["ip", "netns", "del", ns], check=False)
    for d in _lab_dirs(prefix):
        shutil.rmtree(d, ignore_errors=True)


def _owner_alive(prefix):
    owner = int(prefix.split("-")[1])
    started = None
    for d in _lab_dirs(prefix):
        try:
            with open(os.path.join(d, OWNER_FILE)) as f:
                started = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    now = _start_time(owner)
    if now is None:
        return False
    # the pid may have been reused by another process since the owner died
    return started is None or now == started


def sweep_stale():
    """Remove the labs whose owner process is gone; return their prefixes.
    Namespaces without the lab prefix, and labs of a living owner, are left alone."""
    prefixes = set(_lab_namespaces())
    for d in glob.glob(f"/tmp/{PREFIX_BASE}-*-*-*"):      # a dir left by a start cut short
        m = _PREFIX_RE.match(os.path.basename(d))
        if m and os.path.isdir(d):
            prefixes.add(m.group(1))
    swept = []
    for prefix in sorted(prefixes):
        if _owner_alive(prefix):
            continue
        _remove_lab(prefix)
        swept.append(prefix)
    return swept


def lab_namespaces():
    """Every namespace of any lab on this machine (for tests and the sweeper)."""
    return [ns for group in _lab_namespaces().values() for ns in group]


def labs():
    """{prefix: (owner pid, owner alive)} for every lab on this machine."""
    return {prefix: (int(prefix.split("-")[1]), _owner_alive(prefix))
            for prefix in _lab_namespaces()}


def addr_in_subnet(addr):
    return ipaddress.ip_address(addr) in ipaddress.ip_network(SUBNET)
