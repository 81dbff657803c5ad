"""Dialogs pushed over any screen (ModalScreen): confirm, prompt, save view, launch, add data. Panes
and screens push them and act on what they dismiss with."""
