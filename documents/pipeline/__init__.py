"""Document processing pipeline: pure Python, no Django, callable from a task or a shell.

``run_pipeline`` is the entry point; the step modules (detect, extract, chunking, keywords,
embed, fetch) can be used alone.
"""

from documents.pipeline.chunking import TextChunk, chunk_pages
from documents.pipeline.detect import DocumentKind, detect_kind
from documents.pipeline.embed import (
    EmbeddingProvider,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    cosine_scores,
    get_provider,
    vector_from_bytes,
    vector_to_bytes,
)
from documents.pipeline.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    EncryptedDocumentError,
    FetchError,
    NoExtractableTextError,
    PipelineError,
    ThrottledError,
    TransientPipelineError,
    UnsupportedTypeError,
)
from documents.pipeline.extract import ExtractedDocument, extract
from documents.pipeline.fetch import FetchedPage, fetch_url
from documents.pipeline.runner import ChunkResult, PipelineConfig, PipelineResult, run_pipeline

__all__ = [
    "ChunkResult",
    "CorruptDocumentError",
    "DocumentKind",
    "DocumentTooLargeError",
    "EmbeddingProvider",
    "EmptyDocumentError",
    "EncryptedDocumentError",
    "ExtractedDocument",
    "FetchError",
    "FetchedPage",
    "HashingEmbedder",
    "NoExtractableTextError",
    "PipelineConfig",
    "PipelineError",
    "PipelineResult",
    "SentenceTransformerEmbedder",
    "TextChunk",
    "ThrottledError",
    "TransientPipelineError",
    "UnsupportedTypeError",
    "chunk_pages",
    "cosine_scores",
    "detect_kind",
    "extract",
    "fetch_url",
    "get_provider",
    "run_pipeline",
    "vector_from_bytes",
    "vector_to_bytes",
]
