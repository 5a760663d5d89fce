"""Spec strings: literal values only, case-insensitive names, errors that point at the text."""

from __future__ import annotations

import ast

import pytest

from descentlab.specs import SpecError, build_from_spec, format_spec, parse_spec, resolve_name


@pytest.mark.parametrize("text,name,values", [
    ("adam(lr=0.1)", "adam", {"lr": "0.1"}),
    ("SGD(lr=0.05, momentum=0.9, nesterov=True)", "SGD",
     {"lr": "0.05", "momentum": "0.9", "nesterov": "True"}),
    ("  adam ( betas=(0.9, 0.99), eps=1e-8 ) ", "adam", {"betas": "(0.9, 0.99)", "eps": "1e-8"}),
    ("two-minima", "two-minima", {}),
    ("lbfgs(line_search_fn='strong_wolfe', history_size=[1, 2])", "lbfgs",
     {"line_search_fn": "'strong_wolfe'", "history_size": "[1, 2]"}),
    ("torch.adam(lr=-0.5)", "torch.adam", {"lr": "-0.5"}),
])
def test_values_are_python_literals(text, name, values):
    parsed_name, kwargs = parse_spec(text)
    assert parsed_name == name
    assert kwargs == {key: ast.literal_eval(value) for key, value in values.items()}


@pytest.mark.parametrize("text,column,fragment", [
    ("adam(lr=x*2)", 9, "x*2"),
    ("adam(lr=__import__('os').getcwd())", 9, "__import__"),
    ("adam(0.1)", 6, "0.1"),
    ("adam(lr=0.1", 5, "(lr=0.1"),
    ("adam(lr=0.1) + 1", 14, "+ 1"),
    ("adam[lr=1]", 5, "[lr=1]"),
    ("(lr=1)", 1, "(lr=1)"),
])
def test_malformed_specs_point_at_the_offending_text(text, column, fragment):
    with pytest.raises(SpecError) as error:
        parse_spec(text, kind="optimizer")
    message = str(error.value)
    assert "\n" not in message
    assert f"column {column}" in message
    assert fragment in message
    assert text[column - 1:].startswith(fragment[0])


def test_nothing_is_evaluated(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(SpecError):
        parse_spec(f"sgd(lr=open({str(marker)!r}, 'w'))")
    assert not marker.exists()


REGISTRY = {"adam": lambda params, lr=1e-3, betas=(0.9, 0.999): (params, lr, betas),
            "adamax": lambda params, lr=2e-3: (params, lr),
            "sgd": lambda params, lr=1e-3, momentum=0.0: (params, lr, momentum)}


def test_names_are_case_insensitive():
    assert resolve_name("ADAM", REGISTRY) == "adam"
    assert build_from_spec("SGD(lr=0.5, momentum=0.9)", REGISTRY, "optimizer", "P") == ("P", 0.5, 0.9)


def test_unknown_name_lists_the_valid_ones_and_the_closest():
    with pytest.raises(SpecError) as error:
        build_from_spec("sdg(lr=0.1)", REGISTRY, "optimizer", "P")
    message = str(error.value)
    assert "did you mean 'sgd'" in message
    assert "valid names: adam, adamax, sgd" in message


def test_unknown_key_lists_the_valid_keys_and_the_closest():
    with pytest.raises(SpecError) as error:
        build_from_spec("adam(lr=0.1, beta=(0.9, 0.9))", REGISTRY, "optimizer", "P")
    message = str(error.value)
    assert "unknown key 'beta'" in message and "did you mean 'betas'" in message
    assert "valid keys: lr, betas" in message
    assert "column 14" in message  # where 'beta=' starts


def test_factory_value_errors_become_one_line_spec_errors():
    def strict(params, lr=0.1):
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}\nmore detail")
        return lr

    with pytest.raises(SpecError, match=r"^optimizer spec 'strict\(lr=-1\)': lr must be > 0, got -1$"):
        build_from_spec("strict(lr=-1)", {"strict": strict}, "optimizer", "P")


def test_format_spec_round_trips():
    text = format_spec("Adam", {"lr": 0.1, "betas": (0.9, 0.99)})
    assert text == "Adam(lr=0.1, betas=(0.9, 0.99))"
    assert parse_spec(text) == ("Adam", {"lr": 0.1, "betas": (0.9, 0.99)})
