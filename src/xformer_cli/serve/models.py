"""The loaded models: each a translator with its batcher, found by language pair or by id.

Each bundle adds the language pair of its metadata (`src_lang`, `tgt_lang`). Where two bundles
share a pair, the one loaded first answers requests that name only the pair; the other is reached
by its id (xformer's `model` parameter, which the page's model picker sends).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xformer_cli.bundles.language_codes import two_letter
from xformer_cli.decoding.translator import Translator
from xformer_cli.serve.api_errors import bad_request
from xformer_cli.serve.batcher import Batcher
from xformer_cli.serve.languages import name
from xformer_cli.text.language_tags import with_language_tag


@dataclass
class LoadedModel:
    """One bundle being served."""

    id: str  # the bundle folder's name, made unique with -2, -3 ...
    translator: Translator
    batcher: Batcher

    @property
    def source(self) -> str:
        return self.translator.bundle.src_lang

    @property
    def target(self) -> str:
        return self.translator.bundle.tgt_lang

    @property
    def targets(self) -> list[str]:
        """The languages it writes: those of its `>>xxx<<` tags for a multi-target model (two
        letters where the language has them), else its one target."""
        tags = self.translator.tokenizer.language_tags
        return sorted({two_letter(code) for code in tags}) if tags else [self.target]

    def tagged(self, texts: list[str], target: str) -> list[str]:
        """The texts as the model reads them for `target`: with its tag in front for a multi-target model."""
        tags = self.translator.tokenizer.language_tags
        if not tags:
            return texts
        tag = self.translator.target_tag(target)
        return [with_language_tag(text, tag, tags.values()) for text in texts]

    def as_json(self) -> dict[str, str]:
        """What GET /frontend/settings lists for the page's model picker."""
        return {"id": self.id, "source": self.source, "target": self.target, "name": f"{self.id} ({self.source}→{self.target})"}


class ModelSet:
    """Every model the server loaded, in load order."""

    def __init__(self, translators: Sequence[Translator], wait_ms: float) -> None:
        self.models: list[LoadedModel] = []
        for translator in translators:
            base = translator.bundle.path.name if translator.bundle.path else f"{translator.bundle.src_lang}-{translator.bundle.tgt_lang}"
            taken = {m.id for m in self.models}
            model_id = next(c for c in [base, *(f"{base}-{n}" for n in range(2, len(translators) + 2))] if c not in taken)
            self.models.append(LoadedModel(model_id, translator, Batcher(translator, wait_ms)))

    @property
    def sources(self) -> list[str]:
        """The source languages read, in load order, each once."""
        return list(dict.fromkeys(m.source for m in self.models))

    def targets(self, source: str) -> list[str]:
        """The languages `source` is translated into, each once."""
        return list(dict.fromkeys(t for m in self.models if m.source == source for t in m.targets))

    def known(self, code: str) -> bool:
        """True for a language some model reads or writes."""
        return any(code == m.source or code in m.targets for m in self.models)

    def pick(self, source: str, target: str, model_id: str | None = None) -> LoadedModel:
        """The model for a pair (or the one with `model_id`, which must translate that pair)."""
        for code in (source, target):
            if not self.known(code):
                raise bad_request(f"{code} is not supported")
        if model_id:
            model = next((m for m in self.models if m.id == model_id), None)
            if model is None:
                raise bad_request(f"model {model_id} is not loaded (loaded: {', '.join(m.id for m in self.models)})")
            if model.source != source or target not in model.targets:
                raise bad_request(f"model {model_id} translates {model.source} to {', '.join(model.targets)}, not {source} to {target}")
            return model
        model = next((m for m in self.models if m.source == source and target in m.targets), None)
        if model is None:
            raise bad_request(f"{name(target)} ({target}) is not available as a target language from {name(source)} ({source})")
        return model

    def languages(self) -> list[dict[str, object]]:
        """GET /languages: every language read or written, with the targets it is translated into."""
        codes = dict.fromkeys(code for m in self.models for code in (m.source, *m.targets))
        return [{"code": code, "name": name(code), "targets": self.targets(code)} for code in codes]

    def close(self) -> None:
        """Finish the queued jobs, then end each batcher and the translators' worker processes."""
        for model in self.models:
            model.batcher.close()
            model.translator.close()
