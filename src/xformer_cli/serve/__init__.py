"""`xformer serve`: LibreTranslate's HTTP API and a page over the Translator."""
