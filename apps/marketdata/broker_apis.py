"""Staff-only view of the broker client's shared counters and circuit-breaker state."""

from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.brokers.kis.config import ImproperlyConfiguredBroker
from apps.core.exceptions import ServiceUnavailable

from .broker_services import broker_metrics


class BrokerMetricsApi(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(
        summary="Broker client metrics (staff only)",
        description=(
            "Calls, errors by code, retries, limiter waits, token issuances and the circuit breaker of the "
            "configured KIS app key, shared by every process through Redis."
        ),
        responses={200: dict},
    )
    def get(self, request):
        try:
            return Response(broker_metrics())
        except ImproperlyConfiguredBroker as exc:
            raise ServiceUnavailable(str(exc), code="broker_misconfigured") from exc
