"""What thread workers tell the screen: one typed message per kind of answer.

A worker (a thread) never touches widgets. It reads, computes, and posts one of these to the widget
that started it (`post_message` is safe from any thread); that widget's `on_...` handler draws the
answer on the UI thread. Answers to a question the user has since moved away from carry the
question's `key`, so the handler can drop them.

The polls of tui/polling.py answer through Textual's worker state instead (one snapshot per poll).
None of these bubble: they are for the widget that asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

# -- the Datasets pane's right side (panes/datasets.py) ----------------------------------------------
# key: (mode, version id, marked version id or None), what the right side was asked to show


@dataclass
class DetailProgress(Message, bubble=False):
    """Profiling or drift is `done` of `total` steps along."""

    key: tuple
    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DetailProgress) and message.key == self.key  # only the latest step counts


@dataclass
class DetailLoaded(Message, bubble=False):
    """An answer for the right side (each kind below has its own handler)."""

    key: tuple


@dataclass
class FilesLoaded(DetailLoaded, bubble=False):
    entries: list  # the version's manifest entries (core.data.versions.files)


@dataclass
class UsersLoaded(DetailLoaded, bubble=False):
    runs: list[dict]  # the runs that used the version (core.data.lineage.runs_using)


@dataclass
class DiffLoaded(DetailLoaded, bubble=False):
    diff: object  # the marked version against the highlighted one (core.data.ops.diff)


@dataclass
class ProfileLoaded(DetailLoaded, bubble=False):
    profiles: list[dict]  # one per table file profiled (core.data.tables.profile_of)


@dataclass
class DriftLoaded(DetailLoaded, bubble=False):
    results: list[dict]  # one per table file compared (core.data.tables.drift_of)


@dataclass
class DetailFailed(DetailLoaded, bubble=False):
    error: str  # one sentence, shown in the pane


# -- the review of a promotion request (screens/review.py) --------------------------------------------


@dataclass
class ReviewLoaded(Message, bubble=False):
    review: object  # core.models.review.Review, its curves already cut to what a line shows


@dataclass
class ReviewFailed(Message, bubble=False):
    error: str


@dataclass
class AuditLoaded(Message, bubble=False):
    rows: list  # core.models.audit.entries
    verdict: object  # core.models.trail.Verdict: each row's signature state and the problems


@dataclass
class AuditFailed(Message, bubble=False):
    error: str


# -- inspecting a checkpoint (panes/models.py) --------------------------------------------------------


@dataclass
class CheckpointInspected(Message, bubble=False):
    version: object  # core.models.registry.ModelVersion
    info: dict  # core.models.checkpoint.inspect


@dataclass
class CheckpointFailed(Message, bubble=False):
    version: object
    error: str


# -- recording a dataset version (modals/data_add.py) -------------------------------------------------


@dataclass
class HashProgress(Message, bubble=False):
    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HashProgress)


@dataclass
class DataAdded(Message, bubble=False):
    said: str  # "name@id: version N", or that nothing changed


@dataclass
class DataAddFailed(Message, bubble=False):
    error: str


# -- checking the pipeline's stages (panes/pipelines.py) ----------------------------------------------


@dataclass
class PipelineChecked(Message, bubble=False):
    pipe: object  # core.pipeline.stages.Pipeline the check was made for (a reloaded one drops it)
    checked: object  # core.pipeline.view.Check


@dataclass
class PipelineCheckFailed(Message, bubble=False):
    pipe: object
    error: str
