"""write-back loop holds (field_hold), the writer of each field delta, the republish runbook per SKU

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('field_hold',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.String(length=255), nullable=False),
    sa.Column('field', sa.String(length=128), nullable=False),
    sa.Column('flips', sa.Integer(), nullable=False),
    sa.Column('history', sa.JSON(), nullable=False),
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('dead_letter_id', sa.Integer(), nullable=True),
    sa.Column('held_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_by', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_field_hold'))
    )
    with op.batch_alter_table('field_hold', schema=None) as batch_op:
        batch_op.create_index('ix_field_hold_load_id', ['load_id'], unique=False)
        batch_op.create_index('uq_field_hold_open', ['system', 'entity', 'record_key', 'field'], unique=True,
                              sqlite_where=sa.text('released_at IS NULL'),
                              postgresql_where=sa.text('released_at IS NULL'))
    with op.batch_alter_table('field_delta', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_system', sa.String(length=32), nullable=True))
    with op.batch_alter_table('diagnosis', schema=None) as batch_op:
        batch_op.add_column(sa.Column('runbook', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('diagnosis', schema=None) as batch_op:
        batch_op.drop_column('runbook')
    with op.batch_alter_table('field_delta', schema=None) as batch_op:
        batch_op.drop_column('source_system')
    with op.batch_alter_table('field_hold', schema=None) as batch_op:
        batch_op.drop_index('uq_field_hold_open', sqlite_where=sa.text('released_at IS NULL'),
                            postgresql_where=sa.text('released_at IS NULL'))
        batch_op.drop_index('ix_field_hold_load_id')
    op.drop_table('field_hold')
