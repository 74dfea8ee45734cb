"""aidflow's edges to other systems: the agent bank's file exchange (and its simulator)
and the delivery of the notification outbox (log, SMTP, SMS gateway)."""
