"""The asha lab: two PBX nodes and a client in network namespaces on one
machine, a serial cable between the nodes, and a stand-in Asterisk
(lab/bin/asterisk). Used by the tests, `make demo` and bench/."""

import os

from .netlab import Lab, LabError, Node, lab_namespaces, sweep_stale  # noqa: F401

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(LAB_DIR)
STANDIN_ASTERISK = os.path.join(LAB_DIR, "bin", "asterisk")
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")
