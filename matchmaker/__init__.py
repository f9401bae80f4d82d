"""Random 1:1 matchmaking: tickets, filters, scoring, atomic pairing in Redis."""
