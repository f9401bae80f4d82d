"""Payments: Stripe (credit packs, premium), its webhooks, wallets and earnings over the ledger."""
