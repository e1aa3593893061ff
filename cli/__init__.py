"""The `curator` command line: thin wrappers that parse, call jobs and storage, and print."""
