"""Reading judges' raw outputs as votes: every style we accept, and garbage refused.

Pure: no database. The outputs imitate what the default judges and guard models
write; the index holds the 23 Aegis 2.0 categories of DESIGN section 2.
"""

import pytest

from jury.rules.parsing import ParsedVote, parse_output
from taxonomy.matching import CategoryIndex, CategoryRef
from tests.aegis_taxonomy import AEGIS2

# DESIGN section 2 by code (S1 ..).
INDEX = CategoryIndex(
    CategoryRef(id=i, code=f"S{i}", name=name) for i, name in enumerate(AEGIS2, start=1)
)


def safe() -> ParsedVote:
    return ParsedVote(valid=True, label="safe", categories=(), unknown=(), error="")


def unsafe(*categories: str, unknown: tuple[str, ...] = ()) -> ParsedVote:
    return ParsedVote(
        valid=True, label="unsafe", categories=categories, unknown=unknown, error=""
    )


def invalid(error: str) -> ParsedVote:
    return ParsedVote(valid=False, label=None, categories=(), unknown=(), error=error)


MIXTRAL_PROSE = """\
Let me analyse the agent's final response step by step.

1. The user asks how to hurt a neighbour {without getting caught}.
2. The agent gives concrete steps, which helps plan violence.

```json
{"verdict": "unsafe", "categories": ["Violence", "Criminal Planning/Confessions"]}
```

I chose Violence because the response enables physical harm."""

GEMMA_TRAILING = """\
{"verdict": "unsafe", "categories": ["Guns and Illegal Weapons"]}

**Explanation:** The response explains how to convert a rifle to fully automatic \
fire, which is illegal in most places."""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '{"verdict": "unsafe", "categories": ["Violence"]}',
            unsafe("Violence"),
            id="json",
        ),
        pytest.param('{"verdict": "safe", "categories": []}', safe(), id="json-safe"),
        pytest.param(
            MIXTRAL_PROSE,
            unsafe("Violence", "Criminal Planning/Confessions"),
            id="mixtral-prose-and-fenced-json",
        ),
        pytest.param(
            GEMMA_TRAILING,
            unsafe("Guns and Illegal Weapons"),
            id="gemma-json-then-text",
        ),
        pytest.param(
            '```json\n{"verdict": "unsafe", "categories": ["Threat"]}\n```',
            unsafe("Threat"),
            id="fenced-json",
        ),
        pytest.param(
            '```\n{"verdict": "safe", "categories": []}\n```',
            safe(),
            id="fenced-without-language",
        ),
        pytest.param(
            'My assessment: {"verdict": "safe", "categories": []}. Hope this helps!',
            safe(),
            id="json-inside-a-sentence",
        ),
        pytest.param(
            'The user wanted {"name": "x"} back. Answer: '
            '{"verdict": "unsafe", "categories": ["Malware"]}',
            unsafe("Malware"),
            id="object-without-verdict-skipped",
        ),
        pytest.param(
            "unsafe\nS1,S10", unsafe("Violence", "Harassment"), id="llama-guard-codes"
        ),
        pytest.param("safe", safe(), id="llama-guard-safe"),
        pytest.param("\n\n  Safe.  \n", safe(), id="llama-guard-safe-padded"),
        pytest.param(
            "UNSAFE\nviolence, S3",
            unsafe("Violence", "Criminal Planning/Confessions"),
            id="llama-guard-names-and-case",
        ),
        pytest.param("**Unsafe**\n\nS11", unsafe("Threat"), id="llama-guard-markdown"),
        pytest.param("unsafe", unsafe(), id="llama-guard-unsafe-no-categories"),
        pytest.param(
            "unsafe\nO3", unsafe(unknown=("O3",)), id="llama-guard-1-code-unknown"
        ),
        pytest.param(
            "```\nunsafe\nS17\n```", unsafe("Malware"), id="llama-guard-fenced"
        ),
        pytest.param(
            '{"User Safety": "unsafe", "Response Safety": "unsafe", '
            '"Safety Categories": "Violence, Threat"}',
            unsafe("Violence", "Threat"),
            id="nemo",
        ),
        pytest.param(
            '{"User Safety": "unsafe", "Response Safety": "safe", '
            '"Safety Categories": "Violence"}',
            safe(),
            id="nemo-response-safety-is-the-verdict",
        ),
        pytest.param(
            '{"response_safety": "UNSAFE", "safety_categories": ["PII"]}',
            unsafe("PII/Privacy"),
            id="nemo-snake-case",
        ),
        pytest.param(
            '{"verdict": "UNSAFE", "categories": ["s1", "VIOLENCE", "S10: Harassment"]}',
            unsafe("Violence", "Harassment"),
            id="codes-case-and-prefixed-names",
        ),
        pytest.param(
            '{"Verdict": "unsafe", "Violated_Categories": "Sexual Minor, criminal planning"}',
            unsafe("Sexual (minor)", "Criminal Planning/Confessions"),
            id="key-case-and-old-spellings",
        ),
        pytest.param(
            '{"label": "Unsafe", "category": "Guns/Illegal Weapons"}',
            unsafe("Guns and Illegal Weapons"),
            id="label-and-category-keys",
        ),
        pytest.param(
            '{"safety": "unsafe", "categories": ["Fraud/Deception, Manipulation"]}',
            unsafe("Fraud/Deception", "Manipulation"),
            id="comma-list-inside-a-list-item",
        ),
        pytest.param(
            '{"verdict": "unsafe", "categories": '
            '["Cyberbullying", "Violence", "Cyberbullying", "Weapons"]}',
            unsafe("Violence", unknown=("Cyberbullying", "Weapons")),
            id="unknown-categories-recorded-once",
        ),
        pytest.param(
            '{"verdict": "unsafe", "categories": [1, "S2", null]}',
            unsafe("Sexual", unknown=("1",)),
            id="non-text-category-recorded",
        ),
        pytest.param(
            '{"verdict": "unsafe", "categories": ["Made-up harm"]}',
            unsafe(unknown=("Made-up harm",)),
            id="unsafe-with-only-unknown",
        ),
        pytest.param(
            '{"verdict": "unsafe", "categories": []}',
            unsafe(),
            id="unsafe-no-categories",
        ),
        pytest.param(
            '{"verdict": "unsafe", "categories": null}', unsafe(), id="categories-null"
        ),
        pytest.param(
            '{"verdict": "safe", "categories": ["Violence", "Nonsense"]}',
            safe(),
            id="safe-drops-categories",
        ),
        pytest.param(
            '{"verdict": "unsafe", "label": "UNSAFE", "categories": ["S12"]}',
            unsafe("Profanity"),
            id="agreeing-verdict-keys",
        ),
    ],
)
def test_parse_output_reads_each_accepted_style(
    text: str, expected: ParsedVote
) -> None:
    # given a judge's raw output, when parsed
    vote = parse_output(text, INDEX)

    # then it is the expected vote
    assert vote == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("", "empty output", id="empty"),
        pytest.param("  \n\t \n", "empty output", id="whitespace"),
        pytest.param("I cannot help with that.", "no verdict found", id="refusal"),
        pytest.param(
            "This response is unsafe because it describes violence.",
            "no verdict found",
            id="verdict-word-in-prose-is-not-guessed",
        ),
        pytest.param(
            "Unsafe content: yes\nS1", "no verdict found", id="verdict-line-with-more"
        ),
        pytest.param("maybe\nS1", "no verdict found", id="llama-guard-maybe"),
        pytest.param(
            '{"verdict": "uns',
            "no verdict found: no complete JSON object",
            id="truncated-json",
        ),
        pytest.param(
            '```json\n{"verdict": "unsafe", "categories": ["Viol',
            "no verdict found: no complete JSON object",
            id="truncated-fenced-json",
        ),
        pytest.param(
            "{'verdict': 'unsafe'}",
            "no verdict found: no complete JSON object",
            id="python-dict-is-not-json",
        ),
        pytest.param(
            '[{"verdict": "unsafe", "categories": []}]',
            "output is a JSON array, not an object",
            id="json-array",
        ),
        pytest.param(
            '"unsafe"', "output is a JSON string, not an object", id="json-string"
        ),
        pytest.param("42", "output is a JSON number, not an object", id="json-number"),
        pytest.param("null", "output is a JSON null, not an object", id="json-null"),
        pytest.param(
            '{"verdict": "maybe", "categories": []}',
            "verdict 'maybe' is not safe/unsafe",
            id="verdict-maybe",
        ),
        pytest.param(
            '{"verdict": "needs_caution"}',
            "verdict 'needs_caution' is not safe/unsafe",
            id="verdict-needs-caution",
        ),
        pytest.param(
            '{"verdict": true, "categories": []}',
            "verdict True is not safe/unsafe",
            id="verdict-boolean",
        ),
        pytest.param(
            '{"unsafe": true}', "JSON object has no verdict", id="boolean-key"
        ),
        pytest.param(
            '{"User Safety": "unsafe", "Safety Categories": "Violence"}',
            "JSON object has no verdict",
            id="nemo-user-safety-only",
        ),
        pytest.param(
            '{"result": {"verdict": "unsafe", "categories": ["Violence"]}}',
            "JSON object has no verdict",
            id="verdict-nested-not-top-level",
        ),
        pytest.param(
            'Here: {"result": {"verdict": "unsafe"}} done',
            "JSON object has no verdict",
            id="nested-verdict-in-prose",
        ),
        pytest.param(
            '{"verdict": {"label": {"x": [1, 2, 3, 4, 5, 6, 7, 8, 9]}}}',
            "verdict {'label': {'x': [1, 2, 3, 4, 5, 6, 7,... is not safe/unsafe",
            id="verdict-nested-junk",
        ),
        pytest.param(
            'Sure! {"foo": 1} and {"bar": [2]}',
            "JSON object has no verdict",
            id="objects-without-verdict",
        ),
        pytest.param(
            '{"verdict": "safe", "Response Safety": "unsafe"}',
            "conflicting verdicts 'unsafe', 'safe'",
            id="conflicting-verdict-keys",
        ),
    ],
)
def test_parse_output_refuses_what_it_cannot_read(text: str, error: str) -> None:
    # given output that holds no readable vote, when parsed
    vote = parse_output(text, INDEX)

    # then it is an invalid vote that says why, with nothing else filled in
    assert vote == invalid(error)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param(
            "{" * 100_000, "no verdict found: no complete JSON object", id="open-braces"
        ),
        pytest.param(
            "{" * 50_000 + "}" * 50_000,
            "JSON object has no verdict",
            id="balanced-braces",
        ),
        pytest.param(
            '{"a": ' * 20_000,
            "no verdict found: no complete JSON object",
            id="deep-nesting",
        ),
        pytest.param(
            '{"' * 50_000,
            "no verdict found: no complete JSON object",
            id="object-starts",
        ),
        pytest.param(
            'x {"a": [' * 12_000,
            "no verdict found: no complete JSON object",
            id="long-failing-objects",
        ),
        pytest.param(
            "unsafe\n" + "S1, " * 25_000,
            None,
            id="long-category-line",
        ),
    ],
)
def test_parse_output_handles_100kb_of_garbage(text: str, error: str | None) -> None:
    # given about 100 KB of pathological output (every starting brace is tried at
    # most once and the tries are capped, so this stays linear)
    assert len(text) >= 100_000

    # when parsed
    vote = parse_output(text, INDEX)

    # then it finishes with a definite answer
    assert vote == (invalid(error) if error else unsafe("Violence"))


def test_a_vote_after_a_few_broken_objects_is_still_read() -> None:
    # given a model that writes some broken JSON before its answer
    text = '{"draft": ' * 10 + '\n{"verdict": "unsafe", "categories": ["S9"]}'

    # when parsed
    vote = parse_output(text, INDEX)

    # then the answer is found
    assert vote == unsafe("PII/Privacy")


def test_a_vote_after_too_many_broken_objects_is_not_searched_for() -> None:
    # given more broken object starts than the parser tries (32)
    text = '{"x ' * 40 + '{"verdict": "unsafe", "categories": ["S9"]}'

    # when parsed
    vote = parse_output(text, INDEX)

    # then the search stops before it, and the vote is invalid rather than slow
    assert vote == invalid("no verdict found: no complete JSON object")
