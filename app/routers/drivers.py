"""Drivers: CRUD."""

from __future__ import annotations

from fastapi import APIRouter

from app.routers.crud import crud_router
from app.services.catalog import DRIVER

router = APIRouter()
router.include_router(crud_router(DRIVER))
