"""What a user did wrong, told as one line: the CLI prints a UserError's message (and the app
shows it) without a traceback. Any other exception is a bug, and keeps its traceback.

UserError is a ValueError, so code that catches bad values catches it too.
"""


class UserError(ValueError):
    """Bad input, a missing or unsuitable file, an unknown name: something the user can fix."""
