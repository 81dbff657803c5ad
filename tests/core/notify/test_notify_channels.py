"""The [notify] settings of config.toml: channels, their events filters, and one sentence for each mistake."""

from __future__ import annotations

import tomllib

import pytest

from mltui.core.notify.channels import NotifyConfigError, parse, redact

SOURCE = "/p/.mltui/config.toml"


def settings(text: str):
    return parse(tomllib.loads(text), SOURCE)


def test_channels_of_each_kind_parse_with_their_defaults_and_options():
    s = settings("""
        [notify]
        bell = true
        [[notify.channels]]
        name = "ops"
        webhook = "https://hooks.example/T000/B000"
        [[notify.channels]]
        name = "pager"
        command = ["python", "page.py"]
        events = ["alert", "run.failed"]
        timeout = 2
        tries = 5
        backoff = 0.5
        [[notify.channels]]
        name = "screen"
        tui = true
        events = ["run"]
    """)
    assert s.bell is True
    ops, pager, screen = s.channels
    assert (ops.kind, ops.events, ops.timeout, ops.tries) == ("webhook", None, 5.0, 3)
    assert (pager.kind, pager.target, pager.events) == ("command", ("python", "page.py"), ("alert", "run.failed"))
    assert (pager.timeout, pager.tries, pager.backoff) == (2.0, 5, 0.5)
    assert screen.kind == "tui"
    assert [c.name for c in s.senders] == ["ops", "pager"]  # the TUI reads the outbox itself
    assert s.screen_wants("run.failed") and not s.screen_wants("alert.opened")


def test_no_notify_section_means_no_channels_and_a_screen_that_shows_everything():
    s = settings("theme = 'x'\n")
    assert s.channels == [] and s.bell is False
    assert s.screen_wants("alert.opened") and s.screen_wants("promotion.decided")


def test_the_events_filter_matches_a_kind_and_the_kinds_under_it_only():
    pager = settings("""
        [[notify.channels]]
        name = "pager"
        command = ["true"]
        events = ["alert", "run.failed", "promotion."]
    """).channels[0]
    assert pager.wants("alert.opened") and pager.wants("alert.closed")
    assert pager.wants("run.failed")
    assert pager.wants("promotion.requested") and pager.wants("promotion.decided")  # a trailing dot is forgiven
    assert not pager.wants("run.finished") and not pager.wants("run.stalled")
    assert not pager.wants("alerting.x")  # a prefix is a whole part of the kind, not a string prefix
    assert not pager.wants("run")
    none = settings('[[notify.channels]]\nname = "x"\ncommand = ["true"]\nevents = []\n').channels[0]
    assert not none.wants("alert.opened")


def test_a_webhook_url_is_shown_only_as_scheme_host_and_an_ellipsis():
    assert redact("https://hooks.slack.com/services/T000/B000/XXXXSECRET") == "https://hooks.slack.com/…"
    assert redact("http://127.0.0.1:8080/hook?token=abc") == "http://127.0.0.1:8080/…"
    ops = settings('[[notify.channels]]\nname = "ops"\nwebhook = "https://h.example/a/SECRET"\n').channels[0]
    assert "SECRET" not in ops.shown and "SECRET" not in str(ops.describe())


CASES = [
    ("[notify]\nbel = true\n", "[notify] has an unknown setting 'bel'"),
    ("[notify]\nbell = 'yes'\n", "notify.bell must be true or false"),
    ("notify = 3\n", "[notify] must be a table"),
    ("[notify]\nchannels = 'ops'\n", "[[notify.channels]] tables"),
    ('[[notify.channels]]\nwebhook = "https://h/x"\n', "notify channel #1 needs a name"),
    ('[[notify.channels]]\nname = "ops"\n', "notify channel 'ops' needs exactly one of webhook"),
    ('[[notify.channels]]\nname = "ops"\nwebhook = "https://h/x"\ncommand = ["a"]\n', "needs exactly one of"),
    ('[[notify.channels]]\nname = "ops"\nwebhook = "ftp://h/SECRET"\n', "webhook must be an http:// or https:// URL"),
    ('[[notify.channels]]\nname = "ops"\nwebhook = "https:///SECRET"\n', "webhook must be an http:// or https:// URL"),
    ('[[notify.channels]]\nname = "pager"\ncommand = "python page.py"\n', "command must be a list of strings"),
    ('[[notify.channels]]\nname = "pager"\ncommand = []\n', "command must be a list of strings"),
    ('[[notify.channels]]\nname = "pager"\ncommand = ["a"]\nevents = "alert"\n', "events must be a list"),
    ('[[notify.channels]]\nname = "pager"\ncommand = ["a"]\ntimeout = 0\n', "timeout must be a number of seconds above 0"),
    ('[[notify.channels]]\nname = "pager"\ncommand = ["a"]\ntries = 0\n', "tries must be a whole number from 1 to 10"),
    ('[[notify.channels]]\nname = "pager"\ncommand = ["a"]\nbackoff = -1\n', "backoff must be a number of seconds"),
    ('[[notify.channels]]\nname = "pager"\ncommand = ["a"]\nwebhok = "x"\n', "unknown setting 'webhok'"),
    ('[[notify.channels]]\nname = "s"\ntui = false\n', "tui must be true"),
    ('[[notify.channels]]\nname = "a"\ncommand = ["x"]\n[[notify.channels]]\nname = "a"\ntui = true\n',
     "two notify channels are named 'a'"),
]


@pytest.mark.parametrize("text,expected", CASES, ids=[c[1][:40] for c in CASES])
def test_each_mistake_is_one_sentence_naming_the_file_and_the_channel(text, expected):
    with pytest.raises(NotifyConfigError) as err:
        settings(text)
    message = str(err.value)
    assert message.startswith(SOURCE + ": ")
    assert expected in message
    assert "\n" not in message and message.endswith((".", ")"))
    assert "SECRET" not in message  # a mistyped webhook is not echoed back
