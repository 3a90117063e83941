"""Chunks' large columns compressed with LZ4 instead of pglz, on PostgreSQL.

A chunk row (about 1,200 characters of text, its tsvector, a 1 KB embedding and keywords) is
over PostgreSQL's 2 KB toast threshold, so every insert compresses columns until the row fits.
With pglz that is about a tenth of the chunk INSERT's server time; LZ4 does the same in a
fraction of it, and decompresses faster when search ranks the tsvectors. The change is in the
catalog only: existing values stay as they are (both kinds are read), new ones are LZ4. A
server built without LZ4 keeps pglz, with a notice. The lock wait is bounded so that the
migration fails fast instead of queueing every worker's insert behind it.
"""

from django.db import migrations

COLUMNS = ("text", "keywords", "embedding", "search_vector")


def _set_compression(schema_editor, method: str) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    columns = ", ".join(f"ALTER COLUMN {column} SET COMPRESSION {method}" for column in COLUMNS)
    schema_editor.execute("SET LOCAL lock_timeout = '10s'")
    schema_editor.execute(
        f"""
        DO $$
        BEGIN
            ALTER TABLE documents_chunk {columns};
        EXCEPTION WHEN feature_not_supported THEN
            RAISE NOTICE USING MESSAGE = 'documents_chunk keeps its compression: ' || SQLERRM;
        END $$
        """
    )


def use_lz4(apps, schema_editor) -> None:
    _set_compression(schema_editor, "lz4")


def use_default(apps, schema_editor) -> None:
    _set_compression(schema_editor, "default")


class Migration(migrations.Migration):
    dependencies = [("documents", "0008_chunk_document_index_covered_by_ordinal")]

    operations = [migrations.RunPython(use_lz4, use_default)]
