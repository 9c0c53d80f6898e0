"""Runs a function in several threads at once, for the tests that share the plugin between
threads; each target collects its own failures (an exception in a thread is not re-raised)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def run_in_threads(target: Callable[..., Any], args: list[tuple[Any, ...]]) -> None:
    """target(*a) in one thread per entry of args, all started, then all joined."""
    threads = [threading.Thread(target=target, args=a) for a in args]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
