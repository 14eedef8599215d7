"""Shared fixtures: the two-node lab (lab/asha_lab) for the lab tests."""

import os

import pytest

from asha_lab import Lab


@pytest.fixture
def lab(request):
    """A started lab, closed at the end of the test, whatever happens."""
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (network namespaces)")
    with Lab() as the_lab:
        yield the_lab
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            print(f"lab {the_lab.prefix}: node logs stayed in the test's output above")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
