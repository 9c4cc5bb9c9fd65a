"""The `syncd` command line: `main` parses argv, loads the settings and runs one subcommand.
Guarantees: exit 0 done, 1 the command failed, 2 not attempted (configuration, broker down).
Does not: load the work's modules (SQLAlchemy, broker, API) before a subcommand needs them.

Each command body takes the settings and the parsed arguments, prints what happened (errors on
stderr, prefixed "syncd: "), and returns that exit code. Only `main` is re-exported: the bodies
(syncd.cli.catalog_commands, .discover, .redrive) are imported from their modules, so that
importing this package stays as cheap as the old syncd/cli.py module was.
"""

from syncd.cli.parser import main

__all__ = ["main"]
