"""``GET /api/objectives``: the registry of metrics, so that no page holds a direction."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.schemas import ObjectivePublic, ObjectivesPublic
from service.objectives import registry

router = APIRouter(prefix="/api/objectives", tags=["objectives"])


@router.get("", response_model=ObjectivesPublic)
def list_objectives() -> ObjectivesPublic:
    """Every metric of `service.objectives`: its name (the results column), its direction
    (``min`` or ``max``), unit, label and kind (``front``, ``search`` or ``other``)."""
    data = [ObjectivePublic(**metric) for metric in registry()]
    return ObjectivesPublic(data=data, count=len(data))
