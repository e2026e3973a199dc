-- Receipts at speed (issue 22): a receipt's delay bucket has one home, this function, read by
-- the receipt matching (sql/queries/receipts.sql) and the recount (sql/queries/rollups.sql).
-- Both wrote the formula inline, the matching on a numeric delay (`extract` returns numeric):
-- numeric ln for every receipt was a fifth of the database's time per receipt, and it could put
-- a delay on a bucket's edge elsewhere than the recount's double precision did.
-- Bucket b holds delays from 0.01 s × 1.1^b (store/rollups.py BUCKET_BASE_S, BUCKET_RATIO);
-- 0 below 0.01 s, 200 from about 1.9 days. A plain SQL expression: inlined where it is called.
CREATE FUNCTION receipt_delay_bucket(delay_s double precision) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT least(greatest(floor(ln(greatest(delay_s, 0.01::float8) / 0.01::float8)
                                      / ln(1.1::float8)), 0::float8), 200::float8)::smallint $$;
