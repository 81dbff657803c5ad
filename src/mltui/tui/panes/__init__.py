"""The five panes of the main screen, one per key: runs, compare, datasets, GPUs, models. Each is a
`Pane` (base.py): it polls through tui/polling.py while its tab is shown, owns its store reader, and
says what to do while it has nothing to show. screens/main.py builds them from its table of tabs."""
