"""Scripts written before the house redesign still find the queue at its old path."""

from annotation import queue
from annotation.labelling import queue as labelling_queue


def test_the_queue_answers_at_its_old_path():
    names = ("acknowledge_warning", "reserve_next", "submit_label", "skip_dialogue")
    for name in (*names, "flag_dialogue", "edit_label", "VoteIn"):
        assert getattr(queue, name) is getattr(labelling_queue, name), name
