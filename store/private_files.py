"""Files that hold personal data (rejects files, exports): readable and writable by their owner only.

``os.open``'s mode applies only when the call creates the file. A file already there (a rejects file
of last night's run, one an operator copied into a shared folder, an export's leftover temporary)
keeps the permissions it had, so the rows of people written into it would be as readable as it was.
The mode is therefore set on the open descriptor too, whoever created the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TextIO

PRIVATE_MODE = stat.S_IRUSR | stat.S_IWUSR  # 0600


def open_private(path: Path, encoding: str = "utf-8", errors: str = "strict") -> TextIO:
    """``path`` opened for writing text (UTF-8 unless said, CSV newlines), emptied, with mode 0600 before
    anything is written."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    try:
        if hasattr(os, "fchmod"):  # POSIX; elsewhere the folder's access rules decide
            os.fchmod(descriptor, PRIVATE_MODE)
        return open(descriptor, "w", newline="", encoding=encoding, errors=errors)
    except BaseException:
        os.close(descriptor)
        raise
