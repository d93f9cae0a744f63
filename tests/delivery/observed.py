"""What each customer received, whatever carries its channels (see :mod:`devtools.inbox`)."""

from devtools.inbox import Received, received

__all__ = ["Received", "received"]
