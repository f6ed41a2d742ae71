"""reference data the gates use: applied tables (reference_value) and refresh proposals (reference_proposal)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

#: The units the gates accepted before this migration: the units table of governance/reference_data.yaml
#: that the layer-0 gate's value sets also held (quality/reference.py). Frozen here: a later edit of either
#: file must not change what a fresh hub starts from.
SEED_UNITS: list[tuple[str, dict[str, object]]] = [
    ('EA', {'kind': 'count', 'aliases': ['each', 'ea', 'pc', 'pcs', 'piece', 'pieces', 'unit', 'units', 'ct', 'count']}),
    ('PR', {'kind': 'count', 'aliases': ['pair', 'pairs', 'pr', 'prs']}),
    ('PK', {'kind': 'count', 'aliases': ['pack', 'packs', 'pk', 'pkg', 'package']}),
    ('BX', {'kind': 'count', 'aliases': ['box', 'boxes', 'bx']}),
    ('CS', {'kind': 'count', 'aliases': ['case', 'cases', 'cs']}),
    ('lbs', {'kind': 'weight', 'aliases': ['lb', 'lbs', 'pound', 'pounds']}),
    ('oz', {'kind': 'weight', 'aliases': ['oz', 'ounce', 'ounces']}),
    ('kg', {'kind': 'weight', 'aliases': ['kg', 'kgs', 'kilo', 'kilos', 'kilogram', 'kilograms']}),
    ('g', {'kind': 'weight', 'aliases': ['g', 'gr', 'gram', 'grams']}),
    ('in', {'kind': 'length', 'aliases': ['in', 'inch', 'inches']}),
    ('cm', {'kind': 'length', 'aliases': ['cm', 'centimeter', 'centimeters', 'centimetre', 'centimetres']}),
    ('mm', {'kind': 'length', 'aliases': ['mm', 'millimeter', 'millimeters', 'millimetre', 'millimetres']}),
]
#: The countries table of governance/reference_data.yaml (all of it was accepted).
SEED_COUNTRIES: list[tuple[str, dict[str, object]]] = [
    ('US', {'alpha3': 'USA', 'names': ['United States', 'United States of America', 'America', 'U.S.', 'U.S.A.']}),
    ('CA', {'alpha3': 'CAN', 'names': ['Canada']}),
    ('MX', {'alpha3': 'MEX', 'names': ['Mexico']}),
    ('BR', {'alpha3': 'BRA', 'names': ['Brazil']}),
    ('GB', {'alpha3': 'GBR', 'names': ['United Kingdom', 'Great Britain', 'UK', 'U.K.', 'England']}),
    ('IE', {'alpha3': 'IRL', 'names': ['Ireland']}),
    ('DE', {'alpha3': 'DEU', 'names': ['Germany', 'Deutschland']}),
    ('FR', {'alpha3': 'FRA', 'names': ['France']}),
    ('IT', {'alpha3': 'ITA', 'names': ['Italy', 'Italia']}),
    ('ES', {'alpha3': 'ESP', 'names': ['Spain', 'Espana']}),
    ('PT', {'alpha3': 'PRT', 'names': ['Portugal']}),
    ('NL', {'alpha3': 'NLD', 'names': ['Netherlands', 'The Netherlands', 'Holland']}),
    ('BE', {'alpha3': 'BEL', 'names': ['Belgium']}),
    ('PL', {'alpha3': 'POL', 'names': ['Poland']}),
    ('TR', {'alpha3': 'TUR', 'names': ['Turkey', 'Turkiye']}),
    ('CN', {'alpha3': 'CHN', 'names': ['China', "China, People's Republic of", 'PRC', "People's Republic of China"]}),
    ('TW', {'alpha3': 'TWN', 'names': ['Taiwan']}),
    ('HK', {'alpha3': 'HKG', 'names': ['Hong Kong']}),
    ('JP', {'alpha3': 'JPN', 'names': ['Japan']}),
    ('KR', {'alpha3': 'KOR', 'names': ['South Korea', 'Korea', 'Korea, Republic of', 'Republic of Korea']}),
    ('VN', {'alpha3': 'VNM', 'names': ['Vietnam', 'Viet Nam']}),
    ('TH', {'alpha3': 'THA', 'names': ['Thailand']}),
    ('KH', {'alpha3': 'KHM', 'names': ['Cambodia']}),
    ('ID', {'alpha3': 'IDN', 'names': ['Indonesia']}),
    ('MY', {'alpha3': 'MYS', 'names': ['Malaysia']}),
    ('PH', {'alpha3': 'PHL', 'names': ['Philippines']}),
    ('IN', {'alpha3': 'IND', 'names': ['India']}),
    ('BD', {'alpha3': 'BGD', 'names': ['Bangladesh']}),
    ('PK', {'alpha3': 'PAK', 'names': ['Pakistan']}),
    ('LK', {'alpha3': 'LKA', 'names': ['Sri Lanka']}),
]


def upgrade() -> None:
    reference_value = op.create_table('reference_value',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('table_name', sa.String(length=32), nullable=False),
    sa.Column('code', sa.String(length=128), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('owner_system', sa.String(length=32), nullable=False),
    sa.Column('proposal_id', sa.Integer(), nullable=True),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reference_value')),
    sa.UniqueConstraint('table_name', 'code', name='uq_reference_value_table_code')
    )
    op.create_table('reference_proposal',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('load_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('diff', sa.JSON(), nullable=False),
    sa.Column('proposed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=128), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reference_proposal'))
    )
    with op.batch_alter_table('reference_proposal', schema=None) as batch_op:
        batch_op.create_index('ix_reference_proposal_status', ['status', 'id'], unique=False)
    # Categories are not seeded: the gate judged categories against the PIM's own tree as read in the run, which
    # it keeps doing until a first refresh of the category table is approved (catalog_sync.refdata).
    now = datetime.now(UTC)
    op.bulk_insert(reference_value, [
        {'table_name': 'unit', 'code': code, 'attributes': attrs, 'owner_system': 'erp', 'proposal_id': None,
         'applied_at': now} for code, attrs in SEED_UNITS
    ] + [
        {'table_name': 'country', 'code': code, 'attributes': attrs, 'owner_system': 'erp', 'proposal_id': None,
         'applied_at': now} for code, attrs in SEED_COUNTRIES
    ])


def downgrade() -> None:
    with op.batch_alter_table('reference_proposal', schema=None) as batch_op:
        batch_op.drop_index('ix_reference_proposal_status')
    op.drop_table('reference_proposal')
    op.drop_table('reference_value')
