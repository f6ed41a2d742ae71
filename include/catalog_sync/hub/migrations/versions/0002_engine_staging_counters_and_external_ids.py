"""engine staging counters and external ids

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('external_id',
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.String(length=255), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('extra', sa.JSON(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('system', 'entity', 'record_key', name=op.f('pk_external_id'))
    )
    op.create_table('run_counter',
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('hop', sa.String(length=64), nullable=False),
    sa.Column('counter', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('load_id', 'hop', 'counter', name=op.f('pk_run_counter'))
    )
    op.create_table('staged_record',
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('stage', sa.String(length=64), nullable=False),
    sa.Column('record_key', sa.String(length=255), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('load_id', 'stage', 'record_key', name=op.f('pk_staged_record'))
    )


def downgrade() -> None:
    op.drop_table('staged_record')
    op.drop_table('run_counter')
    op.drop_table('external_id')
