"""The API's one parser. Kept apart from core.api: DRF imports it while loading its views."""

import math
from typing import Any

from django.utils.translation import gettext as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError

# Far beyond any bot payload, far below where Python's JSON encoder runs out of stack.
MAX_JSON_DEPTH = 32


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing up front the bodies that would only fail later, as a
    500: nesting the encoder cannot recurse through, lone surrogates (not UTF-8, so no
    database driver takes them) and numbers like 1e400 (read as infinity, which is not
    JSON, so no database stores it)."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_("JSON parse error - nested too deeply.")) from None
        if problem := _json_problem(data):
            raise ParseError(problem)
        return data


def _json_problem(data: Any) -> str | None:
    """What makes a parsed body unusable, as the client's error message, walked without
    recursion; None if nothing."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return _("JSON parse error - nested deeper than %(depth)d levels.") % {
                "depth": MAX_JSON_DEPTH
            }
        if isinstance(value, dict):
            stack.extend((key, depth) for key in value)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and not _is_unicode(value):
            return _("JSON parse error - a string is not valid Unicode (a lone surrogate).")
        elif isinstance(value, float) and not math.isfinite(value):
            return _("JSON parse error - a number is out of range.")
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
