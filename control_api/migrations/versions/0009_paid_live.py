"""paid live: creators' prices, rooms' ticket prices, show tickets

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('creator_prices',
    sa.Column('account_id', sa.UUID(), nullable=False),
    sa.Column('ticket_price', sa.Integer(), nullable=False),
    sa.Column('call_price', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('ticket_price >= 0 AND call_price >= 0', name='creator_prices_not_negative'),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('room_prices',
    sa.Column('room', sa.String(length=64), nullable=False),
    sa.Column('price', sa.Integer(), nullable=False),
    sa.CheckConstraint('price >= 0', name='room_prices_not_negative'),
    sa.ForeignKeyConstraint(['room'], ['rooms.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('room')
    )
    op.create_table('show_tickets',
    sa.Column('show_id', sa.String(length=64), nullable=False),
    sa.Column('viewer_id', sa.UUID(), nullable=False),
    sa.Column('room', sa.String(length=64), nullable=False),
    sa.Column('price', sa.Integer(), nullable=False),
    sa.Column('spend_id', sa.String(length=120), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('refunded_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['viewer_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('show_id', 'viewer_id')
    )
    op.create_index(op.f('ix_show_tickets_room'), 'show_tickets', ['room'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_show_tickets_room'), table_name='show_tickets')
    op.drop_table('show_tickets')
    op.drop_table('room_prices')
    op.drop_table('creator_prices')
