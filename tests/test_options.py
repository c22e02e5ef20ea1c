"""One description of every option: the CLI, the HTTP request and the WebUI derive theirs."""

import pytest

from gpen_ext import cli
from gpen_ext.hosts.api import RestoreRequest
from gpen_ext.options import (CHOICE, INTEGER, MODEL, NUMBER, PRECISION, RestoreOptions,
                              restore_option_list)
from helpers import ROOT


def test_every_option_is_described_with_its_limits():
    options = restore_option_list()
    assert [option.name for option in options][:3] == ["weight", "visibility", "face_selection"]
    for option in options:
        assert option.help and option.label
        assert option.check(option.default) == option.default
        if option.kind in (INTEGER, NUMBER):
            assert option.minimum <= option.default <= option.maximum
        if option.kind == CHOICE:
            assert option.default in option.choices


def test_the_command_line_takes_every_option_and_its_limits():
    parser = cli.build_parser()
    args = parser.parse_args(["restore", "in.png", "-o", "out", "--batch-size", "64",
                              "--face-indices", "3", "1", "--no-color-correction",
                              "--select", "largest", "--threshold", "0.5",
                              "--face-regions", "skin", "nose"])
    options = cli.options_from(args)
    assert options.batch_size == 64 and options.face_indices == (3, 1)
    assert options.face_regions == ("skin", "nose")
    with pytest.raises(SystemExit):
        parser.parse_args(["restore", "in.png", "-o", "out", "--face-regions", "teeth"])
    assert options.face_selection == "largest" and options.detection_threshold == 0.5
    flags = {action.dest for action in parser._subparsers._group_actions[0].choices[
        "restore"]._actions}
    assert {option.name for option in restore_option_list()} <= flags
    too_large = parser.parse_args(["restore", "in.png", "-o", "out", "--batch-size", "65"])
    with pytest.raises(cli.UsageError, match=r"batch_size must be in \[1, 64\]"):
        cli.options_from(too_large)


def test_the_http_request_has_every_option_with_the_same_limits():
    """Every option that acts on a single image; those for a clip's frames only are not
    offered where only single images arrive."""
    schema = RestoreRequest.model_json_schema() if hasattr(RestoreRequest, "model_json_schema") \
        else RestoreRequest.schema()
    properties = schema["properties"]
    frames_only = [option.name for option in restore_option_list() if option.frames_only]
    assert frames_only == ["temporal_smoothing"]
    assert not set(frames_only) & set(properties)
    for option in [MODEL, PRECISION, *restore_option_list()]:
        if option.frames_only:
            continue
        assert option.name in properties
        text = str(properties[option.name])
        if option.minimum is not None:
            assert f"'maximum': {option.maximum}" in text and f"'minimum': {option.minimum}" in text
        for choice in option.choices:
            assert choice in text


def test_a_value_beyond_the_limits_is_refused_the_same_way_everywhere():
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, 64\]"):
        RestoreOptions(batch_size=65)
    with pytest.raises(Exception, match=r"batch_size must be in \[1, 64\]"):  # the same words
        RestoreRequest(image="", batch_size=65)
    with pytest.raises(ValueError, match="face_regions: each must be one of"):
        RestoreOptions(face_regions=("teeth",))
    with pytest.raises(ValueError, match="face_regions needs at least one"):
        RestoreOptions(face_regions=())
    with pytest.raises(Exception, match="teeth"):
        RestoreRequest(image="", face_regions=["teeth"])


def test_list_options_read_and_write_text_the_same_way_for_every_host():
    options = {option.name: option for option in restore_option_list()}
    numbers, regions = options["face_indices"], options["face_regions"]
    assert numbers.from_text("2, 0 5") == (2, 0, 5) and numbers.from_text("") == ()
    assert regions.from_text("skin,nose") == ("skin", "nose")
    assert numbers.from_text(numbers.to_text((3, 1))) == (3, 1)
    with pytest.raises(ValueError, match="face numbers are whole numbers"):
        numbers.from_text("first")
    with pytest.raises(ValueError, match="each must be one of"):
        regions.from_text("skin, teeth")


def test_settings_are_laid_over_with_none_keeping_each_setting():
    from gpen_ext.options import HOST_OPTIONS, Settings
    host = Settings().overlay(model="GPEN-BFR-1024", weight=0.4, face_indices=(2,))
    request = host.overlay(model=None, weight=None, visibility=0.5, precision="fp32",
                           keep_crops=False)
    assert (request.model, request.precision) == ("GPEN-BFR-1024", "fp32")
    assert (request.options.weight, request.options.visibility) == (0.4, 0.5)
    assert request.options.face_indices == (2,) and not request.options.keep_crops
    assert [request.value(option) for option in HOST_OPTIONS][:3] == ["GPEN-BFR-1024", 0.4, 0.5]
    with pytest.raises(ValueError, match="precision must be one of"):
        host.overlay(precision="fp64")
    with pytest.raises(ValueError, match="model must be a name"):
        host.overlay(model="  ")


def test_where_an_option_applies_is_described_with_it():
    from gpen_ext.options import FACE_NUMBERS, LIST_KINDS, NAMES
    options = {option.name: option for option in restore_option_list()}
    assert [name for name, option in options.items() if option.aligned] == \
        ["weight", "color_correction", "batch_size"]
    assert [name for name, option in options.items() if option.parsing_mask] == \
        ["parser", "face_regions"]
    assert (options["face_indices"].kind, options["face_regions"].kind) == (FACE_NUMBERS, NAMES)
    assert {option.type for option in options.values() if option.kind in LIST_KINDS} == {tuple}
    changed = RestoreOptions(face_regions=("skin",))
    assert [option.name for option in changed.unused_with_box_mask()] == ["face_regions"]
    assert RestoreOptions().unused_with_box_mask() == []


@pytest.mark.parametrize("name", ["min_face_size", "max_faces", "batch_size",
                                  "temporal_smoothing", "weight"])
def test_a_number_no_float_holds_is_refused_as_out_of_range(name):
    """An integer of 400 digits is no overflow inside the check: it is out of range."""
    for value in (10 ** 400, -10 ** 400):
        with pytest.raises(ValueError, match=rf"{name} must be in .*digits\)"):
            RestoreOptions(**{name: value})


def test_the_webui_infotext_is_written_without_the_webui():
    """The WebUI adapter's pure part (hosts/webui_settings.py) imports no host: its infotext
    is checked here with no stand-in WebUI."""
    import subprocess
    import sys

    import numpy as np

    from gpen_ext.hosts.webui_settings import infotext, setting_key
    from gpen_ext.options import MODEL, Settings
    from gpen_ext.results import RestoreResult
    code = ("import sys, gpen_ext.hosts.webui_settings, gpen_ext.hosts.controls\n"
            "assert not {'modules', 'gradio'} & set(sys.modules), 'a host was imported'")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
    settings = Settings(options=RestoreOptions(weight=0.5, face_indices=(0, 2)))
    result = RestoreResult(np.zeros((8, 8, 3), np.uint8), [], found=3, chosen=2,
                           interrupted=True)
    assert infotext(settings, result) == {
        "GPEN model": "GPEN-BFR-512", "GPEN weight": 0.5, "GPEN visibility": 1.0,
        "GPEN face numbers": "0, 2", "GPEN faces": "0 of 2 face(s) restored (3 found)",
        "GPEN stopped": "after 0 of 2 faces"}
    assert setting_key(MODEL) == "gpen_model"
