"""Shared fixtures: the two-node lab (lab/asha_lab) for the lab tests.

`lab` is a started Lab for one test, `lab_module` one shared by the tests of a
module. Both are closed whatever happens. When a test that uses one fails, the
lab's logs (*.log in lab.dir and each node's /var/log) are copied to
/tmp/asha-lab-logs/<test>-<prefix>/ before the lab goes, and shown in the
failure report."""

import os
import re

import pytest

from asha_lab import Lab

LOG_KEEP = "/tmp/asha-lab-logs"
LOG_SHOW = 100_000            # characters of each log shown in a failure report


def _need_root():
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (network namespaces): run them as root, "
                    "or run tests/unit alone", pytrace=False)


@pytest.fixture
def lab():
    """A started lab, closed at the end of the test, whatever happens."""
    _need_root()
    with Lab() as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def lab_module():
    """A started lab shared by the tests of one module (they must not mind each other)."""
    _need_root()
    with Lab() as the_lab:
        yield the_lab


def _report_logs(item, rep):
    for name in ("lab", "lab_module"):
        the_lab = item.funcargs.get(name) if hasattr(item, "funcargs") else None
        if not isinstance(the_lab, Lab) or not the_lab.dir:
            continue
        dest = os.path.join(LOG_KEEP, re.sub(r"[^\w.-]+", "_", item.name) + "-" + the_lab.prefix)
        try:
            copies = the_lab.save_logs(dest)
        except OSError as e:
            rep.sections.append((f"asha lab {the_lab.prefix}", f"logs not saved: {e}"))
            continue
        if not copies:
            rep.sections.append((f"asha lab {the_lab.prefix}", f"no logs in {the_lab.dir}"))
        for path in copies:
            with open(path, errors="replace") as f:
                text = f.read()
            if len(text) > LOG_SHOW:
                text = f"[... first {len(text) - LOG_SHOW} characters in the file ...]\n" + \
                    text[-LOG_SHOW:]
            rep.sections.append((f"asha lab log {path}", text))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.when == "call" and rep.failed:
        _report_logs(item, rep)
