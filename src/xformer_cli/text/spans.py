"""The spans the model must not translate, held back before translation and put back after.

Numbers, URLs, e-mail addresses, emoji and symbols (arrows, mathematical signs, bullets) are not
text to translate, and a small model garbles them ("3,50 €" -> "350"; "A → B", whose arrow the
vocabulary spells as three bytes, -> "A utmost BBA"). Each such span is replaced by a placeholder number before translation
and put back afterwards; numbers are what a model copies most reliably. A span whose placeholder
the model dropped is appended to the translation, so no span is ever lost (only, at worst,
moved). Emoji at the very start or end of a sentence are set aside and put back at the same edge.

A number comes back in English form where an English reader would misread the German one
("2,3 Prozent" is not two numbers): a decimal comma becomes a point and thousands points become
commas (`english_number`). A German date with a month name ("1. Januar 2027") is one span and
comes back in English ("1 January 2027"): held back as a day and a year apart, the model read
them as a number pair and dropped the month. Dates in digits, times, versions, phone numbers,
lists and whatever could be read either way stay as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

URL = r"(?:https?://|ftp://|www\.)[^\s<>\"“”„]+[^\s<>\"“”„.,;:!?)\]]"
EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
DIGITS = r"\d+(?:[.,:/]\d+)*"  # 3,50  1.000.000  10:30  3.10.2024  24/7
# A number with its currency or unit sign, and digit groups split by single spaces ("0171 234567").
NUMBER = rf"[$€£¥]?{DIGITS}(?: {DIGITS})*(?: ?[€$£¥%‰])?"
EMOJI_CHAR = r"[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u2300-\u23FF]"
EMOJI_MODIFIERS = r"[\uFE0F\U0001F3FB-\U0001F3FF]*"
EMOJI = rf"{EMOJI_CHAR}{EMOJI_MODIFIERS}(?:\u200D{EMOJI_CHAR}{EMOJI_MODIFIERS})*"
SYMBOL = r"[\u2190-\u21FF\u2200-\u22FF\u25A0-\u25FF]+"  # arrows, mathematical operators, geometric shapes: → ⇒ ≤ ∞ ■ ▶
MONTHS = {
    "Januar": "January",
    "Jänner": "January",
    "Februar": "February",
    "März": "March",
    "April": "April",
    "Mai": "May",
    "Juni": "June",
    "Juli": "July",
    "August": "August",
    "September": "September",
    "Oktober": "October",
    "November": "November",
    "Dezember": "December",
}
DATE = re.compile(rf"(0?[1-9]|[12]\d|3[01])\. ?({'|'.join(MONTHS)})(?: (\d{{4}}))?")  # 1. Januar 2027  3. Oktober  01.März
SPAN = re.compile(rf"{URL}|{EMAIL}|{EMOJI}|{SYMBOL}|(?<![\w.,])(?:{DATE.pattern}|{NUMBER})(?![\w])")
FIRST_PLACEHOLDER = 42  # placeholders are 42, 43, ...: two-digit numbers a model copies as they are
EDGE_PUNCTUATION = ".!?…:;,"


# German number forms an English reader misreads (each digit group as German writes it):
GERMAN_DECIMAL = re.compile(r"(\d+),(\d+)")  # 2,3  3,50  0,5: a decimal comma
GERMAN_THOUSANDS = re.compile(r"[1-9]\d{0,2}(?:\.\d{3})+")  # 1.500  1.500.000: thousands points
GERMAN_GROUPED_DECIMAL = re.compile(r"([1-9]\d{0,2}(?:\.\d{3})+),(\d+)")  # 1.234,56: both
SPACED_DECIMAL = re.compile(r"([1-9]\d{0,2}(?: \d{3})+),(\d+)")  # 12 345,67: thousands spaces, decimal comma
ENGLISH_THOUSANDS = re.compile(r"[1-9]\d{0,2}")  # a first group English thousands commas could follow
NUMBER_PARTS = re.compile(rf"([$€£¥]?)({DIGITS}(?: {DIGITS})*)((?: ?[€$£¥%‰])?)")  # sign, digits, unit


def english_form(span: str) -> str:
    """What a held-back span becomes in an English translation: a date with a month name in
    English (`english_date`), a number in English form where the German one would be misread
    (`english_number`), anything else as it is."""
    return english_date(span) or english_number(span)


def english_date(span: str) -> str | None:
    """A German date with a month name in English, day first as the German has it ("1. Januar
    2027" -> "1 January 2027"; "03. Oktober" -> "3 October"); None for any other span."""
    if (match := DATE.fullmatch(span)) is None:
        return None
    day, month, year = match.groups()
    return f"{int(day)} {MONTHS[month]}" + (f" {year}" if year else "")


def english_number(span: str) -> str:
    """The English form of a number span as German writes it, where the German form would be
    misread; any other span (a URL, an e-mail address, emoji) as it is.

    Converted: a decimal comma (2,3 -> 2.3; 3,50 € -> 3.50 €; 0,125 -> 0.125), thousands points
    (1.500 -> 1,500; 1.500.000 -> 1,500,000), both (1.234,56 -> 1,234.56) and a decimal comma
    after thousands spaces (12 345,67 -> 12 345.67). Left as written: what English reads the
    same (2027, 3.5, 12 345), dates (1.1.2027), times (12.30, 10:30), versions (2.13.0), phone
    numbers (030 1234567), lists (1,5,7), fractions (24/7), and what could be read either way: a
    comma before exactly three digits after one to three digits (1,500: German 1.5 to three
    places, or English for 1500) and four point-separated groups of at most 255 (an IP address)."""
    parts = NUMBER_PARTS.fullmatch(span)
    if parts is None:
        return span
    sign, digits, unit = parts.groups()
    return f"{sign}{english_digits(digits)}{unit}"


def english_digits(digits: str) -> str:
    """`english_number` of the digits alone (no currency sign or unit)."""
    if match := GERMAN_GROUPED_DECIMAL.fullmatch(digits):
        return f"{match[1].replace('.', ',')}.{match[2]}"
    if GERMAN_THOUSANDS.fullmatch(digits):
        groups = digits.split(".")
        if len(groups) == 4 and all(int(g) <= 255 for g in groups):
            return digits  # 192.168.100.200: an IP address as likely as billions
        return digits.replace(".", ",")
    if (match := GERMAN_DECIMAL.fullmatch(digits)) or (match := SPACED_DECIMAL.fullmatch(digits)):
        whole, fraction = match.groups()
        if len(fraction) == 3 and ENGLISH_THOUSANDS.fullmatch(whole):
            return digits  # 1,500: German 1.5 to three places, or English thousands
        return f"{whole}.{fraction}"
    return digits


@dataclass(frozen=True)
class Masked:
    """A sentence prepared for the model, and what to put back into its translation."""

    text: str  # what the model translates ("" when the sentence is only spans)
    spans: tuple[str, ...]  # spans replaced by placeholders, in order: spans[i] is FIRST_PLACEHOLDER + i
    prefix: str = ""  # emoji set aside at the start
    suffix: str = ""  # emoji set aside at the end (before the final punctuation)


def protect(sentence: str) -> Masked:
    """Replace the spans of `sentence` by placeholder numbers; set aside emoji at its edges."""
    if not SPAN.search(sentence):
        return Masked(sentence, ())
    text, prefix, suffix = sentence, "", ""
    # Emoji at the start, or at the end before the final punctuation ("... zu finden 😀."), are
    # decoration rather than part of the sentence: they are set aside and put back at their edge.
    lead = re.match(rf"(?:{EMOJI}\s*)+", text)
    if lead and lead.end() < len(text):
        prefix, text = lead.group().strip(), text[lead.end() :]
    trail = re.search(rf"(?:\s*{EMOJI})+(?=[{re.escape(EDGE_PUNCTUATION)}]*$)", text)
    if trail and trail.start() > 0:
        suffix, text = trail.group().strip(), text[: trail.start()] + text[trail.end() :]
    spans: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        spans.append(match.group())
        return str(FIRST_PLACEHOLDER + len(spans) - 1)

    text = SPAN.sub(placeholder, text)
    return Masked(text, tuple(spans), prefix, suffix)


def needs_model(masked: Masked) -> bool:
    """Whether anything is left to translate once the spans are out (a line of only a link, a
    price or emoji comes through as it is)."""
    return any(ch.isalpha() for ch in masked.text)


def restore(translation: str, masked: Masked, english_numbers: bool = True) -> str:
    """Put the spans back, numbers and dates in English form (`english_form`) unless `english_numbers` is
    False (a translation into another language): each placeholder's first
    occurrence becomes its span (later copies are dropped), a number the model made up takes the
    place of a missing one, a span still missing joins the end, and edge emoji return to their edge."""
    text, missing = translation, []
    for i in range(len(masked.spans)):  # placeholders become private-use marks first, so that
        pattern = re.compile(rf"(?<![\d.,]){FIRST_PLACEHOLDER + i}(?![\d])")  # a span that is a number is not taken for one
        if pattern.search(text):
            copy = re.compile(rf"\s*{pattern.pattern}")  # a later copy goes with the space before it ("until 42." -> "until.")
            text = copy.sub("", pattern.sub(chr(0xE000 + i), text, count=1))
        else:
            missing.append(i)
    # Every number of the source was a span, so a number the model wrote that is no placeholder
    # is most likely a garbled one ("433" for 43): it takes the place of the next missing span.
    stray = iter(list(re.finditer(r"\d+(?:[.,]\d+)*", text))[: len(missing)])
    for i, match in zip(list(missing), stray):
        text = text.replace(match.group(), chr(0xE000 + i), 1)
        missing.remove(i)
    spans = [english_form(span) for span in masked.spans] if english_numbers else list(masked.spans)
    for i, span in enumerate(spans):
        text = text.replace(chr(0xE000 + i), span)
    missing = [spans[i] for i in missing]
    suffix = " ".join([*missing, masked.suffix] if masked.suffix else missing)
    if suffix:
        body = text.rstrip(EDGE_PUNCTUATION + " ")
        text = f"{body} {suffix}{text[len(body) :].strip()}" if body else suffix
    if masked.prefix:
        text = f"{masked.prefix} {text}" if text else masked.prefix
    return re.sub(r"\s{2,}", " ", text).strip()
