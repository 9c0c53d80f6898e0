"""Shared fixtures: the 'metal' device (opt-in on Linux, so tests ask for it by name)."""

from __future__ import annotations

import jax
import pytest


@pytest.fixture(scope="session")
def metal() -> jax.Device:
    devices = jax.devices("metal")
    assert len(devices) == 1 and devices[0].platform == "metal"
    return devices[0]


@pytest.fixture(scope="session")
def cpu() -> jax.Device:
    return jax.devices("cpu")[0]
