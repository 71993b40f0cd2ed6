"""The `xformer` command line: one module per command, thin; nothing imports it."""
