"""curator: a local-first workbench for LLM fine-tuning data.

This package is the domain: pure functions over records and arrays (formats, readers,
embedding, projection, signals, export, training...). It never speaks SQL and never imports
`storage`, `jobs` or `cli`.
"""

__version__ = "0.1.0"
