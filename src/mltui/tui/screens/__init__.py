"""Whole screens: the main screen (main.py, the tabs of panes/), and those pushed over it: a run's
detail (run_detail.py), its live output (log.py), a promotion review (review.py)."""
