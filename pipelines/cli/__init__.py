"""The command line: one module per command family; flags and environment become settings here."""
