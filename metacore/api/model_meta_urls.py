"""Metadata, options, search and the OpenAPI document."""

from django.urls import path

from metacore.api import model_meta_views as views
from metacore.api.openapi import MetacoreRedocView, MetacoreSchemaView, MetacoreSwaggerView

urlpatterns = [
    path("metadata/table/<str:model>", views.TableMetadataView.as_view(), name="metacore-metadata-table"),
    path("metadata/modal/<str:model>", views.ModalMetadataView.as_view(), name="metacore-metadata-modal"),
    path("metadata/all", views.AllMetadataView.as_view(), name="metacore-metadata-all"),
    path("options/<str:model>", views.OptionsView.as_view(), name="metacore-options"),
    path("search/<str:model>", views.SearchView.as_view(), name="metacore-search"),
    path("schema/", MetacoreSchemaView.as_view(), name="metacore-schema"),
    path("docs/", MetacoreSwaggerView.as_view(), name="metacore-docs"),
    path("redoc/", MetacoreRedocView.as_view(), name="metacore-redoc"),
]
