"""A real sshd in a lab node, and root's key trust from one node to another.

asha-sync pulls over ssh with key authentication and strict host key
checking, as on a real pair: start_sshd(node) runs sshd in the node with a
configuration and host key of its own (nothing of the host's /etc/ssh is
used), and trust(a, b) lets root on a log in to root on b without a password,
with b's host key already in a's known_hosts under b's address."""

import socket
import subprocess
import time

from .netlab import LabError

SSHD_DIR = "/etc/asha-lab-sshd"          # on the node's own /etc
SSHD = "/usr/sbin/sshd"

CONFIG = """\
Port {port}
ListenAddress 0.0.0.0
ListenAddress ::
HostKey {dir}/ssh_host_ed25519_key
PidFile {dir}/sshd-{port}.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
UseDNS no
StrictModes yes
MaxStartups 100:30:200
MaxSessions 100
LogLevel INFO
Subsystem sftp internal-sftp
"""


def start_sshd(node, port=22, timeout=10.0):
    """Start sshd -D in node on port; return its Popen once it accepts
    connections. It dies with the node (power_off, lab close)."""
    d = SSHD_DIR
    key = f"{d}/ssh_host_ed25519_key"
    node.run(["mkdir", "-p", "-m", "0755", d, "/run/sshd"])
    if not node.exists(key):
        node.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{node.name}",
                  "-f", key])
    node.write_file(f"{d}/sshd_config-{port}", CONFIG.format(port=port, dir=d))
    log = f"{d}/sshd-{port}.log"
    node.run(["sh", "-c", f": > {log}"])
    p = node.popen([SSHD, "-D", "-f", f"{d}/sshd_config-{port}", "-E", log],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + timeout
    while True:
        text = node.read_file(log) if node.exists(log) else ""
        if "Server listening on" in text and _accepts(node, port):
            return p
        if p.poll() is not None:
            raise LabError(f"{node.name}: sshd on port {port} exited {p.returncode}: {text.strip()}")
        if time.monotonic() > end:
            p.kill()
            raise LabError(f"{node.name}: sshd on port {port} did not start within {timeout:g} s: "
                           f"{text.strip()}")
        time.sleep(0.02)


def stop_sshd(node, port=22, timeout=5.0):
    """Stop the sshd that start_sshd(node, port) started (connections are then refused)."""
    pidfile = f"{SSHD_DIR}/sshd-{port}.pid"
    if not node.exists(pidfile):
        return
    pid = node.read_file(pidfile).strip()
    node.run(["kill", pid], check=False)
    end = time.monotonic() + timeout
    # Gone, or a zombie whose parent (nsenter, outside the node) has not reaped it yet.
    while node.run(["sh", "-c", f"ps -o stat= -p {pid} | grep -qv Z"], check=False).returncode == 0:
        if time.monotonic() > end:
            raise LabError(f"{node.name}: sshd (pid {pid}) did not stop within {timeout:g} s")
        time.sleep(0.02)
    node.run(["rm", "-f", pidfile])


def _accepts(node, port):
    """True when something accepts TCP connections on node's address and port."""
    code = ("import socket,sys\ns=socket.socket()\ns.settimeout(1)\n"
            "sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))")
    return node.run(["python3", "-c", code, node.addr, str(port)], check=False,
                    timeout=10).returncode == 0


def host_key(node):
    """The public host key line (`ssh-ed25519 AAAA...`) of node's sshd."""
    words = node.read_file(f"{SSHD_DIR}/ssh_host_ed25519_key.pub").split()
    return f"{words[0]} {words[1]}"


def user_key(node, path="/root/.ssh/id_ed25519"):
    """root's passphrase-less ed25519 key in node (made when missing); its public line."""
    node.run(["mkdir", "-p", "-m", "0700", "/root/.ssh"])
    node.run(["chmod", "0700", "/root/.ssh"])
    if not node.exists(path):
        node.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{node.name}",
                  "-f", path])
    return node.read_file(path + ".pub").strip()


def _append_line(node, path, line, mode):
    text = node.read_file(path) if node.exists(path) else ""
    if line in text.splitlines():
        return
    if text and not text.endswith("\n"):
        text += "\n"
    node.write_file(path, text + line + "\n", mode=mode)


def trust(from_node, to_node, port=22, key="/root/.ssh/id_ed25519"):
    """Let root on from_node ssh to root on to_node by key, with strict host key
    checking: a key in from_node (made when missing), its public half in
    to_node's authorized_keys, to_node's host key in from_node's known_hosts
    by address (IPv4 and IPv6). to_node's sshd must have been started."""
    pub = user_key(from_node, key)
    to_node.run(["mkdir", "-p", "-m", "0700", "/root/.ssh"])
    to_node.run(["chmod", "0700", "/root/.ssh"])
    _append_line(to_node, "/root/.ssh/authorized_keys", pub, 0o600)
    hk = host_key(to_node)
    for addr in (to_node.addr, to_node.addr6):
        name = addr if port == 22 else f"[{addr}]:{port}"
        _append_line(from_node, "/root/.ssh/known_hosts", f"{name} {hk}", 0o644)


def ssh_argv(to_node, *command, port=22, key=None):
    """argv to run command on to_node by ssh as the tools do (batch mode)."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-p", str(port)]
    if key:
        argv += ["-i", key]
    return argv + [to_node.addr, *command]


def free_port():
    """A TCP port number unlikely to be in use (for a second sshd)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
