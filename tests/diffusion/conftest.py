"""Fixtures for the diffusion tests: a tiny random SD pipeline folder, built once per session."""

from __future__ import annotations

import pytest

from tests.diffusion.tiny_pipelines import tiny_sd_pipeline


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory):
    pipe, folder = tiny_sd_pipeline(tmp_path_factory.mktemp("sd"))
    return folder
