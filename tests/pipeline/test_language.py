"""Offline stopword-based language detection."""

from __future__ import annotations

import pytest

from documents.pipeline.language import detect_language, normalise_language_code

SAMPLES = {
    "en": "The committee reviewed the proposal and found that it was consistent with the goals "
    "of the project. There are several reasons for this decision, which we describe below.",
    "de": "Der Ausschuss hat den Vorschlag geprüft und festgestellt, dass er mit den Zielen des "
    "Projekts übereinstimmt. Es gibt mehrere Gründe für diese Entscheidung.",
    "fr": "Le comité a examiné la proposition et a constaté qu'elle était conforme aux objectifs "
    "du projet. Il y a plusieurs raisons pour cette décision, que nous décrivons ici.",
    "es": "El comité revisó la propuesta y encontró que era coherente con los objetivos del "
    "proyecto. Hay varias razones para esta decisión, que describimos en la sección siguiente.",
    "it": "Il comitato ha esaminato la proposta e ha constatato che era coerente con gli "
    "obiettivi del progetto. Ci sono diverse ragioni per questa decisione.",
    "pt": "O comitê analisou a proposta e constatou que ela era coerente com os objetivos do "
    "projeto. Há várias razões para esta decisão, que descrevemos na seção seguinte.",
    "nl": "De commissie heeft het voorstel bekeken en vastgesteld dat het in overeenstemming is "
    "met de doelen van het project. Er zijn verschillende redenen voor deze beslissing.",
}


@pytest.mark.parametrize(("code", "text"), SAMPLES.items())
def test_detects_each_supported_language(code: str, text: str) -> None:
    assert detect_language(text) == code


@pytest.mark.parametrize(
    "text",
    [
        "",
        "The end of it.",  # too few words
        "1234 5678 9012 " * 50,  # no words at all
        "Kubernetes Terraform Prometheus Grafana Postgres Redis Celery Django " * 5,
        "the and of der die das " * 10,  # English and German tie
    ],
)
def test_returns_empty_when_no_language_clearly_wins(text: str) -> None:
    assert detect_language(text) == ""


def test_only_the_first_5000_characters_count() -> None:
    text = SAMPLES["en"] * 30 + SAMPLES["de"] * 200

    assert len(SAMPLES["en"] * 30) > 5000
    assert detect_language(text) == "en"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("en-GB", "en"), ("de_DE", "de"), (" FR ", "fr"), ("fra", "fr"), ("x-klingon", ""), ("", "")],
)
def test_normalise_language_code(value: str, expected: str) -> None:
    assert normalise_language_code(value) == expected
