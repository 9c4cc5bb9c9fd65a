"""Events out (issue 15): what syncd tells other programs, through a transactional outbox
(`event_outbox`) that a relay publishes to the `SYNCD_EVENTS_EXCHANGE` topic exchange."""
