"""The five news sentences of issue 21, read as a person would write them? Checked on the words
every one of the 5 best hypotheses shares.

    python bench/quality/news_sentences.py [--model models/de-en-general ...]

For each model and each of the five sentences (the last five of scripts/ship_model_examples.de,
chosen before training the shipped model), prints the best translation, the words that all five
best hypotheses of beam 5 share, each of the sentence's required meanings that some of the five
lack (with how many lack it), and any word repeated right after itself in a hypothesis
("federal federal"). A sentence passes with every meaning in all five and no repeated word. The
meanings were written down from the German, with the shipped model's translations known (they
are on its model card) and no later model's; a meaning is a set of English words, any one of
which will do.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace

import torch

from xformer_cli.decoding.translator import Translator
from xformer_cli.shipped import default_model

SENTENCES: list[tuple[str, str]] = [  # (German, its meanings: words joined by "/" are one meaning)
    (
        "Wegen des Streiks fallen morgen zahlreiche Flüge am Frankfurter Flughafen aus.",
        "strike/strikes tomorrow flights frankfurt airport cancelled/canceled/cancellations",
    ),
    (
        "Die Inflation ist im Oktober auf 2,3 Prozent gesunken, teilte das Statistische Bundesamt mit.",
        "inflation october 2.3 fell/fallen/dropped/declined/decreased/sank/eased statistical/statistics office",
    ),
    (
        "Der Vertrag tritt am 1. Januar 2027 in Kraft und gilt für alle Mitgliedstaaten der Europäischen Union.",
        "treaty/agreement/contract enters/enter/comes/come/takes/take january 2027 force/effect member states european union",
    ),
    (
        "Forscher haben eine neue Methode entwickelt, um Plastikmüll im Meer schneller abzubauen.",
        "researchers/scientists new method plastic waste/litter/garbage/rubbish/debris sea/ocean/oceans/seas "
        "faster/quicker/quickly/rapidly",
    ),
    (
        "Das Unternehmen kündigte an, im nächsten Jahr 500 neue Mitarbeiter einzustellen.",
        "company/firm announced/said 500 new employees/staff/workers/people hire/recruit/employ/take next year",
    ),
]
WORD = re.compile(r"[\w.]*\w")


def words(text: str) -> list[str]:
    """Lower-cased words, numbers with their inner dots ("2.3") kept whole."""
    return [w.lower() for w in WORD.findall(text)]


def repeated(text: str) -> list[str]:
    """Words that come right after themselves."""
    found = words(text)
    return [a for a, b in zip(found, found[1:]) if a == b]


def check(hypotheses: list[str], meanings: str) -> dict:
    """The words all hypotheses share, each meaning some hypothesis lacks (with how many lack it),
    the repeated words, and the verdict."""
    found = [set(words(h)) for h in hypotheses]
    wanted = [set(meaning.split("/")) for meaning in meanings.split()]
    shared = set.intersection(*found)
    missing = {"/".join(sorted(m)): sum(not m & f for f in found) for m in wanted}
    missing = {meaning: lacking for meaning, lacking in missing.items() if lacking}
    repeats = sorted({w for h in hypotheses for w in repeated(h)})
    return {"shared": sorted(shared), "missing": missing, "repeated": repeats, "passes": not missing and not repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", default=[default_model()])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for model in args.model:
        translator = Translator.load(model, device="cpu")
        config = replace(translator.config(beam_size=5), n_best=5)
        nbest = translator.translate_nbest([german for german, _ in SENTENCES], config)
        passed = 0
        for (german, meanings), hypotheses in zip(SENTENCES, nbest):
            result = check([h.text for h in hypotheses], meanings)
            passed += result["passes"]
            print(json.dumps({"model": model, "german": german, "best": hypotheses[0].text, **result}, ensure_ascii=False))
        print(json.dumps({"model": model, "passed": passed, "of": len(SENTENCES)}))


if __name__ == "__main__":
    main()
