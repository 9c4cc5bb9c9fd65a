"""syncd: keeps HPC software catalogs in a database and serves them over HTTP."""

__version__ = "0.1.0"
