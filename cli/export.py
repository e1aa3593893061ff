"""`curator` commands for export (registered by cli/main.py through COMMANDS)."""
from __future__ import annotations

COMMANDS: list = []
