"""Loading the model libraries (transformers, sentence-transformers, peft) without their
chatter: curator reports its own progress, so their weight-loading bars, load reports ("BertModel
LOAD REPORT ... UNEXPECTED position_ids") and version nags would only bury its lines. Errors
still show.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quietly() -> Iterator[None]:
    """Around the import and loading of a model: transformers logs errors only and shows no
    progress bars (for the rest of the process), and peft's FutureWarning about the installed
    transformers release is not shown."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="peft")
        yield
