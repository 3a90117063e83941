"""Errors raised by the pipeline, split by what the caller should do about them.

A task retries ``TransientPipelineError`` with backoff and marks the document failed at once on
``PipelineError``: retrying a corrupt or encrypted file only burns worker time. Every
``PipelineError`` carries a stable ``code`` for the UI and a message a person can act on.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Permanent failure caused by the file itself; retrying cannot help."""

    code: str = "failed"
    default_message: str = "The document could not be processed."

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self)


class CorruptDocumentError(PipelineError):
    code = "corrupt"
    default_message = (
        "The file is damaged and cannot be read. Export or save it again and upload the new copy."
    )


class EncryptedDocumentError(PipelineError):
    code = "encrypted"
    default_message = (
        "This document is password-protected. Remove the password and upload it again."
    )


class EmptyDocumentError(PipelineError):
    code = "empty"
    default_message = "The file is empty. Check that you uploaded the right file."


class NoExtractableTextError(PipelineError):
    code = "no_text"
    default_message = (
        "The document has no text layer (it is probably a scan or made of images). "
        "OCR is not supported: upload a version with selectable text."
    )


class UnsupportedTypeError(PipelineError):
    code = "unsupported"
    default_message = "This file type is not supported."


class DocumentTooLargeError(PipelineError):
    code = "too_large"
    default_message = "The document is too large to process. Split it into smaller files."


class FetchError(PipelineError):
    code = "fetch"
    default_message = "The page could not be downloaded. Check the address and try again."


class TransientPipelineError(Exception):
    """A failure a later retry may fix: network trouble, timeouts, an overloaded server.

    ``retry_after`` holds the server's requested delay in seconds when it sent one, so the
    caller can wait at least that long instead of its own backoff.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ThrottledError(TransientPipelineError):
    """Our own global rate limit asked to wait `retry_after` seconds before the next provider
    call. Not a failure: waiting it out must not use up the work's retries."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after: float = retry_after
