"""Request bodies as JSON objects, with bounds: size, UTF-8, nesting depth.

``json.loads`` recurses once per ``[`` or ``{``: a 64 KiB body of ``[`` raises
``RecursionError`` (not a ``ValueError``), which used to escape as a 500 with an ERROR stack.
:func:`parse_object` measures the nesting first, in one linear pass that stops as soon as the
limit is passed, and only then hands the text to :mod:`json`. Every refusal is a
:class:`~credd.errors.RequestError` (400 ``bad_request``) or, over the size limit,
:class:`~credd.errors.RequestTooLarge` (413); nothing else leaves this module.

The depth pass follows JSON's lexical rules for strings (``"`` ends one unless escaped, a
backslash escapes the next character), so for text that is valid JSON up to some point it
counts exactly the nesting :mod:`json` will reach before that point: the bound holds for
invalid JSON too.
"""

from __future__ import annotations

import json
import re
from typing import Any

from credd.errors import RequestError, RequestTooLarge

__all__ = ["MAX_BODY_BYTES", "MAX_DEPTH", "parse_object"]

#: Deep enough for any request credd defines (they are flat objects), far from the recursion limit.
MAX_DEPTH = 32
#: The transports refuse larger requests before this is reached; a bound of its own all the same.
MAX_BODY_BYTES = 64 * 1024

_SPECIAL = re.compile(r'["\\\[\]{}]')
_OPEN = frozenset("[{")
_CLOSE = frozenset("]}")
_HINT = "send a JSON object"


def nesting_depth(text: str, limit: int) -> int:
    """The deepest ``[``/``{`` nesting outside strings, counting stops once past ``limit``."""
    depth = deepest = 0
    in_string = False
    escaped_at = -1  # the index of a character a backslash escaped
    for match in _SPECIAL.finditer(text):
        char, at = match.group(), match.start()
        if at == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif char in _CLOSE:
            depth -= 1
    return deepest


def parse_object(
    body: bytes,
    *,
    allow_empty: bool = False,
    max_depth: int = MAX_DEPTH,
    max_bytes: int = MAX_BODY_BYTES,
) -> dict[str, Any]:
    """``body`` (UTF-8 JSON) as a dict; a 400/413 ``RequestError`` when it is not one."""
    if len(body) > max_bytes:
        raise RequestTooLarge(
            f"the request body is larger than {max_bytes} bytes", hint="send a smaller request"
        )
    try:
        text = body.decode("utf-8-sig")  # a byte-order mark is tolerated, as json.loads did
    except UnicodeDecodeError:
        raise RequestError("the request body is not UTF-8", hint=_HINT) from None
    if not text.strip():
        if allow_empty:
            return {}
        raise RequestError(
            "this request needs a JSON body", hint='send a JSON object, e.g. {"code": ...}'
        )
    if nesting_depth(text, max_depth) > max_depth:
        raise RequestError(
            f"the request body is nested more than {max_depth} levels deep", hint=_HINT
        )
    try:
        data = json.loads(text)
    except ValueError:  # JSONDecodeError, and the digit limit of huge integers
        raise RequestError("the request body is not valid JSON", hint=_HINT) from None
    if not isinstance(data, dict):
        raise RequestError("the request body must be a JSON object", hint=_HINT)
    return data
