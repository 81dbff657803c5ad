"""Widgets the screens and panes share: keyed tables that update in place, the runs table, the run
preview, the log view, metric sparklines."""
