"""Fast paths for registering hundreds of thousands of documents.

`bulk_create` spends most of its time building model instances and preparing each field of
each row; ingest at thousands of files per second cannot afford that. Here rows are plain
dicts over defaults prepared once, ids are taken from the sequence in one query, and the rows
go to PostgreSQL with COPY. Other databases fall back to `bulk_create`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import psycopg
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages
from django.db import connection, transaction
from django.db.models import CharField, Field

from documents.models import Chunk, Document
from documents.pipeline import ChunkResult

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class StorageFullError(OSError):
    """The file system holding the documents is full (or over quota): nothing was stored."""

    def __init__(self, name: str) -> None:
        super().__init__(
            errno.ENOSPC,
            f"The server's storage is full, so {name} was not stored and nothing was saved. "
            "Try again once space has been freed (an administrator has to make room).",
        )

    def __str__(self) -> str:
        return str(self.strerror)


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


@cache
def _columns() -> tuple[Field[Any, Any], ...]:
    return tuple(f for f in Document._meta.concrete_fields if not f.primary_key)


def _defaults() -> dict[str, Any]:
    """Each column's default, prepared for the database once per batch, not once per row."""
    return {
        field.attname: field.get_db_prep_save(field.get_default(), connection)
        for field in _columns()
        if field.attname not in {"created_at"}
    }


def insert_documents(rows: list[dict[str, Any]]) -> list[int]:
    """Insert documents given as {attname: value} dicts; returns their new ids in order."""
    if not rows:
        return []
    if connection.vendor != "postgresql":
        created = Document.objects.bulk_create([Document(**row) for row in rows])
        return [document.pk for document in created]
    defaults = _defaults()
    columns = [field.attname for field in _columns()]
    names = ", ".join(connection.ops.quote_name(field.column) for field in _columns())
    table = connection.ops.quote_name(Document._meta.db_table)
    sequence = f"{Document._meta.db_table}_id_seq"
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(%s) FROM generate_series(1, %s)", [sequence, len(rows)])
        ids = [row[0] for row in cursor.fetchall()]
        now = rows[0].get("created_at")
        with cursor.cursor.copy(f"COPY {table} (id, {names}) FROM STDIN") as copy:
            for pk, row in zip(ids, rows, strict=True):
                values = {**defaults, "created_at": now, **row}
                copy.write_row([pk, *(values[column] for column in columns)])
    return ids


@cache
def _document_fields() -> dict[str, Field[Any, Any]]:
    return {field.attname: field for field in (Document._meta.pk, *_columns())}


def _array_type(field: Field[Any, Any]) -> str:
    """The element type to send a column's values as. Text for character columns: a cast to
    varchar(n) would cut an over-long value silently, where the column itself refuses it."""
    if isinstance(field, CharField):
        return "text"
    return str(field.cast_db_type(connection))


def update_processing_documents(
    rows: Sequence[tuple[int, str, dict[str, Any]]], *, processing: str
) -> set[int]:
    """Write each row's fields on its document if it is still `processing` under that task id;
    returns the ids written.

    One statement for the rows that set the same fields (a batch's outcomes: usually one),
    not one per row: on PostgreSQL the values go in as typed arrays and come out of `unnest`.
    Fields are attnames with plain values (no expressions).
    """
    written: set[int] = set()
    if connection.vendor != "postgresql":
        for pk, task_id, fields in rows:
            if Document.objects.filter(pk=pk, task_id=task_id, status=processing).update(**fields):
                written.add(pk)
        return written
    groups: dict[tuple[str, ...], list[tuple[int, str, dict[str, Any]]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row[2])), []).append(row)
    known = _document_fields()
    quote = connection.ops.quote_name
    for names, group in groups.items():
        fields = [known[name] for name in names]
        columns = [quote(field.column) for field in fields]
        arrays = ", ".join(
            f"%s::{_array_type(field)}[]" for field in [known["id"], known["task_id"], *fields]
        )
        params: list[Any] = [[pk for pk, _, _ in group], [task_id for _, task_id, _ in group]]
        params += [
            [field.get_db_prep_save(values[field.attname], connection) for _, _, values in group]
            for field in fields
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE {quote(Document._meta.db_table)} AS d
                SET {", ".join(f"{column} = v.{column}" for column in columns)}
                FROM unnest({arrays}) AS v(id, task_id, {", ".join(columns)})
                WHERE d.id = v.id AND d.task_id = v.task_id AND d.status = %s
                RETURNING d.id
                """,  # noqa: S608  (names from the model, values as parameters)
                [*params, processing],
            )
            written.update(pk for (pk,) in cursor.fetchall())
    return written


_INSERT_CHUNKS = """
    INSERT INTO documents_chunk (document_id, ordinal, text, page_start, page_end, size,
                                 keywords, embedding, search_vector)
    SELECT %s, c.ordinal, c.text, c.page_start, c.page_end, length(c.text),
           c.keywords::jsonb, c.embedding, to_tsvector(%s::regconfig, c.text)
    FROM unnest(%s::int[], %s::text[], %s::int[], %s::int[], %s::text[], %s::bytea[])
         AS c(ordinal, text, page_start, page_end, keywords, embedding)
"""


_INSERT_CHUNKS_BINARY = (
    _INSERT_CHUNKS.replace("%s::int[]", "%b::int[]")
    .replace("%s::text[]", "%b::text[]")
    .replace("%s::bytea[]", "%b::bytea[]")
)


def _chunk_params(document_id: int, chunks: Sequence[ChunkResult], search_config: str) -> list[Any]:
    return [
        document_id,
        search_config,
        [chunk.ordinal for chunk in chunks],
        [chunk.text for chunk in chunks],
        [chunk.page_start for chunk in chunks],
        [chunk.page_end for chunk in chunks],
        [json.dumps(chunk.keywords) for chunk in chunks],
        [chunk.embedding for chunk in chunks],
    ]


def insert_chunks(document_id: int, chunks: Sequence[ChunkResult], *, search_config: str) -> None:
    """Insert one document's chunks in one statement, the tsvector computed by PostgreSQL.

    Arrays in, `unnest` out: one round trip, the text sent once, and no per-row expression for
    Django to compile (which cost more than the pipeline on long documents).
    """
    if not chunks:
        return
    if connection.vendor != "postgresql":
        Chunk.objects.bulk_create(
            [
                Chunk(
                    document_id=document_id,
                    ordinal=chunk.ordinal,
                    text=chunk.text,
                    page_start=chunk.page_start,
                    page_end=chunk.page_end,
                    size=len(chunk.text),
                    keywords=chunk.keywords,
                    embedding=chunk.embedding,
                )
                for chunk in chunks
            ],
            batch_size=500,
        )
        return
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_CHUNKS, _chunk_params(document_id, chunks, search_config))


class ChunkWriter:
    """Replaces documents' chunks without waiting for PostgreSQL.

    The statements go out in pipeline mode, in a transaction that `settle()` ends, so the
    database computes the tsvectors and updates the indexes while the caller processes the next
    document: in a batch, the worker no longer sits idle for what storing a document costs the
    database (mostly `to_tsvector`). Until `settle()` returns, the connection is the writer's:
    call it before any other query. A document's chunks are written only while it is
    `processing` under the given task id, and its old ones are deleted in the same transaction.
    Elsewhere than PostgreSQL, or without pipeline support, it writes at once.
    """

    # The row's key-share lock, held until the Sync: a reprocess, cancel or delete of the
    # document (they lock it FOR UPDATE) waits for these chunks, then sees them.
    _OWNED = (
        "EXISTS (SELECT 1 FROM documents_document"
        " WHERE id = %s AND task_id = %s AND status = %s FOR KEY SHARE)"
    )

    def __init__(self, *, search_config: str, processing: str) -> None:
        self.search_config = search_config
        self.processing = processing
        self.failed = False  # a write failed: none of those sent is stored
        self._in_flight: contextlib.ExitStack | None = None

    def replace(self, document_id: int, task_id: str, chunks: Sequence[ChunkResult]) -> None:
        owner = [document_id, task_id, self.processing]
        if connection.vendor != "postgresql" or not _pipelines_supported():
            with transaction.atomic():
                if Document.objects.filter(
                    pk=document_id, task_id=task_id, status=self.processing
                ).exists():
                    Chunk.objects.filter(document_id=document_id).delete()
                    insert_chunks(document_id, chunks, search_config=self.search_config)
            return
        try:
            if self._in_flight is None:
                connection.ensure_connection()
                self._in_flight = contextlib.ExitStack()
                self._in_flight.enter_context(connection.connection.pipeline())
            # psycopg's own cursor: parameters bound by the server and the arrays sent in
            # binary, where Django's would spell (and escape) them out in the query's text.
            with psycopg.Cursor(connection.connection) as cursor:
                # prepare=False: no named statements on the server (a transaction pooler
                # between worker and database would not keep them).
                cursor.execute(
                    f"DELETE FROM documents_chunk WHERE document_id = %s AND {self._OWNED}",  # noqa: S608
                    [document_id, *owner],
                    prepare=False,
                )
                if chunks:
                    cursor.execute(
                        f"{_INSERT_CHUNKS_BINARY} WHERE {self._OWNED}",
                        [*_chunk_params(document_id, chunks, self.search_config), *owner],
                        prepare=False,
                    )
        except BaseException:
            self.failed = True
            with contextlib.suppress(Exception):
                self.settle()
            _discard_connection()
            raise

    def settle(self) -> None:
        """End the transaction and wait for it; raises the database's error if it failed."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return
        try:
            with connection.wrap_database_errors:
                in_flight.close()  # the Sync, then whatever is still running
        except BaseException:
            self.failed = True
            _discard_connection()
            raise


def _discard_connection() -> None:
    """After a failure in pipeline mode the connection's state is unsure (an interrupted Sync
    can leave libpq in pipeline mode): close it, and Django opens a fresh one for the next
    query. Not inside a transaction the caller holds, which closing would lose."""
    if not connection.in_atomic_block:
        connection.close()


@cache
def _pipelines_supported() -> bool:
    return psycopg.Pipeline.is_supported()


def store_content(data: bytes | Iterable[bytes], name: str, *, shown_as: str = "") -> str:
    """Write content-addressed bytes once; returns the storage name.

    On the local file system this is one stat for content already stored, and otherwise a
    write to a temporary file renamed into place, so a crash never leaves a truncated file
    under a content address. A full disk raises StorageFullError (naming `shown_as`) and
    leaves nothing behind.
    """
    try:
        return _store_content(data, name)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise StorageFullError(shown_as or "the file") from exc
        raise


def _store_content(data: bytes | Iterable[bytes], name: str) -> str:
    storage = storages["default"]
    blocks = [data] if isinstance(data, bytes) else data
    if not isinstance(storage, FileSystemStorage):
        if not storage.exists(name):
            name = storage.save(name, ContentFile(b"".join(blocks)))
        return name
    # `name` is built from a hex digest and a checked suffix, so a plain join is safe here.
    path = os.path.join(storage.location, name)
    if os.path.exists(path):
        return name
    mode = storage.file_permissions_mode or 0o644
    # Unique across processes and machines sharing the volume.
    temporary = f"{path}.{uuid.uuid4().hex}.incoming"
    try:
        descriptor = os.open(temporary, _CREATE_FLAGS, mode)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        descriptor = os.open(temporary, _CREATE_FLAGS, mode)
    try:
        for block in blocks:
            with memoryview(block) as view:
                written = 0
                while written < len(view):
                    written += os.write(descriptor, view[written:])
        os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(descriptor)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return name
