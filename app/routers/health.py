"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from app.models import Health, Ready
from app.routers.crud import problems
from app.routers.deps import NodeDep
from app.routers.problems import problem
from app.services.tasks import describe_dead

router = APIRouter(tags=["health"])


@router.get(
    "/api/health",
    operation_id="getHealth",
    summary="Check that the process runs (200 while it does)",
    response_model=Health,
)
async def health(node: NodeDep) -> Health:
    return Health(status="ok", node=node.settings.node_name)


@router.get(
    "/api/ready",
    operation_id="getReady",
    summary="Check that boot is complete (503 with Retry-After until it is)",
    description="Once ready, the body also says whether the store takes control decisions' "
    "writes (master: `store`, `decisions_unrecorded`), how the link fares (edge: `link` with "
    "`link_state` — `up`, `closed`, `refused`, `tls` or `unreachable` — `master_alive`, "
    "`link_state_since`, the last `error` when it is refused or failing, the process's "
    "`instance_id`; `controls`; `replication_error` while its replica cannot catch up) and "
    "when the TLS certificates expire (`tls`: this server's `certificate` and, on an edge, "
    "the `master_certificate` its link last saw, each with `not_after`, `expires_in_s` and "
    "`expiring` within ENGINE_TLS_EXPIRY_WARNING_S). A background task that died makes it "
    "503, naming the task in `dead_tasks`, at any time.",
    response_model=Ready,
    responses=problems(503),
)
async def ready(node: NodeDep) -> Response:
    boot = node.boot
    dead = node.tasks.dead
    if dead:
        return problem(
            503,
            "Service Unavailable",
            describe_dead(dead),
            phase=boot.phase,
            dead_tasks=[task.as_json() for task in dead],
        )
    if not boot.ready:
        return problem(
            503,
            "Service Unavailable",
            f"booting: {boot.phase}",
            headers={"Retry-After": str(max(1, round(boot.expected_wait_s)))},
            phase=boot.phase,
        )
    # Counts that move (edges connected, modules running) are read now, not at boot.
    return JSONResponse(
        {
            "status": "ready",
            "node": node.settings.node_name,
            "phase": boot.phase,
            **boot.summary,
            **node.live_counts(),
            **node.control.health(),
            "tls": node.certificates.as_json(),
        }
    )


@router.get(
    "/metrics",
    operation_id="getMetrics",
    summary="Read the Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(node: NodeDep) -> Response:
    return Response(node.metrics.render(), media_type="text/plain; version=0.0.4")
