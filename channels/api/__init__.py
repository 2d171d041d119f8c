"""The JSON API channel: `POST /api/ask` with a bearer key, translated to an `InboundMessage` and answered inline."""

from channels.api.handler import ApiConfig, ApiKeys, AskEndpoint

__all__ = ["ApiConfig", "ApiKeys", "AskEndpoint"]
