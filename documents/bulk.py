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

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages
from django.db import connection
from django.db.models import Field

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


def insert_chunks(document_id: int, chunks: Sequence[ChunkResult], *, search_config: str) -> None:
    """Insert one document's chunks (see insert_chunks_of)."""
    insert_chunks_of([(document_id, chunks)], search_config=search_config)


def insert_chunks_of(
    documents: Sequence[tuple[int, Sequence[ChunkResult]]], *, search_config: str
) -> None:
    """Insert the chunks of several documents in one statement, the tsvector computed by
    PostgreSQL.

    Arrays in, `unnest` out: one round trip, the text sent once, and no per-row expression for
    Django to compile (which cost more than the pipeline on long documents).
    """
    rows = [(document_id, chunk) for document_id, chunks in documents for chunk in chunks]
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
                for document_id, chunk in rows
            ],
            batch_size=500,
        )
        return
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO documents_chunk (document_id, ordinal, text, page_start, page_end, size,
                                         keywords, embedding, search_vector)
            SELECT c.document_id, c.ordinal, c.text, c.page_start, c.page_end, length(c.text),
                   c.keywords::jsonb, c.embedding, to_tsvector(%s::regconfig, c.text)
            FROM unnest(%s::bigint[], %s::int[], %s::text[], %s::int[], %s::int[], %s::text[],
                        %s::bytea[])
                 AS c(document_id, ordinal, text, page_start, page_end, keywords, embedding)
            """,
            [
                search_config,
                [document_id for document_id, _ in rows],
                [chunk.ordinal for _, chunk in rows],
                [chunk.text for _, chunk in rows],
                [chunk.page_start for _, chunk in rows],
                [chunk.page_end for _, chunk in rows],
                [json.dumps(chunk.keywords) for _, chunk in rows],
                [chunk.embedding for _, chunk in rows],
            ],
        )


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
