"""The load checker the training flow starts ahead is what promote takes; leftovers end."""

from __future__ import annotations

from flywheel.registry import loadcheck


def test_prestarted_checker_is_taken_and_leftovers_are_ended() -> None:
    loadcheck.prestart_checker()
    loadcheck.prestart_checker()
    started = list(loadcheck._STARTED)
    taken = loadcheck.take_checker()
    try:
        assert taken is started[-1]
        leftover = started[0]
        loadcheck.discard_checkers()
        assert leftover.poll() is not None  # ended, not left importing in the background
        assert taken.poll() is None  # promote's: still waiting for a model URI
        assert loadcheck._STARTED == []
    finally:
        taken.kill()
        taken.communicate()


def test_a_dead_prestarted_checker_is_replaced() -> None:
    loadcheck.prestart_checker()
    dead = loadcheck._STARTED[0]
    dead.kill()
    dead.communicate()
    fresh = loadcheck.take_checker()
    try:
        assert fresh is not dead and fresh.poll() is None
    finally:
        fresh.kill()
        fresh.communicate()
