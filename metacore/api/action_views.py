"""HTTP for row actions: `POST dynamic/<model>/<id>/action/<key>`, a thin view over
`get_kernel().sandbox.run_action` (docs/sandbox.md).

Answers the upstream action envelope: `{success, data, meta}` (200), or
`{success: false, error: {code, message}, meta}` when the addon declined or failed (422;
504 on a timeout), with `meta: {model, action, trigger_type, rolled_back}`. Errors before
the addon runs (auth, permission, unknown model/row/action, bad body) are the usual
`{success: false, message, errors}` envelopes.
"""

from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from metacore.api.errors import EnvelopeErrorsMixin
from metacore.api.idempotency import idempotent
from metacore.api.parsers import JSONParser
from metacore.context import CallContext
from metacore.kernel import get_kernel


class RowActionView(EnvelopeErrorsMixin, APIView):
    parser_classes = [JSONParser]
    permission_classes = [IsAuthenticated]
    schema = None  # documented per addon model by metacore.api.openapi

    def post(self, request, model, row_id, key):
        ctx = CallContext.from_request(request)

        def run():
            status, body = get_kernel().sandbox.run_action(ctx, model, row_id, key, request.data)
            return Response(body, status=status)

        return idempotent(request, run)
