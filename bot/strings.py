"""Every user-visible sentence the core says, in one place (channels add their own rendering)."""

EMPTY = "It looks like your message was empty. What can I help you with?"
TOO_LONG = "Your message is too long for me ({length} characters; the limit is {limit}). Could you shorten it?"
ABSTAIN = (
    "I don't know the answer to that from our documentation, and I'd rather not guess. "
    "A person from our support team can help."
)
LOW_CONFIDENCE = "I'm not fully sure this answers your question."
OFFER_TICKET = "Create a ticket"
TALK_TO_PERSON = "Talk to a person"
HELPFUL = "Helpful"
NOT_HELPFUL = "Not helpful"
HANDOFF = "I've asked a person from our support team to take over. They'll reply here."
NO_ESCALATION = "I can't reach a person from here right now; please try again later."
TICKET_CONFIRMED = "Your ticket {reference} is open. We'll follow up in this thread."
APOLOGY = "Sorry, something went wrong on our side while answering. Please try again. (reference: {reference})"
