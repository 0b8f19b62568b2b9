"""The cycle collector's thresholds (bot.collector): raised for the bot's processes, never
lowered below what the embedding program asked for."""

from __future__ import annotations

import gc

import pytest

from bot.collector import THRESHOLDS, tune_garbage_collector


@pytest.fixture
def thresholds():
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_the_defaults_are_raised(thresholds):
    gc.set_threshold(700, 10, 10)  # CPython's

    tune_garbage_collector()

    assert gc.get_threshold() == THRESHOLDS


def test_a_higher_threshold_already_set_is_kept(thresholds):
    gc.set_threshold(200_000, 5, 1_000)

    tune_garbage_collector()

    assert gc.get_threshold() == (200_000, THRESHOLDS[1], 1_000)
