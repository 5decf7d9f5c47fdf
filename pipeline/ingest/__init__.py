"""Layer 2: GDELT sources (servers, local files, BigQuery) → ``events`` → the 14-column ``country`` table."""
