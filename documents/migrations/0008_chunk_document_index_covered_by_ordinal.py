"""Drop Chunk's own document_id index: chunk_unique_ordinal (document, ordinal) serves it.

An AlterField would also drop and re-add the foreign key, re-checking every chunk while both
tables are locked; on millions of chunks that stops processing and search. The index is
dropped on its own instead (CONCURRENTLY on PostgreSQL, so nothing waits for it), and only
Django's state records the field change.
"""

import django.db.models.deletion
from django.db import migrations, models

TABLE = "documents_chunk"


def _document_id_indexes(schema_editor) -> list[str]:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    return [
        name
        for name, info in constraints.items()
        if info["columns"] == ["document_id"]
        and info["index"]
        and not (info["unique"] or info["primary_key"] or info["foreign_key"])
    ]


def drop_index(apps, schema_editor) -> None:
    concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    for name in _document_id_indexes(schema_editor):
        schema_editor.execute(
            f"DROP INDEX{concurrently} IF EXISTS {schema_editor.quote_name(name)}"
        )


def create_index(apps, schema_editor) -> None:
    if _document_id_indexes(schema_editor):
        return
    concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f"CREATE INDEX{concurrently} documents_chunk_document_id_3b191792 ON {TABLE} (document_id)"
    )


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("documents", "0007_document_summary"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="chunk",
                    name="document",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunks",
                        to="documents.document",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_index, create_index)],
        ),
    ]
