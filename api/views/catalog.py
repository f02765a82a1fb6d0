"""Models, datasets and kinds: what jobs can name."""

from __future__ import annotations

from spectree import Response

from ...shared.errors import NotFound
from ...shared.kinds import KINDS
from ..auth import current_owner
from ..paging import checked_limit
from ..present import present_model, present_models, request_links
from ..schemas import KindList, KindOut, ModelList, ModelOut, PageQuery, problems
from ..services import services
from ..spec import spec
from . import v1


@v1.get("/models")
@spec.validate(query=PageQuery, resp=Response(HTTP_200=ModelList, **problems(422)), tags=["models"])
def list_models(query: PageQuery) -> ModelList:
    """The caller's trained models, newest first."""
    svc = services()
    limit = checked_limit(query.limit, svc.settings.list_page_max)
    models, cursor = svc.models.list_for_owner(current_owner(), limit=limit, cursor=query.cursor)
    links = request_links()  # once for the page
    return ModelList(data=present_models(models, links), next_cursor=cursor)


@v1.get("/models/<model_id>")
@spec.validate(resp=Response(HTTP_200=ModelOut), tags=["models"])
def get_model(model_id: str) -> ModelOut:
    """One trained model: kind, config, sample grid, final losses, source job."""
    model = services().models.resolve(model_id, current_owner())
    if model is None:
        raise NotFound(f"No model {model_id!r}.")
    return present_model(model)


@v1.get("/kinds")
@spec.validate(resp=Response(HTTP_200=KindList), tags=["kinds"])
def list_kinds() -> KindList:
    """Model kinds with the JSON Schema of their train and generate params."""
    return KindList(
        data=[
            KindOut(
                name=k.name,
                description=k.description,
                modality=k.modality,
                train_params_schema=k.train_params.model_json_schema(),
                generate_params_schema=k.generate_params.model_json_schema(),
            )
            for k in KINDS.values()
        ]
    )
