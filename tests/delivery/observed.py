"""What each customer received, whatever carries its channels (see :mod:`msp_reports.simulators.inbox`)."""

from msp_reports.simulators.inbox import Received, received

__all__ = ["Received", "received"]
