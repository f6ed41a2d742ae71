"""hub schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('request', sa.JSON(), nullable=True),
    sa.Column('response', sa.JSON(), nullable=True),
    sa.Column('changes', sa.JSON(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index('ix_audit_event_key', ['system', 'entity', 'record_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_load_id'), ['load_id'], unique=False)

    op.create_table('dead_letter',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('flow', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.String(length=255), nullable=False),
    sa.Column('source_system', sa.String(length=32), nullable=False),
    sa.Column('target_system', sa.String(length=32), nullable=False),
    sa.Column('reason_kind', sa.String(length=16), nullable=False),
    sa.Column('gate_layer', sa.Integer(), nullable=True),
    sa.Column('expectation', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_by', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letter'))
    )
    with op.batch_alter_table('dead_letter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dead_letter_load_id'), ['load_id'], unique=False)
        batch_op.create_index('ix_dead_letter_status_system', ['status', 'target_system'], unique=False)
        batch_op.create_index('uq_dead_letter_open', ['flow', 'entity', 'record_key', 'target_system', 'reason_kind', 'expectation'], unique=True, sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))

    op.create_table('diagnosis',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('sku', sa.String(length=255), nullable=False),
    sa.Column('broken_link', sa.String(length=64), nullable=True),
    sa.Column('findings', sa.JSON(), nullable=False),
    sa.Column('actions', sa.JSON(), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_diagnosis')),
    sa.UniqueConstraint('load_id', 'sku', name='uq_diagnosis_run_sku')
    )
    with op.batch_alter_table('diagnosis', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_diagnosis_sku'), ['sku'], unique=False)

    op.create_table('dq_kpi',
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('kpi', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('measured_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('load_id', 'kpi', name=op.f('pk_dq_kpi'))
    )
    op.create_table('dq_result',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('gate', sa.String(length=128), nullable=False),
    sa.Column('layer', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('severity', sa.String(length=8), nullable=False),
    sa.Column('rows_checked', sa.Integer(), nullable=False),
    sa.Column('rows_passed', sa.Integer(), nullable=False),
    sa.Column('rows_quarantined', sa.Integer(), nullable=False),
    sa.Column('success', sa.Boolean(), nullable=False),
    sa.Column('failing_expectations', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dq_result')),
    sa.UniqueConstraint('load_id', 'gate', name='uq_dq_result_run_gate')
    )
    op.create_table('drift',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.String(length=255), nullable=False),
    sa.Column('attribute', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('owner_system', sa.String(length=32), nullable=False),
    sa.Column('owner_value', sa.JSON(), nullable=True),
    sa.Column('observed_value', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drift')),
    sa.UniqueConstraint('load_id', 'system', 'entity', 'record_key', 'attribute', name='uq_drift_key')
    )
    op.create_table('field_delta',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.String(length=255), nullable=False),
    sa.Column('field', sa.String(length=128), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rolled_back_by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_field_delta')),
    sa.UniqueConstraint('load_id', 'system', 'entity', 'record_key', 'field', name='uq_field_delta_key')
    )
    with op.batch_alter_table('field_delta', schema=None) as batch_op:
        batch_op.create_index('ix_field_delta_record', ['system', 'entity', 'record_key'], unique=False)

    op.create_table('record_fingerprint',
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.String(length=255), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('system', 'entity', 'record_key', name=op.f('pk_record_fingerprint'))
    )
    op.create_table('sync_run',
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('flow', sa.String(length=64), nullable=False),
    sa.Column('dag_id', sa.String(length=250), nullable=True),
    sa.Column('run_id', sa.String(length=250), nullable=True),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('records_read', sa.Integer(), nullable=False),
    sa.Column('records_delivered', sa.Integer(), nullable=False),
    sa.Column('records_unchanged', sa.Integer(), nullable=False),
    sa.Column('records_dead_lettered', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('load_id', name=op.f('pk_sync_run'))
    )
    with op.batch_alter_table('sync_run', schema=None) as batch_op:
        batch_op.create_index('ix_sync_run_flow_started', ['flow', 'started_at'], unique=False)

    op.create_table('sync_state',
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('cursor_field', sa.String(length=64), nullable=False),
    sa.Column('cursor_value', sa.String(length=64), nullable=True),
    sa.Column('load_id', sa.String(length=64), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('system', 'stream', name=op.f('pk_sync_state'))
    )


def downgrade() -> None:
    op.drop_table('sync_state')
    with op.batch_alter_table('sync_run', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_run_flow_started')

    op.drop_table('sync_run')
    op.drop_table('record_fingerprint')
    with op.batch_alter_table('field_delta', schema=None) as batch_op:
        batch_op.drop_index('ix_field_delta_record')

    op.drop_table('field_delta')
    op.drop_table('drift')
    op.drop_table('dq_result')
    op.drop_table('dq_kpi')
    with op.batch_alter_table('diagnosis', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_diagnosis_sku'))

    op.drop_table('diagnosis')
    with op.batch_alter_table('dead_letter', schema=None) as batch_op:
        batch_op.drop_index('uq_dead_letter_open', sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))
        batch_op.drop_index('ix_dead_letter_status_system')
        batch_op.drop_index(batch_op.f('ix_dead_letter_load_id'))

    op.drop_table('dead_letter')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_load_id'))
        batch_op.drop_index('ix_audit_event_key')

    op.drop_table('audit_event')
