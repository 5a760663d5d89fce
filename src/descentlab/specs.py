"""Safe parsing of ``name(key=value, ...)`` spec strings, as typed on the command line.

``adam(lr=0.1)``, ``SGD(lr=0.05, momentum=0.9)``, ``quadratic(kappa=100)``, ``two-minima``: a name
(letters, digits, ``_``, ``-``, ``.``) optionally followed by keyword arguments whose values are Python
literals (numbers, strings, ``True``/``False``/``None``, tuples, lists, dicts) read with
:func:`ast.literal_eval` — nothing is ever evaluated. Names are case-insensitive.

Every error is a one-line :class:`SpecError` (a ``ValueError``) that quotes the spec, gives the column
and the offending text, and for unknown names or keys lists the valid ones with the closest match.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "SpecError", "parse_spec", "typed_values", "resolve_name", "check_keywords", "required_keywords",
    "build_from_spec", "format_spec",
]

_NAME = re.compile(r"\s*([A-Za-z_][\w.\-]*)\s*")
_LITERALS = "a literal (number, string, True/False/None, tuple, list or dict)"


class SpecError(ValueError):
    """A spec string that cannot be used; the message is one line and points at the offending text."""


def _fail(kind: str, spec: str, message: str, column: int | None = None, fragment: str | None = None) -> None:
    where = ""
    if column is not None:
        where = f" at column {column}" + (f" ({fragment!r})" if fragment else "")
    raise SpecError(f"{kind} spec {spec!r}{where}: {message}")


def parse_spec(spec: str, kind: str = "spec") -> tuple[str, dict[str, Any]]:
    """Split ``"name(key=value, ...)"`` into ``(name, {key: value})``; values must be literals."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"{kind} spec must be a non-empty string like 'name(key=value)', got {spec!r}")
    match = _NAME.match(spec)
    if match is None:
        first = len(spec) - len(spec.lstrip())
        _fail(kind, spec, "expected a name like 'adam' or 'sgd(lr=0.1)'", first + 1, spec.strip()[:12])
    name, rest = match.group(1), spec[match.end() :]
    if not rest.strip():
        return name, {}
    if not rest.startswith("("):
        _fail(kind, spec, "expected '(' after the name", match.end() + 1, rest.strip()[:12])
    shift = match.end() - 1  # source = "f" + rest, so source column c is spec column c + shift
    source = "f" + rest
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        column = (error.offset or 1) + shift
        fragment = spec[column - 1 : column + 9] if column <= len(spec) else "end of text"
        _fail(kind, spec, f"malformed: {error.msg}", column, fragment)
    call = next(
        (n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
         and n.func.id == "f" and n.col_offset == 0),
        None,
    )
    assert call is not None  # "f(" always parses as a call when the whole text parses
    if call is not tree.body:
        end = call.end_col_offset + shift
        column = end + len(spec[end:]) - len(spec[end:].lstrip()) + 1
        _fail(kind, spec, "unexpected text after the closing ')'", column, spec[column - 1 :].strip()[:12])
    if call.args:
        node = call.args[0]
        text = ast.get_source_segment(source, node)
        _fail(kind, spec, "write arguments as key=value", node.col_offset + shift + 1, text)
    kwargs: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            _fail(kind, spec, "'**' is not allowed; write key=value", keyword.col_offset + shift + 1, "**")
        if keyword.arg in kwargs:
            _fail(kind, spec, f"the key {keyword.arg!r} is given twice; give each key once",
                  keyword.col_offset + shift + 1, ast.get_source_segment(source, keyword))
        try:
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            text = ast.get_source_segment(source, keyword.value)
            _fail(kind, spec, f"the value of {keyword.arg} must be {_LITERALS}",
                  keyword.value.col_offset + shift + 1, text)
    return name, kwargs


def typed_values(spec: str) -> dict[str, str]:
    """The text typed for each key of a spec that :func:`parse_spec` accepts: ``{"lr": "1e400"}``.

    Error messages quote it, since the parsed value may read differently (``1e400`` is ``inf``).
    """
    parse_spec(spec)
    name = _NAME.match(spec)
    source = "f" + spec[name.end():] if name else ""
    if not source.strip("f").strip():
        return {}
    call = ast.parse(source, mode="eval").body
    return {k.arg: ast.get_source_segment(source, k.value) or "" for k in call.keywords if k.arg}


def _closest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=2, cutoff=0.5)
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""


def resolve_name(name: str, registry: Mapping[str, Any], kind: str = "spec", spec: str | None = None) -> str:
    """The registry key for ``name`` (case-insensitive, ``_`` and ``-`` alike), or a :class:`SpecError`."""
    wanted = name.lower().replace("_", "-")
    by_normal = {key.lower().replace("_", "-"): key for key in registry}
    if wanted in by_normal:
        return by_normal[wanted]
    spec = name if spec is None else spec
    column = spec.find(name) + 1 if name in spec else None
    _fail(kind, spec, f"unknown {kind} {name!r}; {_closest(wanted, by_normal)}"
          f"valid names: {', '.join(sorted(registry))}", column)
    raise AssertionError  # unreachable


def accepted_keywords(factory: Callable[..., Any], skip: int = 0) -> list[str] | None:
    """The keyword names ``factory`` accepts after its first ``skip`` parameters; ``None`` if any."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())[skip:]
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def required_keywords(factory: Callable[..., Any], skip: int = 0) -> list[str]:
    """The keyword names ``factory`` needs (no default) after its first ``skip`` parameters."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())[skip:]
    except (TypeError, ValueError):
        return []
    return [p.name for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is inspect.Parameter.empty]


def check_keywords(
    factory: Callable[..., Any], kwargs: Mapping[str, Any], kind: str, name: str, spec: str, skip: int = 0
) -> None:
    """Raise a :class:`SpecError` naming the valid keys if ``kwargs`` has one ``factory`` does not take."""
    valid = accepted_keywords(factory, skip)
    if valid is None:
        return
    for key in kwargs:
        if key not in valid:
            match = re.search(rf"\b{re.escape(key)}\s*=", spec)
            column = match.start() + 1 if match else None
            listing = ", ".join(valid) if valid else "none"
            _fail(kind, spec, f"unknown key {key!r} for {name}; {_closest(key, valid)}valid keys: {listing}",
                  column)
    missing = [key for key in required_keywords(factory, skip) if key not in kwargs]
    if missing:
        names = " and ".join(missing)
        example = ", ".join(f"{key}=..." for key in missing)
        _fail(kind, spec, f"{name} needs {names}, which the spec does not give; write {name}({example})")


def build_from_spec(spec: str, registry: Mapping[str, Callable[..., Any]], kind: str, *args: Any) -> Any:
    """Parse ``spec``, look its name up in ``registry`` and call the factory with ``*args, **kwargs``.

    A ``ValueError`` raised by the factory (an out-of-range hyperparameter) is re-raised as a one-line
    :class:`SpecError` that quotes the spec.
    """
    name, kwargs = parse_spec(spec, kind)
    key = resolve_name(name, registry, kind, spec)
    factory = registry[key]
    check_keywords(factory, kwargs, kind, key, spec, skip=len(args))
    try:
        return factory(*args, **kwargs)
    except SpecError:
        raise
    except (ValueError, TypeError) as error:
        raise SpecError(f"{kind} spec {spec!r}: {_quoting_what_was_typed(error, spec, kwargs)}") from error


def _quoting_what_was_typed(error: Exception, spec: str, kwargs: Mapping[str, Any]) -> str:
    """The error's first line, with the text typed for the keys it names when that reads differently
    from the parsed value (``1e400`` became ``inf``)."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    typed = typed_values(spec)
    quoted = [f"{key}={text}" for key, text in typed.items()
              if re.search(rf"\b{re.escape(key)}\b", message) and text != repr(kwargs.get(key))]
    return message + (f" (typed: {', '.join(quoted)})" if quoted else "")


def format_spec(name: str, kwargs: Mapping[str, Any]) -> str:
    """The canonical text of a spec: ``Adam(lr=0.1, betas=(0.9, 0.99))``."""
    inside = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
    return f"{name}({inside})" if kwargs else name
