"""The redaction and sampling engines, for use and testing outside a tracker.

A tracker builds these from its settings (``redact=``, ``redact_patterns=``,
``sample_rate=``, ``sample_keep_errors=``); import them here to check what a
configuration does to a text or which conversations it keeps - for instance in
your own tests - without sending anything.  This module is not imported by
``import agentsight_async`` (compiling the patterns costs start-up time).
"""

from __future__ import annotations

from ._privacy import Redactor
from ._sampling import Sampler

__all__ = ["Redactor", "Sampler"]
