"""freeze windows: changes held during a declared freeze until a person releases them (held_change)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('held_change',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.String(length=255), nullable=False),
    sa.Column('change', sa.JSON(), nullable=False),
    sa.Column('window', sa.String(length=128), nullable=False),
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('held_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_by', sa.String(length=128), nullable=True),
    sa.Column('release_load_id', sa.String(length=64), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_held_change'))
    )
    with op.batch_alter_table('held_change', schema=None) as batch_op:
        # one held row per record and kind: a later hold of the same record replaces its change
        batch_op.create_index('uq_held_change_held', ['kind', 'system', 'entity', 'record_key'], unique=True,
                              sqlite_where=sa.text("status = 'held'"), postgresql_where=sa.text("status = 'held'"))
        batch_op.create_index('ix_held_change_status', ['status', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('held_change', schema=None) as batch_op:
        batch_op.drop_index('ix_held_change_status')
        batch_op.drop_index('uq_held_change_held', sqlite_where=sa.text("status = 'held'"),
                            postgresql_where=sa.text("status = 'held'"))
    op.drop_table('held_change')
