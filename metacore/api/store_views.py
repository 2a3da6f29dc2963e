"""HTTP for the dynamic store: thin DRF views over `get_kernel().store`.

    GET/POST               dynamic/<model>
    GET/PUT/PATCH/DELETE   dynamic/<model>/<id>

Bodies are JSON only; answers use the Metacore envelopes (docs/api.md).
"""

from rest_framework import status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from metacore.api.errors import EnvelopeErrorsMixin
from metacore.api.idempotency import idempotent
from metacore.api.parsers import JSONParser
from metacore.api.renderers import AnyAcceptedNegotiation, with_fast_json
from metacore.context import CallContext
from metacore.kernel import get_kernel
from metacore.schema.registry import one_revision_read
from metacore.telemetry import count_request, span


def store_context(request) -> CallContext:
    return CallContext.from_request(request)


ACTIONS = {"GET": "read", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


class StoreView(EnvelopeErrorsMixin, APIView):
    parser_classes = [JSONParser]
    renderer_classes = with_fast_json(APIView.renderer_classes)
    content_negotiation_class: type[BaseContentNegotiation] = AnyAcceptedNegotiation
    permission_classes = [IsAuthenticated]
    schema = None  # documented per addon model by metacore.api.openapi

    def dispatch(self, request, *args, **kwargs):
        """One `metacore.store.<action>` span per request (the store adds addon, model and
        tenant once it has resolved them), the requests-by-model metric, and one read of the
        stored revisions for the whole request (`one_revision_read`)."""
        action = ACTIONS.get(request.method, request.method.lower())
        with span(f"metacore.store.{action}", model=kwargs.get("model"), action=action), one_revision_read():
            response = super().dispatch(request, *args, **kwargs)
        addon, _, model = (kwargs.get("model") or "").rpartition(".")
        count_request(addon=addon, model=model, action=action, status=response.status_code)
        return response

    @property
    def store(self):
        return get_kernel().store


class DynamicListView(StoreView):
    def get(self, request, model):
        ctx = store_context(request)
        page = self.store.list(ctx, model, request.query_params)
        rows = get_kernel().shaper.apply(ctx, model, page.rows, request.query_params)
        return Response({"success": True, "data": rows, "meta": page.meta})

    def post(self, request, model):
        def create():
            row = self.store.create(store_context(request), model, request.data)
            return Response({"success": True, "data": row}, status=status.HTTP_201_CREATED)

        return idempotent(request, create)


class DynamicDetailView(StoreView):
    def get(self, request, model, row_id):
        ctx = store_context(request)
        row = self.store.get(ctx, model, row_id)
        return Response(
            {"success": True, "data": get_kernel().shaper.apply(ctx, model, [row], request.query_params)[0]}
        )

    def put(self, request, model, row_id):
        """Load-merge-save: keys missing from the body keep their value (upstream PUT)."""
        row = self.store.update(store_context(request), model, row_id, request.data, partial=True)
        return Response({"success": True, "data": row})

    def patch(self, request, model, row_id):
        row = self.store.update(store_context(request), model, row_id, request.data, partial=True)
        return Response({"success": True, "data": row})

    def delete(self, request, model, row_id):
        self.store.delete(store_context(request), model, row_id)
        return Response({"success": True, "data": {"id": str(row_id)}})
