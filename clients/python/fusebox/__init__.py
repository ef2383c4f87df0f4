"""Python client for the Fusebox circuit-breaker sidecar.

    from fusebox import Fusebox, BreakerOpen

    fb = Fusebox("./fusebox.sock")
    with fb.guard("openai") as call:
        reply = openai_client.chat.completions.create(...)

    for attempt in fb.chain("llm"):
        with attempt:
            return ask(attempt.breaker, prompt)
"""
from .aio import AsyncAttempt, AsyncFusebox, AsyncGuard
from .classify import default_classifier
from .client import Attempt, Fusebox, Guard
from .policy import Permit
from .errors import BreakerOpen, ChainExhausted, FuseboxError, ProtocolError, SidecarUnavailable, UnroutedRequest
from .listen import Listener

__all__ = [
    "AsyncAttempt", "AsyncFusebox", "AsyncGuard", "Attempt", "BreakerOpen", "ChainExhausted", "Fusebox", "FuseboxError", "Guard", "Listener", "Permit", "ProtocolError",
    "SidecarUnavailable", "UnroutedRequest", "default_classifier",
]
__version__ = "0.1.0"
