"""What the engine's named objects share: the name rule.

Volumes live in ``runtime.engine.volumes``, networks in
``runtime.engine.networks``; ``Networks`` and ``Attachment`` are re-exported
here for the container lifecycle, which names them so.
"""

from __future__ import annotations

import re

from runtime import errors
from runtime.engine import networks

Networks = networks.Networks
Attachment = networks.Attachment

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


def check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise errors.InvalidSpec(
            f"invalid {kind} name {name!r}: use letters, digits, '_', '.', '-' "
            "(at most 128), starting with a letter or digit"
        )
