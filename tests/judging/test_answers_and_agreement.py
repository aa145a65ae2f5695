"""Reading grades from judges' answers, the prompt, and the judge's agreement with humans (against sklearn)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from core.judging.agreement import confusion, merged, shared_pairs, weighted_kappa
from core.judging.answers import parse_grade
from core.judging.prompt import DEFAULT_TEMPLATE, TemplateError, render


@pytest.mark.parametrize(
    ("answer", "grade"),
    [
        ('{"rating": 2}', 2),
        ('```json\n{"rating": 3}\n```', 3),
        ('Sure. {"grade": "0"}', 0),
        ("Rating: 1", 1),
        ("2", 2),
        ('"3".', 3),
        ("rating = 2.0", 2),
    ],  # fmt: skip
)
def test_a_grade_is_read_from_json_or_a_clear_tolerant_form(answer, grade):
    assert parse_grade(answer) == grade


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "   ",
        None,
        "I can't help with that.",
        '{"rating": 7}',
        '{"rating": -1}',
        '{"rating": true}',
        '{"rating": 1.5}',
        "It is a 3 or maybe 2",
        '{"other": 2}',
        "{not json",
    ],  # fmt: skip
)
def test_refusals_and_unclear_answers_are_unrateable_never_zero(answer):
    assert parse_grade(answer) is None


def test_the_template_fills_each_placeholder_once_and_keeps_user_text_verbatim():
    query, document = 'what is "{document}"?\\n <b>x</b>', "a {query} b {instruction} $x$"
    prompt = render(DEFAULT_TEMPLATE, query, document, "Prefer statutes.")
    assert query in prompt and document in prompt and "Prefer statutes." in prompt
    assert prompt.count("{document}") == 1  # the one typed in the query, not filled again
    assert "The searcher also said" not in render(DEFAULT_TEMPLATE, "q", "d")
    with pytest.raises(TemplateError, match=r"\{document\}"):
        render("Rate {query}", "q", "d")


def test_weighted_kappa_and_the_confusion_matrix_match_scikit_learn():
    rng = random.Random(5)
    for _ in range(200):
        n = rng.randint(2, 60)
        human = [rng.randint(0, 3) for _ in range(n)]
        judge = [min(3, max(0, h + rng.choice([-2, -1, 0, 0, 0, 1]))) if rng.random() < 0.8 else rng.randint(0, 3)
                 for h in human]  # fmt: skip
        pairs = list(zip(human, judge))
        expected = cohen_kappa_score(human, judge, weights="quadratic", labels=[0, 1, 2, 3])
        ours = weighted_kappa(pairs)
        if np.isnan(expected):
            assert ours is None
        else:
            assert ours == pytest.approx(expected, abs=1e-12)
        assert np.array_equal(confusion(pairs), confusion_matrix(human, judge, labels=[0, 1, 2, 3]))
    assert weighted_kappa([]) is None


def test_a_human_scale_beyond_0_to_3_is_kept_not_dropped():
    """cranfield grades 1 to 4 and -1: every shared pair counts, on the union of both scales (as sklearn)."""
    rng = random.Random(9)
    human = [rng.choice([-1, 1, 2, 3, 4]) for _ in range(80)]
    judge = [rng.randint(0, 3) for _ in range(80)]
    labels = [-1, 0, 1, 2, 3, 4]
    pairs = list(zip(human, judge))
    assert weighted_kappa(pairs) == pytest.approx(cohen_kappa_score(human, judge, weights="quadratic", labels=labels))
    assert np.array_equal(confusion(pairs), confusion_matrix(human, judge, labels=labels))


def test_human_labels_always_win_and_only_shared_pairs_are_compared():
    human = {"q1": {"a": 3, "b": 0}, "q2": {"c": 1}}
    judge = {"q1": {"a": 1, "d": 2}, "q3": {"e": 3}}
    assert merged(human, judge) == {"q1": {"a": 3, "b": 0, "d": 2}, "q2": {"c": 1}, "q3": {"e": 3}}
    assert shared_pairs(human, judge) == [(3, 1)]
