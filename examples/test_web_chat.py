"""The web chat example (`examples/web_chat`) in a real browser: Debian's Chromium, headless, driven by Playwright.

The test starts the app (which starts its worker) on a free port, chats, kills the worker from the page in the middle
of the streamed answer and checks that the run resumes, that the final answer appears, and that no token is shown
twice except after a retry marker. Nothing downloads a browser: Playwright drives `/usr/bin/chromium`
(`apt-get install chromium`); without it the test is skipped, or fails where `DURABLE_REQUIRE_CHROMIUM=1` (CI).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.prefect_server import SETTINGS_ENV
from examples.web_chat._agent import answer_for

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
]
TOKEN_DELAY = 0.12
"""Seconds per token of the fake model: its answer (about 60 tokens) streams for about 7 s."""

pytestmark = pytest.mark.timeout(600)

AVAILABLE_ENGINES = ('dbos', 'temporal', 'prefect')
"""The engines the web chat runs on."""


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: install Debian's browser with `apt-get install chromium`"
    if os.environ.get('DURABLE_REQUIRE_CHROMIUM') == '1':
        pytest.fail(message)
    pytest.skip(message)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(pid: int, timeout: float = 30) -> None:
    """SIGTERM `pid`, SIGKILL it if it is still there after `timeout` seconds."""
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(
    scope='module',
    # One xdist worker per engine (`--dist loadgroup`), with the engine's other example tests.
    params=[pytest.param(engine, marks=[pytest.mark.xdist_group(name=engine)]) for engine in AVAILABLE_ENGINES],
)
def web_chat(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The web chat on a free port (DBOS on SQLite; Temporal and Prefect with a local server): yields its URL.

    Stops the server (which stops its worker and the engine's server) and any worker left, by PID.
    """
    engine: str = request.param
    if engine == 'temporal' and importlib.util.find_spec('temporalio.contrib.workflow_streams') is None:
        pytest.skip('temporalio < 1.27.0 has no Workflow Streams, which live events on Temporal need')
    workdir = tmp_path_factory.mktemp(f'web_chat_{engine}')
    log_path = workdir / 'server.log'
    argv = [sys.executable, '-m', 'examples.web_chat', '--engine', engine, '--port', '0', '--workdir', str(workdir)]
    argv += ['--token-delay', str(TOKEN_DELAY), '--restart-delay', '1']
    env = {**os.environ, **SETTINGS_ENV}
    with log_path.open('w') as log:
        server = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    worker_pids: set[int] = set()
    try:
        url = None
        deadline = time.monotonic() + 180
        while url is None:
            text = log_path.read_text()
            for line in text.splitlines():
                if line.startswith(f'Web chat ({engine}) on '):
                    url = line.split(' on ', 1)[1].split()[0]
            if url is None:
                assert server.poll() is None, f'the web chat exited with {server.returncode}:\n{text}'
                assert time.monotonic() < deadline, f'the web chat did not start in 180 s:\n{text}'
                time.sleep(0.3)
        worker_pids.add(httpx.get(f'{url}api/worker', timeout=30).json()['pid'])
        yield url
        worker_pids.add(httpx.get(f'{url}api/worker', timeout=30).json()['pid'])
    finally:
        _stop(server.pid)
        server.wait(timeout=60)
        for pid in worker_pids:  # the server stops its worker; make sure, by PID
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
        print(log_path.read_text()[-3000:])


def _texts(segment: list[dict[str, Any]]) -> str:
    return ''.join(message['text'] for message in segment if message['type'] == 'text')


def _segments(log: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The page's messages of one turn, split at each retry marker."""
    segments: list[list[dict[str, Any]]] = [[]]
    for message in log:
        if message['type'] == 'retry':
            segments.append([])
        else:
            segments[-1].append(message)
    return segments


def test_browser_sees_tokens_live_and_the_run_resumes_after_the_worker_is_killed(web_chat: str) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    prompt = 'Tell me about durable agents'
    expected = answer_for(prompt)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.goto(web_chat)
            page.wait_for_function("document.getElementById('worker').dataset.alive === 'true'")
            first_pid = int(page.get_attribute('#worker', 'data-pid') or 0)

            page.fill('#message', prompt)
            page.click('#send')
            # Tokens arrive while the run executes: 8 of them, and no result yet.
            page.wait_for_function("window.chatLog.filter(m => m.type === 'text').length >= 8")
            seen: list[dict[str, Any]] = page.evaluate('window.chatLog')
            assert not any(m['type'] == 'result' for m in seen), seen
            assert len(_texts(seen)) < len(expected)
            assert page.inner_text('.assistant').startswith('You said:')

            page.click('#kill')
            page.wait_for_function("window.chatLog.some(m => m.type === 'killed')")
            # A new worker starts and the run resumes: the final answer appears.
            page.wait_for_selector('.assistant.final', timeout=180_000)
            assert page.inner_text('.assistant.final') == expected
            assert page.locator('.assistant').count() == 1  # the partial answer was discarded
            assert 'partial answer discarded' in page.inner_text('#chat')
            page.wait_for_function("window.chatLog.some(m => m.type === 'end')")
            page.wait_for_function(
                f"document.getElementById('worker').dataset.alive === 'true' "
                f"&& document.getElementById('worker').dataset.pid !== '{first_pid}'"
            )

            log: list[dict[str, Any]] = page.evaluate('window.chatLog')
            killed = [m for m in log if m['type'] == 'killed']
            assert killed, log
            assert killed[0]['pid'] == first_pid, log
            turn = [m for m in log if m['type'] not in ('user', 'killed', 'end')]
            segments = _segments(turn)
            # The worker died in the middle of the model's stream: its step ran again, announced by a retry marker.
            assert len(segments) >= 2, turn
            for segment in segments[:-1]:
                assert expected.startswith(_texts(segment)), segment  # no token twice before a marker
            assert _texts(segments[-1]) == expected
            # The tool call was recorded before the crash: published once, never repeated.
            assert [m['type'] for m in turn].count('tool_call') == 1, turn
            assert [m['type'] for m in turn].count('tool_result') == 1, turn
            assert turn[-1] == {'type': 'result', 'output': expected}
            print(f'{len(segments) - 1} retry marker(s); {sum(len(_texts(s)) for s in segments[:-1])} chars discarded')

            # A second turn continues the conversation (its history is the first turn's messages); this time the
            # worker is killed from outside the page, as `kill -9 <pid>` in a terminal would.
            second_pid = int(page.get_attribute('#worker', 'data-pid') or 0)
            assert second_pid != first_pid
            before = len(page.evaluate('window.chatLog'))
            page.fill('#message', 'And again')
            page.click('#send')
            page.wait_for_function(f"window.chatLog.slice({before}).filter(m => m.type === 'text').length >= 8")
            os.kill(second_pid, signal.SIGKILL)
            page.wait_for_function("document.querySelectorAll('.assistant.final').length === 2", timeout=180_000)
            assert page.locator('.assistant.final').nth(1).inner_text() == answer_for('And again')
            second = [m for m in page.evaluate('window.chatLog')[before:] if m['type'] not in ('user', 'end')]
            segments = _segments(second)
            assert len(segments) >= 2, second
            for segment in segments[:-1]:
                assert answer_for('And again').startswith(_texts(segment)), segment
            assert _texts(segments[-1]) == answer_for('And again')
            page.wait_for_function(
                f"document.getElementById('worker').dataset.alive === 'true' "
                f"&& document.getElementById('worker').dataset.pid !== '{second_pid}'"
            )
        finally:
            browser.close()


def _sse_messages(url: str, last_event_id: str | None = None) -> list[tuple[str | None, dict[str, Any]]]:
    """The `(id, data)` of every message of an SSE response, read to its end."""
    headers = {'Last-Event-ID': last_event_id} if last_event_id is not None else {}
    messages: list[tuple[str | None, dict[str, Any]]] = []
    with httpx.stream('GET', url, headers=headers, timeout=120) as response:
        event_id: str | None = None
        for line in response.iter_lines():
            if line.startswith('id: '):
                event_id = line[4:]
            elif line.startswith('data: '):
                messages.append((event_id, json.loads(line[6:])))
            elif not line:
                event_id = None
    return messages


def test_sse_resumes_after_last_event_id(web_chat: str) -> None:
    # What a reconnecting EventSource does: it sends the id of the last event it received.
    run_id = httpx.post(f'{web_chat}api/chat', json={'message': 'resume', 'conversation': 'sse'}, timeout=60).json()[
        'run_id'
    ]
    events_url = f'{web_chat}api/runs/{run_id}/events'
    everything = [(i, m) for i, m in _sse_messages(events_url) if i is not None]
    assert everything[-1][1] == {'type': 'result', 'output': answer_for('resume')}
    ids = [int(i) for i, _ in everything]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for cut in (0, 2, len(everything) // 2, len(everything) - 2):
        resumed = [(i, m) for i, m in _sse_messages(events_url, everything[cut][0]) if i is not None]
        assert resumed == everything[cut + 1 :], cut
