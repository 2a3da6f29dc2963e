"""HTTP for metadata, options and search: translate the request, call the service, wrap the
result in the upstream envelope. Authorization is the permission service's (`<model>.read`),
so no DRF permission class stands in front of it; authentication is the host's."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from metacore.api.errors import EnvelopeErrorsMixin
from metacore.kernel import get_kernel


class _MetaView(EnvelopeErrorsMixin, APIView):
    permission_classes = ()

    @property
    def service(self):
        return get_kernel().metadata


def _query(name, type_, description):
    return OpenApiParameter(name, type_, OpenApiParameter.QUERY, required=False, description=description)


def _documented(summary, *parameters):
    return extend_schema(
        summary=summary,
        tags=["metadata"],
        parameters=list(parameters),
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiTypes.OBJECT,
            401: OpenApiTypes.OBJECT,
            403: OpenApiTypes.OBJECT,
            404: OpenApiTypes.OBJECT,
        },
    )


class TableMetadataView(_MetaView):
    @_documented("TableMetadata of a model (`{success, data}`)")
    def get(self, request, model):
        return Response(
            {
                "success": True,
                "data": self.service.table(
                    request.user, model, request.headers.get("Accept-Language"), request
                ),
            }
        )


class ModalMetadataView(_MetaView):
    @_documented("ModalMetadata of a model (`{success, data}`)")
    def get(self, request, model):
        return Response(
            {
                "success": True,
                "data": self.service.modal(
                    request.user, model, request.headers.get("Accept-Language"), request
                ),
            }
        )


class AllMetadataView(_MetaView):
    @_documented("Every readable model's metadata: `{version, tables, modals}`")
    def get(self, request):
        return Response(
            {
                "success": True,
                "data": self.service.all(request.user, request.headers.get("Accept-Language"), request),
            }
        )


class OptionsView(_MetaView):
    @_documented(
        "Options of a field: `{success, data: [{id, value, label, name}], meta: {type, count}}`",
        _query("field", str, "column (default `id`: the model's own rows)"),
        _query("q", str, "text the label contains"),
        _query("limit", int, "at most 200 (default 50)"),
        _query("offset", int, "rows to skip"),
        _query("ids", str, "comma list of ids to fetch (selected values)"),
        _query("filter_value", str, "dependent dropdowns: compared with the field's `filter_by` column"),
    )
    def get(self, request, model):
        kind, options = self.service.options(request.user, model, request.query_params, request)
        return Response({"success": True, "data": options, "meta": {"type": kind, "count": len(options)}})


class SearchView(_MetaView):
    @_documented(
        "Search rows: `{success, data: [{id, value, label, name}], meta: {type, count}}`",
        _query("q", str, "text any search column contains (alias: `search`)"),
        _query("limit", int, "at most 200 (default 20)"),
    )
    def get(self, request, model):
        hits = self.service.search(request.user, model, request.query_params, request)
        return Response({"success": True, "data": hits, "meta": {"type": "dynamic", "count": len(hits)}})
