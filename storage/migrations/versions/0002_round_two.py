"""owners, reuse, executors, stages, error details, latency spread, worker names

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as b:
        b.add_column(sa.Column("error_detail", sa.Text(), nullable=True))
        b.add_column(sa.Column("owner", sa.String(length=100), nullable=False,
                               server_default=""))
        b.add_column(sa.Column("executor", sa.String(length=20), nullable=True))
        b.add_column(sa.Column("work_key", sa.String(length=64), nullable=True))
        b.add_column(sa.Column("reused_from", sa.Integer(), nullable=True))
        b.add_column(sa.Column("origin", sa.Text(), nullable=True))
        b.add_column(sa.Column("stage", sa.String(length=80), nullable=True))
        b.add_column(sa.Column("stage_started_at", sa.DateTime(), nullable=True))
        b.add_column(sa.Column("stage_progress", sa.Float(), nullable=True))
        b.create_index("ix_jobs_owner", ["owner"])
        b.create_index("ix_jobs_work_key", ["work_key"])
    with op.batch_alter_table("latencies") as b:
        b.add_column(sa.Column("iqr_ms", sa.Float(), nullable=True))
        b.add_column(sa.Column("runs", sa.Integer(), nullable=True))
    with op.batch_alter_table("workers") as b:
        b.add_column(sa.Column("name", sa.String(length=100), nullable=True))
        b.add_column(sa.Column("executor", sa.String(length=20), nullable=False,
                               server_default="local"))


def downgrade() -> None:
    with op.batch_alter_table("workers") as b:
        b.drop_column("executor")
        b.drop_column("name")
    with op.batch_alter_table("latencies") as b:
        b.drop_column("runs")
        b.drop_column("iqr_ms")
    with op.batch_alter_table("jobs") as b:
        b.drop_index("ix_jobs_work_key")
        b.drop_index("ix_jobs_owner")
        for c in ("stage_progress", "stage_started_at", "stage", "origin", "reused_from", "work_key", "executor",
                  "owner", "error_detail"):
            b.drop_column(c)
