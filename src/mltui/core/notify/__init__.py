"""One notification path for the whole product.

- channels.py: the channels of config.toml's `[[notify.channels]]` (a webhook, a command, the TUI), checked.
- events.py: `emit(ws, kind, subject, details)`, what every part of mltui calls when something happens: the
  event goes into the store's outbox, and a detached delivery process is woken; the caller never waits on
  a channel.
- deliver.py: `deliver_pending(ws, conn)` and the delivery process (`python -m mltui.core.notify.deliver
  WORKSPACE`, one at a time per workspace): each pending event to each channel that wants it, with a
  timeout and retries; every try and its outcome recorded.
- outbox.py: the one module that writes the notify tables.
- runs.py: the events of a run's life (finished, failed, lost, stalled), built from its row.
"""
