"""The per-path dead time: HBDEADTIME on a clean path, longer on a lossy one."""

import math
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


def onset(det, keepalive, seconds, seed):
    """A clean path that loses 30 % and delays 50 +- 50 ms from second 20 on, as
    a node reads it (at its own beats): the time into the loss of a false
    death, or None."""
    rnd = random.Random(seed)
    phase = rnd.uniform(0, keepalive)
    arrivals = []
    for seq in range(1, int((20 + seconds) / keepalive)):
        t = seq * keepalive
        if t >= 20:
            if rnd.random() < 0.3:
                continue
            t += 0.05 + rnd.uniform(-0.05, 0.05)
        arrivals.append((t, seq))
    arrivals.sort()
    last = None
    for t, seq in arrivals:
        heard = math.ceil((t - phase) / keepalive) * keepalive + phase
        if last is not None and heard - last > det.deadtime:
            return heard - 20
        det.heard(heard, 1, seq)
        last = heard
    return None


def test_sudden_loss_lengthens_the_dead_time_within_a_second_or_two():
    det = PathDetector(0.05, 0.3, 2.0)
    assert onset(det, 0.05, 0.0, seed=3) is None
    assert det.deadtime == 0.3
    det = PathDetector(0.05, 0.3, 2.0)
    assert onset(det, 0.05, 3.0, seed=3) is None
    assert det.deadtime > 0.8               # 30 % loss: up to 18 beats, and the jitter
    assert det.loss < 0.05                  # while the half-minute memory barely moved


def test_sudden_loss_rarely_looks_like_a_dead_peer():
    # The long memory alone: 13 of these 400 onsets ended in a false death
    # (within a second of the onset, nothing can tell loss from death yet).
    falls = [r for r in (onset(PathDetector(0.05, 0.3, 2.0), 0.05, 10, seed)
                         for seed in range(400)) if r is not None]
    assert len(falls) <= 7, falls
