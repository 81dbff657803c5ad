"""The demo workspace: sample runs, datasets, models, a monitored model with drift, an alert and a
retrained candidate, and launched sample projects (used by `mltui demo`)."""
