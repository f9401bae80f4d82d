"""The credit ledger: accounts and immutable transfers in integer credits (TigerBeetle's model on Postgres)."""
