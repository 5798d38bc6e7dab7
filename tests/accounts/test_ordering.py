"""People are listed as a person reads their names (accounts.ordering)."""

from types import SimpleNamespace

from accounts.ordering import by_username, natural_sorted


def test_numbers_in_names_sort_as_numbers():
    names = ["annotator10", "annotator2", "Annotator1", "annotator12", "annotator1"]

    assert natural_sorted(names) == [
        "Annotator1",
        "annotator1",
        "annotator2",
        "annotator10",
        "annotator12",
    ]


def test_names_without_numbers_sort_without_case_and_digits_first():
    assert natural_sorted(["ben", "Anna", "7up", "cleo", "anna"]) == [
        "7up",
        "Anna",
        "anna",
        "ben",
        "cleo",
    ]


def test_users_sort_by_their_username():
    users = [SimpleNamespace(username=n) for n in ("r-10", "r-9", "r-1a", "r-1")]

    assert [u.username for u in by_username(users)] == ["r-1", "r-1a", "r-9", "r-10"]
