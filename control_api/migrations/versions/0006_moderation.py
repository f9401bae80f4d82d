"""moderation: report workflow, sanction lifts, append-only audit log, activity for DAU/WAU/MAU

Revision ID: 0006
Revises: 0004 (the lead re-chains it onto 0005, payments, at merge)
Create Date: 2026-12-02 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

CONTEXT_KEY = "coalesce(message_id::text, session_id, room, '')"
"""What tells two contexts of one kind apart (the message, the session or the room)."""
APPEND_ONLY = (
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$""",
    """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
)
"""The database refuses UPDATE, DELETE and TRUNCATE on the audit log (one statement each: asyncpg)."""


def upgrade() -> None:
    # Free-text reasons of earlier reports become comments; their reason is "other".
    op.add_column('reports', sa.Column('context', sa.String(length=16), server_default=sa.text("'profile'"),
                                       nullable=False))
    op.add_column('reports', sa.Column('message_id', sa.BigInteger(), nullable=True))
    op.add_column('reports', sa.Column('comment', sa.Text(), server_default=sa.text("''"), nullable=False))
    op.add_column('reports', sa.Column('claimed_by', sa.UUID(), nullable=True))
    op.add_column('reports', sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('reports', sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('reports', sa.Column('resolution', sa.Text(), server_default=sa.text("''"), nullable=False))
    op.add_column('reports', sa.Column('sanction_id', sa.BigInteger(), nullable=True))
    op.add_column('reports', sa.Column('clip_id', sa.String(length=64), nullable=True))
    op.execute("UPDATE reports SET context = 'live' WHERE session_id IS NOT NULL OR room IS NOT NULL")
    op.execute("UPDATE reports SET comment = left(reason, 1000), reason = 'other' "
               "WHERE reason NOT IN ('nudity_minor', 'harassment', 'spam_scam', 'hate_violence', 'other')")
    op.create_foreign_key('reports_claimed_by_fkey', 'reports', 'accounts', ['claimed_by'], ['id'],
                          ondelete='SET NULL')
    op.create_foreign_key('reports_sanction_id_fkey', 'reports', 'sanctions', ['sanction_id'], ['id'],
                          ondelete='SET NULL')
    op.create_index('reports_status_id', 'reports', ['status', 'id'], unique=False)
    # Of duplicate open reports from before, the newest stays open.
    op.execute(f"""UPDATE reports r SET status = 'dismissed', closed_at = now() WHERE status = 'open' AND EXISTS (
        SELECT 1 FROM reports o WHERE o.status = 'open' AND o.id > r.id AND o.reporter_id = r.reporter_id
        AND o.reported_id = r.reported_id AND o.context = r.context
        AND {CONTEXT_KEY.replace('(', '(o.').replace(', ', ', o.').replace("o.''", "''")}
          = {CONTEXT_KEY.replace('(', '(r.').replace(', ', ', r.').replace("r.''", "''")})""")
    op.create_index('reports_one_open', 'reports', ['reporter_id', 'reported_id', 'context', sa.text(CONTEXT_KEY)],
                    unique=True, postgresql_where=sa.text("status IN ('open', 'in_review')"))

    op.add_column('sanctions', sa.Column('revoked_by', sa.UUID(), nullable=True))
    op.add_column('sanctions', sa.Column('revoke_reason', sa.Text(), server_default=sa.text("''"), nullable=False))
    op.add_column('sanctions', sa.Column('report_id', sa.BigInteger(), nullable=True))
    op.create_foreign_key('sanctions_revoked_by_fkey', 'sanctions', 'accounts', ['revoked_by'], ['id'],
                          ondelete='SET NULL')

    op.create_index('audit_log_action_id', 'audit_log', ['action', 'id'], unique=False)
    op.create_index('audit_log_actor_id', 'audit_log', ['actor_id', 'id'], unique=False)
    for statement in APPEND_ONLY:
        op.execute(statement)

    op.create_table('activity_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('account_id', sa.UUID(), nullable=False),
    sa.Column('kinds', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'account_id')
    )
    op.create_index('activity_days_account', 'activity_days', ['account_id', 'day'], unique=False)
    op.create_table('activity_rollups',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('dau', sa.Integer(), nullable=False),
    sa.Column('wau', sa.Integer(), nullable=False),
    sa.Column('mau', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day')
    )


def downgrade() -> None:
    op.drop_table('activity_rollups')
    op.drop_index('activity_days_account', table_name='activity_days')
    op.drop_table('activity_days')
    op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION audit_log_append_only()")
    op.drop_index('audit_log_actor_id', table_name='audit_log')
    op.drop_index('audit_log_action_id', table_name='audit_log')
    op.drop_constraint('sanctions_revoked_by_fkey', 'sanctions', type_='foreignkey')
    op.drop_column('sanctions', 'report_id')
    op.drop_column('sanctions', 'revoke_reason')
    op.drop_column('sanctions', 'revoked_by')
    op.drop_index('reports_one_open', table_name='reports')
    op.drop_index('reports_status_id', table_name='reports')
    op.drop_constraint('reports_sanction_id_fkey', 'reports', type_='foreignkey')
    op.drop_constraint('reports_claimed_by_fkey', 'reports', type_='foreignkey')
    op.execute("UPDATE reports SET reason = comment WHERE comment <> ''")
    for column in ('clip_id', 'sanction_id', 'resolution', 'closed_at', 'claimed_at', 'claimed_by', 'comment',
                   'message_id', 'context'):
        op.drop_column('reports', column)
