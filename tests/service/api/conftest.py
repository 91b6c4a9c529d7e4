"""The web app under test, shared by the API's test modules: each module gives its own
``settings`` fixture (storage, database, token), and ``client`` runs the app over them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.api.settings import ServiceSettings


@pytest.fixture
def client(settings: ServiceSettings) -> Iterator[TestClient]:
    """The app over the module's ``settings``, its lifespan (manager start and close) running."""
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client
