"""vsort: Vietnamese name order, exact-diacritic search ranking, search synonyms

Revision ID: 53ccf220f330
Revises: 5e1d0a7c9b24
Create Date: 2026-11-27 19:00:00

products.name_sort_key (COLLATE "C", Vietnamese order as bytes) and products.search_exact (the
searchable words lowercased with their diacritics) are computed by the application; existing rows
are backfilled here in Python with the same functions. search_synonyms starts with a Saigon
bakery's usual words.
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op
from sqlalchemy.dialects import postgresql

from sweetdream.catalog.text import exact_text, name_sort_key, synonym_key

revision = "53ccf220f330"
down_revision = "5e1d0a7c9b24"
branch_labels = None
depends_on = None

# (term, expansion): one direction per row, an equivalence is a row each way.
SYNONYMS = [
    ("socola", "sô cô la"),
    ("socola", "chocolate"),
    ("sô cô la", "socola"),
    ("sô cô la", "chocolate"),
    ("chocolate", "socola"),
    ("chocolate", "sô cô la"),
    ("trà sữa", "milk tea"),
    ("milk tea", "trà sữa"),
    ("cake", "bánh kem"),
    ("bread", "bánh mì"),
    ("cookie", "bánh quy"),
    ("bánh quy", "cookie"),
    ("croissant", "bánh sừng bò"),
    ("bánh sừng bò", "croissant"),
    ("mooncake", "bánh trung thu"),
    ("coffee", "cà phê"),
    ("cafe", "cà phê"),
    ("matcha", "trà xanh"),
    ("trà xanh", "matcha"),
    ("strawberry", "dâu tây"),
    ("durian", "sầu riêng"),
    ("birthday", "sinh nhật"),
]


def upgrade() -> None:
    op.add_column("products", sa.Column("name_sort_key", sa.Text(collation="C"), server_default="", nullable=False))
    op.add_column("products", sa.Column("search_exact", sa.Text(), server_default="", nullable=False))
    op.add_column(
        "products",
        sa.Column(
            "search_exact_vector",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('simple', search_exact)", persisted=True),
            nullable=False,
        ),
    )
    _backfill_products()
    op.create_index("ix_products_name_sort", "products", ["name_sort_key", "id"])

    synonyms = op.create_table(
        "search_synonyms",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("term_key", sa.Text(), nullable=False),
        sa.Column("expansion_key", sa.Text(), nullable=False),
        sa.Column("term", sa.Text(), nullable=False),
        sa.Column("expansion", sa.Text(), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_synonyms")),
        sa.UniqueConstraint("term_key", "expansion_key", name="uq_search_synonyms_term_expansion"),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        synonyms,
        [
            {
                "id": uuid.uuid4(),
                "term_key": synonym_key(term),
                "expansion_key": synonym_key(expansion),
                "term": term,
                "expansion": expansion,
                "created_at": now,
                "updated_at": now,
            }
            for term, expansion in SYNONYMS
        ],
    )


def _backfill_products() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT p.id, p.name, p.description, c.name AS category_name"
            " FROM products p JOIN categories c ON c.id = p.category_id"
        )
    ).all()
    update = sa.text("UPDATE products SET name_sort_key = :key, search_exact = :exact WHERE id = :id")
    for start in range(0, len(rows), 1000):
        bind.execute(
            update,
            [
                {
                    "id": row.id,
                    "key": name_sort_key(row.name),
                    "exact": exact_text(f"{row.name} {row.category_name} {row.description}"),
                }
                for row in rows[start : start + 1000]
            ],
        )


def downgrade() -> None:
    op.drop_table("search_synonyms")
    op.drop_index("ix_products_name_sort", table_name="products")
    for column in ("search_exact_vector", "search_exact", "name_sort_key"):
        op.drop_column("products", column)
