"""progress_bar: drawn in a terminal only, never when a config says ``progress: false``."""

import io
import sys

import pytest

from arch_search.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal, enabled, drawn", [(True, True, True), (True, False, False), (False, True, False)])
def test_a_bar_is_drawn_only_on_a_terminal_and_when_enabled(terminal, enabled, drawn, monkeypatch):
    stderr = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    bar = progress_bar(range(3), enabled=enabled, desc="steps")
    for _ in bar:
        bar.set_postfix(loss="0.5")
    assert list(progress_bar(range(3), enabled=enabled)) == [0, 1, 2]  # drawn or not, it iterates
    assert ("steps" in stderr.getvalue()) == drawn and (stderr.getvalue() == "") == (not drawn)
