"""import_interactions: CSV and JSON Lines in bulk, per-line errors, profiles created."""

from __future__ import annotations

import json
from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command

from profiles import services
from profiles.models import CustomerProfile, Interaction

pytestmark = pytest.mark.django_db

CSV = """organization,external_id,channel,direction,text,occurred_at,tokens,agent,name
acme,c-1,chat,in,Where is my parcel?,2026-11-01T10:00:00Z,12,support,Ann
acme,c-1,chat,out,On its way.,2026-11-01T10:01:00+00:00,30,support,
acme,c-2,email,in,Thanks a lot!,2026-11-02T09:00:00Z,,,Bob
acme,c-3,chat,sideways,??,2026-11-02T09:00:00Z,,,
acme,c-3,chat,in,no zone,2026-11-02 09:00:00,,,
nowhere,c-4,chat,in,hi,2026-11-02T09:00:00Z,,,
acme,c-5,chat,in,hi,2026-11-02T09:00:00Z,,ghost,
acme,c-6,chat,in,hi,yesterday,,,
"""


def run(path, **options) -> dict:
    out = StringIO()
    with mock.patch.object(services, "_publish"):
        call_command("import_interactions", str(path), json=True, stdout=out, **options)
    return json.loads(out.getvalue())


def test_csv_lines_land_and_bad_lines_are_reported(agent, tmp_path):
    path = tmp_path / "interactions.csv"
    path.write_text(CSV)

    summary = run(path)

    assert (summary["imported"], summary["profiles_created"]) == (3, 2)
    assert [(e["line"], e["message"].split(" ")[0]) for e in summary["errors"]] == [
        (5, "direction"),
        (6, "occurred_at"),
        (7, "Unknown"),
        (8, "Unknown"),
        (9, "occurred_at"),
    ]
    ann = CustomerProfile.objects.get(external_id="c-1")
    assert ann.name == "Ann"
    assert list(
        ann.interactions.order_by("occurred_at").values_list("direction", "tokens_used")
    ) == [
        ("in", 12),
        ("out", 30),
    ]
    assert Interaction.objects.filter(agent=agent).count() == 2
    # One enrichment request per profile touched, not per line.
    assert summary["profiles_enriching"] == 2
    assert set(CustomerProfile.objects.values_list("enrichment_status", flat=True)) == {"queued"}


def test_json_lines_with_a_broken_line(organization, tmp_path):
    path = tmp_path / "interactions.jsonl"
    good = {
        "organization": "acme",
        "external_id": "c-9",
        "channel": "web",
        "direction": "in",
        "text": "Hello",
        "occurred_at": "2026-11-03T08:00:00+01:00",
        "metadata": {"page": "/pricing"},
    }
    path.write_text(json.dumps(good) + "\n{not json\n" + json.dumps([1]) + "\n")

    summary = run(path)

    assert summary["imported"] == 1
    assert [e["line"] for e in summary["errors"]] == [2, 3]
    assert Interaction.objects.get().metadata == {"page": "/pricing"}


def test_unknown_columns_refuse_the_file(organization, tmp_path):
    path = tmp_path / "interactions.csv"
    path.write_text("organization,external_id,colour\nacme,c-1,blue\n")

    summary = run(path)

    assert summary["imported"] == 0
    assert "Unknown columns: colour" in summary["errors"][0]["message"]


def test_a_file_that_is_not_utf8_is_refused(db, tmp_path):
    path = tmp_path / "interactions.csv"
    path.write_bytes(b"organization,external_id\n\xff\xfe\n")

    with pytest.raises(CommandError, match="UTF-8"):
        call_command("import_interactions", str(path))
