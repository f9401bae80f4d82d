"""ledger (accounts, immutable transfers, one-call apply) and payments (Stripe inbox, purchases, subscriptions)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 02:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# One operation (a purchase, a spend's two parts, a hold, its post) in one round trip: insert its
# transfers (none if the first id exists: the operation was applied before), then move the balances
# in ascending account order, so concurrent operations lock rows in the same order and never deadlock.
# A balance that would break ledger_no_overdraft aborts the whole operation (check_violation).
APPLY = """
CREATE FUNCTION ledger_apply(transfers jsonb, deltas jsonb) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  d record;
  n integer;
BEGIN
  INSERT INTO ledger_transfers (id, batch, debit_account_id, credit_account_id, amount, phase, kind,
                                pending_id, expires_at, meta)
  SELECT t.id, t.batch, t.debit_account_id, t.credit_account_id, t.amount, t.phase, t.kind,
         t.pending_id, t.expires_at, coalesce(t.meta, '{}'::jsonb)
  FROM jsonb_to_recordset(transfers) AS t(id text, batch text, debit_account_id bigint, credit_account_id bigint,
                                          amount bigint, phase text, kind text, pending_id text,
                                          expires_at timestamptz, meta jsonb)
  ON CONFLICT (id) DO NOTHING;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 0 THEN
    RETURN false;
  END IF;
  IF n <> jsonb_array_length(transfers) THEN
    RAISE EXCEPTION 'ledger: part of operation % exists already', transfers->0->>'batch'
      USING ERRCODE = 'unique_violation';
  END IF;
  FOR d IN SELECT * FROM jsonb_to_recordset(deltas)
           AS x(account bigint, dp bigint, cp bigint, dq bigint, cq bigint) ORDER BY account LOOP
    UPDATE ledger_accounts
       SET debits_posted = debits_posted + d.dp, credits_posted = credits_posted + d.cp,
           debits_pending = debits_pending + d.dq, credits_pending = credits_pending + d.cq
     WHERE id = d.account;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'ledger: no account %', d.account USING ERRCODE = 'foreign_key_violation';
    END IF;
  END LOOP;
  RETURN true;
END $$;
"""

IMMUTABLE = """
CREATE FUNCTION ledger_transfers_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger transfers are immutable (write a reversing transfer)'
    USING ERRCODE = 'integrity_constraint_violation';
END $$
"""
IMMUTABLE_TRIGGER = """
CREATE TRIGGER ledger_transfers_immutable BEFORE UPDATE OR DELETE ON ledger_transfers
  FOR EACH ROW EXECUTE FUNCTION ledger_transfers_immutable();
"""


def upgrade() -> None:
    op.create_table('ledger_accounts',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('owner_id', sa.UUID(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('shard', sa.SmallInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('no_overdraft', sa.Boolean(), nullable=False),
    sa.Column('debits_posted', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('credits_posted', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('debits_pending', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('credits_pending', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0',
                       name='ledger_balances_not_negative'),
    sa.CheckConstraint('NOT no_overdraft OR debits_posted + debits_pending <= credits_posted',
                       name='ledger_no_overdraft'),
    sa.ForeignKeyConstraint(['owner_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ledger_accounts_owner', 'ledger_accounts', ['owner_id', 'kind'], unique=True,
                    postgresql_where=sa.text('owner_id IS NOT NULL'))
    op.create_index('ledger_accounts_platform', 'ledger_accounts', ['kind', 'shard'], unique=True,
                    postgresql_where=sa.text('owner_id IS NULL'))
    op.execute("CREATE SEQUENCE ledger_transfers_seq")
    op.create_table('ledger_transfers',
    sa.Column('id', sa.String(length=160), nullable=False),
    sa.Column('seq', sa.BigInteger(), server_default=sa.text("nextval('ledger_transfers_seq')"), nullable=False),
    sa.Column('batch', sa.String(length=128), nullable=False),
    sa.Column('debit_account_id', sa.BigInteger(), nullable=False),
    sa.Column('credit_account_id', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('phase', sa.String(length=8), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('pending_id', sa.String(length=160), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('meta', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('amount > 0', name='ledger_amount_positive'),
    sa.CheckConstraint('debit_account_id <> credit_account_id', name='ledger_distinct_accounts'),
    sa.CheckConstraint("phase IN ('single', 'pending', 'post', 'void')", name='ledger_phase'),
    sa.CheckConstraint("(phase IN ('post', 'void')) = (pending_id IS NOT NULL)", name='ledger_resolves_a_hold'),
    sa.CheckConstraint("(phase = 'pending') = (expires_at IS NOT NULL)", name='ledger_hold_expires'),
    sa.ForeignKeyConstraint(['credit_account_id'], ['ledger_accounts.id'], ),
    sa.ForeignKeyConstraint(['debit_account_id'], ['ledger_accounts.id'], ),
    sa.ForeignKeyConstraint(['pending_id'], ['ledger_transfers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('pending_id'),
    sa.UniqueConstraint('seq')
    )
    op.execute("ALTER SEQUENCE ledger_transfers_seq OWNED BY ledger_transfers.seq")
    op.create_index(op.f('ix_ledger_transfers_batch'), 'ledger_transfers', ['batch'], unique=False)
    op.create_index(op.f('ix_ledger_transfers_credit_account_id'), 'ledger_transfers', ['credit_account_id'],
                    unique=False)
    op.create_index(op.f('ix_ledger_transfers_debit_account_id'), 'ledger_transfers', ['debit_account_id'],
                    unique=False)
    op.create_index('ledger_transfers_holds', 'ledger_transfers', ['expires_at'], unique=False,
                    postgresql_where=sa.text("phase = 'pending'"))
    op.execute(APPLY)
    op.execute(IMMUTABLE)
    op.execute(IMMUTABLE_TRIGGER)

    op.create_table('stripe_customers',
    sa.Column('account_id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('account_id'),
    sa.UniqueConstraint('customer_id')
    )
    op.create_table('stripe_events',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('error', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_stripe_events_processed_at'), 'stripe_events', ['processed_at'], unique=False)
    op.create_table('purchases',
    sa.Column('intent_id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.UUID(), nullable=False),
    sa.Column('pack', sa.String(length=32), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('refunded', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('intent_id')
    )
    op.create_index(op.f('ix_purchases_account_id'), 'purchases', ['account_id'], unique=False)
    op.create_table('stripe_refunds',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('intent_id', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['intent_id'], ['purchases.intent_id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_stripe_refunds_intent_id'), 'stripe_refunds', ['intent_id'], unique=False)
    op.create_table('subscriptions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.UUID(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('plan', sa.String(length=64), nullable=False),
    sa.Column('current_period_end', sa.BigInteger(), nullable=True),
    sa.Column('cancel_at_period_end', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_subscriptions_account_id'), 'subscriptions', ['account_id'], unique=False)
    op.create_table('payout_requests',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.UUID(), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default=sa.text("'requested'"), nullable=False),
    sa.Column('transfer_id', sa.String(length=160), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('transfer_id')
    )
    op.create_index(op.f('ix_payout_requests_account_id'), 'payout_requests', ['account_id'], unique=False)


def downgrade() -> None:
    op.drop_table('payout_requests')
    op.drop_table('subscriptions')
    op.drop_table('stripe_refunds')
    op.drop_table('purchases')
    op.drop_index(op.f('ix_stripe_events_processed_at'), table_name='stripe_events')
    op.drop_table('stripe_events')
    op.drop_table('stripe_customers')
    op.execute("DROP TRIGGER ledger_transfers_immutable ON ledger_transfers")
    op.execute("DROP FUNCTION ledger_transfers_immutable()")
    op.execute("DROP FUNCTION ledger_apply(jsonb, jsonb)")
    op.drop_table('ledger_transfers')
    op.drop_table('ledger_accounts')
