"""Language names and the detection behind `source=auto` and POST /detect.

Detection is honest about what it can know: it chooses only among the source languages of the
loaded models (a server that reads German alone can only answer German) and scores them with a
function-word count. For each language it knows (the few below), the text's words are looked up
in a list of that language's commonest function words ("und", "der", "ist" for German; "the",
"and", "is" for English). A language's confidence is the share of all such hits, over every
language known here, that are its own, in percent (as LibreTranslate gives confidence, 0 to 100);
a letter only that language uses (ä, ö, ü, ß for German) counts as a hit too. So clearly German
text scores near 100 for German, and English text sent to a German-only server gets German at a
confidence near 0 - the only language that server reads, with the evidence said as it is. A text
without any function word (one noun, a name) gives every candidate confidence 0, and the first
loaded model's source language is chosen.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

NAMES = {
    "ar": "Arabic",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "en": "English",
    "es": "Spanish",
    "fi": "Finnish",
    "fr": "French",
    "it": "Italian",
    "ja": "Japanese",
    "nl": "Dutch",
    "pl": "Polish",
    "pt": "Portuguese",
    "ru": "Russian",
    "sv": "Swedish",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "zh": "Chinese",
}

FUNCTION_WORDS = {
    "de": "der die das und ist nicht ein eine einen dem den des ich du er sie es wir ihr mit auf für von zu im "
    "sich auch als wie noch nur aber oder wenn dass bei nach aus sind war hat haben wird werden kein mein",
    "en": "the and is not a an of to in it you he she we they with on for from that this are was have has "
    "will be at by but or if as what which there their my no",
    "fr": "le la les et est ne pas un une des du de je tu il elle nous vous ils avec sur pour dans que qui "
    "ce cette sont était avoir mais ou si au aux",
    "es": "el la los las y es no un una unos de del yo tú él ella nosotros con en para por que este esta son era pero o si al lo",
    "it": "il lo la gli le e è non un una di del della io tu lui lei noi con su per che questo questa sono era ma o se al nel",
    "nl": "de het een en is niet ik jij hij zij wij met op voor van dat dit zijn was maar of als bij naar uit ook er",
    "pt": "o a os as e é não um uma de do da eu tu ele ela nós com em para por que este esta são era mas ou se ao no na",
}
OWN_LETTERS = {"de": "äöüß", "es": "ñ¿¡", "fr": "çœ", "pt": "ãõ"}  # letters that count as a hit for their language

WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def name(code: str) -> str:
    """A language's English name ("German" for de), or its code where it is not known here."""
    return NAMES.get(code, code)


@dataclass(frozen=True)
class Detection:
    """A detected language and the confidence of it, in percent."""

    language: str
    confidence: float

    def as_json(self) -> dict[str, object]:
        """LibreTranslate's form: {"confidence": 90.0, "language": "de"}."""
        return {"confidence": self.confidence, "language": self.language}


def hits(text: str) -> dict[str, int]:
    """For each language with a function-word list: how many of the text's words (and letters)
    point to it."""
    words = [w.lower() for w in WORD.findall(text)]
    lists = {lang: set(listed.split()) for lang, listed in FUNCTION_WORDS.items()}
    counts = {lang: sum(word in listed for word in words) for lang, listed in lists.items()}
    lowered = text.lower()
    for lang, letters in OWN_LETTERS.items():
        counts[lang] += sum(lowered.count(letter) for letter in letters)
    return counts


def detect(text: str, candidates: Sequence[str]) -> list[Detection]:
    """The `candidates` (the loaded models' source languages, in load order), most likely first,
    each with its share of the function-word evidence (see the module docstring)."""
    counts = hits(text)
    total = sum(counts.values())
    scored = [Detection(lang, round(100.0 * counts.get(lang, 0) / total, 1) if total else 0.0) for lang in dict.fromkeys(candidates)]
    return sorted(scored, key=lambda d: -d.confidence)  # stable: ties keep load order
