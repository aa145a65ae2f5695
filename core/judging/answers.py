"""Reading a grade out of a judge's answer: JSON first, then tolerant forms; anything else is unrateable.

A refusal, an empty answer, a grade outside 0–3 or prose with no clear grade gives None ("unrateable"),
never 0: an unrateable pair is counted and listed, not scored as irrelevant.
"""

from __future__ import annotations

import json
import re

from core.judging.prompt import GRADES

_OBJECT = re.compile(r"\{[^{}]*\}")
_KEYS = ("rating", "grade", "score", "relevance")
# "Rating: 2", or JSON cut short by the token limit ('{ "rating":2   '): a named grade is a clear grade.
_LABELLED = re.compile(r"(?i)\b(?:rating|grade|score|relevance)\b\"?\s*[:=]?\s*\"?([0-9]+(?:\.0+)?)(?!\.?[0-9])")
_ALONE = re.compile(r"^\s*\"?([0-9])\"?\s*\.?\s*$")


def parse_grade(answer: str | None) -> int | None:
    if not answer or not answer.strip():
        return None
    text = answer.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    for candidate in [text, *_OBJECT.findall(text)]:
        grade = _from_json(candidate)
        if grade is not None:
            return grade
    for pattern in (_ALONE, _LABELLED):
        match = pattern.search(text)
        if match:
            return _valid(match.group(1))
    return None


def _from_json(text: str) -> int | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict):
        value = next((value[key] for key in _KEYS if key in value), None)
    return _valid(value)


def _valid(value) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and int(number) in GRADES else None
