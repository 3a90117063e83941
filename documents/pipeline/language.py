"""Offline language guess from stopword frequencies.

Running prose is 30-50 % function words, and each language has its own. Counting them needs no
model or download and is right for the few languages YAKE has good stopword lists for; anything
it cannot call with confidence returns "" so YAKE falls back to its default.
"""

from __future__ import annotations

import re

SAMPLE_CHARS = 5000
MIN_WORDS = 10
MIN_HITS = 3
MIN_RATIO = 0.12
MIN_LEAD = 1.25  # the winner needs 25 % more hits than the runner-up

_STOPWORD_TEXT = {
    "en": (
        "the and of to in is that it for was on are with as be this by at from have or an they"
        " which not but were has their been would there will can more its we these also than"
        " into"
    ),
    "de": (
        "der die das und ist nicht ein eine zu den von mit sich des auf für im dem auch es an"
        " werden aus er hat dass sie nach wird bei einer um noch wie einem über einen so zum"
        " sind oder kann"
    ),
    "fr": (
        "le la les de des et est un une du en que qui dans pour pas sur au ce il plus par avec"
        " ne se sont elle ou mais aux cette nous leur été être ces comme ont sa son"
    ),
    "es": (
        "el la los las de y que en un una es por con para del se no al lo como más pero sus su"
        " le ya o fue este ha muy también entre cuando sin sobre ser hay está son desde"
        " porque"
    ),
    "it": (
        "il la di che e un una per non sono del della con le gli si da nel alla anche come più"
        " ma ha dei delle questo questa essere è al lo nella degli sua suo tra stato perché"
        " molto"
    ),
    "pt": (
        "o a os as de que e do da em um uma para com não no na por mais dos das se como mas foi"
        " ao ele ela sua seu ou ser quando muito nos já está também são pelo pela isso"
        " até"
    ),
    "nl": (
        "de het een en van is dat op te in zijn voor met die niet aan er om ook als bij door"
        " maar dan nog wordt was tot uit naar heeft worden deze zo kan wel of hij ze geen"
        " meer"
    ),
}
STOPWORDS: dict[str, frozenset[str]] = {
    code: frozenset(words.split()) for code, words in _STOPWORD_TEXT.items()
}

_WORD = re.compile(r"[^\W\d_]+")


def detect_language(text: str) -> str:
    """Return the two-letter code of the clearly dominant language, or "" when unsure."""
    words = [word.lower() for word in _WORD.findall(text[:SAMPLE_CHARS])]
    if len(words) < MIN_WORDS:
        return ""
    hits = sorted(
        ((sum(word in stopwords for word in words), code) for code, stopwords in STOPWORDS.items()),
        reverse=True,
    )
    (best_hits, best_code), (runner_up_hits, _) = hits[0], hits[1]
    if best_hits < MIN_HITS or best_hits / len(words) < MIN_RATIO:
        return ""
    if best_hits < runner_up_hits * MIN_LEAD:
        return ""
    return best_code


def normalise_language_code(value: str) -> str:
    """Turn metadata tags such as "en-GB", "de_DE" or "fra" into a two-letter code."""
    primary = re.split(r"[-_\s]", value.strip().lower(), maxsplit=1)[0]
    if len(primary) == 3:
        primary = _ISO_639_2.get(primary, "")
    return primary if len(primary) == 2 and primary.isalpha() else ""


_ISO_639_2 = {
    "eng": "en",
    "deu": "de",
    "ger": "de",
    "fra": "fr",
    "fre": "fr",
    "spa": "es",
    "ita": "it",
    "por": "pt",
    "nld": "nl",
    "dut": "nl",
}
