"""The docs' code blocks are code: Python formatted as ruff formats it, TOML that parses and, where it is a
configuration, that the loader accepts, JSON that parses. (tests/e2e/test_docs_examples.py runs them.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from app.config import DEFAULTS, load_settings
from tests.docs_examples import blocks

RUFF = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))


@pytest.mark.parametrize("block", blocks("python"), ids=lambda b: b.name)
def test_python_blocks_are_formatted_as_ruff_formats_them(block):
    result = subprocess.run([RUFF, "format", "--diff", "--stdin-filename", "example.py", "-"], input=block.code,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("block", blocks("toml"), ids=lambda b: b.name)
def test_toml_blocks_parse_and_configurations_load(block, tmp_path):
    parsed = tomllib.loads(block.code)
    if parsed and set(parsed) <= set(DEFAULTS):  # a configuration file, not a rules file
        load_settings(overrides=parsed, environ={}, folder=tmp_path)


@pytest.mark.parametrize("block", blocks("json"), ids=lambda b: b.name)
def test_json_blocks_parse(block):
    json.loads(block.code)
