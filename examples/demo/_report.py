"""What the demo prints: the live account of calls, and the verdict comparing the journal with the engine's record."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

from rich.console import Console
from rich.table import Table

from examples.demo._journal import JournalEvent

console = Console(highlight=False)

Key = tuple[str, str]
"""(kind, name) of a call: ('model', 'scripted-travel-model') or ('tool', 'book_flight')."""


@dataclass(frozen=True)
class RecordedCall:
    """A completed call as the engine recorded it (a DBOS step, a Temporal activity, a Prefect task run)."""

    kind: Literal['model', 'tool', 'other']
    name: str
    unit: str
    """The engine's name for the durable unit (step, activity or task name)."""
    summary: str

    @property
    def key(self) -> Key:
        """The call's (kind, name)."""
        return (self.kind, self.name)


def _label(kind: str, name: str) -> str:
    return f'[magenta]model[/] {name}' if kind == 'model' else f'[cyan]tool[/]  {name}'


def show_event(event: JournalEvent, process: str) -> None:
    """Print one journal event as it happens."""
    kind, name, text = event['kind'], event['name'], event['text']
    if event['event'] == 'start':
        console.print(f'  [dim]{process}[/] [yellow]▶ running[/]  {_label(kind, name)} [dim]{text}[/]')
    elif event['event'] == 'end':
        console.print(f'  [dim]{process}[/] [green]✔ done   [/]  {_label(kind, name)} → {text}')
    elif event['event'] == 'final':
        console.print(f'  [dim]{process}[/] [bold green]★ final answer:[/] {text}')
    else:
        console.print(f'  [dim]{process}[/] [bold red]✘ the run failed:[/] {text}')


def show_recorded(calls: list[RecordedCall], where: str) -> None:
    """Print the calls the engine has recorded."""
    console.print(f'\n[bold]{where} holds {len(calls)} completed call(s):[/]')
    for i, call in enumerate(calls, 1):
        console.print(f'  {i}. {_label(call.kind, call.name)} → {call.summary}')


CallId = tuple[str, str, str]
"""(kind, name, what was called): the same call in both processes has the same id."""


@dataclass
class Verdict:
    """The comparison of what the engine recorded with what actually executed in each process."""

    before_crash: list[RecordedCall]
    final: list[RecordedCall]
    completed_in_first: list[CallId]
    """Calls that ran to completion in process 1 before the call cut off by the kill started (from the journal)."""
    ran_in_second: list[CallId]
    """Calls that ran to completion in process 2 (from the journal)."""
    interrupted: list[Key]

    @property
    def repeated(self) -> Counter[CallId]:
        """Calls that completed in process 1 and ran again in process 2 (must be empty)."""
        return Counter(self.completed_in_first) & Counter(self.ran_in_second)

    @property
    def ok(self) -> bool:
        """Whether the run finished without repeating a completed call, with every call recorded once."""
        return not self.repeated and len(self.final) == len(self.before_crash) + len(self.ran_in_second)


def show_verdict(verdict: Verdict, replayed_label: str) -> None:
    """Print the table of calls (replayed or fresh) and the one-line summary."""
    table = Table(title='Every call of the run, as the engine recorded it', title_justify='left')
    table.add_column('#', justify='right')
    table.add_column('call')
    table.add_column('ran in')
    table.add_column('after the restart')
    for i, call in enumerate(verdict.final, 1):
        if i <= len(verdict.before_crash):
            executed, resumed = 'process 1', f'[green]{replayed_label}[/]'
        else:
            executed, resumed = 'process 2', '[yellow]ran fresh[/]'
        table.add_row(str(i), _label(call.kind, call.name), executed, resumed)
    console.print()
    console.print(table)
    n = len(verdict.before_crash)
    tools = [c.name for c in verdict.before_crash if c.kind == 'tool']
    if verdict.ok:
        console.print(
            f'\n[bold green]✔ {n} call(s) recorded before the crash were not repeated[/]'
            + (f' (tools: {", ".join(tools)})' if tools else '')
            + f'; {len(verdict.final) - n} ran after the restart.'
        )
        for kind, name in verdict.interrupted:
            console.print(
                f'  The {kind} call {name} cut off by the kill had not completed (nothing recorded): it ran again.'
            )
    else:
        repeated = ', '.join(f'{kind} {name} ({call})' for kind, name, call in verdict.repeated.elements())
        console.print(
            f'\n[bold red]✘ Not crash-safe:[/] repeated after the restart: {repeated or "none"}; '
            f'{len(verdict.before_crash)} calls were recorded before the crash, {len(verdict.ran_in_second)} ran after '
            f'it, and the engine recorded {len(verdict.final)} in all.'
        )
