"""Recipes (*.toml) and the shipped default bundle; installed as `xformer_cli.models`."""
