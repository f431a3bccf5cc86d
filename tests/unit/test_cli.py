"""The command's flags: each declared once (app.cli.FLAGS), each setting the config key it names."""

from __future__ import annotations

import pytest

from app.cli import FLAGS, build_parser, overrides_from
from app.config import load_settings

SAMPLES = {int: "7", float: "2.5"}


@pytest.mark.parametrize("flag", [f for f in FLAGS if f.key is not None], ids=lambda f: f.names[-1])
def test_each_flag_sets_its_config_key_and_the_loader_accepts_it(flag, tmp_path):
    options = flag.options
    if flag.switch is not None:
        argv = [flag.names[-1]]
    else:
        value = options.get("choices", [None])[0] or SAMPLES.get(options.get("type"), "5s")
        if options.get("metavar") in ("PATH", "FILE", "DIR"):
            value = str(tmp_path / "file")
        elif options.get("metavar") == "MIX":
            value = "429:1"
        elif options.get("metavar") in ("URL",):
            value = "http://127.0.0.1:1"
        argv = [flag.names[-1], value]
    layer = overrides_from(build_parser().parse_args(argv))
    section, key = flag.key
    assert list(layer) == [section] and list(layer[section]) == [key]
    if flag.switch is not None:
        assert layer[section][key] is flag.switch
    if key in ("cert_path", "key_path", "ca_cert_path", "rules_path", "scenario", "dir", "upstream"):
        return  # these need real files, a known scenario or a reachable upstream to load
    load_settings(overrides=layer, environ={}, folder=tmp_path)


def test_no_flag_means_no_layer():
    assert overrides_from(build_parser().parse_args([])) == {}
