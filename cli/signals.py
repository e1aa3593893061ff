"""`curator` commands for signals (registered by cli/main.py through COMMANDS)."""
from __future__ import annotations

COMMANDS: list = []
