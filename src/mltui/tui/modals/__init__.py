"""Dialogs over the main screen: confirm, prompt, save view, launch, add data."""
