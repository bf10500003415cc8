"""scale: each product's from-price and in-stock time kept on its row, so a million products filter and sort by index

Revision ID: 5ca1ab1e0f00
Revises: 3c1a55e5d7b0
Create Date: 2026-11-28 04:00:00

`products.from_price` is the lowest price of its sizes (a size's override, else the product's price);
`products.in_stock_until` is until when something of it can be bought: the latest start among its
sizes with stock ('infinity' for goods, a class session's start for a seat), NULL when nothing is
left. "In stock" is `in_stock_until > now()`, the same rule as `catalog/stock.not_started_condition`.
`products.sizes_in_stock` are the labels of its goods (sizes without a start) with stock, and
`products.seats_in_stock` says whether it has class seats with stock: the size filter reads both from
the index and looks at a session's start only for a product that has seats.

The database keeps them, by triggers: every writer of variants and product prices (the catalog's
services, the stock UPDATE of a checkout, the seeds, a bulk SQL load) changes them in the same
transaction, so they can never disagree with the sizes. A checkout's stock UPDATE fires the row
trigger only when a size sells out or comes back (its WHEN clause), so a sale costs no extra write.
"""

from alembic import op

revision = "5ca1ab1e0f00"
down_revision = "3c1a55e5d7b0"
branch_labels = None
depends_on = None

REFRESH = """
CREATE FUNCTION catalog_refresh_product_summary(ids uuid[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- Lock the rows first, then read the sizes in a statement of its own: its snapshot sees every
    -- change committed while it waited, so of two checkouts selling out two sizes of one product
    -- the second to commit writes what both did (READ COMMITTED), never what it alone saw.
    -- NO KEY UPDATE, the lock the UPDATE takes anyway: order lines' foreign keys (KEY SHARE)
    -- don't conflict with it.
    PERFORM 1 FROM products WHERE id = ANY(ids) ORDER BY id FOR NO KEY UPDATE;
    UPDATE products p
    SET from_price = s.from_price, in_stock_until = s.in_stock_until, sizes_in_stock = s.sizes_in_stock,
        seats_in_stock = s.seats_in_stock
    FROM (
        SELECT pr.id,
               (SELECT min(coalesce(v.price_override, pr.price)) FROM variants v WHERE v.product_id = pr.id)
                   AS from_price,
               (SELECT max(coalesce(v.starts_at, 'infinity')) FROM variants v
                 WHERE v.product_id = pr.id AND v.stock > 0) AS in_stock_until,
               ARRAY(SELECT DISTINCT v.label FROM variants v
                      WHERE v.product_id = pr.id AND v.stock > 0 AND v.starts_at IS NULL
                      ORDER BY v.label)::text[] AS sizes_in_stock,
               EXISTS(SELECT FROM variants v WHERE v.product_id = pr.id AND v.stock > 0 AND v.starts_at IS NOT NULL)
                   AS seats_in_stock
        FROM products pr WHERE pr.id = ANY(ids)
    ) s
    WHERE p.id = s.id
      AND (p.from_price, p.in_stock_until, p.sizes_in_stock, p.seats_in_stock)
          IS DISTINCT FROM (s.from_price, s.in_stock_until, s.sizes_in_stock, s.seats_in_stock);
END $$
"""

VARIANTS_ADDED = """
CREATE FUNCTION catalog_variants_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM catalog_refresh_product_summary(ARRAY(SELECT DISTINCT product_id FROM changed_variants));
    RETURN NULL;
END $$
"""

VARIANT_CHANGED = """
CREATE FUNCTION catalog_variant_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM catalog_refresh_product_summary(ARRAY[OLD.product_id, NEW.product_id]);
    RETURN NULL;
END $$
"""

PRODUCT_PRICE = """
CREATE FUNCTION catalog_product_price_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.from_price := (SELECT min(coalesce(v.price_override, NEW.price)) FROM variants v WHERE v.product_id = NEW.id);
    RETURN NEW;
END $$
"""


def upgrade() -> None:
    op.execute("ALTER TABLE products ADD COLUMN from_price integer")
    op.execute("ALTER TABLE products ADD COLUMN in_stock_until timestamptz")
    op.execute("ALTER TABLE products ADD COLUMN sizes_in_stock text[] NOT NULL DEFAULT '{}'")
    op.execute("ALTER TABLE products ADD COLUMN seats_in_stock boolean NOT NULL DEFAULT false")
    op.execute(REFRESH)
    op.execute(VARIANTS_ADDED)
    op.execute(VARIANT_CHANGED)
    op.execute(PRODUCT_PRICE)
    # Statement triggers with the rows as a table: a bulk load refreshes each product once.
    op.execute(
        "CREATE TRIGGER variants_added AFTER INSERT ON variants REFERENCING NEW TABLE AS changed_variants "
        "FOR EACH STATEMENT EXECUTE FUNCTION catalog_variants_added()"
    )
    op.execute(
        "CREATE TRIGGER variants_removed AFTER DELETE ON variants REFERENCING OLD TABLE AS changed_variants "
        "FOR EACH STATEMENT EXECUTE FUNCTION catalog_variants_added()"
    )
    # Deferred to the commit: a checkout takes every size's row lock (in id order) before any
    # product's, so two checkouts can't each hold what the other waits for.
    op.execute(
        "CREATE CONSTRAINT TRIGGER variant_changed AFTER UPDATE ON variants DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW "
        "WHEN ((OLD.stock > 0) IS DISTINCT FROM (NEW.stock > 0) "
        "OR OLD.price_override IS DISTINCT FROM NEW.price_override OR OLD.label IS DISTINCT FROM NEW.label "
        "OR OLD.starts_at IS DISTINCT FROM NEW.starts_at OR OLD.product_id IS DISTINCT FROM NEW.product_id) "
        "EXECUTE FUNCTION catalog_variant_changed()"
    )
    op.execute(
        "CREATE TRIGGER product_price_changed BEFORE UPDATE OF price ON products FOR EACH ROW "
        "WHEN (OLD.price IS DISTINCT FROM NEW.price) EXECUTE FUNCTION catalog_product_price_changed()"
    )
    op.execute("SELECT catalog_refresh_product_summary(ARRAY(SELECT id FROM products))")
    # Price order (all, or within a category) and a category's newest: index ranges, not sorts; the
    # stock filters are checked on the index entries themselves (INCLUDE), before any row is read.
    stock = "INCLUDE (in_stock_until, sizes_in_stock, seats_in_stock)"
    op.execute(f"CREATE INDEX ix_products_active_price ON products (is_active, from_price, id) {stock}")
    op.execute(f"CREATE INDEX ix_products_category_price ON products (category_id, is_active, from_price, id) {stock}")
    op.execute(f"CREATE INDEX ix_products_category_created ON products (category_id, is_active, created_at) {stock}")
    op.execute("DROP INDEX ix_products_category")
    # The size filter's choices: the distinct labels in a few index probes (see size_labels).
    op.execute("CREATE INDEX ix_variants_label_position ON variants (label, position)")
    op.execute("DROP INDEX ix_variants_label")
    # Every product row was rewritten: fresh statistics before the planner reads the new columns.
    op.execute("ANALYZE products")


def downgrade() -> None:
    op.execute("CREATE INDEX ix_variants_label ON variants (label)")
    op.execute("DROP INDEX ix_variants_label_position")
    op.execute("CREATE INDEX ix_products_category ON products (category_id)")
    op.execute("DROP INDEX ix_products_category_created")
    op.execute("DROP INDEX ix_products_category_price")
    op.execute("DROP INDEX ix_products_active_price")
    op.execute("DROP TRIGGER product_price_changed ON products")
    op.execute("DROP TRIGGER variant_changed ON variants")
    op.execute("DROP TRIGGER variants_removed ON variants")
    op.execute("DROP TRIGGER variants_added ON variants")
    op.execute("DROP FUNCTION catalog_product_price_changed()")
    op.execute("DROP FUNCTION catalog_variant_changed()")
    op.execute("DROP FUNCTION catalog_variants_added()")
    op.execute("DROP FUNCTION catalog_refresh_product_summary(uuid[])")
    op.execute("ALTER TABLE products DROP COLUMN seats_in_stock")
    op.execute("ALTER TABLE products DROP COLUMN sizes_in_stock")
    op.execute("ALTER TABLE products DROP COLUMN in_stock_until")
    op.execute("ALTER TABLE products DROP COLUMN from_price")
