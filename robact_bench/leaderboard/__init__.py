"""Leaderboards: RobustBench-format JSON export and tables rendered from the JSON files."""
