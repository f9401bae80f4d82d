"""The matchmaker's tests run twice: on one Redis and on a real 3-master Redis Cluster."""

from __future__ import annotations

import pytest

from tests.conftest import REDIS_KINDS, redis_url_of


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_url_of(request)
