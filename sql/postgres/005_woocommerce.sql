-- WooCommerce as an inbound provider (issue 27): see sql/014_woocommerce.sql.
ALTER TABLE sources DROP CONSTRAINT sources_provider_check;
ALTER TABLE sources ADD CONSTRAINT sources_provider_check
    CHECK (provider IN ('stripe', 'github', 'shopify', 'slack', 'standard', 'postmark', 'circle', 'hmac', 'woocommerce'));
