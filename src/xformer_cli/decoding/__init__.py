"""From a trained model to translations: search, the Translator, worker processes, the Unix filter."""
