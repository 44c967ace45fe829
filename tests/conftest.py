"""Test-session settings shared by every test module."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_osdi_cache(tmp_path_factory: pytest.TempPathFactory):
    """Compile Verilog-A into a cache private to this test session, not the user's cache.

    Tests that check the cache itself set their own ``COSIM_CACHE`` with ``monkeypatch``.
    """
    with pytest.MonkeyPatch.context() as patch:
        cache = tmp_path_factory.mktemp("osdi-cache")
        patch.setenv("COSIM_CACHE", str(cache))
        yield cache
