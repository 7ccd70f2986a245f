"""The execution states the engine reads and writes, bound once as module constants.

They are the ``ExecutionState`` members themselves. On Python 3.11 reading a member off its enum
class (``ExecutionState.FAILED``) is a descriptor call of about 0.1 µs, against 0.01 µs for a
module constant; the engine does several per event, which cost 5–8 % on the 10,000-task chain of
``attune bench workflows``. So engine modules import the states from here.
"""

from __future__ import annotations

from typing import Final

from attune.states import ExecutionState

ABANDONED: Final = ExecutionState.ABANDONED
CANCELING: Final = ExecutionState.CANCELING
CANCELLED: Final = ExecutionState.CANCELLED
FAILED: Final = ExecutionState.FAILED
PAUSED: Final = ExecutionState.PAUSED
PAUSING: Final = ExecutionState.PAUSING
RUNNING: Final = ExecutionState.RUNNING
SUCCEEDED: Final = ExecutionState.SUCCEEDED
TIMEOUT: Final = ExecutionState.TIMEOUT
