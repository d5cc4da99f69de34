"""kombu's file-system transport, with messages that appear whole.

kombu's ``_put`` creates the message file, then writes it; a consumer listing the folder in
between moves away an empty file, fails to decode it and loses the message (or crashes its
worker). Here a message is written to a hidden name first and renamed into place, which is atomic.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu's own bases disagree
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        hidden = os.path.join(self.data_folder_out, f".{name}.part")
        with open(hidden, "wb") as file:
            file.write(dumps(payload).encode())
        os.replace(hidden, os.path.join(self.data_folder_out, name))


class Transport(filesystem.Transport):
    Channel = Channel
