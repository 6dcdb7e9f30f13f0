"""Option groups declared once: each setting's default, kind, choices, limits and help text live on its
dataclass field, and everything else is generated from there - the command-line flags, the sweep's value
parser, the web form and its schema, and the checks with their error messages.

    @dataclass
    class Example:
        size: int = option(512, "long side of the output in pixels", above=0)
        pooling: str = option("max", "VGG19 pooling", choices=("max", "avg"))

    check(Example(size=-1))          # OptionError: size must be a whole number > 0, got -1

An OptionError names the field (``style_weight``), which is what the Python API and the web API call it;
the command line prints the same message with the flag instead (``--style-weight``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .errors import NeuralensError

KINDS = ("int", "float", "str", "bool", "floats", "layers", "path")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
NONE_WORDS = frozenset({"none", "null", ""})


class OptionError(NeuralensError):
    """A bad option value. ``str()`` names the field (API, web); ``cli_message()`` names the flag."""

    def __init__(self, name: str, problem: str, flag: Optional[str] = None):
        self.name = name
        self.problem = problem
        self.flag = flag or "--" + name.replace("_", "-")
        super().__init__(f"{name} {problem}")

    def cli_message(self) -> str:
        return f"{self.flag} {self.problem}"


@dataclass(frozen=True)
class Spec:
    """What one option is. ``kind``: int, float, str, bool, floats (a list of numbers), layers (a layer list
    such as 'relu1_1:0.5,relu2_1'), path (a file). ``minimum``/``maximum`` are inclusive, ``above`` is an
    exclusive lower limit. ``nullable``: None is allowed (its meaning goes in ``none_help``).

    ``cli``: True when the command line gets a generated flag, False when the option is not on it, or the
    text of the hand-written way to set it (e.g. '--quiet' or 'STYLE:MASK'). ``web``: True when the web
    form offers it, or the reason it does not (a server-side path, a server setting)."""

    help: str
    kind: str = "str"
    choices: Optional[Tuple[Any, ...]] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    above: Optional[float] = None
    nullable: bool = False
    none_help: str = ""
    flag: Optional[str] = None
    metavar: Optional[str] = None
    cli: Any = True
    web: Any = True
    sweep: bool = True
    check: Optional[Callable[[Any], Any]] = None  # more checks; raises NeuralensError with a plain problem


def option(default: Any, help: str, kind: Optional[str] = None, **spec: Any) -> Any:
    """A dataclass field with its Spec (``kind`` defaults to the default's type). Returns the field."""
    if kind is None:
        kind = {bool: "bool", int: "int", float: "float"}.get(type(default), "str")
    if kind not in KINDS:
        raise ValueError(f"unknown option kind {kind!r}")
    if default is None:
        spec.setdefault("nullable", True)
    return dataclasses.field(default=default, metadata={"spec": Spec(help=help, kind=kind, **spec)})


def specs(cls_or_obj: Any) -> Dict[str, Spec]:
    """{field name: Spec} of an options dataclass, in declaration order (fields without a Spec left out)."""
    return {f.name: f.metadata["spec"] for f in dataclasses.fields(cls_or_obj) if "spec" in f.metadata}


def defaults(cls: Any) -> Dict[str, Any]:
    """{field name: default value} of an options dataclass."""
    return {f.name: f.default for f in dataclasses.fields(cls) if "spec" in f.metadata}


def flag_of(name: str, spec: Spec) -> str:
    return spec.flag or "--" + name.replace("_", "-")


def _number_words(spec: Spec) -> str:
    whole = spec.kind == "int"
    noun = "a whole number" if whole else "a number"
    limits = []
    if spec.above is not None:
        limits.append(f"> {spec.above:g}")
    if spec.minimum is not None:
        limits.append(f">= {spec.minimum:g}")
    if spec.maximum is not None:
        limits.append(f"<= {spec.maximum:g}")
    return noun + (" " + " and ".join(limits) if limits else "")


def _check_number(name: str, spec: Spec, value: Any, flag: str) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and spec.kind == "int":
        ok = float(value).is_integer()
    if ok and spec.above is not None:
        ok = value > spec.above
    if ok and spec.minimum is not None:
        ok = value >= spec.minimum
    if ok and spec.maximum is not None:
        ok = value <= spec.maximum
    if not ok:
        raise OptionError(name, f"must be {_number_words(spec)}, got {value!r}", flag)


def check_value(name: str, spec: Spec, value: Any) -> Any:
    """Check one value against its Spec; return it (ints as int). Raises OptionError naming ``name``."""
    flag = flag_of(name, spec)
    if value is None:
        if spec.nullable:
            return None
        raise OptionError(name, "must be given", flag)
    if spec.choices is not None:
        if value not in spec.choices:
            shown = ", ".join(str(c) for c in spec.choices)
            raise OptionError(name, f"must be one of {shown}, got {value!r}", flag)
    elif spec.kind in ("int", "float"):
        _check_number(name, spec, value, flag)
        value = int(value) if spec.kind == "int" else value
    elif spec.kind == "bool":
        if not isinstance(value, bool):
            raise OptionError(name, f"must be true or false, got {value!r}", flag)
    elif spec.kind == "floats":
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise OptionError(name, f"must be a list of numbers, got {value!r}", flag)
        value = list(value)
        item = dataclasses.replace(spec, kind="float", nullable=False)
        for v in value:
            _check_number(name, item, v, flag)
    if spec.check is not None:
        try:
            spec.check(value)
        except OptionError:
            raise
        except NeuralensError as exc:
            raise OptionError(name, str(exc), flag) from None
    return value


def check(obj: Any) -> Any:
    """Check every field of an options dataclass instance; raise OptionError for the first bad one.
    Returns ``obj``."""
    for name, spec in specs(obj).items():
        check_value(name, spec, getattr(obj, name))
    return obj


def parse_text(name: str, spec: Spec, text: str) -> Any:
    """A value of option ``name`` from its text (command line, sweep, form): numbers accept 1e3, lists take
    commas, 'none' gives None where allowed. Raises OptionError for text of the wrong kind; limits are
    checked by ``check_value``."""
    text = text.strip()
    if spec.nullable and text.lower() in NONE_WORDS:
        return None
    try:
        if spec.kind == "bool":
            if text.lower() not in TRUE_WORDS | FALSE_WORDS:
                raise ValueError
            return text.lower() in TRUE_WORDS
        if spec.kind == "int":
            number = float(text)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if spec.kind == "float":
            return float(text)
        if spec.kind == "floats":
            return [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except (ValueError, OverflowError):
        kind = {"bool": "true or false", "int": "a whole number", "float": "a number"}.get(
            spec.kind, "numbers separated by commas"
        )
        raise OptionError(name, f"expected {kind}, got {text[:60]!r}", flag_of(name, spec)) from None
    return text


def _describe_default(spec: Spec, default: Any) -> str:
    if default is None:
        return spec.none_help or "none"
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float):
        return f"{default:g}"
    if isinstance(default, (list, tuple)):
        return ",".join(str(v) for v in default)
    return str(default)


def help_text(spec: Spec, default: Any) -> str:
    """The option's help with its default, e.g. 'style strength, beta (default 5000)'."""
    return f"{spec.help} (default {_describe_default(spec, default)})".replace("%", "%%")


class _ParseText(argparse.Action):
    """Turns the text into a value with ``parse_text`` so the command line reads values as the API does."""

    def __init__(self, option_strings, dest, field_name: str = "", spec: Optional[Spec] = None, **kwargs):
        self.field_name, self.spec = field_name, spec
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        text = ",".join(values) if isinstance(values, list) else values
        try:
            value = parse_text(self.field_name, self.spec, text)
        except OptionError as exc:
            raise argparse.ArgumentError(self, exc.problem) from None
        setattr(namespace, self.dest, value)


def add_arguments(
    parser: Any,
    cls: Any,
    only: Optional[Sequence[str]] = None,
    exclude: Sequence[str] = (),
    defaults_from: Any = None,
    helps: Optional[Dict[str, str]] = None,
) -> List[str]:
    """Add a flag for every option of ``cls`` that has one (``only``: just these; ``exclude``: not these) to
    an argparse parser or group; ``defaults_from`` (an instance) overrides the defaults shown and used, ``helps``
    ({field: text}) the help of a flag whose meaning differs for this command.
    Returns the field names added (their values land under the field name)."""
    added = []
    base = defaults_from if defaults_from is not None else None
    for name, spec in specs(cls).items():
        if spec.cli is not True or name in exclude or (only is not None and name not in only):
            continue
        default = getattr(base, name) if base is not None else dataclasses.fields(cls)[_index(cls, name)].default
        text = (helps or {}).get(name) or help_text(spec, default)
        kwargs: Dict[str, Any] = {"dest": name, "default": default, "help": text}
        if spec.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif spec.choices is not None:
            kwargs["choices"] = [c for c in spec.choices if c is not None]
        else:
            kwargs.update(action=_ParseText, field_name=name, spec=spec, metavar=spec.metavar or _metavar(spec))
            if spec.kind == "floats":
                kwargs["nargs"] = "+"
        parser.add_argument(flag_of(name, spec), **kwargs)
        added.append(name)
    return added


def _index(cls: Any, name: str) -> int:
    return [f.name for f in dataclasses.fields(cls)].index(name)


def _metavar(spec: Spec) -> str:
    return {"int": "N", "float": "X", "floats": "W", "layers": "LAYERS", "path": "PATH", "bool": "BOOL"}.get(
        spec.kind, "TEXT"
    )


def values_from(args: argparse.Namespace, cls: Any) -> Dict[str, Any]:
    """The fields of ``cls`` found in parsed arguments (as added by ``add_arguments``)."""
    names = set(specs(cls))
    return {k: v for k, v in vars(args).items() if k in names}


def web_fields(cls: Any) -> List[Dict[str, Any]]:
    """The options the web form offers, as JSON-ready dicts: name, kind, default, nullable, choices,
    minimum, maximum, above, help. The page builds its form from these and the API's form schema and
    checks come from the same Specs."""
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("spec")
        if spec is None or spec.web is not True:
            continue
        out.append(
            {
                "name": f.name,
                "kind": spec.kind,
                "default": f.default,
                "nullable": spec.nullable,
                "choices": list(spec.choices) if spec.choices is not None else None,
                "minimum": spec.minimum,
                "maximum": spec.maximum,
                "above": spec.above,
                "help": spec.help,
                "none_help": spec.none_help or None,
            }
        )
    return out
