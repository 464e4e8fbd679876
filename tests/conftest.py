"""Shared fixtures. Browser tests: ``chromium_page`` (see tests/browser.py for the harness)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))   # `import browser` under any pytest import mode


@pytest.fixture
def chromium_page():
    """A Playwright page in headless Debian Chromium (skipped with the reason if missing; a failure when CI=true)."""
    from browser import browser_page

    with browser_page() as page:
        yield page


@pytest.fixture(scope="module")
def tiny_pair():
    """(train, test) of a tiny shapes world: 192 training and 64 test images (separate seeds)."""
    from gpsviz.data import make_shapes

    tr = make_shapes(192, seed=1)
    te = make_shapes(64, seed=2)
    te.split = "test"
    return tr, te
