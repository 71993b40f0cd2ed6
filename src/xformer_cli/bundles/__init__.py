"""Model bundles: folders and the Hub, the model card, import from other formats."""
