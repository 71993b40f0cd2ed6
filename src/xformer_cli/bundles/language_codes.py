"""Language codes of imported models: ISO 639-1 where one exists, from the codes OPUS-MT uses.

OPUS-MT names its models and target-language tags with two-letter (`opus-mt-de-en`) or, in the
tc-big generation, three-letter codes (`>>ukr<<`, `deu`), and groups such as `zle` (East
Slavic) or `gmw` (West Germanic). xformer names a bundle's languages in two letters where the
language has them (the server's `/languages` and LibreTranslate's clients speak ISO 639-1), and
keeps a group or a language without two letters as it is.
"""

from __future__ import annotations

import re
from typing import Any

# ISO 639-3 (and the 639-2/B forms still seen) -> 639-1, for the languages OPUS-MT covers most.
TWO_LETTER = {
    "afr": "af", "ara": "ar", "aze": "az", "bel": "be", "ben": "bn", "bul": "bg", "cat": "ca", "ces": "cs",
    "cym": "cy", "dan": "da", "deu": "de", "ell": "el", "eng": "en", "epo": "eo", "est": "et", "eus": "eu",
    "fas": "fa", "fin": "fi", "fra": "fr", "gle": "ga", "glg": "gl", "heb": "he", "hin": "hi", "hrv": "hr",
    "hun": "hu", "hye": "hy", "ind": "id", "isl": "is", "ita": "it", "jpn": "ja", "kat": "ka", "kaz": "kk",
    "kor": "ko", "lat": "la", "lav": "lv", "lit": "lt", "mkd": "mk", "mlt": "mt", "msa": "ms", "mya": "my",
    "nld": "nl", "nob": "nb", "nor": "no", "pol": "pl", "por": "pt", "ron": "ro", "rus": "ru", "slk": "sk",
    "slv": "sl", "spa": "es", "sqi": "sq", "srp": "sr", "swa": "sw", "swe": "sv", "tgl": "tl", "tha": "th",
    "tur": "tr", "ukr": "uk", "urd": "ur", "uzb": "uz", "vie": "vi", "zho": "zh",
    "alb": "sq", "arm": "hy", "baq": "eu", "bur": "my", "chi": "zh", "cze": "cs", "dut": "nl", "fre": "fr",
    "geo": "ka", "ger": "de", "gre": "el", "ice": "is", "mac": "mk", "may": "ms", "per": "fa", "rum": "ro",
    "slo": "sk", "wel": "cy",
}  # fmt: skip
THREE_LETTER = {two: three for three, two in reversed(TWO_LETTER.items())}  # 639-1 -> 639-3 (the first listed)
_NAME = re.compile(r"opus-mt-(?:tc-(?:big|base)-)?([A-Za-z_]+)-([A-Za-z_]+)$")
_TRANSLATION_ARGS = re.compile(r"^\s*args:\s*([a-z]{2,3})-([a-z]{2,3})\s*$", re.M)


def two_letter(code: str) -> str:
    """`code` in ISO 639-1 where it has a two-letter form (deu -> de), else as given, lowercased."""
    code = code.strip().lower()
    return TWO_LETTER.get(code, code)


def same_language(a: str, b: str) -> bool:
    """True where two codes name one language (de, deu and ger do)."""
    return two_letter(a) == two_letter(b)


def model_languages(source: str, tokenizer_config: dict[str, Any], card: str = "") -> tuple[str, str]:
    """Source and target language of an imported model, from its own files before any guess:
    tokenizer_config.json's source_lang and target_lang; else the one language pair its card's
    results name (`args: eng-deu` in the model index, as OPUS-MT's cards have it); else its name
    (`opus-mt-de-en`, `opus-mt-tc-big-fr-en`); else de, en."""
    src, tgt = tokenizer_config.get("source_lang"), tokenizer_config.get("target_lang")
    if isinstance(src, str) and isinstance(tgt, str) and src and tgt:
        return two_letter(src), two_letter(tgt)
    pairs = set(_TRANSLATION_ARGS.findall(card))
    if len(pairs) == 1:
        src, tgt = pairs.pop()
        return two_letter(src), two_letter(tgt)
    match = _NAME.search(source.rstrip("/"))
    return (two_letter(match.group(1)), two_letter(match.group(2))) if match else ("de", "en")
