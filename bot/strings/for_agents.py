"""Every sentence support AGENTS read: hand-off posts in the agents' channel, cases, and tickets' summaries.

One module for this audience (people asking read `bot.strings.for_customers`).
"""

AGENT_POST_HANDOFF = "{requester} asked for a person ({channel})."
AGENT_POST_TICKET = "Ticket {reference} opened for {requester} ({channel})."
TICKET_SUMMARY_HEADER = "Why: {reason}"
CLAIM = "Claim"
RESOLVE = "Resolve"
CASE_CLAIMED = "{agent} is on this case."
CASE_RESOLVED = "{agent} marked this case as resolved."
ALREADY_CLAIMED = "This case is already claimed by {assignee}."
ONLY_AGENTS = "Only support agents can claim or resolve cases."
ONLY_IN_AGENTS_CHANNEL = "Claim and Resolve work only in the agents' channel."
UNKNOWN_CASE = "I can't tell which case this button belongs to."

# --- the daily backlog digest ----------------------------------------------------------------------------------
BACKLOG_TITLE = "Support backlog, {date}"
BACKLOG_WAITING = "Customers waiting for a person: {waiting} (longest {longest}); {over} past the {sla} SLA."
BACKLOG_LAST_DAY = "Last 24 h: {handoffs} hand-offs, {claimed} claimed; median time to first human {median}."
BACKLOG_OFFERS = "Ticket offers: {pending} awaiting a yes ({expiring} past half their life); {expired} expired in 24 h."
BACKLOG_FAILED = "Tickets that failed to open: {tickets}. Dead letters: {inbound} inbound, {replies} replies."
BACKLOG_OVER_SLA = "Past the SLA, oldest first:"
BACKLOG_MORE = "... and {more} more."
BACKLOG_SUBJECT = "Support backlog digest"
