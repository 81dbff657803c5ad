"""The Textual app. Everything that imports Textual lives under this package, and none of it talks
SQL or opens the store but through core/.

- app.py: the App, a router of screens, bindings and palette commands; run_actions.py: what it does
  to runs (launch, kill, rerun, open the log).
- screens/: whole screens. main.py (the tabs, one table of panes), run_detail.py, log.py, review.py.
- panes/: the five tabs of the main screen (runs, compare, datasets, GPUs, models) on one base,
  panes/base.py (store reader, refresh, empty state, focus).
- modals/: dialogs over any screen (confirm, prompt, save view, launch, add data).
- widgets/: pieces the screens and panes share (keyed tables, runs table, log view, sparklines).
- polling.py: the poll loop (a thread collects, the UI thread applies); messages.py: the typed
  messages other thread workers answer with; writes.py: how a screen changes the store; cells.py:
  table cells and the sparkline alphabet; themes.py.
"""
