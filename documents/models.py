"""Organizations own agents; agents own documents; documents are split into chunks.

The Document row is the truth about its processing (DESIGN.md, invariant 1): status, stage,
progress, error, attempts, task id and timestamps are written by the worker and read by the
admin, the commands and the API. Nothing here has side effects in save().
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AgentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"


class Agent(models.Model):
    """An AI agent; its documents form its knowledge base."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    persona = models.TextField("persona / system prompt", blank=True)
    model_name = models.CharField(max_length=100, default="gpt-4o-mini")
    temperature = models.FloatField(default=0.7)
    status = models.CharField(
        max_length=16, choices=AgentStatus.choices, default=AgentStatus.ACTIVE
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="agent_unique_slug"),
            models.CheckConstraint(
                condition=Q(temperature__gte=0) & Q(temperature__lte=2),
                name="agent_temperature_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class DocumentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    DUPLICATE = "duplicate", "Duplicate"


TERMINAL_STATUSES = frozenset(
    {
        DocumentStatus.DONE,
        DocumentStatus.FAILED,
        DocumentStatus.CANCELLED,
        DocumentStatus.DUPLICATE,
    }
)


class DocumentKind(models.TextChoices):
    """Mirrors documents.pipeline.detect.DocumentKind (the pipeline has no Django imports)."""

    PDF = "pdf", "PDF"
    EPUB = "epub", "EPUB"
    XPS = "xps", "XPS"
    DOCX = "docx", "DOCX"
    HTML = "html", "HTML"
    MARKDOWN = "markdown", "Markdown"
    TXT = "txt", "Text"


class Document(models.Model):
    # Indexed through the composite indexes that start with it (Meta.indexes).
    agent = models.ForeignKey(
        Agent, on_delete=models.CASCADE, related_name="documents", db_index=False
    )
    file = models.FileField(upload_to="uploads/%Y/%m/%d/", max_length=500, blank=True)
    original_name = models.CharField(max_length=500, blank=True)
    source_url = models.URLField(max_length=2000, blank=True)
    kind = models.CharField(max_length=16, choices=DocumentKind.choices, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    duplicate_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="duplicates",
        db_index=False,
    )
    # Documents registered together by one ingest run share this id (for --wait summaries).
    batch_id = models.UUIDField(null=True, blank=True, db_index=True)

    status = models.CharField(
        max_length=16, choices=DocumentStatus.choices, default=DocumentStatus.PENDING
    )
    stage = models.CharField(max_length=32, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    task_id = models.CharField(max_length=255, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    processing_seconds = models.FloatField(null=True, blank=True)

    page_count = models.PositiveIntegerField(null=True, blank=True)
    title = models.CharField(max_length=500, blank=True)
    author = models.CharField(max_length=500, blank=True)
    language = models.CharField(max_length=16, blank=True)
    authored_at = models.DateTimeField(null=True, blank=True)
    modified_at = models.DateTimeField(null=True, blank=True)
    keywords = models.JSONField(default=list, blank=True)
    summary = models.TextField(blank=True)  # from the optional AI provider
    text_length = models.PositiveIntegerField(null=True, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    embedding_model = models.CharField(max_length=200, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
    )

    class Meta:
        ordering = ["-id"]
        # Every index costs each of the 500,000 inserts of a bulk ingest: only what a query
        # uses, partial where most rows would be NULL.
        indexes = [
            models.Index(fields=["status", "-id"], name="document_status_idx"),
            models.Index(fields=["task_id"], name="document_task_idx"),
            models.Index(
                fields=["duplicate_of"],
                name="document_duplicate_of_idx",
                condition=Q(duplicate_of__isnull=False),
            ),
            models.Index(
                fields=["created_by"],
                name="document_created_by_idx",
                condition=Q(created_by__isnull=False),
            ),
            models.Index(fields=["agent", "status"], name="document_agent_status_idx"),
            models.Index(fields=["kind", "-id"], name="document_kind_idx"),
            models.Index(fields=["agent", "sha256"], name="document_agent_sha_idx"),
            # Analytics rollups read one period at a time by these two clocks.
            models.Index(fields=["created_at"], name="document_created_at_idx"),
            models.Index(
                fields=["finished_at"],
                name="document_finished_at_idx",
                condition=Q(finished_at__isnull=False),
            ),
            models.Index(
                fields=["status", "queued_at"],
                name="document_unfinished_idx",
                condition=Q(status__in=["queued", "processing"]),
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.original_name or self.source_url or f"Document {self.pk}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Chunk(models.Model):
    """A searchable passage of a document, with its keywords and embedding."""

    # No index of its own: chunk_unique_ordinal (document, ordinal) serves every lookup by
    # document, and a second index would be maintained for each of millions of chunks.
    document = models.ForeignKey(
        Document, on_delete=models.CASCADE, related_name="chunks", db_index=False
    )
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    page_start = models.PositiveIntegerField(null=True, blank=True)
    page_end = models.PositiveIntegerField(null=True, blank=True)
    size = models.PositiveIntegerField()
    keywords = models.JSONField(default=list, blank=True)
    # float32 little-endian vector, L2-normalised (documents.pipeline.embed).
    embedding = models.BinaryField(null=True, blank=True)
    # Filled on PostgreSQL when the chunk is stored; GIN-indexed by migration 0002.
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        ordering = ["document", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_unique_ordinal"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"

    @property
    def pages_label(self) -> str:
        if self.page_start is None:
            return ""
        if self.page_end in (None, self.page_start):
            return str(self.page_start)
        return f"{self.page_start}-{self.page_end}"


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class AgentImport(models.Model):
    """One bulk agent import: the uploaded file, its progress, counts and per-row errors.

    Validation happens before the row exists; the Celery task only applies valid rows, so the
    counts add up to the file's rows: created + updated + unchanged + failed.
    """

    file = models.FileField(upload_to="imports/%Y/%m/", max_length=500)
    original_name = models.CharField(max_length=500)
    create_organizations = models.BooleanField(default=False)
    # Rows that leave the organization out belong to this one (slug).
    default_organization = models.SlugField(max_length=100, blank=True)
    status = models.CharField(
        max_length=16, choices=ImportStatus.choices, default=ImportStatus.QUEUED
    )
    progress = models.PositiveSmallIntegerField(default=0)
    total_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    documents_queued = models.PositiveIntegerField(default=0)
    # [{"row": int, "column": str, "message": str}], validation errors first.
    errors = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.get_status_display()})"
