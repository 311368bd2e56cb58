"""Modules: CRUD, filterable by driver."""

from __future__ import annotations

from fastapi import APIRouter

from app.routers.crud import crud_router
from app.services.catalog import MODULE

router = APIRouter()
router.include_router(crud_router(MODULE, filters={"driver_id": "driver_id"}))
