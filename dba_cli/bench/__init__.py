"""Benchmarks, each measured as ratios in one run: a DBA step against plain SGD (`step`), our data pipeline
against torchvision's (`pipeline`). Not training sources: editing them leaves every result current."""
