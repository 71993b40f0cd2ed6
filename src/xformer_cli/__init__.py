"""xformer: German→English translation with a Transformer written from scratch."""

__version__ = "0.1.0"

__all__ = ["Translator", "import_marian", "__version__"]


def __getattr__(name: str):
    # Lazy so that `import xformer_cli` stays cheap (the CLI's cold start).
    if name == "Translator":
        from xformer_cli.decoding.translator import Translator

        return Translator
    if name == "import_marian":
        from xformer_cli.bundles.marian import import_marian

        return import_marian
    raise AttributeError(name)
