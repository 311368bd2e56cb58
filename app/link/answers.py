"""A request's answer: the handler's result, or the error response that says why not.

Who is to blame decides the code: an op the table does not have is ``unknown_op``,
arguments failing the op's declaration are ``bad_args`` (the peer's doing); a domain
error the handler raised travels with its own code (a 404 on the edge is a 404 on the
master); anything else is a bug on this side, ``internal``, logged with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pydantic_core import PydanticSerializationError

from app.errors import EngineError
from app.link.codec import Call, encode_failure, encode_result
from app.link.codes import ErrorCode
from app.link.messages import Request
from app.link.ops import BadArgs, Handler
from app.link.pending import error_code

logger = logging.getLogger(__name__)


async def answer(handlers: Mapping[str, Handler], request: Call | Request, *, peer: str) -> str:
    """The text of the response to ``request``, written straight from the result.

    Raises nothing the handler raised, but a ``CancelledError`` (the answer was
    interrupted: there is nothing to say). ``peer`` names the asker in the log.
    """
    handler = handlers.get(request.op)
    if handler is None:
        return encode_failure(request.id, ErrorCode.UNKNOWN_OP, f"unknown op {request.op!r}")
    try:
        result = await handler(request.args)
    except BadArgs as exc:
        return encode_failure(request.id, ErrorCode.BAD_ARGS, str(exc))
    except EngineError as exc:
        return encode_failure(request.id, error_code(exc), exc.detail)
    except Exception as exc:  # a bug in the handler: never the peer's fault
        logger.exception("op %r from %s failed", request.op, peer)
        return encode_failure(request.id, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
    try:
        return encode_result(request.id, result)
    except PydanticSerializationError as exc:
        message = f"the result of {request.op!r} is not JSON: {exc}"
        return encode_failure(request.id, ErrorCode.BAD_RESULT, message)
