"""The per-path dead time: HBDEADTIME on a clean path, longer on a lossy one."""

import random

import pytest

from asha.hb.detector import PathDetector


def feed(det, loss, jitter, seconds, keepalive=0.04, seed=1, gen=1):
    rnd = random.Random(seed)
    arrivals = []
    for seq in range(1, int(seconds / keepalive)):
        if rnd.random() < loss:
            continue
        arrivals.append((seq * keepalive + rnd.uniform(0, jitter), seq))
    arrivals.sort()
    for t, seq in arrivals:
        det.heard(t, gen, seq)
    return arrivals


def test_clean_path_uses_the_configured_dead_time():
    det = PathDetector(0.04, 0.3, 2.0)
    feed(det, 0.0, 0.001, 20)
    assert det.deadtime == 0.3
    assert det.loss == 0


def test_lossy_jittery_path_waits_longer_but_not_past_the_cap():
    det = PathDetector(0.04, 0.3, 2.0)
    feed(det, 0.3, 0.1, 60)
    assert 0.25 < det.loss < 0.35
    assert 0.7 < det.deadtime < 1.2
    capped = PathDetector(0.04, 0.3, 0.5)
    feed(capped, 0.3, 0.1, 60)
    assert capped.deadtime == 0.5


def test_no_false_death_over_ten_minutes_of_loss_and_jitter():
    det = PathDetector(0.04, 0.3, 2.0)
    last = None
    for t, seq in feed(det, 0.3, 0.1, 600, seed=5):
        if last is not None:
            assert t - last < det.deadtime, f"a live peer looked dead at {t:.2f} s"
        last = t


def test_a_restarted_peer_starts_a_new_count():
    det = PathDetector(0.04, 0.3, 2.0)
    feed(det, 0.3, 0.05, 30)
    det.heard(100.0, 2, 1)          # new generation: seq 1 is no gap of minus thousands
    assert det.gen == 2 and det.seq == 1
    assert det.alive(100.1) and not det.alive(100.0 + det.deadtime + 0.01)


@pytest.mark.parametrize("deadtime", [0.3, 1.0])
def test_never_heard_is_never_alive(deadtime):
    det = PathDetector(0.04, deadtime, 2.0)
    assert det.deadline() is None and not det.alive(0.0)
