"""Admin forms for adding documents: one file, many files and archives, or web pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import URLValidator

from documents.models import Agent, Document

MAX_URL_LENGTH = Document._meta.get_field("source_url").max_length or 2000


def _check_size(upload: UploadedFile) -> None:
    limit = settings.DOCFLOW["MAX_DOCUMENT_BYTES"]
    if upload.size is not None and upload.size > limit and not upload.name.lower().endswith(".zip"):
        raise ValidationError(
            f"{upload.name} is {upload.size:,} bytes; the largest accepted file is {limit:,} bytes."
        )


class DocumentUploadForm(forms.Form):
    """The admin add form: one file for one agent."""

    agent = forms.ModelChoiceField(queryset=Agent.objects.select_related("organization"))
    file = forms.FileField(
        help_text="PDF, DOCX, EPUB, XPS, HTML, Markdown or text. The type is read from the "
        "content, not the name."
    )

    def clean_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["file"]
        if upload.size == 0:
            raise ValidationError("The file is empty.")
        _check_size(upload)
        return upload


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        files = data if isinstance(data, list | tuple) else [data]
        cleaned = [super(MultipleFileField, self).clean(item, initial) for item in files if item]
        if not cleaned and self.required:
            raise ValidationError(self.error_messages["required"], code="required")
        return cleaned


class UploadManyForm(forms.Form):
    agent = forms.ModelChoiceField(queryset=Agent.objects.select_related("organization"))
    files = MultipleFileField(
        help_text="Select several files; .zip archives are unpacked (checked for unsafe paths, "
        "file count and total size)."
    )

    def clean_files(self) -> list[UploadedFile]:
        uploads: list[UploadedFile] = self.cleaned_data["files"]
        for upload in uploads:
            _check_size(upload)
        return uploads


class AddFromUrlForm(forms.Form):
    agent = forms.ModelChoiceField(queryset=Agent.objects.select_related("organization"))
    urls = forms.CharField(
        label="Web pages",
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        help_text="One http(s) address per line. A worker fetches each page and keeps its "
        "readable text.",
    )

    def clean_urls(self) -> list[str]:
        validate = URLValidator(schemes=["http", "https"])
        urls: list[str] = []
        errors: list[str] = []
        for number, line in enumerate(self.cleaned_data["urls"].splitlines(), start=1):
            url = line.strip()
            if not url:
                continue
            try:
                validate(url)
            except ValidationError:
                errors.append(f"Line {number}: {url!r} is not an http(s) address.")
                continue
            if len(url) > MAX_URL_LENGTH:
                errors.append(f"Line {number}: longer than {MAX_URL_LENGTH} characters.")
                continue
            urls.append(url)
        if errors:
            raise ValidationError(errors)
        if not urls:
            raise ValidationError("Enter at least one address.")
        return list(dict.fromkeys(urls))


class AgentImportForm(forms.Form):
    file = forms.FileField(
        help_text="CSV or JSON: organization, name, slug (optional), persona, model, "
        "temperature (0-2), documents (URLs or allowed server paths, separated by |)."
    )
    create_organizations = forms.BooleanField(
        required=False, help_text="Create organizations the file names that do not exist yet."
    )

    def clean_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["file"]
        limit = settings.DOCFLOW["IMPORT_MAX_BYTES"]
        if upload.size is not None and upload.size > limit:
            raise ValidationError(
                f"The file is {upload.size:,} bytes; the largest accepted is {limit:,} bytes."
            )
        return upload
