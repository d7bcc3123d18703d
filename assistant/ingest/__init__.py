"""Stage 1, ingest: which formats are read, one loader per format, finding and reading documents."""
