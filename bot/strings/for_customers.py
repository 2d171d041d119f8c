"""Every sentence a person who ASKS reads: customers by email, anyone asking in Slack or over the API.

One module for this audience (agents read `bot.strings.for_agents`). Channels render these (Slack adds emoji and
mrkdwn, email adds HTML); nobody else writes user-visible sentences, and none of them carries exception text.
"""

# --- the conversation ------------------------------------------------------------------------------------------
EMPTY = "It looks like your message was empty. What can I help you with?"
TOO_LONG = "Your message is too long for me ({length} characters; the limit is {limit}). Could you shorten it?"
ABSTAIN = (
    "I don't know the answer to that from our documentation, and I'd rather not guess. "
    "A person from our support team can help."
)
LOW_CONFIDENCE = "I'm not fully sure this answers your question."
CHECK_SOURCES = "Please check the sources."
REPLY_TO_CLARIFY = "If it doesn't, reply and tell me more."
SOURCES = "Sources"
COMMUNITY_TIP = "community tip, not an official article"  # after a source that is a forum / community tip
APOLOGY = "Sorry, something went wrong on our side. Please try again. (reference: {reference})"

# --- buttons and what they answer --------------------------------------------------------------------------------
OFFER_TICKET = "Create a ticket"
TALK_TO_PERSON = "Talk to a person"
HELPFUL = "Helpful"
NOT_HELPFUL = "Not helpful"
CONFIRM = "Confirm"
CANCEL = "Cancel"
THANKS_UP = "Thanks for the feedback! :+1:"
THANKS_DOWN = "Thanks for the feedback. We'll use it to improve the answers."
PREVIEW = "Create this ticket?\n\nSubject: {subject}\n\nSummary:\n{summary}"

# --- a person and tickets ---------------------------------------------------------------------------------------
HANDOFF = "I've asked a person from our support team to take over. They'll reply here."
NO_ESCALATION = "I can't reach a person from here right now; please try again later."
NO_AGENT_OFFER_TICKET = (
    "Nobody from our support team can pick this up live right now, so I won't promise a reply here. "
    "I can open a ticket for you instead, and the team will follow up on it."
)
ONLY_REQUESTER_HANDS_OFF = "Only the person who asked (or a support agent) can ask for a person here."
TICKET_CONFIRMED = "Your ticket {reference} is open. We'll follow up in this thread."
TICKET_CREATED = "Ticket {reference} created. We'll follow up in this thread."
TICKET_EXISTS = "A ticket already exists for this: {reference}."
TICKET_CANCELLED = "OK, no ticket was created."
OFFER_GONE = "This ticket offer is no longer open ({state}). Ask again if you still need help."
UNKNOWN_ACTION = "I can't find that request any more. Ask again and I'll offer a new ticket."
NOT_YOURS = "Only the person who asked (or a support agent) can confirm or cancel this."
ALREADY_DONE = "This was already confirmed: {result}."
EXPIRED = "This request expired; ask again and I'll offer a new ticket."
CANCELLED = "This was cancelled. Ask again if you still need a ticket."
IN_PROGRESS = "Your ticket is being opened right now; the link will follow here shortly."
ACTION_FAILED = "I couldn't open the ticket just now. I'll keep trying; you can also press Confirm again in a minute."

# --- email ------------------------------------------------------------------------------------------------------
DEFAULT_SUBJECT = "Re: your message to support"
CONFIRM_TICKET_BY_REPLY = "Reply YES to this email to open a ticket (reference {reference})."
TALK_TO_PERSON_BY_REPLY = 'Reply "talk to a person" to this email to reach our support team.'
FOOTER = "This answer was written automatically by our support assistant."

# --- Slack ------------------------------------------------------------------------------------------------------
TRUNCATED = "_(answer shortened to fit in Slack)_"
