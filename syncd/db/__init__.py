"""The database: tables, engine and sessions, migrations."""

# Every table in Base.metadata, whichever table module a caller imports first.
from syncd.db import process_tables as process_tables
from syncd.db import tables as tables
