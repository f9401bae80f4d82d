"""activity_last, activity_counts: today's DAU/WAU/MAU kept up to date by the tracker

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# Each user's latest active day, and how many users have each day as their latest (in shards, so the
# first events of the day do not all wait on one row): a window ending today holds exactly the users
# whose latest day falls in it (control_api/stats.py). Filled from the raw rows already there.


def upgrade() -> None:
    op.create_table('activity_last',
    sa.Column('account_id', sa.UUID(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('activity_counts',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('users', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'shard')
    )
    op.execute("INSERT INTO activity_last (account_id, day) "
               "SELECT account_id, max(day) FROM activity_days GROUP BY account_id")
    op.execute("INSERT INTO activity_counts (day, shard, users) "
               "SELECT day, 0, count(*) FROM activity_last GROUP BY day")


def downgrade() -> None:
    op.drop_table('activity_counts')
    op.drop_table('activity_last')
