"""Integration tests run real server processes on loopback."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration
