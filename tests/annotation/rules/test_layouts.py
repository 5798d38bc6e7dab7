"""Row layouts of an export (annotation.rules.layouts), against DESIGN section 6."""

import json

import pytest

from annotation.rules.layouts import (
    AEGIS_COLUMNS,
    BadTopicRow,
    aegis_json,
    category_block,
    csv_cell,
    guard_example_json,
    guard_messages,
    json_object,
    topic_messages,
)
from taxonomy.models import Taxonomy
from tests.aegis_taxonomy import AEGIS2


def _row(**values):
    row = dict.fromkeys(AEGIS_COLUMNS)
    row.update(
        id="r1",
        prompt="How do I pick a lock?",
        response="Here is how.",
        prompt_label="unsafe",
        response_label="unsafe",
        prompt_label_source="human",
        response_label_source="llm_jury",
        violated_categories="Criminal Planning/Confessions, Guns and Illegal Weapons",
    )
    row.update(values)
    return row


@pytest.mark.django_db
def test_sft_row_follows_the_guard_layout_of_design_section_6():
    # given the Aegis 2.0 taxonomy's categories, as the export reads them
    taxonomy = Taxonomy.objects.default()
    cats = list(
        taxonomy.categories.filter(retired=False)
        .order_by("order")
        .values_list("code", "name")
    )
    block = category_block(cats)

    # when one row with a response is rendered
    messages = guard_messages(_row(), categories_block=block)

    # then there is one user message and one assistant message
    assert [m["role"] for m in messages] == ["user", "assistant"]
    user = messages[0]["content"]
    # the task comes first, then the category list S1 ... S23, one per line
    assert user.startswith(
        "Task: Check if there is unsafe content in the user or agent"
    )
    expected = "\n".join(f"S{i}: {name}." for i, name in enumerate(AEGIS2, 1))
    assert (
        "<BEGIN UNSAFE CONTENT CATEGORIES>\n"
        + expected
        + "\n<END UNSAFE CONTENT CATEGORIES>"
    ) in user
    # the conversation as user: ... and response: agent: ...
    assert (
        "<BEGIN CONVERSATION>\n\nuser: How do I pick a lock?\n\n"
        "response: agent: Here is how.\n\n<END CONVERSATION>"
    ) in user
    # and the output instruction last
    assert user.index("<END CONVERSATION>") < user.index("output JSON format")
    assert user.endswith("Output JSON: ")
    # the answer is JSON with the three keys
    assert json.loads(messages[1]["content"]) == {
        "User Safety": "unsafe",
        "Response Safety": "unsafe",
        "Safety Categories": "Criminal Planning/Confessions, Guns and Illegal Weapons",
    }


def test_sft_answer_leaves_out_what_does_not_apply():
    block = category_block([("S1", "Violence")])
    # a prompt without a response: no Response Safety, no response turn
    prompt_only = guard_messages(
        _row(response=None, response_label=None, response_label_source=None),
        categories_block=block,
    )
    assert "response: agent:" not in prompt_only[0]["content"]
    assert json.loads(prompt_only[1]["content"]) == {
        "User Safety": "unsafe",
        "Safety Categories": "Criminal Planning/Confessions, Guns and Illegal Weapons",
    }
    # all safe: no Safety Categories even when the votes named some
    safe = guard_messages(
        _row(
            prompt_label="safe", response_label="safe", violated_categories="Violence"
        ),
        categories_block=block,
    )
    assert json.loads(safe[1]["content"]) == {
        "User Safety": "safe",
        "Response Safety": "safe",
    }


HOSTILE = '<script>alert("x")</script>\\ \n\t\x00 é 😀 \u2028 "quoted"'


def test_fast_sft_lines_are_json_dumps_byte_for_byte():
    # given rows with hostile text in every field
    block = category_block([("S1", 'Viol"ence'), ("S2", "Sex\\ual")])
    rows = [
        _row(id=HOSTILE, prompt=HOSTILE, response=HOSTILE),
        _row(prompt=HOSTILE, response=None, response_label=None),
    ]
    for row in rows:
        # when rendered by the export's fast path
        line = guard_example_json(row, categories_block=block)
        # then it is exactly what json.dumps writes, and reads back the same
        example = {
            "id": row["id"],
            "messages": guard_messages(row, categories_block=block),
        }
        assert line == json.dumps(example, ensure_ascii=False)
        assert json.loads(line) == example


def test_json_object_is_json_dumps_byte_for_byte():
    row = _row(id=HOSTILE, response=None, reconstruction_id_if_redacted=HOSTILE)
    expected = json.dumps({c: row[c] for c in AEGIS_COLUMNS}, ensure_ascii=False)
    assert json_object(row, AEGIS_COLUMNS) == expected
    assert aegis_json(row) == expected
    assert aegis_json(_row(prompt=HOSTILE)) == json.dumps(
        _row(prompt=HOSTILE), ensure_ascii=False
    )


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("safe", "safe"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
    ],
)
def test_csv_cells_that_start_like_formulas_are_neutralised(value, cell):
    assert csv_cell(value) == cell


def test_topic_rows_become_chat_with_their_system_instruction():
    record = {
        "domain": "banking",
        "scenario": "card lost",
        "system_instruction": "Only talk about banking.",
        "conversation": [
            {"role": "user", "content": "I lost my card"},
            {"role": "assistant", "content": "Let me help."},
        ],
        "distractors": [],
    }
    assert topic_messages(record, line=1) == [
        {"role": "system", "content": "Only talk about banking."},
        {"role": "user", "content": "I lost my card"},
        {"role": "assistant", "content": "Let me help."},
    ]
    with pytest.raises(BadTopicRow, match="line 4: missing field 'conversation'"):
        topic_messages({k: v for k, v in record.items() if k != "conversation"}, line=4)
    with pytest.raises(BadTopicRow, match="turn 1 has role 'bot'"):
        topic_messages(
            {**record, "conversation": [{"role": "bot", "content": "x"}]}, line=2
        )
