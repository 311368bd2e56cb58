"""Control systems: CRUD, filterable by location and by module."""

from __future__ import annotations

from fastapi import APIRouter

from app.routers.crud import crud_router
from app.services.catalog import SYSTEM

router = APIRouter()
router.include_router(
    crud_router(SYSTEM, filters={"edge_control_id": "edge_control_id", "module": "modules"})
)
