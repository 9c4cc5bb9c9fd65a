"""Data derived from the catalog rows at write time, for the API's reads."""
