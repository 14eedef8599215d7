"""The asha lab: two PBX nodes and a client in network namespaces on one
machine, a serial cable between the nodes, and a stand-in Asterisk
(lab/bin/asterisk). Used by the tests, `make demo` and bench/."""

import os

from .netlab import Lab, LabError, Node, lab_namespaces, labs, sweep_stale  # noqa: F401

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(LAB_DIR)
STANDIN_ASTERISK = os.path.join(LAB_DIR, "bin", "asterisk")
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")
SIPPROBE = os.path.join(LAB_DIR, "asha_lab", "sipprobe.py")


def sip_options(node, addr, port=5060, timeout=1.0, wait=0.0):
    """From node, one SIP OPTIONS to addr (or keep asking for wait seconds):
    (status line, source address, seconds) of the answer, or None."""
    import sys
    p = node.run([sys.executable, SIPPROBE, addr, str(port), "--timeout", str(timeout),
                  "--wait", str(wait)], check=False, timeout=max(timeout, wait) + 10)
    if p.returncode != 0:
        return None
    words = p.stdout.split()
    return " ".join(words[:words.index("from")]), words[words.index("from") + 1], float(words[-1])


def asha(tool, *args):
    """argv that runs bin/<tool> of this checkout with the running Python (the venv's)."""
    import sys
    return [sys.executable, os.path.join(REPO, "bin", tool), *args]


def write_config(node, text, path="/etc/asha.conf"):
    node.write_file(path, text)
    return path
