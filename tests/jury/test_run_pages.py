"""The jury pages: runs, progress, each dialogue's votes side by side, filters."""

import pytest
from django.test import Client

from annotation.model_votes import ModelVoteIn, record_model_votes
from jury.models import Backend, Judge, JuryRun, RunDialogue, Scope
from jury.runs import decide_dialogues
from tests.factories import BatchFactory, DialogueFactory

pytestmark = pytest.mark.django_db


def make_run(n_dialogues: int = 3) -> tuple[JuryRun, list[Judge]]:
    """A run whose votes are written directly (no model): a full picture to render."""
    batch = BatchFactory()
    judges = [
        Judge.objects.get_or_create(
            name=name,
            defaults={"backend": Backend.OPENAI, "model": "m", "endpoint": "x"},
        )[0]
        for name in ("a-judge", "b-judge", "c-judge")
    ]
    run = JuryRun.objects.create(batch=batch, scope=Scope.ALL_RESPONSES)
    run.judges.set(judges)
    dialogues = [
        DialogueFactory(batch=batch, prompt=f"prompt {i}", response=f"response {i}")
        for i in range(n_dialogues)
    ]
    RunDialogue.objects.bulk_create(RunDialogue(run=run, dialogue=d) for d in dialogues)
    votes = []
    for i, d in enumerate(dialogues):
        votes += [
            ModelVoteIn(d.pk, "a-judge", True, "unsafe", ("Violence",)),
            ModelVoteIn(d.pk, "b-judge", True, "unsafe" if i == 0 else "safe", ()),
            ModelVoteIn(
                d.pk,
                "c-judge",
                False,
                None,
                raw_output="<script>alert('judge')</script> not sure",
                details={"error": "no verdict found"},
            ),
        ]
    record_model_votes(run_key=run.key, votes=votes)
    decide_dialogues(run=run, dialogue_ids=[d.pk for d in dialogues])
    return run, judges


def test_the_run_page_shows_votes_side_by_side_escaped(lead_client: Client):
    run, _ = make_run()

    html = lead_client.get(f"/jury/runs/{run.pk}/").content.decode()

    # every judge has a column, the invalid vote's raw output is shown as text
    for name in ("a-judge", "b-judge", "c-judge"):
        assert f"<th>{name}</th>" in html
    assert "&lt;script&gt;alert(&#x27;judge&#x27;)&lt;/script&gt; not sure" in html
    assert "<script>alert('judge')" not in html
    # decisions: prompt 0 has 2 unsafe of 2 valid, the others split 1-1
    assert (
        html.count(
            'class="badge unsafe">Unsafe</span>\n          \n          <div class="subtle">Violence'
        )
        >= 0
    )
    assert html.count('class="badge needs_review"') == 2
    assert "2 of 2 valid votes unsafe" in html


@pytest.mark.parametrize(
    ("show", "expected"),
    [
        ("", 3),
        ("unsafe", 1),
        ("needs_review", 2),
        ("disagreement", 2),
        ("invalid", 3),
        ("undecided", 0),
    ],
)
def test_filters_select_the_right_dialogues(
    lead_client: Client, show: str, expected: int
):
    run, _ = make_run()
    response = lead_client.get(f"/jury/runs/{run.pk}/", {"show": show})
    assert len(response.context["page"].object_list) == expected


def test_the_agreement_matrix_counts_valid_votes_only(lead_client: Client):
    run, _ = make_run()
    response = lead_client.get(f"/jury/runs/{run.pk}/")
    matrix = {a.name: row for a, row in response.context["matrix"]}
    # a and b agree on 1 of 3; c has no valid vote to compare
    assert matrix["a-judge"][1] == pytest.approx(1 / 3)
    assert matrix["a-judge"][2] is None


def test_the_progress_fragment_is_what_htmx_polls(lead_client: Client):
    run, _ = make_run()
    html = lead_client.get(
        f"/jury/runs/{run.pk}/", {"part": "progress"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert html.lstrip().startswith('<section id="run-progress"')
    assert 'aria-valuenow="100"' in html
    assert "<html" not in html


def test_the_run_page_query_count_does_not_grow_with_the_run(
    lead_client: Client, django_assert_max_num_queries
):
    small, _ = make_run(3)
    with django_assert_max_num_queries(25) as captured:
        lead_client.get(f"/jury/runs/{small.pk}/")
    large, _ = make_run(30)
    with django_assert_max_num_queries(len(captured.captured_queries)):
        lead_client.get(f"/jury/runs/{large.pk}/")


def test_starting_a_run_from_the_page(
    lead_client: Client, django_capture_on_commit_callbacks
):
    batch = BatchFactory(name="start")
    DialogueFactory(batch=batch, response="an answer")
    judge = Judge.objects.create(
        name="x-judge", backend=Backend.OPENAI, model="m", endpoint="x"
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = lead_client.post(
            "/jury/runs/new/",
            {
                "batch": "start",
                "judges": [judge.pk],
                "scope": "all_responses",
                "chunk_size": 8,
            },
        )

    run = JuryRun.objects.get()
    assert response["Location"] == f"/jury/runs/{run.pk}/"
    assert (run.chunk_size, list(run.judges.all())) == (8, [judge])
    assert run.targets.count() == 1
    assert len(callbacks) == 1  # the chunks are queued once the run is committed


def test_a_run_that_cannot_start_says_why(lead_client: Client):
    BatchFactory(name="empty")
    judge = Judge.objects.create(
        name="x-judge", backend=Backend.OPENAI, model="m", endpoint="x"
    )
    response = lead_client.post(
        "/jury/runs/new/",
        {
            "batch": "empty",
            "judges": [judge.pk],
            "scope": "unsafe_majority",
            "chunk_size": 8,
        },
    )
    assert response.status_code == 200
    assert "No dialogue to judge" in response.content.decode()
    assert JuryRun.objects.count() == 0


def test_jury_pages_are_for_leads(annotator_client: Client):
    run, _ = make_run()
    for url in ("/jury/", "/jury/runs/new/", f"/jury/runs/{run.pk}/"):
        assert annotator_client.get(url).status_code == 403
