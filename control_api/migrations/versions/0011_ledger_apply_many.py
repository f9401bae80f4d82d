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
# previous batch is being written and sends them here together, as columns (one array per field;
# ``t_k``/``d_k`` name each transfer's and delta's operation, 0-based, in order): one round trip
# and one commit (one WAL flush) for all of them, each with its own outcome. TigerBeetle's way:
# decide every operation against balances held in memory, then write the batch in bulk.
#
# 1. Every account the batch moves is locked, in ascending id order (as ledger_apply does for one
#    operation), and its balance read: concurrent batches and single operations never deadlock, and
#    two operations that share an id (hence a wallet) never run at once.
# 2. What already exists is read in one query: transfer ids, holds and their resolutions; and which
#    creators are hidden from their payer (``o_creator`` set: a deleted account, a block either way).
# 3. Operations are decided in order against the running balances: ``replayed`` (all its transfer
#    ids exist: nothing moves; the row says what the stored operation was), ``conflict`` (some exist,
#    or the hold it resolves is resolved), ``hidden``, ``short`` (a no_overdraft account would be
#    overdrawn), ``invalid`` (no such account or hold, a column below zero), ``retry`` (it shares an
#    id with an earlier operation of this batch: the writer sends it again with the next batch), or
#    ``applied``.
# 4. The applied operations' transfers are inserted with one statement, and each moved account is
#    updated once. The table's constraints still judge those statements (no overdraft, no negative
#    column, unique ids and resolutions, amounts, phases): a mistake here aborts the whole batch,
#    which the writer then writes one operation at a time, rather than breaking the books.
APPLY_MANY = """
CREATE FUNCTION ledger_apply_many(
  t_k integer[], t_id text[], t_batch text[], t_debit bigint[], t_credit bigint[], t_amount bigint[],
  t_phase text[], t_kind text[], t_pending text[], t_expires timestamptz[], t_meta text[],
  d_k integer[], d_acc bigint[], d_dp bigint[], d_cp bigint[], d_dq bigint[], d_cq bigint[],
  o_payer uuid[], o_creator uuid[])
RETURNS TABLE (i integer, outcome text, amount bigint, creator_amount bigint, payer text, phase text, detail text)
LANGUAGE plpgsql AS $$
DECLARE
  ids bigint[]; nod boolean[]; dp bigint[]; cp bigint[]; dq bigint[]; cq bigint[]; moved boolean[];
  existing text[]; holds text[] := '{}'; resolved text[] := '{}';
  hidden_ks integer[] := '{}'; retry_ks integer[] := '{}'; rows_in integer[] := '{}';
  nops integer := coalesce(array_length(o_payer, 1), 0);
  nt integer := coalesce(array_length(t_k, 1), 0);
  nd integer := coalesce(array_length(d_k, 1), 0);
  pendings text[] := array_remove(t_pending, NULL);
  td integer := 1; tt integer := 1; de integer; te integer;
  j integer; found_n integer; own_n integer; bad text;
  ndp bigint; ncp bigint; ndq bigint; ncq bigint;
BEGIN
  SELECT coalesce(array_agg(l.id), '{}'), array_agg(l.no_overdraft), array_agg(l.debits_posted),
         array_agg(l.credits_posted), array_agg(l.debits_pending), array_agg(l.credits_pending)
    INTO ids, nod, dp, cp, dq, cq
    FROM (SELECT x.id, x.no_overdraft, x.debits_posted, x.credits_posted, x.debits_pending, x.credits_pending
            FROM ledger_accounts x WHERE x.id = ANY(d_acc) ORDER BY x.id FOR UPDATE) AS l;
  moved := array_fill(false, ARRAY[coalesce(array_length(ids, 1), 0)]);

  IF cardinality(pendings) = 0 THEN
    SELECT coalesce(array_agg(x.id), '{}') INTO existing FROM ledger_transfers x WHERE x.id = ANY(t_id);
  ELSE
    SELECT coalesce(array_agg(x.id) FILTER (WHERE x.id = ANY(t_id)), '{}'),
           coalesce(array_agg(x.id) FILTER (WHERE x.id = ANY(pendings) AND x.phase = 'pending'), '{}'),
           coalesce(array_agg(x.pending_id) FILTER (WHERE x.pending_id = ANY(pendings)), '{}')
      INTO existing, holds, resolved
      FROM ledger_transfers x
     WHERE x.id = ANY(t_id) OR x.id = ANY(pendings) OR x.pending_id = ANY(pendings);
  END IF;
  IF cardinality(array_remove(o_creator, NULL)) > 0 THEN
    SELECT coalesce(array_agg(q.n - 1), '{}') INTO hidden_ks
      FROM unnest(o_payer, o_creator) WITH ORDINALITY AS q(payer_id, creator_id, n)
     WHERE q.creator_id IS NOT NULL AND (
           NOT EXISTS (SELECT 1 FROM accounts c WHERE c.id = q.creator_id AND c.deleted_at IS NULL)
           OR EXISTS (SELECT 1 FROM blocks b
                       WHERE (b.blocker_id = q.payer_id AND b.blocked_id = q.creator_id)
                          OR (b.blocker_id = q.creator_id AND b.blocked_id = q.payer_id)));
  END IF;
  IF nops > 1 THEN
    SELECT coalesce(array_agg(DISTINCT s.k), '{}') INTO retry_ks
      FROM (SELECT u.k, min(u.k) OVER (PARTITION BY u.key) AS first_k
              FROM (SELECT t_k[p] AS k, t_id[p] AS key FROM generate_subscripts(t_k, 1) AS p
                    UNION ALL
                    SELECT t_k[p], '>' || t_pending[p] FROM generate_subscripts(t_k, 1) AS p
                     WHERE t_pending[p] IS NOT NULL) AS u) AS s
     WHERE s.k > s.first_k;
  END IF;

  FOR k IN 0 .. nops - 1 LOOP
    i := k; outcome := NULL; amount := NULL; creator_amount := NULL; payer := NULL; phase := NULL; detail := NULL;
    -- this op's transfers are t_*[tt .. te - 1], its deltas d_*[td .. de - 1]
    te := tt;
    WHILE te <= nt AND t_k[te] = k LOOP te := te + 1; END LOOP;
    de := td;
    WHILE de <= nd AND d_k[de] = k LOOP de := de + 1; END LOOP;
    own_n := te - tt;
    IF k = ANY(hidden_ks) THEN
      outcome := 'hidden';
    ELSIF k = ANY(retry_ks) THEN
      outcome := 'retry';
    ELSIF own_n = 0 THEN
      outcome := 'invalid'; detail := 'an operation without transfers';
    ELSE
      found_n := 0; bad := NULL;
      FOR p IN tt .. te - 1 LOOP
        IF t_id[p] = ANY(existing) THEN found_n := found_n + 1; END IF;
        IF t_pending[p] IS NOT NULL THEN
          IF t_pending[p] = ANY(resolved) THEN
            bad := coalesce(bad, 'conflict:the hold ' || t_pending[p] || ' is resolved already');
          ELSIF NOT t_pending[p] = ANY(holds) THEN
            bad := coalesce(bad, 'invalid:no hold ' || t_pending[p]);
          END IF;
        END IF;
      END LOOP;
      IF found_n = own_n THEN
        outcome := 'replayed';
        SELECT coalesce(sum(x.amount), 0), coalesce(sum(x.amount) FILTER (WHERE x.id LIKE '%#c'), 0),
               min(x.meta->>'payer'), min(x.phase)
          INTO amount, creator_amount, payer, phase
          FROM ledger_transfers x WHERE x.batch = t_batch[tt] AND x.phase IN ('single', 'pending');
      ELSIF found_n > 0 THEN
        outcome := 'conflict'; detail := 'part of the operation exists already';
      ELSIF bad IS NOT NULL THEN
        outcome := split_part(bad, ':', 1); detail := substr(bad, length(outcome) + 2);
      ELSE
        FOR p IN td .. de - 1 LOOP  -- first judge every account the op moves
          j := array_position(ids, d_acc[p]);
          IF j IS NULL THEN
            outcome := 'invalid'; detail := 'no account ' || d_acc[p]; EXIT;
          END IF;
          ndp := dp[j] + d_dp[p]; ncp := cp[j] + d_cp[p]; ndq := dq[j] + d_dq[p]; ncq := cq[j] + d_cq[p];
          IF ndp < 0 OR ncp < 0 OR ndq < 0 OR ncq < 0 THEN
            outcome := 'invalid'; detail := 'ledger_balances_not_negative: account ' || d_acc[p]; EXIT;
          END IF;
          IF nod[j] AND ndp + ndq > ncp THEN
            outcome := 'short'; detail := 'ledger_no_overdraft: account ' || d_acc[p]; EXIT;
          END IF;
        END LOOP;
        IF outcome IS NULL THEN  -- then move them
          FOR p IN td .. de - 1 LOOP
            j := array_position(ids, d_acc[p]);
            dp[j] := dp[j] + d_dp[p]; cp[j] := cp[j] + d_cp[p]; dq[j] := dq[j] + d_dq[p]; cq[j] := cq[j] + d_cq[p];
            moved[j] := true;
          END LOOP;
          FOR p IN tt .. te - 1 LOOP
            rows_in := rows_in || p;
          END LOOP;
          outcome := 'applied';
        END IF;
      END IF;
    END IF;
    tt := te; td := de;
    RETURN NEXT;
  END LOOP;

  INSERT INTO ledger_transfers (id, batch, debit_account_id, credit_account_id, amount, phase, kind,
                                pending_id, expires_at, meta)
  SELECT t_id[p], t_batch[p], t_debit[p], t_credit[p], t_amount[p], t_phase[p], t_kind[p], t_pending[p],
         t_expires[p], coalesce(t_meta[p]::jsonb, '{}'::jsonb)
    FROM unnest(rows_in) AS p;
  UPDATE ledger_accounts l
     SET debits_posted = v.dp, credits_posted = v.cp, debits_pending = v.dq, credits_pending = v.cq
    FROM unnest(ids, dp, cp, dq, cq, moved) AS v(id, dp, cp, dq, cq, moved)
   WHERE l.id = v.id AND v.moved;
END $$;
"""

SIGNATURE = ("ledger_apply_many(integer[], text[], text[], bigint[], bigint[], bigint[], text[], text[], text[], "
             "timestamptz[], text[], integer[], bigint[], bigint[], bigint[], bigint[], bigint[], uuid[], uuid[])")


def upgrade() -> None:
    op.execute(APPLY_MANY)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
