"""Suite-wide setup: the native decode step is built before any test runs, so every generate() test decodes through
it (generate itself never waits for the compiler: it decodes in Python while a first build runs in the background).
tests/native checks the step against the Python modules directly, and its fallback."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def native_decode_step_built():
    from hugkit import native

    native.load()  # None without a compiler or with HUGKIT_NATIVE=0: generate then takes the Python path
    yield
