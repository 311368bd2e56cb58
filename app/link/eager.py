"""Running a coroutine in the current task until it first has to wait.

Why: the link answers most requests without waiting for anything (a ping, an exec of a
method that returns at once). A task per request would cost a task and a turn of the
event loop before every one of those answers (bench/README.md §1), so the task that
reads the link runs each answer itself, and only an answer that really waits gets a
task of its own. Whether an answer waits is known only by running it; :func:`start`
runs it up to that point. (Python 3.12's eager tasks start a *new* task this way; the
engine runs on 3.11, and here the current task is the one that keeps going.)

How: a coroutine is a generator underneath. ``coroutine.send(None)`` runs it until it
either finishes (``StopIteration``) or suspends, yielding the future it waits on to the
task driving it. In the second case :class:`Resumable` takes over: awaiting it yields
that same future to the current task (as the coroutine would have, had it been awaited
from the start) and from then on passes every value and exception between the task and
the coroutine, a cancellation included, until the coroutine finishes.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator


class Resumable:
    """The rest of a coroutine that :func:`start` ran up to its first wait: await it
    (once) to run the coroutine to its end in the awaiting task."""

    __slots__ = ("_coroutine", "_waiting_on")

    def __init__(self, coroutine: Coroutine[object, object, None], waiting_on: object) -> None:
        self._coroutine = coroutine
        #: What the coroutine yielded at its first wait (the future it waits on).
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[object, object, None]:
        coroutine, waiting_on = self._coroutine, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:  # a cancellation, say: the coroutine handles it
                try:
                    waiting_on = coroutine.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting_on = coroutine.send(sent)
                except StopIteration:
                    return


def start(coroutine: Coroutine[object, object, None]) -> Resumable | None:
    """Run ``coroutine`` in the current task until it finishes or first has to wait.

    Returns None when it finished, else the `Resumable` rest to await. What the
    coroutine raises before its first wait propagates, a ``CancelledError`` included.
    """
    try:
        waiting_on = coroutine.send(None)
    except StopIteration:
        return None
    return Resumable(coroutine, waiting_on)
