"""Subcommands of `popgrad`, discovered automatically (see popgrad.cli)."""
