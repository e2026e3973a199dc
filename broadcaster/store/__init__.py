"""The store: everything that talks to PostgreSQL, with the SQL itself kept in `sql/`.

- `database`: where the database is (`DATABASE_URL`, or a throwaway cluster when none is set),
  connections and pools whose failures become `StoreError`s that say what to check.
- `embedded`: that throwaway cluster (initdb + pg_ctl on a unix socket in a private directory).
- `migrations`: applies `sql/migrations/NNNN_name.sql` in order, once, under an advisory lock.
- `queries`: the named queries of `sql/queries/*.sql`, loaded once (`queries["claim_chunk"]`).
"""
