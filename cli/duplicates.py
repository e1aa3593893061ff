"""`curator` commands for duplicates (registered by cli/main.py through COMMANDS)."""
from __future__ import annotations

COMMANDS: list = []
