"""ledger_apply_many: many ledger operations in one statement and one commit (group commit)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 08:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

# The ledger's writer (control_api/ledger/writer.py) gathers the operations that arrive while the
# previous batch is being written and sends them here together: one round trip and one commit (one
# WAL flush) for all of them, each with its own outcome.
#
# - Every account the batch moves is locked first, in ascending id order (as ledger_apply does for
#   one operation), so concurrent batches and single operations never deadlock on balances.
# - Each operation runs in its own subtransaction: one that fails (a short wallet, an id used for
#   something else, a hidden creator) rolls back alone and the others commit.
# - An operation whose first transfer id exists already is a replay: nothing moves, and the row
#   answers what the stored operation was (its amount, the creator's part, the payer, the phase).
# - ``creator`` and ``payer`` (optional, per operation): the creator must be a live account with no
#   block between the two, either way; otherwise the outcome is ``hidden`` and nothing moves.
#
# Outcomes: applied, replayed, short (ledger_no_overdraft), conflict (unique_violation), hidden,
# invalid (any other integrity or data error; ``detail`` says which).
APPLY_MANY = """
CREATE FUNCTION ledger_apply_many(ops jsonb)
RETURNS TABLE (i integer, outcome text, amount bigint, creator_amount bigint, payer text, phase text, detail text)
LANGUAGE plpgsql AS $$
DECLARE
  o record;
  d record;
  n integer;
  cname text;
  msg text;
BEGIN
  PERFORM 1 FROM ledger_accounts
   WHERE id IN (SELECT DISTINCT (x->>'account')::bigint
                  FROM jsonb_array_elements(ops) AS e(op), jsonb_array_elements(e.op->'deltas') AS x)
   ORDER BY id FOR UPDATE;
  FOR o IN SELECT e.op, (e.n - 1)::integer AS k FROM jsonb_array_elements(ops) WITH ORDINALITY AS e(op, n) LOOP
    i := o.k;
    amount := NULL; creator_amount := NULL; payer := NULL; phase := NULL; detail := NULL;
    IF o.op->>'creator' IS NOT NULL AND (
         NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = (o.op->>'creator')::uuid AND a.deleted_at IS NULL)
         OR EXISTS (SELECT 1 FROM blocks b
                     WHERE (b.blocker_id = (o.op->>'payer')::uuid AND b.blocked_id = (o.op->>'creator')::uuid)
                        OR (b.blocker_id = (o.op->>'creator')::uuid AND b.blocked_id = (o.op->>'payer')::uuid))) THEN
      outcome := 'hidden';
      RETURN NEXT;
      CONTINUE;
    END IF;
    BEGIN
      INSERT INTO ledger_transfers (id, batch, debit_account_id, credit_account_id, amount, phase, kind,
                                    pending_id, expires_at, meta)
      SELECT t.id, t.batch, t.debit_account_id, t.credit_account_id, t.amount, t.phase, t.kind,
             t.pending_id, t.expires_at, coalesce(t.meta, '{}'::jsonb)
      FROM jsonb_to_recordset(o.op->'transfers') AS t(id text, batch text, debit_account_id bigint,
                                                      credit_account_id bigint, amount bigint, phase text,
                                                      kind text, pending_id text, expires_at timestamptz,
                                                      meta jsonb)
      ON CONFLICT (id) DO NOTHING;
      GET DIAGNOSTICS n = ROW_COUNT;
      IF n = 0 THEN
        outcome := 'replayed';
        SELECT coalesce(sum(t.amount), 0), coalesce(sum(t.amount) FILTER (WHERE t.id LIKE '%#c'), 0),
               min(t.meta->>'payer'), min(t.phase)
          INTO amount, creator_amount, payer, phase
          FROM ledger_transfers t
         WHERE t.batch = o.op->'transfers'->0->>'batch' AND t.phase IN ('single', 'pending');
        RETURN NEXT;
        CONTINUE;
      END IF;
      IF n <> jsonb_array_length(o.op->'transfers') THEN
        RAISE EXCEPTION 'ledger: part of operation % exists already', o.op->'transfers'->0->>'batch'
          USING ERRCODE = 'unique_violation';
      END IF;
      FOR d IN SELECT * FROM jsonb_to_recordset(o.op->'deltas')
               AS x(account bigint, dp bigint, cp bigint, dq bigint, cq bigint) ORDER BY account LOOP
        UPDATE ledger_accounts
           SET debits_posted = debits_posted + d.dp, credits_posted = credits_posted + d.cp,
               debits_pending = debits_pending + d.dq, credits_pending = credits_pending + d.cq
         WHERE id = d.account;
        IF NOT FOUND THEN
          RAISE EXCEPTION 'ledger: no account %', d.account USING ERRCODE = 'foreign_key_violation';
        END IF;
      END LOOP;
      outcome := 'applied';
    EXCEPTION
      WHEN check_violation THEN
        GET STACKED DIAGNOSTICS cname = CONSTRAINT_NAME, msg = MESSAGE_TEXT;
        outcome := CASE WHEN cname = 'ledger_no_overdraft' THEN 'short' ELSE 'invalid' END;
        detail := cname || ': ' || msg;
      WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS cname = CONSTRAINT_NAME, msg = MESSAGE_TEXT;
        outcome := 'conflict';
        detail := msg;
      WHEN integrity_constraint_violation OR data_exception THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        outcome := 'invalid';
        detail := msg;
    END;
    RETURN NEXT;
  END LOOP;
END $$;
"""


def upgrade() -> None:
    op.execute(APPLY_MANY)


def downgrade() -> None:
    op.execute("DROP FUNCTION ledger_apply_many(jsonb)")
