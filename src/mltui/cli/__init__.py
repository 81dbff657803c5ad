"""Headless commands: `mltui <noun> <verb>`, plain text for people and --json for scripts."""
