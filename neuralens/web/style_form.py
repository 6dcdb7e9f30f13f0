"""The options form of ``POST /api/jobs``, generated from the ``StyleOptions`` specs.

The job's options are not written out by hand: the form fields are generated from the ``StyleOptions``
fields whose Spec says ``web=True`` (type, default, limits, choices and help), so the form, its OpenAPI
schema, ``/api/info`` (from which the page builds its settings) and the CLI never disagree. This module
holds that generation (``options_form``, a FastAPI dependency), the list ``/api/info`` gives the page
(``option_fields``) and the way back from the form's values to ``StyleOptions`` (``options_from_form``).
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Literal, Optional

from fastapi import Form

from ..options import Spec, defaults, parse_text, specs, web_fields
from ..style import StyleOptions
from ..style.options import INITS

# The options the web form offers, and what the web changes about them: `init` may also be an image path
# on the command line, which a web request must never name, so the form offers only the named starts.
WEB_SPECS: Dict[str, Spec] = {name: spec for name, spec in specs(StyleOptions).items() if spec.web is True}
WEB_CHOICES: Dict[str, tuple] = {"init": tuple(INITS)}
WEB_HELP: Dict[str, str] = {"init": "starting image: content, noise or style (an image file is for the command line)"}
DEFAULTS: Dict[str, Any] = defaults(StyleOptions)
# The word a form may send for None in a nullable choice (e.g. preserve_color=none), as on the command line.
NONE_WORD = "none"


def web_choices(name: str, spec: Spec) -> Optional[List[Any]]:
    """The values the form accepts for a choice field (None spelled NONE_WORD), else None."""
    choices = WEB_CHOICES.get(name, spec.choices)
    if choices is None:
        return None
    return [NONE_WORD if c is None else c for c in choices]


def option_fields() -> List[dict]:
    """The web form's options (``neuralens.options.web_fields``, with the web's own choices): /api/info
    gives these to the page, which builds its settings from them."""
    fields = []
    for field in web_fields(StyleOptions):
        name = field["name"]
        fields.append(
            {**field, "choices": web_choices(name, WEB_SPECS[name]), "help": WEB_HELP.get(name, field["help"])}
        )
    return fields


def _form_type(name: str, spec: Spec):
    choices = web_choices(name, spec)
    if choices is not None:
        kind = Literal[tuple(c for c in choices if c != NONE_WORD or spec.nullable)]
    else:
        # layers ('relu1_1,relu2_1') and floats ('0.7,0.3') travel as text and are parsed like the CLI's.
        kind = {"int": int, "float": float, "bool": bool}.get(spec.kind, str)
    return Optional[kind] if spec.nullable else kind


def _form_description(name: str, spec: Spec) -> str:
    text = WEB_HELP.get(name, spec.help)
    if spec.nullable:
        text += f" (empty: {spec.none_help or 'none'})"
    if spec.kind == "floats":
        text += "; numbers separated by commas, e.g. 0.7,0.3"
    return text


def _form_field(name: str, spec: Spec):
    limits = {
        key: value
        for key, value in (("ge", spec.minimum), ("le", spec.maximum), ("gt", spec.above))
        if value is not None and spec.kind in ("int", "float")
    }
    if spec.kind == "float":
        limits["allow_inf_nan"] = False
    return Form(DEFAULTS[name], description=_form_description(name, spec), **limits)


def options_form():
    """A FastAPI dependency whose parameters are the web options as form fields (generated, see above);
    it returns {name: value as sent}."""

    def read(**values: Any) -> Dict[str, Any]:
        return values

    read.__signature__ = inspect.Signature(
        [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=_form_field(name, spec), annotation=_form_type(name, spec)
            )
            for name, spec in WEB_SPECS.items()
        ]
    )
    return read


def options_from_form(values: Dict[str, Any], device: str) -> StyleOptions:
    """StyleOptions from the form's values: text parsed as the CLI parses it, every value checked by
    ``StyleOptions.validate`` (an OptionError naming the field)."""
    parsed = {}
    for name, value in values.items():
        spec = WEB_SPECS[name]
        if value == NONE_WORD and spec.nullable and spec.choices is not None:
            value = None
        elif isinstance(value, str) and spec.kind == "floats":
            value = parse_text(name, spec, value)
        parsed[name] = value
    return StyleOptions(**parsed, device=device).validate()
