"""Shell completion: typer's bash/zsh/fish scripts, answered quickly and with files.

The shell runs `stripectl` on every Tab with `_STRIPECTL_COMPLETE=complete_<shell>`
(see `stripectl --show-completion`). Two changes to typer's answer classes:

- typer strips rich markup from each candidate's help by importing
  typer.rich_utils (rich.markdown, rich.traceback, pygments: ~80 ms a Tab);
  stripectl's help texts carry no markup, so whitespace is only flattened.
- typer echoes a path argument's partial word back as the only candidate, so
  Tab on a file name never completes. Here a path parameter answers nothing,
  which hands the word to the shell's own file completion (bash `-o default`,
  zsh `_files`, fish files allowed when `is-args` fails).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from click.shell_completion import CompletionItem, add_completion_class
from typer._completion_classes import BashComplete, FishComplete, ZshComplete

_PATH_TYPES = ("file", "dir")


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _without_paths(items: list[CompletionItem]) -> list[CompletionItem]:
    return [i for i in items if i.type not in _PATH_TYPES]


class FastBash(BashComplete):
    def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
        return _without_paths(super().get_completions(args, incomplete))


class FastZsh(ZshComplete):
    def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
        return _without_paths(super().get_completions(args, incomplete))

    def format_completion(self, item: CompletionItem) -> str:
        def escape(s: str) -> str:
            return (
                s.replace('"', '""').replace("'", "''").replace("$", "\\$")
                .replace("`", "\\`").replace(":", r"\\:")
            )

        if item.help:
            return f'"{escape(item.value)}":"{escape(_plain(item.help))}"'
        return f'"{escape(item.value)}"'


class FastFish(FishComplete):
    def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
        return _without_paths(super().get_completions(args, incomplete))

    def format_completion(self, item: CompletionItem) -> str:
        return f"{item.value}\t{_plain(item.help)}" if item.help else item.value


def register() -> None:
    """Call after typer built the command (it registers its own classes then)."""
    add_completion_class(FastBash, "bash")
    add_completion_class(FastZsh, "zsh")
    add_completion_class(FastFish, "fish")


def choices(*values: str) -> Callable[[str], list[str]]:
    """An `autocompletion=` callback offering fixed values (e.g. --format)."""

    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return complete
