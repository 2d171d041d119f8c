"""The JSON API channel: `POST /api/ask` with a bearer key, translated to an `InboundMessage` and answered inline,
and `POST /api/actions/{token}/confirm`, the Confirm of a ticket offer made over the API."""

from channels.api.handler import ApiConfig, ApiGate, ApiKeys, AskEndpoint, ConfirmEndpoint

__all__ = ["ApiConfig", "ApiGate", "ApiKeys", "AskEndpoint", "ConfirmEndpoint"]
