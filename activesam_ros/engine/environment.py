"""Process settings a front end makes before torch is imported (torch-free).

torchvision's CPU ``roi_align`` (sam3's decoder uses it) calls
``torch.compile`` on first use unless TorchDynamo is disabled: seconds of
compiling, a C compiler, and ~155 MB under /tmp. The CLI and the node own
their processes and set this; a library user decides for their own.
"""

from __future__ import annotations

import os

DYNAMO_VARIABLE = "TORCHDYNAMO_DISABLE"


def set_process_defaults() -> None:
    """Disable TorchDynamo unless the environment already says otherwise."""
    os.environ.setdefault(DYNAMO_VARIABLE, "1")
