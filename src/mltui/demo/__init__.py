"""The demo workspace: sample runs, datasets, models and launched sample projects (used by `mltui demo`)."""
