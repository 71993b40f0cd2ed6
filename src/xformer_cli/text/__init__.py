"""Text before and after the model: SentencePiece, subword sampling, sentence splitting, spans held back."""
