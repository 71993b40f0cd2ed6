"""The Transformer of "Attention Is All You Need", one concept per module.

Mask convention for the whole codebase (PyTorch's): a boolean mask is True where a query
may NOT attend to a key.
"""

from xformer_cli.model.transformer import Transformer, build_model

__all__ = ["Transformer", "build_model"]
