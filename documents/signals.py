"""A new pending Document, however it was created, is queued for processing after commit."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from documents.models import Document, DocumentStatus
from documents.services import documents_enqueue


@receiver(post_save, sender=Document, dispatch_uid="documents.enqueue_new_document")
def enqueue_new_document(
    sender: type[Document], instance: Document, created: bool, **_: Any
) -> None:
    if created and instance.status == DocumentStatus.PENDING:
        documents_enqueue(document_ids=[instance.pk])
