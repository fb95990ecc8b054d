"""Where a Temporal worker spends its CPU: cProfile of ours' or the floor's worker at N runs in flight.

`uv run python -m benchmarks.profile_temporal --variant ours --concurrency 50 --runs 100` starts a dev server and one
worker (the main section's client, converter and worker settings), runs the benchmark workload `--runs` times with
`--concurrency` in flight, and prints the top functions by own time and by cumulative time, separately for the
workflow threads (the sandboxed workflow code: the agent graph, the run context, unit inputs and outputs) and for the
event-loop thread (activities, the client, the SDK's bridge to its Rust core). The profiler is stdlib cProfile, one
per thread, timed by the thread's CPU clock (`benchmarks/_profiling.py`, shared with `profile_engines`): the SDK runs
workflow activations on a thread pool, which a profiler of the main thread would not see.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import pstats
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from ._profiling import cpu_profiler, profile_this_thread, thread_profilers, top
from ._workload import Workload


async def _profile(
    variant: str, concurrency: int, runs: int, warmup: int, profile: bool = True, sandboxed: bool = True
) -> dict[str, Any]:
    from temporalio.worker import UnsandboxedWorkflowRunner, Worker

    from ._temporal import _floor_plan, dev_server, ours_client  # pyright: ignore[reportPrivateUsage]
    from ._temporal_floor import FloorWorkflow, floor_model, floor_tool
    from ._temporal_ours import OursWorkflow

    workload = Workload()
    workflow: Any = OursWorkflow if variant == 'ours' else FloorWorkflow
    if variant == 'ours-shared':
        from ._temporal_ours_shared import OursSharedWorkflow

        workflow = OursSharedWorkflow
    argument: Any = _floor_plan(workload) if variant == 'floor' else workload.prompt()
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=4, thread_name_prefix='profiled_workflow_', initializer=profile_this_thread if profile else None
    )
    async with AsyncExitStack() as stack:
        client = ours_client(await stack.enter_async_context(dev_server()))
        task_queue = f'profile-{uuid.uuid4().hex}'
        options: dict[str, Any] = {}
        if not sandboxed:
            # Without the sandbox: what its import hooks and builtins cost (a worker option in Temporal).
            options['workflow_runner'] = UnsandboxedWorkflowRunner()
        await stack.enter_async_context(
            Worker(
                client,
                task_queue=task_queue,
                workflows=[workflow],
                activities=[floor_model, floor_tool] if variant == 'floor' else [],
                # A few threads: as many as run Python at once under the GIL, and the profilers' threads.
                workflow_task_executor=executor,
                **options,
            )
        )
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with semaphore:
                await client.execute_workflow(workflow.run, argument, id=f'p-{uuid.uuid4().hex}', task_queue=task_queue)

        await asyncio.gather(*(one() for _ in range(warmup)))
        main = cpu_profiler()
        # Drop what the warm-up recorded (profile_engines diffs snapshots instead, for threads busy at that moment).
        for _, profiler in thread_profilers():
            profiler.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        if profile:
            main.enable()
        await asyncio.gather(*(one() for _ in range(runs)))
        main.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        workflow_profilers = [profiler for _, profiler in thread_profilers()]
        for profiler in workflow_profilers:
            profiler.create_stats()
        main.create_stats()
    executor.shutdown(wait=False)
    return {
        'cpu_ms_per_run': cpu * 1000 / runs,
        'runs_per_s': runs / wall,
        'workflow': pstats.Stats(*workflow_profilers) if profile and workflow_profilers else None,
        'main': pstats.Stats(main) if profile else None,
    }


def main() -> None:
    """Entry point of `python -m benchmarks.profile_temporal`."""
    parser = argparse.ArgumentParser(prog='python -m benchmarks.profile_temporal', description=__doc__)
    parser.add_argument('--variant', choices=('ours', 'ours-shared', 'floor'), default='ours')
    parser.add_argument('--concurrency', type=int, default=50)
    parser.add_argument('--runs', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--limit', type=int, default=30, help='functions listed per table')
    parser.add_argument(
        '--no-profile', action='store_true', help='measure the CPU per run only, without the profilers (no overhead)'
    )
    parser.add_argument(
        '--unsandboxed', action='store_true', help="run the workflows outside Temporal's sandbox (what it costs)"
    )
    parser.add_argument('--dump', type=Path, help='also write the merged workflow-thread stats here (pstats format)')
    args = parser.parse_args()
    profile = not args.no_profile
    result = asyncio.run(
        _profile(args.variant, args.concurrency, args.runs, args.warmup, profile, not args.unsandboxed)
    )
    print(
        f'{args.variant}{" (unsandboxed)" if args.unsandboxed else ""}: {args.runs} runs, {args.concurrency} in flight: {result["cpu_ms_per_run"]:.1f} ms CPU per '
        f'run, {result["runs_per_s"]:.1f} runs/s (load {os.getloadavg()[0]:.2f})'
    )
    for thread in ('workflow', 'main') if profile else ():
        for key in ('tottime', 'cumulative'):
            print(f'\n=== {thread} thread(s), by {key} ===')
            print(top(result[thread], key, args.limit))
    if args.dump and result['workflow'] is not None:
        result['workflow'].dump_stats(str(args.dump))
    # The Temporal SDK can abort at interpreter exit after a worker ran: everything is shut down, so leave now.
    os._exit(0)


if __name__ == '__main__':
    main()
