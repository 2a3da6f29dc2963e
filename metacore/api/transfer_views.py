"""HTTP for import and export (thin views over `get_kernel().transfer`), the routes the SDK's
Import and Export dialogs call:

    GET  dynamic/<model>/export            ?format=csv|json&columns=a,b&column_labels={...}&f_...
    GET  dynamic/<model>/export/template   the CSV header to fill in
    POST dynamic/<model>/import/validate   multipart `file` (.csv/.json), a JSON body, or text/csv
    POST dynamic/<model>/import            the same; all rows or none

While an import runs, the importing user's hub sockets get IMPORT_PROGRESS frames
(`metacore.store.transfer.ImportProgress`, with the request's X-Request-ID).
"""

import json
import logging

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from rest_framework import status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from metacore.api.idempotency import idempotent
from metacore.api.store_views import StoreView, store_context
from metacore.context import CallContext, user_actor
from metacore.errors import InvalidInput
from metacore.kernel import get_kernel
from metacore.store.transfer import ImportProgress, ProgressCallback, read_csv, read_json

log = logging.getLogger("metacore.hub")


class CSVParser(BaseParser):
    """A `text/csv` body, kept as a byte stream for `read_csv`."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        return {"csv": stream}


class FormatIsOurs(DefaultContentNegotiation):
    """`?format=` picks the export's file format here, not DRF's renderer (URL_FORMAT_OVERRIDE)."""

    def filter_renderers(self, renderers, format):
        return renderers


class TransferView(StoreView):
    content_negotiation_class = FormatIsOurs

    @property
    def transfer(self):
        return get_kernel().transfer


class ExportView(TransferView):
    template = False

    def get(self, request, model):
        export = self.transfer.export(
            store_context(request), model, request.query_params, template=self.template
        )
        chunks = export.chunks
        if isinstance(request._request, ASGIRequest):
            chunks = _one_at_a_time(chunks)
        response = StreamingHttpResponse(chunks, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response


async def _one_at_a_time(chunks):
    """Under ASGI, Django would read a plain iterator to the end before sending anything;
    pulled chunk by chunk here instead (in the request's own thread: the export's
    transaction and cursor live on its database connection)."""
    pull = sync_to_async(next, thread_sensitive=True)
    try:
        while (chunk := await pull(chunks, None)) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close, thread_sensitive=True)()


class ExportTemplateView(ExportView):
    template = True


class ImportView(TransferView):
    parser_classes = [MultiPartParser, JSONParser, CSVParser]
    write = True

    def post(self, request, model):
        return idempotent(request, lambda: self._import(request, model))

    def _import(self, request, model):
        ctx = store_context(request)
        records = self._records(request)
        report = self.transfer.import_rows(
            ctx, model, records, write=self.write, progress=progress_to_hub(ctx, dry_run=not self.write)
        )
        body = report.as_json()
        if self.write and report.problems:
            first = report.problems[0]
            where = f"row {first.row}" + (f" (line {first.line})" if first.line else "")
            errors = {
                f"row {p.row}": [f"{p.column}: {p.message}" if p.column else p.message]
                for p in report.problems
            }
            return Response(
                {
                    "success": False,
                    "message": f"nothing imported: {where}: {first.column}: {first.message}",
                    "errors": errors,
                    "data": body,
                },
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        return Response(
            {"success": True, "data": body},
            status=status.HTTP_201_CREATED if self.write and report.created else status.HTTP_200_OK,
        )

    @staticmethod
    def _records(request):
        data = request.data
        upload = request.FILES.get("file") if hasattr(request, "FILES") else None
        if upload is not None:
            if upload.name.lower().endswith(".json") or (upload.content_type or "").endswith("json"):
                try:
                    return read_json(json.load(upload))
                except (ValueError, UnicodeDecodeError) as exc:
                    raise InvalidInput(f"file: not valid JSON: {exc}", errors={"file": [str(exc)]}) from None
            return read_csv(upload)
        if isinstance(data, dict) and "csv" in data and not isinstance(data["csv"], str):
            return read_csv(data["csv"])
        if request.content_type.startswith("multipart/"):
            raise InvalidInput(
                'file: expected a "file" part in the multipart form',
                errors={"file": ["this field is required"]},
            )
        return read_json(data)


class ImportValidateView(ImportView):
    write = False


def progress_to_hub(ctx: CallContext, *, dry_run: bool) -> ProgressCallback | None:
    """IMPORT_PROGRESS frames to the importing user's sockets of its organization; a hub
    that cannot send is logged and never fails the import."""
    user_id = user_actor(ctx.user)
    if not user_id:
        return None
    hub = get_kernel().hub

    def send(progress: ImportProgress) -> None:
        payload = {**progress.as_json(), "request_id": ctx.request_id, "dry_run": dry_run}
        try:
            hub.import_progress(user_id, payload, tenant=ctx.tenant)
        except Exception:
            log.exception("hub: import progress of request %s not sent", ctx.request_id)

    return send
