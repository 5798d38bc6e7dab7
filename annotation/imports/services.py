"""Import dialogues and human votes from files into a batch, all or nothing.

Reading and checking happen before anything is written, so a bad file leaves the
database as it was. Writing uses PostgreSQL's COPY for dialogues (the bulk of a large
import) and bulk inserts for votes.
"""

import gc
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Role, User
from accounts.refusals import Refused
from annotation.final_labels.services import derive_later
from annotation.imports.formats import (
    FORMATS,
    GENERIC,
    PARSERS,
    Context,
    DialogueIn,
    FileVote,
    FormatOptions,
    cell,
    detect_format,
    normalise_label,
    prompt_and_response,
)
from annotation.imports.readers import (
    FileFormatError,
    Record,
    RowError,
    Source,
    peek_columns,
    read_records,
    sniff,
)
from annotation.labelling.queue import recount_claimed
from annotation.models import (
    BATCH_NAME_PATTERN,
    Batch,
    Dialogue,
    ImportJob,
    Label,
    LabelCategory,
    VoteKind,
    shuffle_key,
)
from annotation.rules.votes import check_vote
from taxonomy.matching import CategoryIndex, CategoryRef, split_category_list
from taxonomy.models import Taxonomy

Progress = Callable[[int, str], None]
MAX_REPORTED_ERRORS = 1000
PROGRESS_EVERY = 5000


class ImportFailed(Refused):
    """The import cannot start (unknown batch or format, unreadable file); `error` is
    the file's error, with its line and field, when one was read."""

    def __init__(self, message: str, error: RowError | None = None) -> None:
        super().__init__(message)
        self.error = error

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.error is not None:
            body["errors"] = [self.error.as_dict() | {"text": str(self.error)}]
        return body


@dataclass(frozen=True)
class Surface:
    """Where the person reading an import's messages is: each message names the
    option to change as that place shows it (a command's flag, the form's field)."""

    format: str
    create_batch: str
    create_annotators: str


COMMAND_LINE = Surface(
    format="pass --format",
    create_batch="pass --create-batch",
    create_annotators="pass --create-annotators to create them",
)
# The upload page and the API share the form (annotation.imports.forms.ImportForm): its
# label for the page, its field name for the API.
UPLOAD_FORM = Surface(
    format="choose the format in the form (field “format”)",
    create_batch="tick “Create the batch if it is new” (field “create_batch”)",
    create_annotators="tick “Create unknown annotators” "
    "(field “create_annotators”) to create them",
)


@dataclass
class ImportResult:
    batch: str
    format: str
    imported: int = 0
    skipped_duplicates: int = 0
    labels: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    dry_run: bool = False
    written: bool = False
    # A file-level error (the file cannot be read as a whole) or one past a limit
    # stops the import even with skip_invalid: that skips bad rows, it does not keep
    # half a file.
    unreadable: bool = False

    def add_error(self, error: RowError) -> None:
        self.error_count += 1
        self.unreadable = self.unreadable or error.stops_import
        if len(self.errors) < MAX_REPORTED_ERRORS or error.stops_import:
            self.errors.append(error)

    def add_errors(self, errors: Iterable[RowError]) -> None:
        """Count and keep each of a row's errors."""
        for error in errors:
            self.add_error(error)

    def stops(self, *, skip_invalid: bool) -> bool:
        """Whether the errors so far keep anything from being written."""
        return bool(self.error_count) and (not skip_invalid or self.unreadable)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "format": self.format,
            "imported": self.imported,
            "skipped_duplicates": self.skipped_duplicates,
            "labels": self.labels,
            "errors": [e.as_dict() | {"text": str(e)} for e in self.errors],
            "error_count": self.error_count,
            "dry_run": self.dry_run,
            "written": self.written,
        }


@dataclass
class _Checked:
    row: DialogueIn
    content_hash: str
    external_id: str
    votes: list[tuple[FileVote, list[CategoryRef]]]
    reference_categories: list[CategoryRef]


def resolve_format(
    path: Path,
    display_name: str,
    fmt: str | None,
    surface: Surface = COMMAND_LINE,
) -> tuple[Any, str]:
    """Sniff the file; use the format given or detect it from the columns."""
    source = sniff(path, display_name)
    if fmt:
        if fmt not in FORMATS:
            raise ImportFailed(
                f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}"
            )
        if fmt in GENERIC:
            source.container = fmt
        return source, fmt
    columns, first = peek_columns(source)
    detected = detect_format(columns, first, source.container)
    if detected is None and first is None:
        # Nothing could be read: say why (a broken first line, a corrupt file).
        problem = next(iter(read_records(source)), None)
        if isinstance(problem, RowError):
            raise ImportFailed(str(problem), problem)
    if detected is None:
        shown = ", ".join(columns[:12]) or "none"
        raise ImportFailed(
            f"{display_name}: cannot tell the format from its columns ({shown}); "
            f"{surface.format}"
        )
    return source, detected


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a large import builds its rows.

    An import keeps about ten objects per row alive until it is written; with the
    collector on, its full passes rescan them all again and again (a quarter of the
    time of a 100,000-row import). The rows form no cycles, so nothing is lost.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- steps both imports share -------------------------------------------------------

T = TypeVar("T")


def _batch_named(batch_name: str) -> Batch | None:
    """The batch an import writes to, with its taxonomy; None if there is none yet."""
    return Batch.objects.select_related("taxonomy").filter(name=batch_name).first()


def _no_such_batch(batch_name: str, remedy: str = "") -> ImportFailed:
    """The refusal of an import into a missing batch, with how to make it if it can."""
    hint = f"; create it first or {remedy}" if remedy else ""
    return ImportFailed(f"batch {batch_name!r} does not exist{hint}")


def _counted(items: Iterable[T], progress: Progress | None) -> Iterator[T]:
    """Pass the items on, telling `progress` after each PROGRESS_EVERY of them."""
    for n, item in enumerate(items, start=1):
        if progress and n % PROGRESS_EVERY == 0:
            progress(n, "reading")
        yield item


def _good_records(
    items: Iterable[Record | RowError], result: ImportResult
) -> Iterator[Record]:
    """Pass on the records a file reads as; the ones it cannot read go on the result."""
    for item in items:
        if isinstance(item, RowError):
            result.add_error(item)
        else:
            yield item


def _human_label(dialogue_id: int, annotator: User, vote: FileVote) -> Label:
    """A human vote read from a file, as it is stored."""
    return Label(
        dialogue_id=dialogue_id,
        kind=VoteKind.HUMAN,
        annotator=annotator,
        label=vote.label,
        response_label=vote.response_label,
        other_text=vote.other_text,
        comment=vote.comment,
        time_spent_ms=vote.time_spent_ms,
        details=vote.details,
    )


def _finish(result: ImportResult, batch: Batch) -> None:
    """Mark the import written; its votes' final labels are derived after the commit."""
    if result.labels:
        derive_later(batch.pk)
    result.written = True


# --- dialogues ----------------------------------------------------------------------


@_gc_paused()
def import_dialogues(
    *,
    path: Path,
    batch_name: str,
    fmt: str | None = None,
    create_batch: bool = False,
    dry_run: bool = False,
    skip_invalid: bool = False,
    options: FormatOptions | None = None,
    display_name: str | None = None,
    by: User | None = None,
    job: ImportJob | None = None,
    progress: Progress | None = None,
    surface: Surface = COMMAND_LINE,
) -> ImportResult:
    """Read a dataset file into a batch; nothing is written if any row is bad.

    Rows whose exact turns already exist in the batch (or earlier in the file) are
    skipped and counted. With `skip_invalid`, bad rows are reported and the rest kept
    (a file that cannot be read as a whole is still refused). Imports into one batch
    are serialised by a row lock on the batch. `surface` words the messages for
    where they are read.
    """
    display_name = display_name or path.name
    source, fmt = resolve_format(path, display_name, fmt, surface)
    batch = _batch_to_fill(batch_name, create_batch=create_batch, surface=surface)
    taxonomy = batch.taxonomy if batch else Taxonomy.objects.default()
    index = taxonomy.category_index()
    result = ImportResult(batch=batch_name, format=fmt, dry_run=dry_run)
    ctx = Context(source, fmt, options or FormatOptions())
    rows = _read_dialogues(source, ctx, index, result, progress)
    read = len(rows) + result.error_count + result.skipped_duplicates
    if progress:
        progress(read, "checking")
    if result.stops(skip_invalid=skip_invalid):
        return result

    with transaction.atomic():
        batch, existing_hashes, existing_ids = _lock_batch(
            batch, name=batch_name, taxonomy=taxonomy, rows=rows, by=by, dry_run=dry_run
        )
        new_rows = _plan(rows, existing_hashes, existing_ids, result, ctx.file)
        if result.stops(skip_invalid=skip_invalid):
            transaction.set_rollback(True)
            return result
        result.imported = len(new_rows)
        result.labels = sum(
            len(r.votes) + (r.row.reference is not None) for r in new_rows
        )
        if dry_run or batch is None:
            transaction.set_rollback(True)
            return result
        if progress:
            progress(read, "writing")
        _write_dialogues(new_rows, batch, job)
        _write_votes(new_rows, batch)
        _finish(result, batch)
    return result


def _batch_to_fill(
    batch_name: str, *, create_batch: bool, surface: Surface
) -> Batch | None:
    """The batch a dataset file goes into; None when the import will make it."""
    batch = _batch_named(batch_name)
    if batch is not None:
        return batch
    if not create_batch:
        raise _no_such_batch(batch_name, surface.create_batch)
    if not re.match(BATCH_NAME_PATTERN, batch_name):
        raise ImportFailed(
            f"batch name {batch_name!r}: use letters, digits, spaces, dots, dashes "
            "and underscores only"
        )
    return None


def _read_dialogues(
    source: Source,
    ctx: Context,
    index: CategoryIndex,
    result: ImportResult,
    progress: Progress | None,
) -> list[_Checked]:
    """Parse and check every row of a dataset file; bad rows' errors go on result.

    A row that repeats an earlier one of the file is counted as a duplicate here, not
    kept: a file of one line over and over (a gzip bomb's shape) costs one row.
    """
    parse = PARSERS[ctx.format]
    rows: list[_Checked] = []
    seen: set[str] = set()
    for record in _good_records(_counted(read_records(source), progress), result):
        parsed = parse(record, ctx)
        checked = (
            parsed if isinstance(parsed, list) else _check_row(parsed, index, ctx.file)
        )
        if isinstance(checked, list):
            result.add_errors(checked)
        elif checked.content_hash in seen:
            result.skipped_duplicates += 1
        else:
            seen.add(checked.content_hash)
            rows.append(checked)
    return rows


def _lock_batch(
    batch: Batch | None,
    *,
    name: str,
    taxonomy: Taxonomy,
    rows: list[_Checked],
    by: User | None,
    dry_run: bool,
) -> tuple[Batch | None, set[str], set[str]]:
    """Lock the batch (made now unless a dry run); the hashes and ids it holds."""
    if batch is None:
        if dry_run:
            return None, set(), set()
        batch, created = Batch.objects.get_or_create(
            name=name, defaults={"taxonomy": taxonomy, "created_by": by}
        )
        if created:
            _require_the_votes_it_brings(batch, rows)
    batch = (
        Batch.objects.select_for_update().select_related("taxonomy").get(pk=batch.pk)
    )
    existing_hashes = set(
        Dialogue.objects.filter(batch=batch).values_list("content_hash", flat=True)
    )
    existing_ids = set(
        Dialogue.objects.originals()
        .filter(batch=batch)
        .values_list("external_id", flat=True)
    )
    return batch, existing_hashes, existing_ids


def _require_the_votes_it_brings(batch: Batch, rows: list["_Checked"]) -> None:
    """A batch made by an import whose every row brings the same number of human
    votes (XSTest's two raters) requires that many, so its final labels resolve
    instead of waiting for a third vote nobody will cast."""
    counts = {len(r.votes) for r in rows}
    if len(counts) == 1 and (n := counts.pop()) >= 1 and n != batch.labels_required:
        batch.labels_required = n
        batch.save(update_fields=["labels_required"])


def _check_row(
    row: DialogueIn, index: CategoryIndex, file: str
) -> _Checked | list[RowError]:
    """Check a parsed row's votes and reference against the taxonomy."""
    errors: list[RowError] = []
    votes: list[tuple[FileVote, list[CategoryRef]]] = []
    seen: set[str] = set()
    for vote in row.votes:
        if vote.annotator in seen:
            errors.append(
                RowError(file, row.line, "annotator", f"{vote.annotator!r} voted twice")
            )
            continue
        seen.add(vote.annotator)
        cats, problems = check_vote(
            label=vote.label,
            response_label=vote.response_label,
            category_names=vote.categories,
            other_text=vote.other_text,
            index=index,
            require_other_text=vote.require_other_text,
        )
        if not vote.require_categories and not vote.categories:
            # With no names given, the only category problem is "required when unsafe".
            problems = [p for p in problems if p.field != "categories"]
        errors.extend(
            RowError(file, row.line, p.field, f"{p.message} (vote by {vote.annotator})")
            for p in problems
        )
        votes.append((vote, cats))
    reference_cats: list[CategoryRef] = []
    if row.reference is not None:
        reference_cats, unknown = index.resolve_many(row.reference.categories)
        errors.extend(
            RowError(
                file, row.line, "violated_categories", f"unknown category {name!r}"
            )
            for name in unknown
        )
    if errors:
        return errors
    return _Checked(
        row=row,
        content_hash=row.content_hash,
        external_id=row.external_id or "",
        votes=votes,
        reference_categories=reference_cats,
    )


def _plan(
    rows: list[_Checked],
    existing_hashes: set[str],
    existing_ids: set[str],
    result: ImportResult,
    file: str,
) -> list[_Checked]:
    """Drop duplicates (counted) and refuse ids that name different content."""
    seen_hashes: set[str] = set()
    seen_ids: dict[str, int] = {}
    keep: list[_Checked] = []
    for item in rows:
        if item.content_hash in existing_hashes or item.content_hash in seen_hashes:
            result.skipped_duplicates += 1
            continue
        if not item.external_id:
            item.external_id = f"{item.row.source}-{item.content_hash[:12]}"
        if not item.row.augmentation:
            if item.external_id in seen_ids:
                result.add_error(
                    RowError(
                        file,
                        item.row.line,
                        "id",
                        f"{item.external_id!r} is also used on line "
                        f"{seen_ids[item.external_id]} for different content",
                    )
                )
                continue
            if item.external_id in existing_ids:
                result.add_error(
                    RowError(
                        file,
                        item.row.line,
                        "id",
                        f"{item.external_id!r} is already in the batch "
                        "with different content",
                    )
                )
                continue
            seen_ids[item.external_id] = item.row.line
        seen_hashes.add(item.content_hash)
        keep.append(item)
    return keep


# Attnames of the Dialogue fields an import sets; for these they are also the columns.
DIALOGUE_COLUMNS = (
    "batch_id",
    "external_id",
    "source",
    "augmentation",
    "turns",
    "prompt",
    "response",
    "redacted",
    "reconstruction_id",
    "content_hash",
    "metadata",
    "import_job_id",
    "votes",
    "claimed",
    "shuffle_key",
    "created_at",
)
_to_json = json.JSONEncoder(ensure_ascii=False).encode


def _write_dialogues(rows: list[_Checked], batch: Batch, job: ImportJob | None) -> None:
    """Write the new dialogues in bulk: COPY on PostgreSQL, bulk inserts elsewhere."""
    now = timezone.now()
    job_id = job.pk if job else None
    postgres = connection.vendor == "postgresql"

    def values(item: _Checked) -> tuple[Any, ...]:
        row = item.row
        prompt, response = prompt_and_response(row.turns)
        return (
            batch.pk,
            item.external_id,
            row.source,
            row.augmentation,
            _to_json(row.turns) if postgres else row.turns,
            prompt,
            response,
            row.reconstruction_id is not None,
            row.reconstruction_id,
            item.content_hash,
            (_to_json(row.metadata) if row.metadata else "{}")
            if postgres
            else row.metadata,
            job_id,
            len(row.votes),
            len(row.votes),
            shuffle_key(),
            now,
        )

    if postgres:
        statement = (
            f"COPY {Dialogue._meta.db_table} ({', '.join(DIALOGUE_COLUMNS)}) FROM STDIN"
        )
        with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
            for item in rows:
                copy.write_row(values(item))
        return
    Dialogue.objects.bulk_create(
        (Dialogue(**dict(zip(DIALOGUE_COLUMNS, values(r), strict=True))) for r in rows),
        batch_size=1000,
    )


def _write_votes(rows: list[_Checked], batch: Batch) -> None:
    """Write the votes and reference labels the new dialogues bring; make raters."""
    with_votes = [r for r in rows if r.votes or r.row.reference is not None]
    if not with_votes:
        return
    ids = dict(
        Dialogue.objects.filter(
            batch=batch, content_hash__in=[r.content_hash for r in with_votes]
        ).values_list("content_hash", "pk")
    )
    users = _annotators(
        {
            (v.annotator, v.annotator_email, r.row.imported_from)
            for r in with_votes
            for v, _ in r.votes
        },
        create_inactive=True,
    )
    labels: list[Label] = []
    categories: list[list[CategoryRef]] = []
    for item in with_votes:
        dialogue_id = ids[item.content_hash]
        for vote, cats in item.votes:
            labels.append(_human_label(dialogue_id, users[vote.annotator], vote))
            categories.append(cats)
        ref = item.row.reference
        if ref is not None:
            labels.append(
                Label(
                    dialogue_id=dialogue_id,
                    kind=VoteKind.REFERENCE,
                    label=ref.prompt_label,
                    response_label=ref.response_label,
                    prompt_label_source=ref.prompt_label_source,
                    response_label_source=ref.response_label_source,
                )
            )
            categories.append(item.reference_categories)
    _insert_labels(labels, categories)


def _insert_labels(labels: list[Label], categories: list[list[CategoryRef]]) -> None:
    """Insert the labels and, in order, each label's categories, in bulk."""
    created = Label.objects.bulk_create(labels, batch_size=2000)
    LabelCategory.objects.bulk_create(
        (
            LabelCategory(label_id=label.pk, category_id=cat.id, position=pos)
            for label, cats in zip(created, categories, strict=True)
            for pos, cat in enumerate(cats)
        ),
        batch_size=5000,
    )


def _annotators(
    wanted: set[tuple[str, str, str]], *, create_inactive: bool
) -> dict[str, User]:
    """Find each rater by username (or email); create the missing ones.

    Raters that only exist in an imported file become inactive users: they hold votes
    for agreement statistics but cannot log in.
    """
    names = {name for name, _, _ in wanted}
    emails = {email for _, email, _ in wanted if email}
    found = {u.username: u for u in User.objects.filter(username__in=names)}
    by_email = (
        {u.email: u for u in User.objects.filter(email__in=emails)} if emails else {}
    )
    missing: list[User] = []
    for name, email, origin in sorted(wanted):
        if name in found:
            continue
        if email and email in by_email:
            found[name] = by_email[email]
            continue
        user = User(
            username=name,
            email=email,
            role=Role.ANNOTATOR,
            is_active=not create_inactive,
            imported_from=origin or "import",
            password=make_password(None),
        )
        found[name] = user
        missing.append(user)
    if missing:
        User.objects.bulk_create(missing)
        # bulk_create sets pks on PostgreSQL and SQLite; reload to be safe elsewhere.
        reloaded = {
            u.username: u
            for u in User.objects.filter(username__in=[u.username for u in missing])
        }
        found.update(reloaded)
    return found


# --- human votes in long format ---------------------------------------------------

LABEL_COLUMNS = ("dialogue_id", "annotator", "label")


@_gc_paused()
def import_labels(
    *,
    path: Path,
    batch_name: str,
    create_annotators: bool = False,
    skip_invalid: bool = False,
    dry_run: bool = False,
    display_name: str | None = None,
    progress: Progress | None = None,
    surface: Surface = COMMAND_LINE,
) -> ImportResult:
    """Add human votes (one row per dialogue and annotator) to a batch, all or nothing.

    A row identical to a vote already stored is skipped and counted; a row that would
    change a stored vote is an error (votes are edited in the app, with history).
    """
    display_name = display_name or path.name
    source = sniff(path, display_name)
    batch = _batch_named(batch_name)
    if batch is None:
        raise _no_such_batch(batch_name)
    index = batch.taxonomy.category_index()
    result = ImportResult(batch=batch_name, format="labels", dry_run=dry_run)
    records = _read_label_records(source, display_name, result)
    votes = _check_label_rows(
        records,
        _what_the_batch_holds(batch, records),
        file=display_name,
        index=index,
        create_annotators=create_annotators,
        surface=surface,
        result=result,
        progress=progress,
    )
    if result.stops(skip_invalid=skip_invalid):
        return result
    result.imported = len(votes)
    result.labels = len(votes)
    if dry_run or not votes:
        return result
    with transaction.atomic():
        _write_human_votes(votes, batch)
        _finish(result, batch)
    return result


# A vote to add: the dialogue's pk, the annotator's username, the vote, its categories.
_NewVote = tuple[int, str, FileVote, list[CategoryRef]]


@dataclass
class _BatchHolds:
    """What a labels file's rows are checked against."""

    dialogues: dict[str, int]  # original external id -> pk
    has_response: set[int]
    usernames: set[str]  # of the users the file names who exist
    votes: dict[tuple[int, str], tuple[Any, ...]]  # (dialogue, username) -> vote


def _read_label_records(
    source: Source, file: str, result: ImportResult
) -> list[Record]:
    """Read a labels file whole, refusing it if it lacks a column every vote needs."""
    records = list(_good_records(read_records(source), result))
    if records:
        missing = [c for c in LABEL_COLUMNS if c not in records[0].data]
        if missing:
            raise ImportFailed(
                f"{file}: missing column(s) {', '.join(missing)}; "
                f"need {', '.join(LABEL_COLUMNS)}"
            )
    return records


def _what_the_batch_holds(batch: Batch, records: list[Record]) -> _BatchHolds:
    """Load the batch's dialogues and human votes, and the users the rows name."""
    dialogues = dict(
        Dialogue.objects.originals()
        .filter(batch=batch)
        .values_list("external_id", "pk")
    )
    has_response = set(
        Dialogue.objects.filter(batch=batch, response__isnull=False).values_list(
            "pk", flat=True
        )
    )
    # Stripped as in _parse_label_row, so " anna " finds the user anna.
    names = {name.strip() for r in records if (name := cell(r.data, "annotator"))}
    usernames = {u.username for u in User.objects.filter(username__in=names)}
    return _BatchHolds(dialogues, has_response, usernames, _existing_votes(batch))


def _check_label_rows(
    records: list[Record],
    holds: _BatchHolds,
    *,
    file: str,
    index: CategoryIndex,
    create_annotators: bool,
    surface: Surface,
    result: ImportResult,
    progress: Progress | None,
) -> list[_NewVote]:
    """Check each row of a labels file: the votes to add; bad rows' errors on result."""
    planned: dict[tuple[int, str], tuple[tuple[Any, ...], int]] = {}
    votes: list[_NewVote] = []
    for record in _counted(records, progress):
        row_errors, parsed = _parse_label_row(
            record, file, index, holds.dialogues, holds.has_response
        )
        if parsed is None:
            result.add_errors(row_errors)
            continue
        dialogue_id, vote, cats = parsed
        if vote.annotator not in holds.usernames and not create_annotators:
            result.add_error(
                RowError(
                    file,
                    record.line,
                    "annotator",
                    f"no user {vote.annotator!r}; {surface.create_annotators}",
                )
            )
            continue
        key = (dialogue_id, vote.annotator)
        signature = (vote.label, vote.response_label, tuple(c.id for c in cats))
        earlier = _earlier_vote(key, planned, holds.votes)
        if earlier is None:
            planned[key] = (signature, record.line)
            votes.append((dialogue_id, vote.annotator, vote, cats))
        elif earlier[0] == signature:
            result.skipped_duplicates += 1
        else:
            result.add_error(
                RowError(
                    file, record.line, "annotator", f"{vote.annotator!r} {earlier[1]}"
                )
            )
    return votes


def _earlier_vote(
    key: tuple[int, str],
    planned: dict[tuple[int, str], tuple[tuple[Any, ...], int]],
    stored: dict[tuple[int, str], tuple[Any, ...]],
) -> tuple[tuple[Any, ...], str] | None:
    """This annotator's earlier vote on the dialogue (in the file or stored), worded."""
    if key in planned:
        signature, line = planned[key]
        return signature, f"already voted differently on this dialogue (line {line})"
    if key in stored:
        return stored[key], "already has a different vote on this dialogue"
    return None


def _write_human_votes(votes: list[_NewVote], batch: Batch) -> None:
    """Store the votes under the batch's lock, with new annotators; recount claims."""
    Batch.objects.select_for_update().get(pk=batch.pk)
    users = _annotators(
        {(name, "", "import") for _, name, _, _ in votes}, create_inactive=False
    )
    _insert_labels(
        [
            _human_label(dialogue_id, users[name], vote)
            for dialogue_id, name, vote, _ in votes
        ],
        [cats for _, _, _, cats in votes],
    )
    recount_claimed(dialogue_ids=sorted({dialogue_id for dialogue_id, *_ in votes}))


def _existing_votes(batch: Batch) -> dict[tuple[int, str], tuple[Any, ...]]:
    """Each stored human vote of the batch by (dialogue, username), as compared."""
    rows = (
        Label.objects.human()
        .filter(dialogue__batch=batch)
        .values_list(
            "pk", "dialogue_id", "annotator__username", "label", "response_label"
        )
    )
    cats: dict[int, list[int]] = {}
    for label_id, category_id in (
        LabelCategory.objects.filter(
            label__dialogue__batch=batch, label__kind=VoteKind.HUMAN
        )
        .order_by("label_id", "position")
        .values_list("label_id", "category_id")
    ):
        cats.setdefault(label_id, []).append(category_id)
    return {
        (dialogue_id, username): (label, response_label, tuple(cats.get(pk, [])))
        for pk, dialogue_id, username, label, response_label in rows
    }


def _parse_label_row(
    record: Record,
    file: str,
    index: CategoryIndex,
    dialogues: dict[str, int],
    has_response: set[int],
) -> tuple[list[RowError], tuple[int, FileVote, list[CategoryRef]] | None]:
    """Read one row of a labels file as a vote on a dialogue, or its errors."""
    data = record.data
    errors: list[RowError] = []

    def err(fld: str, message: str) -> None:
        errors.append(RowError(file, record.line, fld, message))

    external_id = cell(data, "dialogue_id")
    annotator = cell(data, "annotator")
    if external_id is None:
        err("dialogue_id", "is empty")
    elif external_id.strip() not in dialogues:
        err("dialogue_id", f"no dialogue {external_id.strip()!r} in this batch")
    if annotator is None:
        err("annotator", "is empty")
    label_text = cell(data, "label")
    response_text = cell(data, "response_label")
    label = normalise_label(label_text) or label_text
    response_label = normalise_label(response_text) or response_text
    time_spent = cell(data, "time_spent_ms")
    time_ms: int | None = None
    if time_spent is not None:
        try:
            time_ms = int(float(time_spent))
            if time_ms < 0:
                raise ValueError
        except ValueError:
            err(
                "time_spent_ms",
                f"must be a whole number of milliseconds, not {time_spent!r}",
            )
    vote = FileVote(
        annotator=(annotator or "").strip(),
        label=label or "",
        response_label=response_label,
        categories=split_category_list(data.get("categories")),
        other_text=cell(data, "other_text") or "",
        comment=cell(data, "comment") or "",
        time_spent_ms=time_ms,
    )
    cats, problems = check_vote(
        label=label,
        response_label=response_label,
        category_names=vote.categories,
        other_text=vote.other_text,
        index=index,
    )
    errors.extend(RowError(file, record.line, p.field, p.message) for p in problems)
    if errors:
        return errors, None
    dialogue_id = dialogues[external_id.strip()]  # type: ignore[union-attr]
    if response_label is not None and dialogue_id not in has_response:
        return [
            RowError(
                file, record.line, "response_label", "the dialogue has no response"
            )
        ], None
    return [], (dialogue_id, vote, cats)


__all__ = [
    "COMMAND_LINE",
    "UPLOAD_FORM",
    "FileFormatError",
    "ImportFailed",
    "ImportResult",
    "Surface",
    "import_dialogues",
    "import_labels",
    "resolve_format",
]
