"""The lab itself: hosts that reach each other, private hostnames and disks,
the serial cable, link faults, power, and nothing left behind."""

import errno
import os
import subprocess
import sys
import time

import pytest

from asha_lab import Lab, lab_namespaces

pytestmark = pytest.mark.lab


def ping(node, addr, count=1, wait=1, interval=None):
    cmd = ["ping", "-n", "-q", "-c", str(count), "-W", str(wait)]
    if interval:
        cmd += ["-i", str(interval)]
    return node.run(cmd + [addr], check=False)


def received(p):
    for line in p.stdout.splitlines():
        if "received" in line:
            return int(line.split(",")[1].split()[0])
    return 0


def test_nodes_reach_each_other_and_the_client(lab):
    for src in lab.nodes:
        for dst in lab.nodes:
            if src is not dst:
                assert ping(src, dst.addr).returncode == 0, f"{src.name} -> {dst.name}"
        assert ping(src, lab.gateway).returncode == 0
    assert ping(lab.a, lab.b.addr6).returncode == 0


def test_hostnames_differ_and_match(lab):
    names = [n.run(["uname", "-n"]).stdout.strip() for n in lab.nodes]
    assert names == [n.name for n in lab.nodes]
    assert os.uname().nodename not in names


def test_disks_and_run_are_private(lab):
    lab.a.write_file("/etc/asha.conf", "HASYNCH=LAZY\n")
    lab.a.write_file("/run/asha/hb.state", "ROLE=active\n")
    assert lab.a.run(["cat", "/etc/asha.conf"]).stdout == "HASYNCH=LAZY\n"
    assert not lab.b.exists("/etc/asha.conf")
    assert not lab.b.exists("/run/asha/hb.state")
    assert not os.path.exists("/run/asha/hb.state") or \
        open("/run/asha/hb.state").read() != "ROLE=active\n"
    if os.path.exists("/etc/asha.conf"):
        assert open("/etc/asha.conf").read() != "HASYNCH=LAZY\n"
    # the node sees its own /var/run -> /run
    assert lab.a.read_file("/var/run/asha/hb.state") == "ROLE=active\n"


def _serial_copy(lab, src, dst, data):
    """Write data on src's end and return what dst's end reads within a second."""
    reader = lab.b.popen([sys.executable, "-c", (
        "import os,sys,select,time,termios,tty\n"
        f"fd=os.open({dst!r}, os.O_RDWR|os.O_NOCTTY); tty.setraw(fd)\n"
        "print('open', flush=True); out=b''; end=time.time()+1.5\n"
        "while time.time()<end:\n"
        "  r,_,_=select.select([fd],[],[],0.1)\n"
        "  if r:\n"
        "    try: out+=os.read(fd,4096)\n"
        "    except OSError: break\n"
        "sys.stdout.write(out.hex())\n")], stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "open"
    try:
        fd = os.open(src, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError:
        pass                      # an unplugged end may refuse the write
    out, _ = reader.communicate(timeout=10)
    return bytes.fromhex(out.strip())


def test_serial_cable_carries_bytes_both_ways_and_nothing_unplugged(lab):
    assert _serial_copy(lab, lab.serial_a, lab.serial_b, b"hello B\x00\xff") == b"hello B\x00\xff"
    assert _serial_copy(lab, lab.serial_b, lab.serial_a, b"hello A") == b"hello A"
    lab.unplug_serial()
    assert not os.path.exists(lab.serial_b)      # the link is gone with the cable
    lab.plug_serial()
    assert _serial_copy(lab, lab.serial_a, lab.serial_b, b"again") == b"again"


def test_an_open_end_reads_nothing_while_unplugged(lab):
    fd = os.open(lab.serial_b, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        lab.unplug_serial()
        try:                                   # the other side hung up: EOF or EIO, no data
            assert os.read(fd, 100) == b""
        except OSError as e:
            assert e.errno == errno.EIO
    finally:
        os.close(fd)


def test_cut_link_and_restore(lab):
    lab.a.cut_link()
    assert ping(lab.c, lab.a.addr).returncode != 0
    assert ping(lab.c, lab.b.addr).returncode == 0
    lab.a.restore_link()
    assert received(ping(lab.c, lab.a.addr, count=10, interval=0.2, wait=1)) > 0


def test_set_loss_drops_about_that_share(lab):
    assert ping(lab.c, lab.a.addr).returncode == 0        # neighbours known before the loss
    lab.a.set_loss(30)
    got = received(ping(lab.c, lab.a.addr, count=200, wait=1, interval=0.002))
    lab.a.set_loss(0)
    # each echo crosses the link twice: about 49 % lost; wide bounds for 200 tries
    assert 60 <= got <= 145, got
    assert received(ping(lab.c, lab.a.addr, count=20, interval=0.002)) == 20


def test_impair_delays_and_ends_by_itself(lab):
    assert ping(lab.c, lab.a.addr).returncode == 0
    lab.a.impair(delay_ms=40, jitter_ms=0, duration=3)
    p = ping(lab.c, lab.a.addr, count=3, interval=0.2)
    rtt = float(p.stdout.strip().splitlines()[-1].split("=")[1].split("/")[0])   # min rtt
    assert rtt >= 75, p.stdout
    time.sleep(3.5)               # the relay gave the link back to the bridge
    p = ping(lab.c, lab.a.addr, count=3, interval=0.2)
    assert float(p.stdout.strip().splitlines()[-1].split("=")[1].split("/")[2]) < 20, p.stdout
    lab.a.clear_impair()


def test_power_off_kills_everything_and_keeps_the_disk(lab):
    lab.a.write_file("/var/lib/asterisk/kept", "disk\n")
    lab.a.write_file("/run/lost", "ram\n")
    sleeper = lab.a.popen(["sleep", "300"])
    assert sleeper.pid in lab.a.pids() or lab.a.pids()
    lab.a.power_off()
    assert lab.a.pids() == []
    assert sleeper.poll() is not None
    assert ping(lab.c, lab.a.addr).returncode != 0
    lab.a.power_on()
    assert lab.a.read_file("/var/lib/asterisk/kept") == "disk\n"
    assert not lab.a.exists("/run/lost")
    assert lab.a.run(["uname", "-n"]).stdout.strip() == "asha-a"
    assert received(ping(lab.c, lab.a.addr, count=10, interval=0.2, wait=1)) > 0


def test_nothing_left_after_close():
    lab = Lab()
    lab.start()
    prefix, directory = lab.prefix, lab.dir
    lab.a.popen(["sleep", "300"])
    pids = lab.a.pids() + lab.b.pids()
    lab.close()
    assert not [ns for ns in lab_namespaces() if ns.startswith(prefix)]
    assert not os.path.exists(directory)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_a_failed_start_cleans_up():
    lab = Lab()
    prefix = lab.prefix
    with pytest.raises(RuntimeError):
        with lab:
            raise RuntimeError("a test fails")
    assert not [ns for ns in lab_namespaces() if ns.startswith(prefix)]


def test_sweeper_removes_a_dead_owners_lab():
    code = ("import sys; sys.path.insert(0, 'lab'); from asha_lab import Lab; "
            "lab = Lab(); lab.start(); print(lab.prefix, flush=True); import os; os._exit(0)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    prefix = p.stdout.strip()
    assert [ns for ns in lab_namespaces() if ns.startswith(prefix)]
    from asha_lab import sweep_stale
    assert prefix in sweep_stale()
    assert not [ns for ns in lab_namespaces() if ns.startswith(prefix)]
