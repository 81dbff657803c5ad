"""Runs: tracking from scripts, run records, listing, compare, saved views, export, log files."""
