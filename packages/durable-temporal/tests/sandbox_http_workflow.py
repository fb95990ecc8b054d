"""A workflow module that imports the HTTP stack pydantic-ai 2.x uses (`httpx2`) at module level, as user code may."""

from __future__ import annotations

import httpx2
from temporalio import workflow


@workflow.defn
class Httpx2ModuleWorkflow:
    """Its module imports `httpx2`, whose cookie jar subclasses `urllib.request.Request` at import time."""

    @workflow.run
    async def run(self, url: str) -> str:
        return str(httpx2.URL(url).host)
