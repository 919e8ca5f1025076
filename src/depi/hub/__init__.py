"""Community datasets on the Hugging Face Hub: ``depi-download`` (fetch what a mixture needs, resumably) and
``depi-data-ids`` (list and curate dataset ids from their metadata alone)."""
