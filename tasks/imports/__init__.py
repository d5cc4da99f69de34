"""The ``import`` job's pieces: a CSV or JSON Lines file, read as a stream and checked row by
row against an import profile's columns (``rows``, ``values``), on its way into PostgreSQL."""
