"""alert state (when each alert was last sent, repeats suppressed)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_state',
    sa.Column('alert_key', sa.String(length=128), nullable=False),
    sa.Column('last_sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_subject', sa.Text(), nullable=False),
    sa.Column('last_facts', sa.JSON(), nullable=True),
    sa.Column('sent', sa.Integer(), nullable=False),
    sa.Column('suppressed', sa.Integer(), nullable=False),
    sa.Column('last_suppressed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('alert_key', name=op.f('pk_alert_state'))
    )


def downgrade() -> None:
    op.drop_table('alert_state')
