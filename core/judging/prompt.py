"""The judge's prompt: an editable template with {query}, {document} and {instruction}, and the 0–3 scale.

Placeholders are filled in one pass, so a query or a document that itself contains "{document}" stays
text: the user's strings are never re-read as template.
"""

from __future__ import annotations

import re

GRADES = (0, 1, 2, 3)
PLACEHOLDER = re.compile(r"\{(query|document|instruction)\}")
REQUIRED = ("{query}", "{document}")

DEFAULT_TEMPLATE = """You judge search results. Rate how well the document answers the query, on this scale:
3 = it answers the query fully and directly
2 = it answers the query in part, or answers it with extra material around it
1 = it is on the query's topic but does not answer it
0 = it is not relevant
{instruction}
Query: {query}

Document:
{document}

Answer with JSON only, in this form: {"rating": N} where N is 0, 1, 2 or 3."""

INSTRUCTION_LINE = "The searcher also said: {instruction}"

# The answer's shape, for servers that constrain their output to a JSON schema (vLLM, Ollama, OpenAI).
RATING_SCHEMA = {
    "type": "object",
    "properties": {"rating": {"type": "integer", "enum": list(GRADES)}},
    "required": ["rating"],
    "additionalProperties": False,
}


class TemplateError(ValueError):
    """A prompt template the judge cannot use; the message says what it lacks."""


def check_template(template: str) -> None:
    missing = [name for name in REQUIRED if name not in template]
    if missing:
        raise TemplateError(f"the judge's prompt template must contain {' and '.join(missing)}")


def render(template: str, query: str, document: str, instruction: str = "") -> str:
    check_template(template)
    values = {
        "query": query,
        "document": document,
        "instruction": INSTRUCTION_LINE.replace("{instruction}", instruction) if instruction.strip() else "",
    }
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
