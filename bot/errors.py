"""The one error tree.

`UserFacingError` carries text that is safe to show a person; anything else is a bug or an outage: the user
gets a generic apology with a reference id and the exception goes to the log with the message id.
"""

from __future__ import annotations


class SupportbotError(Exception):
    """Base of every error we raise on purpose."""


class ConfigError(SupportbotError):
    """Configuration is wrong or incomplete; the message says what to fix, in one line."""


class NotReadyError(SupportbotError):
    """A dependency (database, vector store, index) is not reachable or empty."""


class UserFacingError(SupportbotError):
    """An error whose message is written for the person who asked; channels show it as is."""

    def __init__(self, message: str, mentions: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.mentions = mentions  # user ids the message names, by the channel's own ids (see `Reply.mentions`)


class InputRejected(UserFacingError):
    """A guard refused the inbound message (empty, too long)."""


class InvalidTransition(UserFacingError):
    """A pending action was asked to move to a state it cannot reach (already confirmed, expired, ...)."""


class NotAllowed(UserFacingError):
    """The person may not do this (e.g. confirm someone else's ticket)."""


class DeliveryError(SupportbotError):
    """A reply could not be delivered; the outbox will retry it."""


class PermanentDeliveryError(DeliveryError):
    """A reply can never be delivered (e.g. channel not found); the outbox dead-letters it."""


class LLMUnavailable(SupportbotError):
    """The language model failed or its circuit is open; the engine falls back to extractive answers."""
