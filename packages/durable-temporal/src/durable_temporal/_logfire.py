from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pydantic_ai.exceptions import UserError
from temporalio.plugin import SimplePlugin
from temporalio.runtime import OpenTelemetryConfig, Runtime, TelemetryConfig
from temporalio.service import ConnectConfig, ServiceClient

if TYPE_CHECKING:
    from logfire import Logfire

__all__ = ('LogfirePlugin',)


def _configure_logfire() -> Logfire:
    import logfire

    instance = logfire.configure()
    instance.instrument_pydantic_ai()
    return instance


def _metrics_endpoint(instance: Logfire) -> tuple[str, str] | None:
    """The OTLP metrics URL and token Logfire exports to, or `None` when Logfire sends nothing."""
    config = instance.config
    token = config.token[0] if isinstance(config.token, list) and config.token else config.token
    if not config.send_to_logfire or not isinstance(token, str) or config.metrics is False:
        return None
    return config.advanced.generate_base_url(token) + '/v1/metrics', token


class LogfirePlugin(SimplePlugin):
    """Temporal client plugin that traces workflows and activities with Logfire.

    It adds Temporal's OpenTelemetry tracing interceptors (to the client, and to the workers and replayers built on
    it), configures Logfire when the client connects, and, when Logfire sends data and `metrics` is true, exports the
    Temporal SDK's metrics to Logfire too.

    Args:
        setup_logfire: Configures Logfire and returns the instance; called once per client connection. The default
            calls `logfire.configure()` and `instrument_pydantic_ai()`.
        metrics: Whether to export Temporal SDK metrics to Logfire. Only done when Logfire sends data and the
            connection was not given its own `runtime`.
    """

    def __init__(self, setup_logfire: Callable[[], Logfire] = _configure_logfire, *, metrics: bool = True) -> None:
        try:
            import logfire  # noqa: F401  # pyright: ignore[reportUnusedImport]
            from opentelemetry.trace import get_tracer
            from temporalio.contrib.opentelemetry import TracingInterceptor
        except ImportError as error:  # pragma: no cover - the extra is part of the dev environment
            raise UserError(
                'LogfirePlugin needs the `logfire` and `opentelemetry` packages: '
                'install them with `pip install "durable-temporal[logfire]"`.'
            ) from error
        self.setup_logfire = setup_logfire
        self.metrics = metrics
        super().__init__(  # pyright: ignore[reportUnknownMemberType]  # SDK: bare `Callable` in `activities`
            'durable_temporal.LogfirePlugin', interceptors=[TracingInterceptor(get_tracer('temporalio'))]
        )

    async def connect_service_client(
        self, config: ConnectConfig, next: Callable[[ConnectConfig], Awaitable[ServiceClient]]
    ) -> ServiceClient:
        """Configure Logfire, and the runtime's metrics export when wanted, then connect."""
        instance = self.setup_logfire()
        endpoint = _metrics_endpoint(instance) if self.metrics else None
        if endpoint is not None and config.runtime is None:
            url, token = endpoint
            config.runtime = Runtime(
                telemetry=TelemetryConfig(
                    metrics=OpenTelemetryConfig(url=url, headers={'Authorization': f'Bearer {token}'})
                )
            )
        return await next(config)
