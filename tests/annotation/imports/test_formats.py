"""The pure parts of the import: hashing, transcripts, detection, readers, vote rules.

Nothing here touches the database; files are written to tmp_path where a reader needs
one.
"""

import gc
import gzip
from pathlib import Path

import pytest

from annotation.imports.formats import (
    AEGIS2_COLUMNS,
    content_hash,
    detect_format,
    split_transcript,
)
from annotation.imports.readers import Record, RowError, read_records, sniff
from annotation.rules.votes import check_vote
from taxonomy.matching import CategoryIndex, CategoryRef, split_category_list
from tests.aegis_taxonomy import AEGIS2

# DESIGN section 2, with made-up ids: the index only needs id, code and name.
REFS = [
    CategoryRef(id=100 + n, code=f"S{n}", name=name)
    for n, name in enumerate(AEGIS2, start=1)
]
BY_NAME = {ref.name: ref for ref in REFS}


@pytest.fixture
def index() -> CategoryIndex:
    return CategoryIndex(REFS)


def _items(path: Path) -> list[Record | RowError]:
    return list(read_records(sniff(path)))


# --- content_hash -----------------------------------------------------------------


def test_content_hash_is_the_same_for_the_same_turns():
    # given two equal conversations built separately
    a = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    b = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]

    # then they hash alike, to a sha256 hex digest
    assert content_hash(a) == content_hash(b)
    assert len(content_hash(a)) == 64


@pytest.mark.parametrize(
    "other",
    [
        [{"role": "user", "content": "Hi "}],  # trailing space
        [{"role": "user", "content": " Hi"}],  # leading space
        [{"role": "user", "content": "hi"}],  # case
        [{"role": "user", "content": "Hi\n"}],  # newline
        [{"role": "assistant", "content": "Hi"}],  # role
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "x"}],
    ],
)
def test_content_hash_does_not_normalise_anything(other):
    # given a one-turn conversation
    base = [{"role": "user", "content": "Hi"}]

    # then any difference in text, whitespace, case, role or turns changes the hash
    assert content_hash(other) != content_hash(base)


def test_content_hash_depends_on_turn_order():
    # given the same two turns in both orders
    a = [{"role": "user", "content": "A"}, {"role": "user", "content": "B"}]

    # then the order matters
    assert content_hash(a) != content_hash(list(reversed(a)))


def test_content_hash_of_redacted_rows_includes_the_reconstruction_id():
    # given two REDACTED prompts that stand for different source rows
    turns = [{"role": "user", "content": "REDACTED"}]

    # then they are not duplicates of each other, nor of an unredacted REDACTED text
    assert content_hash(turns, "src-1") != content_hash(turns, "src-2")
    assert content_hash(turns, "src-1") != content_hash(turns)
    assert content_hash(turns, None) == content_hash(turns)


# --- split_transcript -------------------------------------------------------------


def test_split_transcript_splits_at_human_and_assistant_markers():
    # given an HH-RLHF transcript of two exchanges
    text = (
        "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour and water."
        "\n\nHuman: And then?\n\nAssistant: Knead it."
    )

    # when it is split
    turns = split_transcript(text)

    # then each marker opens a turn, stripped of its surrounding whitespace
    assert turns == [
        {"role": "user", "content": "How do I bake bread?"},
        {"role": "assistant", "content": "Mix flour and water."},
        {"role": "user", "content": "And then?"},
        {"role": "assistant", "content": "Knead it."},
    ]


def test_split_transcript_keeps_paragraphs_inside_a_turn():
    # given a turn with a blank line that is not followed by a marker
    text = "\n\nHuman: Two parts:\n\nfirst and second\n\nAssistant: Ok."

    # then the paragraph break stays inside the human turn
    assert split_transcript(text) == [
        {"role": "user", "content": "Two parts:\n\nfirst and second"},
        {"role": "assistant", "content": "Ok."},
    ]


def test_split_transcript_accepts_a_transcript_without_the_leading_blank_line():
    assert split_transcript("Human: Hi\n\nAssistant: Hello") == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]


def test_split_transcript_joins_two_turns_of_the_same_speaker():
    # given two Human markers in a row
    text = "\n\nHuman: one\n\nHuman: two\n\nAssistant: three"

    # then no text is lost: both go into one user turn
    assert split_transcript(text) == [
        {"role": "user", "content": "one\n\ntwo"},
        {"role": "assistant", "content": "three"},
    ]


def test_split_transcript_drops_an_empty_final_assistant_turn():
    assert split_transcript("\n\nHuman: Hi\n\nAssistant:") == [
        {"role": "user", "content": "Hi"}
    ]


def test_split_transcript_of_text_without_markers_is_empty():
    assert split_transcript("just some text") == []


# --- detect_format ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("columns", "container", "expected"),
    [
        (list(AEGIS2_COLUMNS), "parquet", "aegis2"),
        (list(AEGIS2_COLUMNS), "json", "aegis2"),
        (
            ["id", "text", "text_type", "labels_0", "labels_1", "labels_2"],
            "csv",
            "aegis1",
        ),
        (["id", "prompt", "type", "label", "focus", "note"], "csv", "xstest"),
        (
            [
                "id",
                "type",
                "prompt",
                "completion",
                "annotation_1",
                "annotation_2",
                "agreement",
                "final_label",
                "gpt4_label",
            ],
            "csv",
            "xstest-completions",
        ),
        (["chosen", "rejected"], "jsonl", "hh-rlhf"),
        (
            [
                "region_specific_topic",
                "region",
                "why_prompt_tailored_for_region",
                "medium_keyword",
                "why_prompt_harmful",
                "why_prompt_contains_instruction_keyword",
                "prompt",
                "crime",
                "use_case",
            ],
            "csv",
            "aart",
        ),
        (
            ["id", "harm_area", "counter", "category", "prompts_final"],
            "csv",
            "simple-safety-tests",
        ),
        (
            ["id", "risk_area", "types_of_harm", "specific_harms", "question"],
            "csv",
            "do-not-answer",
        ),
        (
            ["prompt", "S", "H", "V", "HR", "SH", "S3", "H2", "V2"],
            "jsonl",
            "openai-moderation",
        ),
        # openai-moderation rows may lack keys (unknown label): still detected
        (["prompt", "V", "SH"], "jsonl", "openai-moderation"),
        (["id", "prompt", "response"], "jsonl", "jsonl"),
        (["id", "prompt", "response"], "json", "json"),
        (["id", "prompt"], "csv", "csv"),
        (["id", "turns"], "parquet", "parquet"),
        (["title", "body"], "csv", None),
        ([], "csv", None),
    ],
)
def test_detect_format_from_columns(columns, container, expected):
    assert detect_format(columns, dict.fromkeys(columns, ""), container) == expected


def test_detect_format_sees_a_label_studio_task_by_its_data_object():
    # given a Label Studio task (its top-level keys say little)
    first = {"id": 1, "data": {"prompt": "Hi"}, "annotations": []}

    # then the data object decides
    assert detect_format(list(first), first, "json") == "label-studio"


def test_detect_format_does_not_call_a_prompt_file_with_other_columns_openai():
    # given a generic file that happens to have an "S" column and more
    columns = ["prompt", "S", "topic"]

    # then it is a generic file, not openai-moderation
    assert detect_format(columns, dict.fromkeys(columns, ""), "csv") == "csv"


# --- CategoryIndex.resolve --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Violence", "Violence"),
        ("violence", "Violence"),
        ("VIOLENCE", "Violence"),
        ("  Violence  ", "Violence"),
        ("S1", "Violence"),
        ("s1", "Violence"),
        ("S01", "Violence"),
        ("S1: Violence", "Violence"),
        ("s1: violence", "Violence"),
        ("S23", "Immoral/Unethical"),
        ("S23: Immoral/Unethical", "Immoral/Unethical"),
        ("Sexual (minor)", "Sexual (minor)"),
        ("Sexual Minor", "Sexual (minor)"),
        ("sexual minors", "Sexual (minor)"),
        ("Guns/Illegal Weapons", "Guns and Illegal Weapons"),
        ("Guns & Illegal Weapons", "Guns and Illegal Weapons"),
        ("Suicide/Self Harm", "Suicide and Self Harm"),
        ("Criminal Planning", "Criminal Planning/Confessions"),
        ("hate/identity hate", "Hate/Identity Hate"),
        ("PII", "PII/Privacy"),
        ("needs caution", "Needs Caution"),
        ("other", "Other"),
        ("Sexual", "Sexual"),
    ],
)
def test_category_index_resolves_spellings(index, text, expected):
    assert index.resolve(text) == BY_NAME[expected]


@pytest.mark.parametrize("text", ["Nonsense", "", "   ", "S24", "S0", "Violent"])
def test_category_index_returns_none_for_unknown_text(index, text):
    assert index.resolve(text) is None


def test_category_index_does_not_confuse_sexual_and_sexual_minor(index):
    assert index.resolve("Sexual") != index.resolve("Sexual Minor")


def test_resolve_many_keeps_first_seen_order_drops_repeats_and_lists_unknowns(index):
    # given a list with a repeat under two spellings and an unknown name
    texts = ["Threat", "S1", "violence", "Made Up", "S10"]

    # when resolved
    found, unknown = index.resolve_many(texts)

    # then order is kept, the repeat is dropped and the unknown is named
    assert found == [BY_NAME["Threat"], BY_NAME["Violence"], BY_NAME["Harassment"]]
    assert unknown == ["Made Up"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Violence, Threat", ["Violence", "Threat"]),
        ("S1,S11", ["S1", "S11"]),
        (["Violence", " Threat "], ["Violence", "Threat"]),
        ("", []),
        (None, []),
        ("nan", []),
    ],
)
def test_split_category_list(value, expected):
    assert split_category_list(value) == expected


# --- check_vote -------------------------------------------------------------------


def _check(index, label, categories=(), other_text="", response_label=None, **kw):
    return check_vote(
        label=label,
        response_label=response_label,
        category_names=list(categories),
        other_text=other_text,
        index=index,
        **kw,
    )


def test_check_vote_accepts_unsafe_with_a_category(index):
    cats, problems = _check(index, "unsafe", ["S1", "Threat"])

    assert problems == []
    assert cats == [BY_NAME["Violence"], BY_NAME["Threat"]]


def test_check_vote_unsafe_needs_a_category(index):
    cats, problems = _check(index, "unsafe")

    assert cats == []
    assert [(p.field, p.message) for p in problems] == [
        ("categories", "at least one is required when unsafe")
    ]


def test_check_vote_safe_refuses_categories(index):
    _, problems = _check(index, "safe", ["Violence"])

    assert [(p.field, p.message) for p in problems] == [
        ("categories", "must be empty when the label is safe")
    ]


def test_check_vote_accepts_safe_without_categories(index):
    assert _check(index, "safe") == ([], [])


def test_check_vote_allows_categories_with_needs_caution(index):
    # given needs_caution with and without a category
    with_cat = _check(index, "needs_caution", ["Profanity"])
    without = _check(index, "needs_caution")

    # then both are valid
    assert with_cat == ([BY_NAME["Profanity"]], [])
    assert without == ([], [])


def test_check_vote_other_needs_its_text(index):
    # given Other without and with free text
    _, missing = _check(index, "unsafe", ["Other"])
    cats, given = _check(index, "unsafe", ["Other"], other_text="doxxing a neighbour")

    # then only the one without text is refused
    assert [(p.field, p.message) for p in missing] == [
        ("other_text", "is required when Other is chosen")
    ]
    assert given == []
    assert cats == [BY_NAME["Other"]]


def test_check_vote_other_text_of_blanks_counts_as_missing(index):
    _, problems = _check(index, "unsafe", ["S14"], other_text="   ")

    assert [p.field for p in problems] == ["other_text"]


def test_check_vote_older_tools_may_skip_the_other_text(index):
    _, problems = _check(index, "unsafe", ["Other"], require_other_text=False)

    assert problems == []


def test_check_vote_names_an_unknown_category(index):
    cats, problems = _check(index, "unsafe", ["Violence", "Space Lasers"])

    # then the known category is kept and only the unknown one is a problem
    assert cats == [BY_NAME["Violence"]]
    assert [(p.field, p.message) for p in problems] == [
        ("categories", "unknown category 'Space Lasers'")
    ]


@pytest.mark.parametrize("label", ["maybe", "", None, "Unsafe"])
def test_check_vote_refuses_labels_outside_the_three_values(index, label):
    _, problems = _check(index, label)

    assert [p.field for p in problems] == ["label"]
    assert f"not {label!r}" in problems[0].message


def test_check_vote_refuses_a_bad_response_label(index):
    _, problems = _check(index, "safe", response_label="harmless")

    assert [(p.field, p.message) for p in problems] == [
        (
            "response_label",
            "must be one of safe, needs_caution, unsafe or empty, not 'harmless'",
        )
    ]


# --- readers: line numbers and malformed files ------------------------------------


def test_jsonl_reader_numbers_lines_and_names_the_broken_one(tmp_path):
    # given a JSONL file whose 3rd line is broken and whose 4th is blank
    path = tmp_path / "rows.jsonl"
    path.write_text(
        '{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": \n\n{"prompt": "e"}\n'
    )

    # when read
    items = _items(path)

    # then records keep their line numbers and the error names line 3
    assert [(i.line, i.data) for i in items if isinstance(i, Record)] == [
        (1, {"prompt": "a"}),
        (2, {"prompt": "b"}),
        (5, {"prompt": "e"}),
    ]
    errors = [i for i in items if isinstance(i, RowError)]
    assert len(errors) == 1
    assert errors[0].line == 3
    assert str(errors[0]).startswith("rows.jsonl, line 3: invalid JSON")


def test_jsonl_reader_refuses_a_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"prompt": "a"}\n["a list"]\n')

    errors = [i for i in _items(path) if isinstance(i, RowError)]

    assert [str(e) for e in errors] == ["rows.jsonl, line 2: expected a JSON object"]


def test_json_array_reader_gives_each_record_the_line_it_starts_on(tmp_path):
    # given a pretty-printed JSON array
    path = tmp_path / "rows.json"
    path.write_text('[\n  {"prompt": "a"},\n  {\n    "prompt": "b"\n  }\n]\n')

    # then each object's line is where it starts
    assert [(i.line, i.data) for i in _items(path)] == [
        (2, {"prompt": "a"}),
        (3, {"prompt": "b"}),
    ]


def test_json_array_reader_names_the_line_of_a_syntax_error(tmp_path):
    # given an array whose second object misses a closing quote on line 3
    path = tmp_path / "rows.json"
    path.write_text('[\n  {"prompt": "a"},\n  {"prompt": "b},\n  {"prompt": "c"}\n]\n')

    items = _items(path)

    # then the good first record is read and the error names line 3
    assert [i.data for i in items if isinstance(i, Record)] == [{"prompt": "a"}]
    errors = [i for i in items if isinstance(i, RowError)]
    assert [(e.line, e.message.split(":")[0]) for e in errors] == [(3, "invalid JSON")]
    assert str(errors[0]).startswith("rows.json, line 3: invalid JSON")


def test_json_array_reader_reports_a_missing_closing_bracket(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[\n  {"prompt": "a"},\n  {"prompt": "b"}\n')

    errors = [i for i in _items(path) if isinstance(i, RowError)]

    assert [str(e) for e in errors] == [
        "rows.json, line 4: invalid JSON: expected ',' or ']'"
    ]


def test_csv_reader_counts_lines_of_quoted_multiline_cells(tmp_path):
    # given a CSV whose first record spans three lines
    path = tmp_path / "rows.csv"
    path.write_text('id,prompt\n1,"one\ntwo\nthree"\n2,next\n')

    # then the second record is on line 5
    assert [(i.line, i.data["id"]) for i in _items(path)] == [(2, "1"), (5, "2")]


def test_csv_reader_names_the_line_with_the_wrong_number_of_fields(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("id,prompt\n1,fine\n2,too,many\n3,fine\n")

    items = _items(path)

    assert [i.data["id"] for i in items if isinstance(i, Record)] == ["1", "3"]
    assert [str(i) for i in items if isinstance(i, RowError)] == [
        "rows.csv, line 3: has 3 fields, the header has 2"
    ]


def test_csv_reader_refuses_a_header_with_a_repeated_column(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("id,prompt,prompt\n1,a,b\n")

    assert [str(i) for i in _items(path)] == [
        "rows.csv, line 1, field 'prompt': column named twice in the header"
    ]


def test_csv_reader_skips_a_byte_order_mark(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_bytes("\ufeffid,prompt\n1,hello\n".encode())

    assert [i.data for i in _items(path)] == [{"id": "1", "prompt": "hello"}]


def test_reader_reads_gzip_by_its_magic_bytes(tmp_path):
    # given a gzip-compressed CSV named .csv.gz
    path = tmp_path / "rows.csv.gz"
    path.write_bytes(gzip.compress(b"id,prompt\n1,hello\n"))

    # when sniffed and read
    source = sniff(path)

    # then it is decompressed and read as CSV
    assert (source.compressed, source.container) == (True, "csv")
    assert [i.data for i in read_records(source)] == [{"id": "1", "prompt": "hello"}]


def _gzip_with_a_corrupt_second_member(good: bytes, bad: bytes) -> bytes:
    """A valid gzip member, then one whose deflate stream is broken.

    The byte after the 10-byte gzip header is the first deflate block header; 0xFF
    says "reserved block type", which zlib always refuses.
    """
    second = bytearray(gzip.compress(bad, mtime=0))
    second[10] = 0xFF
    return gzip.compress(good, mtime=0) + bytes(second)


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("rows.jsonl.gz", b'{"prompt": "a"}\n{"prompt": "b"}\n', b'{"prompt": "c"}\n'),
        ("rows.csv.gz", b"id,prompt\n1,a\n2,b\n", b"3,c\n"),
    ],
)
def test_reader_reports_a_corrupt_gzip_as_an_error_not_a_crash(
    tmp_path, name, good, bad
):
    # given a gzip file that breaks after two good records
    path = tmp_path / name
    path.write_bytes(_gzip_with_a_corrupt_second_member(good, bad))

    # when read
    items = _items(path)

    # then the two records come first, then one error naming the file
    assert [i.line for i in items if isinstance(i, Record)] == (
        [1, 2] if name.endswith("jsonl.gz") else [2, 3]
    )
    assert [str(i) for i in items if isinstance(i, RowError)] == [
        f"{name}: cannot read the file: Error -3 while decompressing data: "
        "invalid block type"
    ]


def test_reader_reports_a_truncated_gzip(tmp_path):
    data = gzip.compress(b"".join(b'{"prompt": "%d"}\n' % i for i in range(5000)))
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])

    errors = [i for i in _items(path) if isinstance(i, RowError)]

    assert [str(e) for e in errors] == [
        "rows.jsonl.gz: cannot read the file: Compressed file ended before the "
        "end-of-stream marker was reached"
    ]


def test_reader_reports_a_corrupt_parquet_file(tmp_path):
    # given the first half of a real Parquet file (its footer is gone)
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"prompt": [f"p{i}" for i in range(1000)]}), whole)
    path = tmp_path / "rows.parquet"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    # when read
    items = _items(path)

    # then there is one error naming the file, and no record
    assert len(items) == 1
    assert isinstance(items[0], RowError)
    assert str(items[0]).startswith("rows.parquet: cannot read Parquet:")


@pytest.mark.filterwarnings("error::ResourceWarning")
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_reading_a_gzip_file_closes_it(tmp_path):
    # given a gzip file read to the end (a worker reads many: no handle may leak)
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"prompt": "a"}\n'))

    # when read, then no "unclosed file" ResourceWarning is raised
    assert [i.data for i in _items(path)] == [{"prompt": "a"}]
    gc.collect()
