"""The text the reranker sees as its query: the one place where the instruction format lives.

zerank-2 takes a task instruction alongside the query. ZeroEntropy's published example puts both in the
query slot, tagged: ``<query>…</query>`` then ``<instruction>…</instruction>``; the model's chat template
then makes that the system turn and the document the user turn. Without an instruction the query goes
in bare, exactly as the model card scores it, so scores stay comparable with the reference.
"""

from __future__ import annotations


def reranker_query(query: str, instruction: str = "") -> str:
    instruction = instruction.strip()
    if not instruction:
        return query
    return f"<query>\n{query}\n</query>\n<instruction>\n{instruction}\n</instruction>"
