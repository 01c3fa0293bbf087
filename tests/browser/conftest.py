"""Real-browser tests: marked `browser`, skipped when Debian's chromium is not installed."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real Chromium against a live server "
                                       "(needs /usr/bin/chromium: apt-get install chromium)")
