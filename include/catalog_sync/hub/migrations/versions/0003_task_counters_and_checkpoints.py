"""task counters and checkpoints: a task attempt's effects are idempotent per (run, task)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('task_counter',
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('task', sa.String(length=128), nullable=False),
    sa.Column('part', sa.String(length=64), nullable=False),
    sa.Column('hop', sa.String(length=64), nullable=False),
    sa.Column('counter', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('load_id', 'task', 'part', 'hop', 'counter', name=op.f('pk_task_counter'))
    )
    op.create_table('task_checkpoint',
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('task', sa.String(length=128), nullable=False),
    sa.Column('part', sa.String(length=64), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('committed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('load_id', 'task', 'part', name=op.f('pk_task_checkpoint'))
    )
    with op.batch_alter_table('audit_event') as batch:
        batch.add_column(sa.Column('task', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('part', sa.String(length=64), nullable=True))
        batch.create_index('ix_audit_event_task', ['load_id', 'task'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_event') as batch:
        batch.drop_index('ix_audit_event_task')
        batch.drop_column('part')
        batch.drop_column('task')
    op.drop_table('task_checkpoint')
    op.drop_table('task_counter')
