"""Every table, report and figure, built from result files only: no torch, no data loading, nothing that trains.

`paper_tables` (results/paper-tables.md, .csv), `figures`, the studies'
reports (`tune_report`, `converge_report`, `ablation_report`,
`protocol_report`), the statistics behind them (`stats`) and the one way a
markdown table is laid out (`markdown`). `write.write_all` rebuilds them all.
"""
