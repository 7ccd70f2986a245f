"""The CLI's end-to-end tests run the real `attune` script against the integration cluster."""

from tests.integration.conftest import cluster  # noqa: F401 - the shared real-services fixture
