"""ppv: a price on private chat attachments (pay-per-view)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('message_attachments', sa.Column('price', sa.Integer(), nullable=True))
    op.create_check_constraint('attachment_price', 'message_attachments', 'price IS NULL OR (price > 0 AND private)')


def downgrade() -> None:
    op.drop_constraint('attachment_price', 'message_attachments', type_='check')
    op.drop_column('message_attachments', 'price')
