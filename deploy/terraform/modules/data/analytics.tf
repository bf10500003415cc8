# ------------------------------------------------- analytics over the nightly export
#
# The worker writes one shop day a night to s3://<exports>/user-actions/year=YYYY/month=MM/day=DD/
# (gzipped JSON Lines, one event a line, and _manifest.json, which Athena skips: it starts with _).
# Glue describes it once; partition projection computes the partitions from the path, so no crawler
# and no MSCK REPAIR. Athena answers the seven insights over years of history without touching
# the shop's database.

locals {
  export_prefix   = "user-actions/"
  export_location = "s3://${aws_s3_bucket.exports.bucket}/${local.export_prefix}"
  events_table    = "${aws_glue_catalog_database.analytics.name}.${aws_glue_catalog_table.user_actions.name}"
  # The last 30 shop days: the partition filter prunes what Athena reads; the time filter is exact.
  recent = <<-SQL
    concat(year, '-', month, '-', day) >= date_format(current_date - interval '31' day, '%Y-%m-%d')
    AND date(from_iso8601_timestamp(occurred_at) AT TIME ZONE 'Asia/Ho_Chi_Minh') >= current_date - interval '30' day
  SQL
  athena_queries = {
    product-views = {
      description = "1. Product views by product (most viewed) and by viewer, last 30 days"
      query       = <<-SQL
        SELECT json_extract_scalar(properties, '$.product_id') AS product_id,
               max(json_extract_scalar(properties, '$.product_name')) AS product_name,
               count(*) AS views,
               count(DISTINCT coalesce(user_id, visitor_id)) AS viewers
        FROM ${local.events_table}
        WHERE name = 'product_viewed' AND ${local.recent}
        GROUP BY 1 ORDER BY views DESC LIMIT 50;
      SQL
    }
    cart-additions = {
      description = "2. Cart additions by product and size, last 30 days"
      query       = <<-SQL
        SELECT json_extract_scalar(properties, '$.product_id') AS product_id,
               json_extract_scalar(properties, '$.size') AS size,
               count(*) AS additions,
               sum(CAST(json_extract_scalar(properties, '$.quantity') AS bigint)) AS units
        FROM ${local.events_table}
        WHERE name = 'cart_item_added' AND ${local.recent}
        GROUP BY 1, 2 ORDER BY units DESC LIMIT 50;
      SQL
    }
    purchases-revenue = {
      description = "3. Purchases and revenue (VND) per shop day, last 30 days"
      query       = <<-SQL
        SELECT date(from_iso8601_timestamp(occurred_at) AT TIME ZONE 'Asia/Ho_Chi_Minh') AS shop_day,
               count(*) AS orders,
               sum(CAST(json_extract_scalar(properties, '$.total') AS bigint)) AS revenue_vnd
        FROM ${local.events_table}
        WHERE name = 'order_completed' AND ${local.recent}
        GROUP BY 1 ORDER BY 1;
      SQL
    }
    customer-frequency = {
      description = "4. Customer frequency: customers by number of orders, and the repeat rate, last 30 days"
      query       = <<-SQL
        WITH per_customer AS (
          SELECT user_id, count(*) AS orders
          FROM ${local.events_table}
          WHERE name = 'order_completed' AND user_id IS NOT NULL AND ${local.recent}
          GROUP BY user_id
        )
        SELECT orders, count(*) AS customers,
               round(100.0 * sum(IF(orders > 1, count(*), 0)) OVER () / sum(count(*)) OVER (), 1) AS repeat_rate_percent
        FROM per_customer GROUP BY orders ORDER BY orders;
      SQL
    }
    best-sellers = {
      description = "5. Best sellers: units and revenue by product from completed orders, last 30 days"
      query       = <<-SQL
        SELECT json_extract_scalar(item, '$.product_id') AS product_id,
               max(json_extract_scalar(item, '$.product_name')) AS product_name,
               sum(CAST(json_extract_scalar(item, '$.quantity') AS bigint)) AS units,
               sum(CAST(json_extract_scalar(item, '$.quantity') AS bigint) * CAST(json_extract_scalar(item, '$.price') AS bigint)) AS revenue_vnd
        FROM ${local.events_table}
        CROSS JOIN UNNEST(CAST(json_extract(properties, '$.items') AS array(json))) AS lines (item)
        WHERE name = 'order_completed' AND ${local.recent}
        GROUP BY 1 ORDER BY units DESC LIMIT 50;
      SQL
    }
    category-performance = {
      description = "6. Category performance: units and revenue by category from completed orders, last 30 days"
      query       = <<-SQL
        SELECT coalesce(json_extract_scalar(item, '$.category'), '(none)') AS category,
               sum(CAST(json_extract_scalar(item, '$.quantity') AS bigint)) AS units,
               sum(CAST(json_extract_scalar(item, '$.quantity') AS bigint) * CAST(json_extract_scalar(item, '$.price') AS bigint)) AS revenue_vnd
        FROM ${local.events_table}
        CROSS JOIN UNNEST(CAST(json_extract(properties, '$.items') AS array(json))) AS lines (item)
        WHERE name = 'order_completed' AND ${local.recent}
        GROUP BY 1 ORDER BY revenue_vnd DESC;
      SQL
    }
    funnel = {
      description = "7. The funnel view -> cart -> checkout -> order (distinct shoppers) with conversion, last 30 days"
      query       = <<-SQL
        WITH steps AS (
          SELECT
            count(DISTINCT IF(name = 'product_viewed', coalesce(user_id, visitor_id))) AS viewed,
            count(DISTINCT IF(name = 'cart_item_added', coalesce(user_id, visitor_id))) AS added,
            count(DISTINCT IF(name = 'checkout_started', coalesce(user_id, visitor_id))) AS checked_out,
            count(DISTINCT IF(name = 'order_completed', coalesce(user_id, visitor_id))) AS ordered
          FROM ${local.events_table}
          WHERE ${local.recent}
        )
        SELECT viewed, added, checked_out, ordered,
               round(100.0 * added / nullif(viewed, 0), 1) AS view_to_cart_percent,
               round(100.0 * checked_out / nullif(added, 0), 1) AS cart_to_checkout_percent,
               round(100.0 * ordered / nullif(checked_out, 0), 1) AS checkout_to_order_percent
        FROM steps;
      SQL
    }
  }
}

resource "aws_glue_catalog_database" "analytics" {
  name        = replace("${var.name}_analytics", "-", "_")
  description = "SweetDream shopper events, as exported each night"
}

resource "aws_glue_catalog_table" "user_actions" {
  name          = "user_actions"
  database_name = aws_glue_catalog_database.analytics.name
  table_type    = "EXTERNAL_TABLE"
  description   = "One row per shopper event (schema_version 1 of the nightly export)"

  parameters = {
    EXTERNAL                    = "TRUE"
    classification              = "json"
    compressionType             = "gzip"
    "projection.enabled"        = "true"
    "projection.year.type"      = "integer"
    "projection.year.range"     = "2024,2100"
    "projection.month.type"     = "integer"
    "projection.month.range"    = "1,12"
    "projection.month.digits"   = "2"
    "projection.day.type"       = "integer"
    "projection.day.range"      = "1,31"
    "projection.day.digits"     = "2"
    "storage.location.template" = "${local.export_location}year=$${year}/month=$${month}/day=$${day}/"
    "serialization.null.format" = ""
    "ignore.malformed.json"     = "false"
    "has_encrypted_data"        = "true"
  }

  partition_keys {
    name = "year"
    type = "string"
  }
  partition_keys {
    name = "month"
    type = "string"
  }
  partition_keys {
    name = "day"
    type = "string"
  }

  storage_descriptor {
    location      = local.export_location
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {
      name                  = "json"
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
      # occurred_at stays text (ISO 8601 UTC, read with from_iso8601_timestamp); properties stays the
      # event's JSON object as text (read with json_extract_scalar), whatever each event carries.
      parameters = { "case.insensitive" = "false" }
    }

    columns {
      name = "id"
      type = "bigint"
    }
    columns {
      name = "event_id"
      type = "string"
    }
    columns {
      name = "occurred_at"
      type = "string"
    }
    columns {
      name = "name"
      type = "string"
    }
    columns {
      name = "user_id"
      type = "string"
    }
    columns {
      name = "visitor_id"
      type = "string"
    }
    columns {
      name = "properties"
      type = "string"
    }
  }
}

resource "aws_athena_workgroup" "analytics" {
  name          = "${var.name}-analytics"
  description   = "The seven insights over the nightly export"
  force_destroy = false

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = 10737418240 # 10 GiB: a runaway query stops, not the bill

    result_configuration {
      output_location = "s3://${aws_s3_bucket.exports.bucket}/athena-results/"
      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }
  tags = var.tags
}

resource "aws_athena_named_query" "insight" {
  for_each    = local.athena_queries
  name        = each.key
  description = each.value.description
  workgroup   = aws_athena_workgroup.analytics.id
  database    = aws_glue_catalog_database.analytics.name
  query       = each.value.query
}
