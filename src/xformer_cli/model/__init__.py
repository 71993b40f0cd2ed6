"""The Transformer of "Attention Is All You Need", one concept per module.

Mask convention for the whole codebase (PyTorch's): a boolean mask is True where a query
may NOT attend to a key.
"""

__all__ = ["Transformer", "build_model"]


def __getattr__(name: str):
    # Lazy, so that model/config.py can be read without torch (the command line's help).
    if name in __all__:
        from xformer_cli.model import transformer

        return getattr(transformer, name)
    raise AttributeError(name)
