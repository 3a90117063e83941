"""A disk that fills up while an upload is stored: a real, tiny tmpfs as MEDIA_ROOT.

The upload is refused with a message that says why, nothing half-written is left under a
content address, the documents stored before are intact, and uploads work again once there is
room.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from documents.models import Document

pytestmark = pytest.mark.django_db

DISK_BYTES = 512 * 1024
TOO_BIG = DISK_BYTES + 4096


@pytest.fixture
def tiny_disk(tmp_path: Path, settings) -> Iterator[Path]:
    mount_point = tmp_path / "media"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    settings.MEDIA_ROOT = mount_point
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


@pytest.fixture
def api(admin_user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin_user).key}")


def files_on(disk: Path) -> list[str]:
    return sorted(str(p.relative_to(disk)) for p in disk.rglob("*") if p.is_file())


def text(size: int, seed: str) -> bytes:
    line = f"{seed}: opening hours, refunds and delivery times for every region.\n".encode()
    return (line * (size // len(line) + 1))[:size]


def test_an_upload_that_fills_the_disk_is_refused_and_loses_nothing_else(tiny_disk, api, agent):
    stored = api.post(
        "/api/v1/documents",
        {"agent": agent.pk, "file": SimpleUploadedFile("small.txt", text(100_000, "small"))},
    )
    assert stored.status_code == 201
    before = files_on(tiny_disk)

    refused = api.post(
        "/api/v1/documents",
        {"agent": agent.pk, "file": SimpleUploadedFile("big.txt", text(TOO_BIG, "big"))},
    )

    assert refused.status_code == 507
    assert "storage is full, so big.txt was not stored" in refused.json()["detail"]
    assert list(Document.objects.values_list("original_name", flat=True)) == ["small.txt"]
    assert files_on(tiny_disk) == before  # no half-written file, no temporary left behind
    small = Document.objects.get()
    assert small.file.read() == text(100_000, "small")

    os.remove(tiny_disk / small.file.name)  # an administrator makes room
    again = api.post(
        "/api/v1/documents",
        {"agent": agent.pk, "file": SimpleUploadedFile("big.txt", text(300_000, "big"))},
    )
    assert again.status_code == 201


def test_the_admin_upload_forms_say_the_disk_is_full(tiny_disk, admin_client, agent):
    one = admin_client.post(
        "/admin/documents/document/add/",
        {"agent": agent.pk, "file": SimpleUploadedFile("big.txt", text(TOO_BIG, "big"))},
    )
    assert one.status_code == 200
    assert "storage is full, so big.txt was not stored" in one.content.decode()

    many = admin_client.post(
        "/admin/documents/document/upload-many/",
        {
            "agent": agent.pk,
            "files": [
                SimpleUploadedFile("a.txt", text(50_000, "a")),
                SimpleUploadedFile("big.txt", text(TOO_BIG, "big")),
                SimpleUploadedFile("c.txt", text(50_000, "c")),
            ],
        },
        follow=True,
    )
    page = many.content.decode()
    assert "Queued 1 documents." in page
    assert "storage is full, so big.txt was not stored" in page
    assert "1 more files were not tried." in page
    assert list(Document.objects.values_list("original_name", flat=True)) == ["a.txt"]


def test_ingest_stops_with_a_clear_error_and_leaves_no_partial_file(tiny_disk, agent, tmp_path):
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "a.txt").write_bytes(text(50_000, "a"))
    (folder / "b.txt").write_bytes(text(TOO_BIG, "b"))

    with pytest.raises(CommandError, match=r"storage is full, so .*b.txt was not stored"):
        call_command("ingest_documents", str(folder), agent="support", verbosity=0)

    assert not [name for name in files_on(tiny_disk) if name.endswith(".incoming")]
