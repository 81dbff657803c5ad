"""The domain of mltui: workspaces, runs, tracking. Never imports Textual."""
