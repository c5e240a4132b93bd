from tests.endpoints.conftest import sandbox  # noqa: F401  (the sandbox cluster fixture)
