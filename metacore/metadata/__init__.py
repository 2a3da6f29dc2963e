"""UI metadata (TableMetadata / ModalMetadata), options and search for addon models."""
