"""One source for every option: the StyleOptions declarations drive the flags, the sweep and the checks."""

import dataclasses

import pytest

from neuralens import cli, options
from neuralens.options import OptionError
from neuralens.style import StyleOptions
from neuralens.visualize.sweeps import convert_value, option_fields


def _default_text(value):
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def test_every_field_is_on_the_stylize_command_line_with_its_default(capsys):
    assert cli.main(["stylize", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    parser = cli.build_parser()
    stylize = parser._subparsers._group_actions[0].choices["stylize"]  # argparse keeps no public map
    defaults = {a.dest: a.default for a in stylize._actions}
    for f in dataclasses.fields(StyleOptions):
        spec = f.metadata["spec"]
        if spec.cli is True:
            flag = options.flag_of(f.name, spec)
            assert flag in text, flag
            assert defaults[f.name] == f.default, f.name
        else:
            assert isinstance(spec.cli, str) and spec.cli in text, f.name  # its hand-written way to set it


def test_every_sweepable_field_converts_its_default_back():
    fields = option_fields()
    for f in dataclasses.fields(StyleOptions):
        spec = f.metadata["spec"]
        if not spec.sweep:
            assert f.name not in fields
            continue
        assert convert_value(f.name, _default_text(f.default)) == f.default, f.name


def test_every_field_has_help_and_a_web_decision():
    for f in dataclasses.fields(StyleOptions):
        spec = f.metadata["spec"]
        assert spec.help, f.name
        assert spec.web is True or (isinstance(spec.web, str) and spec.web), f.name


def test_errors_name_the_field_and_the_cli_names_the_flag(tmp_path, capsys):
    with pytest.raises(OptionError) as info:
        StyleOptions(max_memory_gb=-1).validate()
    assert str(info.value).startswith("max_memory_gb ")
    assert info.value.cli_message().startswith("--max-memory ")
    assert cli.main(["stylize", "a.jpg", "b.jpg", "-o", str(tmp_path / "o.png"), "--max-memory", "-1"]) == 2
    assert "error: --max-memory must be a number > 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "field, value, problem",
    [
        ("size", 1.5, "whole number > 0"),
        ("optimizer", "sgd", "one of lbfgs, adam"),
        ("style_blend", [0, 0], "must not all be 0"),
        ("style_blend", [1, -1], ">= 0"),
        ("tile_size", 10, r"0 \(never tile\)"),
        ("channels_last", "yes", "true or false"),
    ],
)
def test_checks_come_from_the_declarations(field, value, problem):
    with pytest.raises(OptionError, match=problem) as info:
        StyleOptions(**{field: value}).validate()
    assert info.value.name == field


def test_to_dict_is_json_ready():
    import json

    data = StyleOptions(style_blend=(1, 2)).to_dict()
    assert json.loads(json.dumps(data))["style_blend"] == [1, 2]
    assert "progress" not in data and set(data) == {f.name for f in dataclasses.fields(StyleOptions)} - {"progress"}
