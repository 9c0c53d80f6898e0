"""Registration: the supported jax/jaxlib window and the message outside it."""

from __future__ import annotations

import logging

import pytest

from xla_metal import jax_plugin


@pytest.mark.parametrize("found, ok", [("0.10.2", True), ("0.10.9", True), ("0.11.2", True),
                                       ("0.10.1", False), ("0.9.0", False), ("0.12.0", False),
                                       ("1.0.0", False), ("0.11.0rc1", True)])
def test_version_window(monkeypatch: pytest.MonkeyPatch, found: str, ok: bool) -> None:
    monkeypatch.setattr(jax_plugin.metadata, "version", lambda package: found)
    problem = jax_plugin.version_problem()
    if ok:
        assert problem is None
    else:
        assert problem is not None
        assert f"jax {found} is installed" in problem
        assert "pip install 'jax>=0.10.2,<0.12'" in problem


def test_outside_the_window_registration_refuses_with_the_install_hint(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(jax_plugin.metadata, "version", lambda package: "0.9.1")
    registered: list[str] = []
    monkeypatch.setattr("jax._src.xla_bridge.register_plugin",
                        lambda name, **kw: registered.append(name))
    with caplog.at_level(logging.WARNING):
        jax_plugin.initialize()  # never raises: JAX would fail to import
    assert registered == []
    assert "install a supported version" in caplog.text


def test_inside_the_window_registers_metal(monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[tuple[str, int, str]] = []
    monkeypatch.setattr("jax._src.xla_bridge.register_plugin",
                        lambda name, priority, library_path: registered.append(
                            (name, priority, library_path)))
    jax_plugin.initialize()
    assert len(registered) == 1
    name, priority, path = registered[0]
    assert name == "metal" and path.endswith("libxla_metal_pjrt.so")
    assert priority < 0 or jax_plugin.has_metal_gpu()  # opt-in where there is no Metal GPU


def test_advertised_stablehlo_version_is_the_installed_jaxlib_s(metal: object) -> None:
    # JAX serializes programs for the version the plugin advertises (PJRT_Plugin_Attributes):
    # it is read from the jaxlib in use, so one build serves every jaxlib in the window.
    from jax._src import xla_bridge
    from jaxlib.mlir.dialects import stablehlo

    backend = xla_bridge.get_backend("metal")
    current = [int(part) for part in stablehlo.get_current_version().split(".")]
    assert list(backend.stablehlo_current_version) == current
