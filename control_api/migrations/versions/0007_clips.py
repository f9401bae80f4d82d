"""clips: evidence clips saved by nodes

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-02 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('clips',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('room', sa.String(length=200), nullable=False),
    sa.Column('moderator_id', sa.UUID(), nullable=True),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('duration_ms', sa.BigInteger(), nullable=False),
    sa.Column('tracks', sa.Integer(), nullable=False),
    sa.Column('storage_name', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['moderator_id'], ['accounts.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_clips_room'), 'clips', ['room'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_clips_room'), table_name='clips')
    op.drop_table('clips')
