"""Prometheus metrics: every name an alert or the dashboard uses is defined here, in one place.

Module-level collectors in the default registry (the prometheus-client convention), served at `/metrics`.
Labels are low-cardinality by design: never a user, message or conversation id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

INQUIRIES = Counter("supportbot_inquiries", "Inquiries handled, by channel and outcome", ["channel", "outcome"])
DUPLICATES = Counter("supportbot_inbound_duplicates", "Inbound messages dropped as already seen", ["channel"])
ANSWER_LATENCY = Histogram(
    "supportbot_answer_latency_seconds", "Time to decide a reply, per channel", ["channel"], buckets=LATENCY_BUCKETS
)
STAGE_LATENCY = Histogram(
    "supportbot_stage_latency_seconds",
    "Latency per answer stage (retrieve, generate, ...)",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
CONFIDENCE = Histogram(
    "supportbot_answer_confidence", "Confidence of answers", buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
)
LLM_TOKENS = Counter("supportbot_llm_tokens", "LLM tokens used", ["model", "direction"])
LLM_COST = Counter("supportbot_llm_cost_usd", "LLM cost in US dollars", ["model"])
LLM_CIRCUIT_OPEN = Gauge("supportbot_llm_circuit_open", "1 while the LLM circuit breaker is open")
LLM_BUDGET_EXHAUSTED = Gauge(
    "supportbot_llm_budget_exhausted", "1 while today's LLM spend is at LLM_DAILY_BUDGET_USD (answers are extractive)"
)
FEEDBACK = Counter("supportbot_feedback", "Feedback votes", ["channel", "value"])
ERRORS = Counter("supportbot_errors", "Errors logged, by component", ["component"])
TICKETS = Counter("supportbot_tickets", "Tickets, by backend and result", ["backend", "result"])
PENDING_ACTIONS = Gauge("supportbot_pending_actions", "Pending actions by state", ["state"])
ESCALATIONS = Counter("supportbot_escalations", "Hand-offs to a person", ["channel"])
OUTBOX_PENDING = Gauge("supportbot_outbox_pending", "Replies waiting in the outbox")
OUTBOX_OLDEST_AGE = Gauge("supportbot_outbox_oldest_age_seconds", "Age of the oldest undelivered reply")
OUTBOX_DEAD = Gauge("supportbot_outbox_dead", "Replies that could not be delivered after all retries")
DELIVERIES = Counter("supportbot_deliveries", "Reply delivery attempts", ["channel", "result"])
INBOUND_DEAD = Gauge("supportbot_inbound_dead_letters", "Inbound messages in the dead-letter state")
SLACK_ACK_LATENCY = Histogram(
    "supportbot_slack_ack_latency_seconds",
    "Time from receiving a Slack event to acking it",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3),
)
MAILBOX_LAG = Gauge("supportbot_mailbox_lag_seconds", "Seconds since the mailbox was last read successfully")
EMAIL_IGNORED = Counter("supportbot_email_ignored", "Emails not answered, by reason", ["reason"])
EMAIL_LOOPS = Counter("supportbot_email_loop_breaker", "Times the loop breaker stopped replying to a sender")
EMAIL_QUARANTINED = Counter("supportbot_email_quarantined", "Emails that could not be parsed and were quarantined")
JOB_RUNS = Counter("supportbot_scheduler_job_runs", "Scheduled job runs", ["job", "status"])
SCHEDULER_LEADER = Gauge("supportbot_scheduler_leader", "1 while this process holds the scheduler lease")
API_REFUSED = Counter("supportbot_api_refused", "JSON API requests refused, by reason", ["reason"])
HTTP_OPEN = Gauge("supportbot_http_connections_open", "Connections open on the public HTTP listener")
HTTP_DROPPED = Counter(
    "supportbot_http_connections_dropped",
    "Connections the public HTTP listener closed: over_cap, header_timeout, body_timeout",
    ["reason"],
)
READY = Gauge("supportbot_ready", "1 while /health/ready answers 200")
JOB_GAVE_UP = Counter("supportbot_job_gave_up", "Scheduled job periods given up after every retry failed", ["job"])
